// Build of the project's own web app (Vue 3, vue-router, vue-i18n; Cornerstone3D in the reader).
// Settings known to work with Cornerstone3D 5 on Vite 8: ES-module workers (the build fails
// otherwise) and relative asset paths (served under /viewer/, also behind a path prefix).
// Vue's templates are compiled here, so the page needs no 'unsafe-eval' (the CSP forbids it).
import { defineConfig } from 'vite';
import vue from '@vitejs/plugin-vue';
import { viteCommonjs } from '@originjs/vite-plugin-commonjs';

export default defineConfig(({ command }) => ({
  base: './',
  build: { outDir: '../dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 4000 },
  worker: { format: 'es' },
  plugins: command === 'serve' ? [vue(), viteCommonjs()] : [vue()],
  define: {
    __VUE_OPTIONS_API__: 'false',
    __VUE_PROD_DEVTOOLS__: 'false',
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
    __VUE_I18N_FULL_INSTALL__: 'false',
    __VUE_I18N_LEGACY_API__: 'false',
    __INTLIFY_PROD_DEVTOOLS__: 'false',
  },
  optimizeDeps: { exclude: ['@cornerstonejs/dicom-image-loader'] },
  server: { proxy: { '/dicom-web': 'http://127.0.0.1:8080', '/api': 'http://127.0.0.1:8080', '/login': 'http://127.0.0.1:8080', '/logout': 'http://127.0.0.1:8080' } },
}));
