/**
 * Token verification with jose. The accepted algorithms are fixed by the key
 * type, never by the token: an HMAC secret takes HS256/384/512 only, an RSA key
 * RS/PS, an EC key the ES algorithm of its curve, an Ed25519 key EdDSA. So
 * `alg: none` and HS/RS key confusion fail by construction.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  jwtVerify,
  SignJWT,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import type { AuthErrorCode, UserId } from '@switchboard/protocol';
import { normaliseTyp, type Config } from '../config.js';

export interface Identity {
  userId: UserId;
  name: string;
  tenant: string;
  contacts: UserId[] | null;
  /** Token expiry, epoch seconds. */
  exp: number;
}

export class AuthError extends Error {
  constructor(
    readonly code: AuthErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

/** Small clock skew between the issuer and us. */
const CLOCK_TOLERANCE_S = 5;
const MAX_CLAIM_LENGTH = 256;
const MAX_CONTACTS = 10_000;

interface VerifyKey {
  key: KeyObject | Uint8Array | JWTVerifyGetKey;
  algorithms: string[];
}

/** A key set holds public keys only: no HMAC, whatever a key in it claims. */
const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
/** A remote key set: refetched at most once per cooldown for an unknown `kid`; a fetch gives up instead of hanging. */
const JWKS_COOLDOWN_MS = 30_000;
const JWKS_TIMEOUT_MS = 5_000;
const JWKS_CACHE_MAX_AGE_MS = 10 * 60_000;
/** How often a key-set file is checked for changes. */
const JWKS_FILE_POLL_MS = 2_000;

function readKeySet(path: string): JSONWebKeySet {
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as JSONWebKeySet;
  if (!parsed || !Array.isArray(parsed.keys)) throw new Error(`${path} is not a JWKS ({ "keys": [...] })`);
  return parsed;
}

function algorithmsFor(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return ['ES256'];
      if (curve === 'secp384r1') return ['ES384'];
      if (curve === 'secp521r1') return ['ES512'];
      throw new Error(`unsupported EC curve ${curve ?? 'unknown'}`);
    }
    case 'ed25519':
      return ['EdDSA', 'Ed25519'];
    default:
      throw new Error(`unsupported key type ${key.asymmetricKeyType ?? 'unknown'}`);
  }
}

export function verifyKeysFrom(config: Pick<Config, 'jwtSecret' | 'jwtPublicKey' | 'jwksUrl'>): VerifyKey[] {
  if (config.jwksUrl) {
    const getKey = createRemoteJWKSet(new URL(config.jwksUrl), {
      cooldownDuration: JWKS_COOLDOWN_MS,
      timeoutDuration: JWKS_TIMEOUT_MS,
      cacheMaxAge: JWKS_CACHE_MAX_AGE_MS,
    });
    return [{ key: getKey, algorithms: JWKS_ALGORITHMS }];
  }
  if (config.jwtPublicKey) {
    const key = createPublicKey(config.jwtPublicKey);
    return [{ key, algorithms: algorithmsFor(key) }];
  }
  if (config.jwtSecret) {
    // Several comma-separated secrets let an operator rotate without a flag day.
    return config.jwtSecret.split(',').map((s) => ({
      key: new TextEncoder().encode(s.trim()),
      algorithms: ['HS256', 'HS384', 'HS512'],
    }));
  }
  throw new Error('no JWT key configured');
}

export class TokenVerifier {
  private keys: VerifyKey[];
  private readonly watched: string | null;

  constructor(private readonly config: Config) {
    this.watched = config.jwksFile;
    if (config.jwksFile) {
      const path = config.jwksFile;
      this.keys = [{ key: createLocalJWKSet(readKeySet(path)), algorithms: JWKS_ALGORITHMS }];
      // Rotation without a restart: the file is re-read when it changes; a broken file keeps the old keys.
      watchFile(path, { interval: JWKS_FILE_POLL_MS, persistent: false }, () => {
        try {
          this.keys = [{ key: createLocalJWKSet(readKeySet(path)), algorithms: JWKS_ALGORITHMS }];
        } catch {
          // keep the keys we have
        }
      });
    } else {
      this.keys = verifyKeysFrom(config);
    }
  }

  close(): void {
    if (this.watched) unwatchFile(this.watched);
  }

  /** A token typed for something else (a refresh or ID token of the same issuer) is not a sign-in token (RFC 8725 §3.11). */
  private checkTyp(typ: string | undefined): void {
    const seen = typ === undefined ? undefined : normaliseTyp(typ);
    const accepted = this.config.jwtTypes ?? DEFAULT_TYPES;
    if (!accepted.includes(seen)) throw new AuthError('invalid_token', `the token's typ (${typ ?? 'none'}) is not one accepted here`);
  }

  /** With `JWT_MAX_AGE_S`: no token that claims to live longer, or that was issued longer ago. */
  private checkAge(payload: JWTPayload): void {
    const maxAge = this.config.jwtMaxAgeS;
    if (maxAge === null) return;
    const now = Date.now() / 1000;
    if ((payload.exp ?? Infinity) - now > maxAge + CLOCK_TOLERANCE_S) {
      throw new AuthError('invalid_token', `the token lives longer than the ${maxAge} s allowed (JWT_MAX_AGE_S)`);
    }
    if (payload.iat !== undefined && now - payload.iat > maxAge + CLOCK_TOLERANCE_S) {
      throw new AuthError('invalid_token', `the token was issued more than ${maxAge} s ago (JWT_MAX_AGE_S)`);
    }
  }

  async verify(token: unknown): Promise<Identity> {
    if (typeof token !== 'string' || token.length === 0) throw new AuthError('invalid_token', 'a token is required');
    let lastError: unknown;
    for (const { key, algorithms } of this.keys) {
      try {
        const options = {
          algorithms,
          requiredClaims: ['exp', 'sub'],
          clockTolerance: CLOCK_TOLERANCE_S,
          ...(this.config.jwtIssuer ? { issuer: this.config.jwtIssuer } : {}),
          ...(this.config.jwtAudience ? { audience: this.config.jwtAudience } : {}),
        };
        const { payload, protectedHeader } =
          typeof key === 'function' ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
        this.checkTyp(protectedHeader.typ);
        this.checkAge(payload);
        return identityOf(payload);
      } catch (err) {
        if (err instanceof errors.JWTExpired) throw new AuthError('token_expired', 'the token has expired');
        if (err instanceof AuthError) throw err;
        lastError = err;
      }
    }
    const detail = lastError instanceof Error && 'code' in lastError ? String(lastError.code) : 'invalid';
    throw new AuthError('invalid_token', `the token was refused (${detail})`);
  }
}

/** The `typ` headers accepted when `JWT_TYPES` is not set: an untyped token, a plain JWT, or an OAuth access token (RFC 9068). */
const DEFAULT_TYPES: readonly (string | undefined)[] = [undefined, 'jwt', 'at+jwt'];

function identityOf(payload: JWTPayload): Identity {
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_CLAIM_LENGTH) {
    throw new AuthError('invalid_token', 'the token needs a sub of 1 to 256 characters');
  }
  const name = typeof payload.name === 'string' && payload.name.length > 0 ? payload.name.slice(0, MAX_CLAIM_LENGTH) : sub;
  const tenant = payload.tenant;
  if (tenant !== undefined && (typeof tenant !== 'string' || tenant.length > MAX_CLAIM_LENGTH)) {
    throw new AuthError('invalid_token', 'tenant must be a string of at most 256 characters');
  }
  const contacts = payload.contacts;
  if (
    contacts !== undefined &&
    (!Array.isArray(contacts) ||
      contacts.length > MAX_CONTACTS ||
      contacts.some((c) => typeof c !== 'string' || c.length > MAX_CLAIM_LENGTH))
  ) {
    throw new AuthError('invalid_token', 'contacts must be an array of user ids');
  }
  return {
    userId: sub as UserId,
    name,
    tenant: typeof tenant === 'string' ? tenant : '',
    contacts: contacts === undefined ? null : (contacts as UserId[]),
    exp: payload.exp as number,
  };
}

export interface MintOptions {
  userId: string;
  name?: string;
  tenant?: string;
  contacts?: string[];
  ttlS?: number;
  issuer?: string | null;
  audience?: string | null;
}

/** Signs an HS256 token with `secret`: dev mode's `/dev/token` and the test helpers. */
export async function mintToken(secret: string, options: MintOptions): Promise<string> {
  const claims: JWTPayload = {};
  if (options.name !== undefined) claims.name = options.name;
  if (options.tenant !== undefined) claims.tenant = options.tenant;
  if (options.contacts !== undefined) claims.contacts = options.contacts;
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (options.ttlS ?? 3600));
  if (options.issuer) jwt = jwt.setIssuer(options.issuer);
  if (options.audience) jwt = jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(secret.split(',')[0]!.trim()));
}
