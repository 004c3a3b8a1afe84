// The radiologists' reading worklist (GET /api/reading/worklist): what waits to be read,
// STAT on top, unread first; claim a study and open it in the reader.
export default [
  {
    path: '/reading',
    name: 'reading',
    component: () => import('./ReadingList.vue'),
    meta: { operation: 'report', nav: 'reading.nav', order: 15 },
  },
];
