// The reader's keyboard shortcuts, listed in a dialog (the "?" key or the toolbar button). The
// labels are catalogue keys of the reader; the keys are what Reader.onKey handles.
import { el } from '../../dom.js';

export const SHORTCUTS = [
  ['↑ / ↓', 'keyScroll'], ['PgUp / PgDn', 'keyScroll10'], ['Home / End', 'keyFirstLast'],
  ['← / →', 'keySeries'], [', / .', 'keyFrame'], ['c', 'cine'], ['w', 'wl'], ['p', 'pan'],
  ['z', 'zoom'], ['s', 'slice'], ['l', 'length'], ['a', 'angle'], ['q', 'rect'], ['e', 'ellipse'],
  ['Delete', 'deleteMeasurement'], ['i', 'invert'], ['r', 'rotate'], ['h', 'flipH'], ['v', 'flipV'],
  ['Esc', 'reset'], ['1-5', 'keyPresets'], ['m', 'mpr'], ['x', 'crosshairs'], ['y', 'sync'], ['t', 'tags'],
  ['o', 'keyOverlay'], ['?', 'shortcuts'],
];

/** A modal dialog listing the shortcuts; ``t`` is the reader's translate function. */
export function shortcutsDialog(t) {
  const rows = SHORTCUTS.map(([key, label]) => el('tr', {}, el('td', {}, el('kbd', {}, key)), el('td', {}, t(label))));
  const dialog = el('dialog', { class: 'shortcuts', id: 'shortcuts', 'aria-labelledby': 'shortcuts-title' },
    el('h2', { id: 'shortcuts-title' }, t('shortcuts')),
    el('table', {}, el('tbody', {}, ...rows)),
    el('form', { method: 'dialog' }, el('button', { type: 'submit' }, t('close'))));
  return dialog;
}
