// Searching studies for the list (QIDO-RS): filters, paging, the date presets.
import { DICOMWEB, dicomJson } from '../../api.js';

const STUDY_FIELDS = '00081030,00080060,00080061,00080090,00100030,00100040,00201206,00201208';

export async function searchStudies(filters, limit, offset) {
  const params = new URLSearchParams({ limit: String(limit + 1), offset: String(offset), includefield: STUDY_FIELDS });
  for (const [key, value] of Object.entries(filters)) if (value) params.set(key, value);
  if (filters.PatientName) {
    // A typed fragment matches the start of any name part, accents ignored, by the server.
    if (!/[*?]/.test(filters.PatientName)) params.set('PatientName', `${filters.PatientName}*`);
    params.set('fuzzymatching', 'true');
  }
  return dicomJson(`${DICOMWEB}/studies?${params}`);
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
