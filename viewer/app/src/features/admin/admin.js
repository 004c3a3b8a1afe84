// Calls of the administration pages: JSON in and out, same origin, session cookie.
import { ROOT, request } from '../../api.js';

export async function send(method, path, body) {
  const options = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const response = await request(`${ROOT}${path}`, options);
  return response.status === 204 ? null : response.json();
}

export const get = (path, params) => {
  const query = params ? `?${new URLSearchParams(params)}` : '';
  return send('GET', `${path}${query}`);
};

/** Drop empty values so they are not sent as filters. */
export function filled(values) {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== '' && v !== null && v !== undefined));
}

export function when(iso, lang) {
  if (!iso) return '';
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? iso : moment.toLocaleString(lang === 'en' ? 'en-GB' : 'vi-VN');
}

export function bytes(count) {
  if (count === null || count === undefined) return '';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}
