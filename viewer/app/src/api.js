// Talking to the server: same origin, session or grant cookie. Errors carry the HTTP status
// (and Retry-After) so the page says what went wrong from the catalogue, never the server's
// English detail.
import { t } from './i18n.js';

function root() {
  const path = window.location.pathname;
  const at = path.indexOf('/viewer/');
  return at >= 0 ? path.slice(0, at) : '';
}
export const ROOT = root();
export const DICOMWEB = `${ROOT}/dicom-web`;

export class HttpError extends Error {
  constructor(status, detail, retryAfter, body) {
    super(detail || String(status));
    this.status = status;
    this.retryAfter = retryAfter;
    this.body = body || {};
  }
}

/** The user-facing text for an error, from the catalogue (by status, not the server's words). */
export function errorText(error) {
  const status = error?.status;
  if (status === 429) return t('app.rateLimited', { seconds: error.retryAfter || 60 });
  if (status === 403) return t('app.forbidden');
  if (status === 401) return t('app.unauthorized');
  if (status === 404) return t('app.notFound');
  if (status >= 400 && status < 500) return t('app.badRequest');
  if (status >= 500) return t('app.serverError');
  return t('app.networkError');
}

export async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { credentials: 'same-origin', ...options });
  } catch (error) {
    throw new HttpError(0, error.message);
  }
  if (!response.ok) {
    let body = {};
    try { body = await response.json(); } catch { /* not JSON */ }
    const retry = Number(response.headers.get('Retry-After')) || undefined;
    throw new HttpError(response.status, typeof body.detail === 'string' ? body.detail : response.statusText, retry, body);
  }
  return response;
}

export async function getJson(path, params) {
  const query = params ? `?${new URLSearchParams(params)}` : '';
  const response = await request(`${ROOT}${path}${query}`, { headers: { Accept: 'application/json' } });
  return response.status === 204 ? null : response.json();
}

export async function me() {
  return (await request(`${ROOT}/api/me`)).json();
}

export async function login(username, password, totp) {
  const body = { username, password };
  if (totp) body.totp = totp;
  const response = await request(`${ROOT}/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  return response.json();
}

export async function logout() {
  await fetch(`${ROOT}/logout`, { method: 'POST', credentials: 'same-origin' });
}

export async function dicomJson(path) {
  const response = await request(path, { headers: { Accept: 'application/dicom+json' } });
  if (response.status === 204) return [];
  return response.json();
}

export async function studySeries(study) {
  return dicomJson(`${DICOMWEB}/studies/${study}/series?includefield=0008103E,00080021,00200011,00201209`);
}

export async function seriesMetadata(study, series) {
  return dicomJson(`${DICOMWEB}/studies/${study}/series/${series}/metadata`);
}

export async function studyMetadata(study) {
  return dicomJson(`${DICOMWEB}/studies/${study}/metadata`);
}

export function thumbnailUrl(study, series) {
  return series
    ? `${DICOMWEB}/studies/${study}/series/${series}/thumbnail?viewport=96,96`
    : `${DICOMWEB}/studies/${study}/thumbnail?viewport=64,64`;
}

// DICOM JSON helpers
export function value(item, tag) {
  const element = item?.[tag];
  if (!element || !element.Value || element.Value.length === 0) return '';
  const first = element.Value[0];
  if (element.vr === 'PN') return (first.Alphabetic || first.Ideographic || '').replaceAll('^', ' ').trim();
  return element.Value.join('\\');
}

export function formatDate(da) {
  return da && da.length === 8 ? `${da.slice(6, 8)}/${da.slice(4, 6)}/${da.slice(0, 4)}` : da || '';
}

export function formatTime(tm) {
  return tm && tm.length >= 4 ? `${tm.slice(0, 2)}:${tm.slice(2, 4)}` : '';
}
