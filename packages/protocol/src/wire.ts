/**
 * The protocol without its zod schemas: event maps, payload types, error
 * codes, branded ids and limits — everything a client needs, and nothing that
 * loads zod at run time (`@switchboard/protocol/wire`). The server, which
 * validates every payload, imports the whole package.
 */
export * from './ids.js';
export * from './errors.js';
export * from './limits.js';
export * from './events.js';
export * from './quality.js';
