// The reader: /viewer/?StudyInstanceUIDs=<uid> (the URL OHIF-style, IHE IID and share links use).
export default [
  {
    path: '/',
    name: 'reader',
    component: () => import('./ReaderView.vue'),
    meta: { operation: 'retrieve' },
  },
];
