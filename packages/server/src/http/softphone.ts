/**
 * Serves the softphone page (apps/softphone, built by `npm install`) at `/`.
 * Built assets only, from this checkout: nothing is fetched from a CDN.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/** apps/softphone/dist, from src/http or dist/http of the server package alike. */
export const SOFTPHONE_DIST = fileURLToPath(new URL('../../../../apps/softphone/dist/', import.meta.url));

export async function registerSoftphone(app: FastifyInstance, root = process.env.SOFTPHONE_DIR ?? SOFTPHONE_DIST): Promise<void> {
  if (!existsSync(`${root}/index.html`)) {
    app.get('/', async (_req, reply) =>
      reply
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
      res.header('cache-control', path.endsWith('index.html') ? 'no-cache' : 'public, max-age=31536000, immutable');
      res.header('x-content-type-options', 'nosniff');
    },
  });
}
