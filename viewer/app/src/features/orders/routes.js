// The day's imaging orders from the HIS (GET /api/orders), beside the study list.
export default [
  {
    path: '/orders',
    name: 'orders',
    component: () => import('./OrderList.vue'),
    meta: { operation: 'search', nav: 'orders.nav', order: 20 },
  },
];
