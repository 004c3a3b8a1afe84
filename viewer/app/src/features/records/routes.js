// Records: upload DICOM files and folders (STOW-RS), and a study's actions: correct, merge,
// reject (IOCM), export (ZIP, DICOMDIR, de-identified), send; query and retrieve from another PACS.
// The server checks each operation again.
export default [
  {
    path: '/upload',
    name: 'upload',
    component: () => import('./UploadPage.vue'),
    meta: { operation: 'store', nav: 'records.uploadNav', order: 15 },
  },
  {
    path: '/remote',
    name: 'remote',
    component: () => import('./RemotePage.vue'),
    meta: { operation: 'send', nav: 'records.remoteNav', order: 16 },
  },
  {
    path: '/studies/actions',
    name: 'study-actions',
    component: () => import('./StudyActions.vue'),
    meta: { operation: 'export' },
  },
];
