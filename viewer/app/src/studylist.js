// Study list: accent-insensitive name search, patient or citizen ID, accession, date presets,
// modality; sortable columns, paging, thumbnails. Every value is set as text, never as HTML.
import { formatDate, searchStudies, thumbnailUrl, value } from './api.js';
import { t } from './i18n.js';
import { el, route } from './main.js';

const PAGE = 25;
const state = { filters: {}, offset: 0, sort: null, preset: '' };

function ymd(date) {
  // The local calendar day (toISOString would give the UTC day: yesterday before 07:00 in Vietnam).
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}`;
}

function presetRange(preset) {
  const today = new Date();
  const day = 86400000;
  if (preset === 'today') return ymd(today);
  if (preset === 'yesterday') return ymd(new Date(today - day));
  if (preset === 'last7') return `${ymd(new Date(today - 6 * day))}-${ymd(today)}`;
  return '';
}

function open(study) {
  window.history.pushState({}, '', `?StudyInstanceUIDs=${encodeURIComponent(study)}`);
  route();
}

export async function showStudyList() {
  const app = document.getElementById('app');
  const form = el('form', { id: 'filters' },
    el('input', { name: 'PatientName', placeholder: t('name'), value: state.filters.PatientName || '' }),
    el('input', { name: 'PatientID', placeholder: t('patientId'), value: state.filters.PatientID || '' }),
    el('input', { name: 'AccessionNumber', placeholder: t('accession'), value: state.filters.AccessionNumber || '' }),
    el('select', { name: 'preset' },
      ...['', 'today', 'yesterday', 'last7', 'custom'].map((p) => {
        const option = el('option', { value: p }, p === '' ? t('anyDate') : p === 'custom' ? `${t('from')}…` : t(p));
        if (p === state.preset) option.selected = true;
        return option;
      })),
    el('input', { name: 'from', type: 'date', hidden: state.preset !== 'custom' ? '' : null }),
    el('input', { name: 'to', type: 'date', hidden: state.preset !== 'custom' ? '' : null }),
    el('select', { name: 'ModalitiesInStudy' },
      ...['', 'CT', 'MR', 'CR', 'DX', 'US', 'MG', 'XA', 'NM', 'PT', 'OT'].map((m) => {
        const option = el('option', { value: m }, m || t('modality'));
        if (m === (state.filters.ModalitiesInStudy || '')) option.selected = true;
        return option;
      })),
    el('button', { type: 'submit' }, t('search')));
  form.preset.addEventListener('change', () => {
    const custom = form.preset.value === 'custom';
    form.from.hidden = !custom;
    form.to.hidden = !custom;
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    state.preset = data.get('preset');
    let range = presetRange(state.preset);
    if (state.preset === 'custom') range = `${(data.get('from') || '').replaceAll('-', '')}-${(data.get('to') || '').replaceAll('-', '')}`;
    const name = (data.get('PatientName') || '').trim();
    state.filters = {
      PatientName: name,
      PatientID: (data.get('PatientID') || '').trim(),
      AccessionNumber: (data.get('AccessionNumber') || '').trim(),
      StudyDate: range === '-' ? '' : range,
      ModalitiesInStudy: data.get('ModalitiesInStudy'),
    };
    state.offset = 0;
    load();
  });
  const table = el('table', { id: 'studies' });
  const pager = el('div', { id: 'pager' });
  app.replaceChildren(el('h1', {}, t('studies')), form, table, pager);

  const columns = [
    ['', null], [t('name'), '00100010'], [t('patientId'), '00100020'], [t('date'), '00080020'],
    [t('modality'), '00080061'], [t('description'), '00081030'], [t('accession'), '00080050'],
    [t('images'), '00201208'], ['', null],
  ];

  async function load() {
    table.replaceChildren(el('caption', {}, t('loading')));
    let studies;
    try {
      studies = await searchStudies(state.filters, PAGE, state.offset);
    } catch (error) {
      table.replaceChildren(el('caption', { class: 'error' }, `${t('error')}: ${error.message}`));
      return;
    }
    const more = studies.length > PAGE;
    studies = studies.slice(0, PAGE);
    if (state.sort) {
      const [tag, direction] = state.sort;
      studies.sort((a, b) => value(a, tag).localeCompare(value(b, tag), 'vi') * direction);
    }
    const head = el('tr', {}, ...columns.map(([label, tag]) => el('th', {
      class: tag ? 'sortable' : null,
      on: tag ? { click: () => { state.sort = [tag, state.sort && state.sort[0] === tag ? -state.sort[1] : 1]; load(); } } : {},
    }, label)));
    const rows = studies.map((study) => {
      const uid = value(study, '0020000D');
      return el('tr', { 'data-study': uid, on: { dblclick: () => open(uid) } },
        el('td', {}, el('img', { class: 'thumb', alt: '', loading: 'lazy', src: thumbnailUrl(uid) })),
        el('td', { class: 'name' }, value(study, '00100010')),
        el('td', {}, value(study, '00100020')),
        el('td', {}, formatDate(value(study, '00080020'))),
        el('td', {}, value(study, '00080061')),
        el('td', {}, value(study, '00081030')),
        el('td', {}, value(study, '00080050')),
        el('td', {}, value(study, '00201208')),
        el('td', {},
          el('button', { type: 'button', class: 'open', on: { click: () => open(uid) } }, t('open')),
          el('a', { class: 'ohif', href: `../ohif/viewer?StudyInstanceUIDs=${encodeURIComponent(uid)}` }, t('openOhif'))));
    });
    table.replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
    if (!rows.length) table.append(el('caption', {}, t('noStudies')));
    pager.replaceChildren(
      el('button', { type: 'button', disabled: state.offset === 0 ? '' : null, on: { click: () => { state.offset -= PAGE; load(); } } }, t('prev')),
      el('span', {}, ` ${state.offset + 1}–${state.offset + rows.length} `),
      el('button', { type: 'button', disabled: more ? null : '', on: { click: () => { state.offset += PAGE; load(); } } }, t('next')));
  }
  load();
}
