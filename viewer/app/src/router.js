// Routes come from the feature folders: every features/<f>/routes.js default-exports an array of
// vue-router routes; meta.operation names the policy operation the user needs (checked here and
// by the server), meta.nav the catalogue key of its link in the top bar, meta.order its place.
import { createRouter, createWebHistory } from 'vue-router';
import { isGrant, permits, session } from './session.js';
import NotAllowed from './shell/NotAllowed.vue';

const modules = import.meta.glob('./features/*/routes.js', { eager: true });
export const featureRoutes = Object.values(modules).flatMap((module) => module.default || []);

/** Where the app lives: /viewer/ (or /prefix/viewer/ behind a proxy), whatever the deep path. */
export function appBase() {
  const path = window.location.pathname;
  const at = path.indexOf('/viewer/');
  return at >= 0 ? path.slice(0, at + '/viewer/'.length) : '/';
}

/** The links the user may follow, in order. */
export function navRoutes() {
  return featureRoutes
    .filter((route) => route.meta?.nav && permits(route.meta.operation))
    .sort((a, b) => (a.meta.order ?? 50) - (b.meta.order ?? 50));
}

export const router = createRouter({
  history: createWebHistory(appBase()),
  routes: [
    ...featureRoutes,
    { path: '/login', redirect: '/' }, // the status page's "log in" link: the form, then home
    { path: '/:rest(.*)*', name: 'not-allowed', component: NotAllowed },
  ],
});

/** The study a reader URL names (?StudyInstanceUIDs=, as OHIF and IHE IID links write it). */
export function studyOf(route) {
  const value = route.query.StudyInstanceUIDs || route.query.study;
  return Array.isArray(value) ? value[0] : value || '';
}

router.beforeEach((to) => {
  if (!session.principal) return true; // the shell shows the login form
  if (isGrant()) return to.name === 'reader' ? true : { name: 'reader' };
  const home = navRoutes()[0];
  if (to.name === 'reader' && !studyOf(to)) return home ? { path: home.path } : { name: 'not-allowed', params: { rest: ['-'] } };
  if (to.meta.operation && !permits(to.meta.operation)) {
    return { name: 'not-allowed', params: { rest: to.path.split('/').filter(Boolean) } };
  }
  return true;
});
