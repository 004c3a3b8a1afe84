// Who is using the app: the principal from /api/me (name, kind, role and the operations the
// server's policy table lets it perform), shared by the shell, the router guard and features.
import { reactive } from 'vue';
import { me } from './api.js';

export const session = reactive({ principal: null, checked: false });

export async function refreshSession() {
  try {
    session.principal = await me();
  } catch {
    session.principal = null;
  }
  session.checked = true;
  return session.principal;
}

/** A share or EHR link: one study, read-only, nothing else. */
export function isGrant() {
  return session.principal?.kind === 'grant';
}

/** Whether the server's policy lets the user perform ``operation`` (a route's meta.operation). */
export function permits(operation) {
  if (!operation) return true;
  return Boolean(session.principal?.operations?.includes(operation));
}
