// The report editor: /viewer/report?study=<uid>, opened from a study (no top-bar link).
// Radiologists and administrators write and sign (policy operation "report").
export default [
  {
    path: '/report',
    name: 'report',
    component: () => import('./ReportEditor.vue'),
    meta: { operation: 'report' },
  },
];
