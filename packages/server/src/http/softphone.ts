/**
 * Serves the softphone page (apps/softphone, built by `npm install`) at `/`.
 * Built assets only, from this checkout: nothing is fetched from a CDN.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/**
 * The page's Content-Security-Policy: its own scripts, styles and socket
 * only — nothing inline, nothing from elsewhere — and no framing by any
 * site (clickjacking). Media streams are attached as objects, which CSP
 * does not govern; the favicon is a `data:` image.
 */
export const SOFTPHONE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "media-src 'self' blob: mediastream:",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers of every page response: the policy above, and no framing or referrer for browsers that predate it. */
const PAGE_HEADERS: Record<string, string> = {
  'content-security-policy': SOFTPHONE_CSP,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
};

/** apps/softphone/dist, from src/http or dist/http of the server package alike. */
export const SOFTPHONE_DIST = fileURLToPath(new URL('../../../../apps/softphone/dist/', import.meta.url));

export async function registerSoftphone(app: FastifyInstance, root = process.env.SOFTPHONE_DIR ?? SOFTPHONE_DIST): Promise<void> {
  if (!existsSync(`${root}/index.html`)) {
    app.get('/', async (_req, reply) =>
      reply
        .headers(PAGE_HEADERS)
        .type('text/html; charset=utf-8')
        .send('<!doctype html><title>Switchboard</title><p>The softphone page is not built. Run <code>npm run build</code>.</p>'),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    index: ['index.html'],
    // Hashed asset names: cache them for long; the page itself revalidates.
    setHeaders(res, path) {
      const page = path.endsWith('.html');
      res.header('cache-control', page ? 'no-cache' : 'public, max-age=31536000, immutable');
      if (page) for (const [name, value] of Object.entries(PAGE_HEADERS)) res.header(name, value);
      else res.header('x-content-type-options', 'nosniff');
    },
  });
}
