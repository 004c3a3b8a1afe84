// Administration (issue 18): accounts, modalities, storage, audit, share links, jobs, settings.
// Admins see every tab; an auditor sees the audit tab only (meta.operation per child route,
// checked here and, for every request, by the server's policy table).
const page = (path, name, component, operation = 'admin') => ({ path, name, component, meta: { operation } });

export default [
  {
    path: '/admin',
    name: 'admin',
    component: () => import('./AdminLayout.vue'),
    meta: { operation: 'audit', nav: 'admin.nav', order: 90 },
    children: [
      { path: '', name: 'admin-home', component: () => import('./AdminHome.vue') },
      page('accounts', 'admin-accounts', () => import('./AccountsPage.vue')),
      page('modalities', 'admin-modalities', () => import('./ModalitiesPage.vue')),
      page('storage', 'admin-storage', () => import('./StoragePage.vue')),
      page('audit', 'admin-audit', () => import('./AuditPage.vue'), 'audit'),
      page('shares', 'admin-shares', () => import('./SharesPage.vue')),
      page('jobs', 'admin-jobs', () => import('./JobsPage.vue')),
      page('settings', 'admin-settings', () => import('./SettingsPage.vue')),
    ],
  },
];
