// Statistics for the director and the health department: GET /api/stats as charts and tables.
export default [
  {
    path: '/stats',
    name: 'stats',
    component: () => import('./StatsPage.vue'),
    meta: { operation: 'stats', nav: 'stats.nav', order: 60 },
  },
];
