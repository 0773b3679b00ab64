import { defineConfig, defaultClientConditions } from 'vite';

// The page imports the SDK's TypeScript sources through the workspace's "source" export condition.
export default defineConfig({
  resolve: { conditions: ['source', ...defaultClientConditions] },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: true },
});
