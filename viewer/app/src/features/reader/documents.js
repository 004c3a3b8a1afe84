// SR documents of the study (a signed report's SR, a measurement report, a dose report) shown
// as text: they have no pixels, so the series panel lists them apart and a click shows their
// content tree from GET /api/studies/{uid}/instances/{sop}/sr (values already as text).
// Everything is set with text nodes, never as HTML.
import { formatDate, formatTime, getJson, value } from '../../api.js';
import { el } from '../../dom.js';

const SR_CLASS_PREFIX = '1.2.840.10008.5.1.4.1.1.88.';

/** The study's SR instances, one entry each, in series then instance order. */
export function buildDocuments(study, instances) {
  const documents = instances
    .filter((item) => value(item, '00080016').startsWith(SR_CLASS_PREFIX))
    .map((item) => ({
      study,
      sop: value(item, '00080018'),
      series: value(item, '0020000E'),
      number: Number(value(item, '00200011')) || 0,
      instance: Number(value(item, '00200013')) || 0,
      description: value(item, '0008103E'),
      date: value(item, '00080023') || value(item, '00080021'),
    }));
  return documents.sort((a, b) => a.number - b.number || a.instance - b.instance);
}

export function fetchDocument(document) {
  return getJson(`/api/studies/${document.study}/instances/${document.sop}/sr`);
}

function nodeList(nodes) {
  return el('ul', {}, ...nodes.map((node) => {
    const line = el('div', { class: 'sr-item', 'data-type': node.type },
      el('span', { class: 'sr-name' }, node.name || node.type));
    if (node.value) line.append(': ', el('span', { class: 'sr-value' }, node.value));
    const item = el('li', {}, line);
    if (node.children.length) item.append(nodeList(node.children));
    return item;
  }));
}

/** The document's header and content tree as nested lists; ``t`` is the reader's translate. */
export function documentView(document, t, onClose) {
  const flags = [
    document.completion ? t(`completion${document.completion}`) : '',
    document.verification ? t(`verification${document.verification}`) : '',
    [formatDate(document.content_date), formatTime(document.content_time)].filter(Boolean).join(' '),
  ].filter(Boolean).join(' · ');
  return [
    el('button', { type: 'button', class: 'close', on: { click: onClose } }, t('close')),
    el('h2', {}, document.title || t('document')),
    el('p', { class: 'sr-meta' }, [document.series_description, flags].filter(Boolean).join(' · ')),
    el('div', { class: 'sr-tree' }, nodeList(document.tree.children)),
  ];
}
