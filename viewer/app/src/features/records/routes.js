// Records: upload DICOM files and folders (STOW-RS), and a study's actions: correct, merge,
// reject (IOCM), export (ZIP, DICOMDIR, de-identified). The server checks each operation again.
export default [
  {
    path: '/upload',
    name: 'upload',
    component: () => import('./UploadPage.vue'),
    meta: { operation: 'store', nav: 'records.uploadNav', order: 15 },
  },
  {
    path: '/studies/actions',
    name: 'study-actions',
    component: () => import('./StudyActions.vue'),
    meta: { operation: 'export' },
  },
];
