/**
 * Branded identifiers. They are plain strings on the wire; the brand stops a
 * `SessionId` from being passed where a `UserId` is expected at compile time.
 */
declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A user's `sub` claim, read within the sender's tenant. */
export type UserId = Brand<string, 'UserId'>;
/** A call's id: a UUID, proposed by the caller or made by the server. */
export type CallId = Brand<string, 'CallId'>;
/** An opaque session id of at least 128 random bits, handed out by `auth:success`. */
export type SessionId = Brand<string, 'SessionId'>;

export const asUserId = (value: string): UserId => value as UserId;
export const asCallId = (value: string): CallId => value as CallId;
export const asSessionId = (value: string): SessionId => value as SessionId;
