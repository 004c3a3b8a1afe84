// Searching studies for the list: GET /api/studies sorts and pages on the server and says how
// many match; the name is sent as typed (the server matches its words, accents ignored).
import { getJson } from '../../api.js';

export async function searchStudies(filters, sort, limit, offset) {
  const params = { limit: String(limit), offset: String(offset) };
  if (sort) params.sort = sort;
  for (const [key, value] of Object.entries(filters)) if (value) params[key] = value;
  return getJson('/api/studies', params);
}

export async function latestChange() {
  return (await getJson('/api/studies/latest')).last_change;
}

function ymd(date) {
  // The local calendar day (toISOString would give the UTC day: yesterday before 07:00 in Vietnam).
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}`;
}

/** The DICOM date range of a preset (today, yesterday, last7) or of a custom from/to pair. */
export function dateRange(preset, from = '', to = '') {
  const today = new Date();
  const day = 86400000;
  if (preset === 'today') return ymd(today);
  if (preset === 'yesterday') return ymd(new Date(today - day));
  if (preset === 'last7') return `${ymd(new Date(today - 6 * day))}-${ymd(today)}`;
  if (preset === 'custom') {
    const range = `${from.replaceAll('-', '')}-${to.replaceAll('-', '')}`;
    return range === '-' ? '' : range;
  }
  return '';
}

/** Age at the study, as [count, unit] with unit 'years' or 'months'; null when unknown. */
export function ageAt(birth, studyDate) {
  if (!/^\d{8}$/.test(birth || '') || !/^\d{8}$/.test(studyDate || '')) return null;
  const [by, bm, bd] = [birth.slice(0, 4), birth.slice(4, 6), birth.slice(6, 8)].map(Number);
  const [sy, sm, sd] = [studyDate.slice(0, 4), studyDate.slice(4, 6), studyDate.slice(6, 8)].map(Number);
  const months = (sy - by) * 12 + (sm - bm) - (sd < bd ? 1 : 0);
  if (months < 0) return null;
  return months < 24 ? [months, 'months'] : [Math.floor(months / 12), 'years'];
}
