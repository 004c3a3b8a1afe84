// The viewer talks only DICOMweb (and /login, /api/me): same origin, session or grant cookie.
export const DICOMWEB = new URL('../dicom-web', window.location.href).pathname.replace(/\/$/, '');
const ROOT = DICOMWEB.replace(/\/dicom-web$/, '');

async function request(path, options = {}) {
  const response = await fetch(path, { credentials: 'same-origin', ...options });
  if (response.status === 401) {
    const error = new Error('unauthorized');
    error.status = 401;
    throw error;
  }
  if (!response.ok && response.status !== 204) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response;
}

export async function me() {
  return (await request(`${ROOT}/api/me`)).json();
}

export async function login(username, password, totp) {
  const body = { username, password };
  if (totp) body.totp = totp;
  const response = await fetch(`${ROOT}/login`, {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  if (!response.ok) {
    const error = new Error((await response.json().catch(() => ({}))).detail || 'login failed');
    error.status = response.status;
    throw error;
  }
  return response.json();
}

export async function logout() {
  await fetch(`${ROOT}/logout`, { method: 'POST', credentials: 'same-origin' });
}

async function json(path) {
  const response = await request(path, { headers: { Accept: 'application/dicom+json' } });
  if (response.status === 204) return [];
  return response.json();
}

const STUDY_FIELDS = '00081030,00080060,00080061,00080090,00100030,00100040,00201206,00201208';

export async function searchStudies(filters, limit, offset) {
  const params = new URLSearchParams({ limit: String(limit + 1), offset: String(offset), includefield: STUDY_FIELDS });
  for (const [key, value] of Object.entries(filters)) if (value) params.set(key, value);
  if (filters.PatientName) {
    // A typed fragment matches the start of any name part, accents ignored, by the server.
    if (!/[*?]/.test(filters.PatientName)) params.set('PatientName', `${filters.PatientName}*`);
    params.set('fuzzymatching', 'true');
  }
  return json(`${DICOMWEB}/studies?${params}`);
}

export async function studySeries(study) {
  return json(`${DICOMWEB}/studies/${study}/series?includefield=0008103E,00080021,00200011,00201209`);
}

export async function seriesMetadata(study, series) {
  return json(`${DICOMWEB}/studies/${study}/series/${series}/metadata`);
}

export async function studyMetadata(study) {
  return json(`${DICOMWEB}/studies/${study}/metadata`);
}

export async function studyInfo(study) {
  const found = await json(`${DICOMWEB}/studies?StudyInstanceUID=${study}&includefield=${STUDY_FIELDS}`);
  return found[0];
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
