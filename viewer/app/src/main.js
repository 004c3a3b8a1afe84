// The app shell: Vue with the router and the catalogue, features registered from their folders.
// Pages are loaded per route (code splitting), so a share link pulls only the shell and the reader.
import { createApp } from 'vue';
import App from './App.vue';
import { i18n } from './i18n.js';
import { router } from './router.js';
import { refreshSession } from './session.js';
import './style.css';

// A study link: fetch the reader's code while we ask who we are.
if (/[?&](StudyInstanceUIDs|study)=/.test(window.location.search)) import('./features/reader/ReaderView.vue');

refreshSession().then(() => {
  createApp(App).use(i18n).use(router).mount('#shell');
});
