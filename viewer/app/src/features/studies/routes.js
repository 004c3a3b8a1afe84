// The study list (the home page of users who may search).
export default [
  {
    path: '/studies',
    name: 'studies',
    component: () => import('./StudyList.vue'),
    meta: { operation: 'search', nav: 'studies.nav', order: 10 },
  },
];
