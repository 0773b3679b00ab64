export { startServer, type StartOptions, type SwitchboardServer } from './server.js';
export { loadConfig, ConfigError, type Config } from './config.js';
export { MemoryStore } from './store/memory-store.js';
export type * from './store/types.js';
export { applyCallEvent, roleOf } from './calls/machine.js';
export type * from './calls/types.js';
export { userKey } from './calls/types.js';
export { mintToken, TokenVerifier, AuthError } from './auth/tokens.js';
export { iceServersFor, turnCredential } from './auth/turn.js';
