export * from './ids.js';
export * from './errors.js';
export * from './limits.js';
export * from './schemas.js';
export * from './events.js';
export * from './quality.js';
