// Build of the project's own viewer. Settings known to work with Cornerstone3D 5 on Vite 8:
// ES-module workers (the build fails otherwise) and relative asset paths (served under /viewer/).
import { defineConfig } from 'vite';
import { viteCommonjs } from '@originjs/vite-plugin-commonjs';

export default defineConfig(({ command }) => ({
  base: './',
  build: { outDir: '../dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 4000 },
  worker: { format: 'es' },
  plugins: command === 'serve' ? [viteCommonjs()] : [],
  optimizeDeps: { exclude: ['@cornerstonejs/dicom-image-loader'] },
  server: { proxy: { '/dicom-web': 'http://127.0.0.1:8080', '/api': 'http://127.0.0.1:8080', '/login': 'http://127.0.0.1:8080' } },
}));
