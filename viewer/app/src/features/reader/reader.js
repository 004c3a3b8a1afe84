// Reading one study: series panel, stack viewports (1x1, 1x2, 2x2), MPR, tools, overlay, tag
// browser, cine; on a share link, a phone layout (one viewport, series strip, touch, read-only).
// Everything comes from WADO-RS (study metadata, frames, thumbnails); all DICOM text is set as
// text (textContent / text nodes), never parsed as HTML.
import {
  Enums, RenderingEngine, cornerstoneStreamingImageVolumeLoader, eventTarget,
  getShouldUseCPURendering, init as coreInit, setVolumesForViewports, utilities as csUtils,
  volumeLoader,
} from '@cornerstonejs/core';
import { init as loaderInit, wadors } from '@cornerstonejs/dicom-image-loader';
import {
  AngleTool, CrosshairsTool, EllipticalROITool, Enums as ToolEnums, LengthTool, PanTool, RectangleROITool,
  ReferenceLinesTool, StackScrollTool, ToolGroupManager, WindowLevelTool, ZoomTool, addTool, annotation as annotations,
  init as toolsInit, utilities as toolUtils,
} from '@cornerstonejs/tools';
import { DICOMWEB, errorText, formatDate, studyMetadata, thumbnailUrl, value } from '../../api.js';
import { el } from '../../dom.js';
import { t as translate } from '../../i18n.js';
import { permits } from '../../session.js';
import { deleteSelected, loadMeasurements, saveMeasurements } from './measurements.js';
import { buildDocuments, documentView, fetchDocument } from './documents.js';
import { downloadStudyZip, downloadView, snapshot } from './download.js';
import {
  drawOverlayPlanes, hasOverlayPlanes, orientationMarkers, overlayLayer, overlayPlanes, probe, scaleBar,
} from './overlays.js';
import { shortcutsDialog } from './shortcuts.js';
import { fetchPriors, linkScroll, matchingSeries, nearestIndex, unlinkScroll } from './priors.js';
import { TAG_NAMES } from './tagnames.js';

/** The reader's texts (features/reader/locales), or the shell's for keys naming another domain. */
function t(key, params) {
  return translate(key.includes('.') ? key : `reader.${key}`, params);
}

const { MouseBindings, Events: ToolEvents } = ToolEnums;
const { Events, ViewportType, OrientationAxis } = Enums;
const ENGINE = 'pacs-engine';
const STACK_GROUP = 'pacs-stack';
const MPR_GROUP = 'pacs-mpr';
const PRESETS = {
  CT: [['brain', 80, 40], ['lung', 1500, -600], ['bone', 1500, 300], ['abdomen', 400, 40],
    ['mediastinum', 350, 50]],
};
const LAYOUTS = { '1x1': 1, '1x2': 2, '2x2': 4 };
const VOLUME_MODALITIES = new Set(['CT', 'MR', 'PT', 'NM']);

let ready = null;

/** Start Cornerstone once: core (GPU or CPU), the DICOM image loader, the tools. */
function initCornerstone() {
  if (!ready) {
    ready = (async () => {
      await coreInit();
      loaderInit({ maxWebWorkers: Math.max(1, Math.min(navigator.hardwareConcurrency || 2, 4)) });
      toolsInit();
      volumeLoader.registerVolumeLoader('cornerstoneStreamingImageVolume', cornerstoneStreamingImageVolumeLoader);
      for (const tool of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, LengthTool, AngleTool,
        RectangleROITool, EllipticalROITool, CrosshairsTool, ReferenceLinesTool]) addTool(tool);
    })();
  }
  return ready;
}

function statsFor(data, targetId) {
  return data.cachedStats?.[targetId] || data.cachedStats?.[targetId?.[0]] || {};
}

/** The reader's label of a measurement, when it has one (saved ones come back with it). */
function labelLines(data) {
  return data.label ? [data.label] : [];
}

/** A length: its label and value (a number and its unit read the same in every language). */
function lengthTextLines(data, targetId) {
  const { length, unit } = statsFor(data, targetId);
  if (!csUtils.isNumber(length)) return undefined;
  return [...labelLines(data), `${csUtils.roundNumber(length)} ${unit}`];
}

/** An angle, named in the user's language (Cornerstone writes "Incomplete Angle" while the
 * third point is missing: nothing is shown then). */
function angleTextLines(data, targetId) {
  const { angle } = statsFor(data, targetId);
  if (!csUtils.isNumber(angle)) return undefined;
  return [...labelLines(data), t('angleValue', { value: csUtils.roundNumber(angle) })];
}

/** "Area", "Mean"... of a rectangle or ellipse, in the user's language. */
function areaTextLines(data, targetId) {
  const stats = statsFor(data, targetId);
  const lines = labelLines(data);
  const round = (number) => csUtils.roundNumber(number);
  if (csUtils.isNumber(stats.area)) {
    lines.push(stats.isEmptyArea ? t('areaOblique') : t('area', { value: round(stats.area), unit: stats.areaUnit }));
  }
  for (const key of ['mean', 'max', 'min', 'stdDev']) {
    if (csUtils.isNumber(stats[key])) lines.push(t(key, { value: round(stats[key]), unit: stats.modalityUnit || '' }).trim());
  }
  return lines;
}

// ---- metadata -------------------------------------------------------------------------

function numbers(item, tag) {
  return (item?.[tag]?.Value || []).map(Number);
}

/** Remove values the GPU path chokes on (PixelSpacing 0\0 renders black); give a 2D image with
 * a real pixel spacing but no plane orientation (CR, DX, SC) the default one, else Cornerstone
 * ignores the spacing and measures in pixels. */
const INVENTED_PLANE = new WeakSet(); // images given the default plane: no patient directions

function cleanMetadata(item) {
  for (const tag of ['00280030', '00181164']) {
    const spacing = numbers(item, tag);
    if (item[tag] && (spacing.length !== 2 || spacing.some((v) => !(v > 0) || !Number.isFinite(v)))) delete item[tag];
  }
  if (item['00280030'] && numbers(item, '00200037').length !== 6) {
    item['00200037'] = { vr: 'DS', Value: [1, 0, 0, 0, 1, 0] };
    INVENTED_PLANE.add(item);
    if (numbers(item, '00200032').length !== 3) item['00200032'] = { vr: 'DS', Value: [0, 0, 0] };
  }
  return item;
}

const PALETTE_DATA = ['00281201', '00281202', '00281203'];

/** Palette colour images need their lookup tables as numbers (they come as InlineBinary or bulk data). */
async function inlinePalettes(instances) {
  const jobs = [];
  for (const item of instances) {
    if (value(item, '00280004') !== 'PALETTE COLOR') continue;
    for (const tag of PALETTE_DATA) {
      const inline = item[tag]?.InlineBinary;
      if (inline) {
        const bytes = Uint8Array.from(atob(inline), (c) => c.charCodeAt(0));
        item[tag] = { vr: 'OW', Value: Array.from(new Uint16Array(bytes.buffer, 0, bytes.length >> 1)) };
        continue;
      }
      const uri = item[tag]?.BulkDataURI;
      if (!uri) continue;
      jobs.push(fetch(uri, { credentials: 'same-origin', headers: { Accept: 'application/octet-stream' } })
        .then((response) => (response.ok ? response.arrayBuffer() : Promise.reject(new Error(`${tag}: HTTP ${response.status}`))))
        .then((buffer) => { item[tag] = { vr: 'OW', Value: Array.from(new Uint16Array(buffer, 0, buffer.byteLength >> 1)) }; }));
    }
  }
  await Promise.all(jobs);
}

function frameImageId(study, series, sop, frame) {
  return `wadors:${window.location.origin}${DICOMWEB}/studies/${study}/series/${series}/instances/${sop}/frames/${frame}`;
}

/** Group the study's instances into series, sorted, with one image ID per frame. */
function buildSeries(study, instances) {
  const bySeries = new Map();
  for (const item of instances) {
    const uid = value(item, '0020000E');
    if (!bySeries.has(uid)) bySeries.set(uid, []);
    bySeries.get(uid).push(cleanMetadata(item));
  }
  const list = [];
  for (const [uid, items] of bySeries) {
    items.sort((a, b) => (numbers(a, '00200013')[0] || 0) - (numbers(b, '00200013')[0] || 0)
      || value(a, '00080018').localeCompare(value(b, '00080018')));
    const imageIds = [];
    const itemOf = new Map();
    for (const item of items) {
      if (!numbers(item, '00280010')[0]) continue; // no pixels (SR, PR, KO…)
      const sop = value(item, '00080018');
      const frames = numbers(item, '00280008')[0] || 1;
      wadors.metaDataManager.add(frameImageId(study, uid, sop, 1), item);
      for (let frame = 1; frame <= frames; frame += 1) {
        const imageId = frameImageId(study, uid, sop, frame);
        imageIds.push(imageId);
        itemOf.set(imageId, item);
      }
    }
    const first = items[0];
    list.push({
      uid, imageIds, itemOf, first, study,
      number: numbers(first, '00200011')[0] ?? 0,
      modality: value(first, '00080060'),
      description: value(first, '0008103E'),
      multiframe: items.some((item) => (numbers(item, '00280008')[0] || 1) > 1),
      loaded: new Set(),
    });
  }
  list.sort((a, b) => a.number - b.number);
  const shown = list.filter((series) => series.imageIds.length > 0);
  for (const series of shown) series.siblings = shown; // the series of the same study, in order
  return shown;
}

function frameRate(item) {
  const rate = numbers(item, '00082144')[0] || numbers(item, '00180040')[0];
  if (rate > 0) return rate;
  const frameTime = numbers(item, '00181063')[0];
  return frameTime > 0 ? 1000 / frameTime : 15;
}

// ---- the reader -----------------------------------------------------------------------

let current = null; // the open reader, so a new showStudy tears the old one down

/** Open ``studyUid`` in ``app`` (an element); ``onBack`` returns to the list (absent on a share link). */
export async function showStudy(app, studyUid, { shared = false, onBack = null } = {}) {
  if (current) current.destroy();
  current = null;
  document.body.classList.toggle('shared', shared);
  app.replaceChildren(el('p', { class: 'loading' }, t('app.loading')));
  let instances;
  try {
    // Start Cornerstone while the metadata is on its way: the first image is what the user waits for.
    [, instances] = await Promise.all([initCornerstone(), studyMetadata(studyUid)]);
    await inlinePalettes(instances);
  } catch (error) {
    app.replaceChildren(el('p', { class: 'error', role: 'alert' }, `${t('app.error')}: ${errorText(error)}`));
    return;
  }
  if (!app.isConnected) return; // left while the metadata was loading
  current = new Reader(app, studyUid, buildSeries(studyUid, instances), shared, onBack);
  current.documents = buildDocuments(studyUid, instances);
  await current.start();
}

/** Tear down the open reader (viewports, tool groups, listeners). */
export function closeStudy() {
  if (current) current.destroy();
  current = null;
}

class Reader {
  constructor(app, studyUid, series, shared, onBack) {
    this.app = app;
    this.onBack = onBack;
    this.studyUid = studyUid;
    this.series = series;
    this.shared = shared;
    this.engine = new RenderingEngine(ENGINE);
    this.slots = []; // {id, element, overlay, series, kind}
    this.active = 0;
    this.layout = '1x1';
    this.primary = shared ? 'DragScroll' : WindowLevelTool.toolName;
    this.listeners = [];
    this.cine = new Set();
    this.priorSeries = []; // series of the priors opened so far
    this.syncOn = false;
    this.build();
  }

  // -- DOM ------------------------------------------------------------------------------
  build() {
    const study = this.series[0]?.first || {};
    this.grid = el('div', { class: 'grid', id: 'viewports' });
    this.panel = el('aside', { class: 'series-panel', id: 'series' });
    this.tags = el('aside', { class: 'tags', id: 'tags', hidden: '' });
    this.docPanel = el('aside', { class: 'tags sr-panel', id: 'sr-document', hidden: '' });
    this.toolbar = el('div', { class: 'toolbar', role: 'toolbar' });
    const title = el('div', { class: 'study-title' },
      el('span', { class: 'pname' }, value(study, '00100010')), ' ',
      el('span', { class: 'pid' }, value(study, '00100020')), ' ',
      el('span', {}, formatDate(value(study, '00080020'))), ' ',
      el('span', { class: 'sdesc' }, value(study, '00081030')));
    this.printHeader = el('header', { class: 'print-header' });
    this.printView = el('img', { class: 'print-view', alt: '' });
    this.root = el('div', { class: `reader${this.shared ? ' shared' : ''}` },
      this.toolbar, this.panel, this.grid, this.tags, this.docPanel, this.printHeader, this.printView);
    this.buildToolbar(title);
    this.buildSeriesPanel();
    this.app.replaceChildren(this.root);
    this.observer = new ResizeObserver(() => this.engine.resize(true, true));
    this.observer.observe(this.grid);
    this.on(document, 'keydown', (event) => this.onKey(event));
    this.on(window, 'beforeprint', () => this.preparePrint());
    this.on(eventTarget, Events.IMAGE_CACHE_IMAGE_ADDED, (event) => this.onCached(event.detail.image?.imageId));
  }

  on(target, name, fn) {
    target.addEventListener(name, fn);
    this.listeners.push([target, name, fn]);
  }

  button(label, key, fn, attrs = {}) {
    return el('button', { type: 'button', title: key ? `${label} (${key})` : label, ...attrs, on: { click: fn } }, label);
  }

  buildToolbar(title) {
    const bar = this.toolbar;
    if (!this.shared && this.onBack) {
      bar.append(this.button(`← ${t('back')}`, '', () => this.onBack(), { class: 'back' }));
    }
    bar.append(title);
    const tools = this.shared
      ? [['DragScroll', t('slice'), ''], [WindowLevelTool.toolName, t('wl'), 'w']]
      : [[WindowLevelTool.toolName, t('wl'), 'w'], ['PrimaryPan', t('pan'), 'p'], ['PrimaryZoom', t('zoom'), 'z'],
        ['DragScroll', t('slice'), 's'], [LengthTool.toolName, t('length'), 'l'], [AngleTool.toolName, t('angle'), 'a'],
        [RectangleROITool.toolName, t('rect'), 'q'], [EllipticalROITool.toolName, t('ellipse'), 'e'],
        [CrosshairsTool.toolName, t('crosshairs'), 'x']];
    this.toolButtons = new Map();
    const group = el('span', { class: 'group tools' });
    for (const [name, label, key] of tools) {
      const button = this.button(label, key, () => this.setPrimary(name), { 'data-tool': name });
      this.toolButtons.set(name, button);
      group.append(button);
    }
    bar.append(group);
    this.presetSelect = el('select', { class: 'presets', title: `${t('wl')} (1-5)`, on: { change: () => this.applyPreset(this.presetSelect.value) } });
    bar.append(this.presetSelect);
    const view = el('span', { class: 'group view' },
      this.button(t('invert'), 'i', () => this.invert()),
      this.button(t('reset'), 'Esc', () => this.reset()));
    if (!this.shared) {
      view.append(
        this.button(t('rotate'), 'r', () => this.rotate()),
        this.button(t('flipH'), 'h', () => this.flip('h')),
        this.button(t('flipV'), 'v', () => this.flip('v')));
    }
    bar.append(view);
    if (!this.shared) bar.append(this.cineBar());
    if (!this.shared) {
      const layouts = el('span', { class: 'group layouts' });
      for (const layout of Object.keys(LAYOUTS)) {
        layouts.append(this.button(layout, '', () => this.setLayout(layout), { 'data-layout': layout }));
      }
      this.mprButton = this.button(t('mpr'), 'm', () => this.setLayout('mpr'), { 'data-layout': 'mpr' });
      if (getShouldUseCPURendering()) {
        this.mprButton.disabled = true;
        this.mprButton.title = t('mprNeedsWebgl');
      }
      layouts.append(this.mprButton);
      this.syncButton = this.button(t('sync'), 'y', () => { this.syncOn = !this.syncOn; this.updateSync(); }, { 'data-action': 'sync' });
      layouts.append(this.syncButton);
      bar.append(layouts, this.measureGroup(), this.takeAwayGroup(),
        this.button(t('tags'), 't', () => this.toggleTags(), { class: 'tags-toggle' }),
        this.button(t('shortcuts'), '?', () => this.showShortcuts(), { 'data-action': 'shortcuts' }),
        el('a', { class: 'ohif', href: `../ohif/viewer?StudyInstanceUIDs=${encodeURIComponent(this.studyUid)}` }, t('openOhif')));
    }
  }

  /** Cine: step back, play or pause, step on, the frame rate, the frame counter. */
  cineBar() {
    this.cineButton = this.button(t('cine'), 'c', () => this.toggleCine(), { 'data-action': 'cine' });
    this.fpsInput = el('input', {
      type: 'number', name: 'fps', min: '1', max: '60', step: '1', value: '15', title: t('fps'), 'aria-label': t('fps'),
      on: { change: () => this.onFpsChange() },
    });
    this.frameCounter = el('span', { class: 'frame-counter', 'aria-live': 'off' });
    return el('span', { class: 'group cine-bar' },
      this.button('◀', ',', () => this.stepFrame(-1), { 'data-action': 'frame-prev', 'aria-label': t('prevFrame'), title: `${t('prevFrame')} (,)` }),
      this.cineButton,
      this.button('▶', '.', () => this.stepFrame(1), { 'data-action': 'frame-next', 'aria-label': t('nextFrame'), title: `${t('nextFrame')} (.)` }),
      el('label', { class: 'fps' }, this.fpsInput, ` ${t('fpsUnit')}`),
      this.frameCounter);
  }

  stepFrame(step) {
    const slot = this.slots[this.active];
    if (slot) this.stopCine(slot);
    this.scroll(step);
  }

  fps() {
    const value = Number(this.fpsInput?.value);
    return value >= 1 && value <= 60 ? value : 15;
  }

  onFpsChange() {
    const slot = this.slots[this.active];
    if (slot && this.cine.has(slot)) {
      this.stopCine(slot);
      this.toggleCine();
    }
  }

  /** PNG and JPEG of the active pane, the study as a DICOM ZIP (who may export), print. */
  takeAwayGroup() {
    this.downloadStatus = el('span', { class: 'download-status', role: 'status' });
    const group = el('span', { class: 'group take-away' },
      this.button(t('downloadPng'), '', () => this.downloadView('png'), { 'data-action': 'download-png' }),
      this.button(t('downloadJpeg'), '', () => this.downloadView('jpeg'), { 'data-action': 'download-jpeg' }));
    if (permits('export')) {
      group.append(this.button(t('downloadZip'), '', () => this.downloadZip(), { 'data-action': 'download-zip' }));
    }
    group.append(this.button(t('print'), '', () => this.print(), { 'data-action': 'print' }), this.downloadStatus);
    return group;
  }

  viewParts() {
    const slot = this.slots[this.active];
    const item = slot?.item || slot?.series?.first || {};
    return [value(item, '00100020'), value(item, '00080020'), value(item, '00200011'), slot?.box.dataset.slice];
  }

  async downloadView(type) {
    const slot = this.slots[this.active];
    if (slot?.box.dataset.rendered) await downloadView(slot.box, type, this.viewParts());
  }

  async downloadZip() {
    const show = (text, state) => { this.downloadStatus.textContent = text; this.downloadStatus.dataset.state = state; };
    show(t('zipPreparing', { done: 0, total: '…' }), 'working');
    try {
      await downloadStudyZip(this.studyUid, (done, total) => show(t('zipPreparing', { done, total }), 'working'));
      show(t('zipReady'), 'done');
    } catch (error) {
      show(`${t('zipFailed')}: ${error?.status ? errorText(error) : t('app.error')}`, 'error');
    }
  }

  /** The print layout: a header naming the patient and the study above the active pane. */
  async preparePrint() {
    const slot = this.slots[this.active];
    const item = slot?.item || slot?.series?.first || {};
    setLines(this.printHeader, [
      [value(item, '00100010'), value(item, '00100020'), formatDate(value(item, '00100030')), value(item, '00100040')].filter(Boolean).join(' · '),
      [formatDate(value(item, '00080020')), value(item, '00081030'), value(item, '00080050')].filter(Boolean).join(' · '),
      `${t('series')} ${value(item, '00200011')}: ${value(item, '0008103E')} · ${slot?.corners[2].firstChild?.textContent || ''}`,
    ]);
    if (slot?.box.dataset.rendered) this.printView.src = (await snapshot(slot.box)).toDataURL('image/png');
  }

  async print() {
    await this.preparePrint();
    this.root.dataset.printReady = '1';
    window.print();
  }

  showShortcuts() {
    if (!this.shortcuts) {
      this.shortcuts = shortcutsDialog(t);
      this.root.append(this.shortcuts);
    }
    if (!this.shortcuts.open) this.shortcuts.showModal();
  }

  /** Save (radiologists) and delete the selected measurement, with what happened to them. */
  measureGroup() {
    this.measureStatus = el('span', { class: 'measure-status', role: 'status', 'aria-live': 'polite' });
    this.deleteButton = this.button(t('deleteMeasurement'), 'Del', () => this.deleteMeasurement(),
      { 'data-action': 'delete-measurement', disabled: '' });
    const group = el('span', { class: 'group measure' }, this.deleteButton);
    this.on(eventTarget, ToolEvents.ANNOTATION_SELECTION_CHANGE, (event) => {
      this.deleteButton.disabled = !(event.detail?.selection?.length);
    });
    if (permits('report')) {
      group.prepend(this.button(t('saveMeasurements'), '', () => this.saveMeasurements(), { 'data-action': 'save-measurements' }));
    }
    group.append(this.measureStatus);
    for (const name of [ToolEvents.ANNOTATION_COMPLETED, ToolEvents.ANNOTATION_REMOVED]) {
      this.on(eventTarget, name, () => this.setMeasureStatus(t('unsaved'), 'unsaved'));
    }
    return group;
  }

  setMeasureStatus(text, state) {
    if (!this.measureStatus) return;
    this.measureStatus.textContent = text;
    this.measureStatus.dataset.state = state;
  }

  async saveMeasurements() {
    const multiframe = (imageId) => this.series.some((series) => series.multiframe && series.itemOf.has(imageId));
    this.setMeasureStatus(t('saving'), 'saving');
    try {
      // Saved measurements shown (loaded or saved here): deleting them all is saved too.
      const saved = await saveMeasurements(this.studyUid, multiframe, { withdraw: Boolean(this.savedShown) });
      if (saved) this.savedShown = saved.count > 0;
      if (saved?.count) this.setMeasureStatus(t('savedMeasurements', { count: saved.count }), 'saved');
      else if (saved?.withdrawn?.length) this.setMeasureStatus(t('withdrawnMeasurements'), 'saved');
      else this.setMeasureStatus(t('nothingToSave'), 'error');
    } catch (error) {
      this.setMeasureStatus(`${t('saveFailed')}: ${errorText(error)}`, 'error');
    }
  }

  deleteMeasurement() {
    if (deleteSelected()) toolUtils.triggerAnnotationRenderForViewportIds(this.slots.map((slot) => slot.id));
  }

  /** Draw the study's saved measurements (after the first image: it is what the user waits for). */
  async loadSaved() {
    const byRef = new Map();
    for (const series of this.series) {
      for (const imageId of series.imageIds) byRef.set(imageId.split('/instances/')[1], imageId);
    }
    try {
      const count = await loadMeasurements(this.studyUid, (sop, frame) => byRef.get(`${sop}/frames/${frame}`));
      if (count) {
        this.savedShown = true;
        this.setMeasureStatus(t('loadedMeasurements', { count }), 'loaded');
      }
    } catch (error) {
      this.setMeasureStatus(`${t('loadFailed')}: ${errorText(error)}`, 'error');
    }
    if (this.root.isConnected) this.engine.renderViewports(this.slots.map((slot) => slot.id));
  }

  buildSeriesPanel() {
    this.seriesCards = new Map();
    for (const series of this.series) this.panel.append(this.seriesCard(series));
  }

  seriesCard(series) {
    const count = el('span', { class: 'count' }, String(series.imageIds.length));
    const card = el('button', {
      type: 'button', class: 'series-card', 'data-series': series.uid, draggable: 'true',
      on: {
        click: () => this.showSeries(this.active, series).then(() => this.updateSync()),
        dragstart: (event) => event.dataTransfer.setData('text/plain', series.uid),
      },
    },
    el('img', { src: thumbnailUrl(series.study, series.uid), alt: '', loading: 'lazy' }),
    el('span', { class: 'label' }, `${series.number} ${series.modality} ${series.description}`.trim()),
    count,
    el('progress', { max: String(series.imageIds.length), value: '0' }));
    this.seriesCards.set(series.uid, { card, count, progress: card.querySelector('progress') });
    return card;
  }

  allSeries() {
    return [...this.series, ...this.priorSeries];
  }

  // -- priors ---------------------------------------------------------------------------
  /** List the patient's other studies under the series (after the first image is drawn). */
  async loadPriors() {
    let priors;
    try {
      priors = await fetchPriors(this.studyUid);
    } catch (error) {
      this.panel.append(el('p', { class: 'error priors-error' }, `${t('priorsFailed')}: ${errorText(error)}`));
      return;
    }
    if (!this.root.isConnected) return;
    const section = el('section', { class: 'priors', id: 'priors' }, el('h2', {}, t('priors')));
    if (!priors.length) section.append(el('p', { class: 'none' }, t('noPriors')));
    for (const prior of priors) {
      const uid = value(prior, '0020000D');
      const box = el('div', { class: 'prior', 'data-study': uid });
      box.append(el('button', {
        type: 'button', class: 'prior-card', 'data-study': uid, title: t('openPrior'),
        on: { click: () => this.openPrior(uid, box) },
      },
      el('span', { class: 'date' }, formatDate(value(prior, '00080020'))), ' ',
      el('span', { class: 'mod' }, value(prior, '00080061')), ' ',
      el('span', { class: 'desc' }, value(prior, '00081030'))));
      section.append(box);
    }
    this.panel.append(section);
  }

  /** Open a prior beside the current image: its series under its card, the best match in the
   * second pane, scrolling linked. */
  async openPrior(uid, box) {
    let series = this.priorSeries.filter((s) => s.study === uid);
    if (!series.length) {
      box.classList.add('loading');
      try {
        const instances = await studyMetadata(uid);
        await inlinePalettes(instances);
        series = buildSeries(uid, instances);
      } catch (error) {
        box.append(el('p', { class: 'error' }, `${t('app.error')}: ${errorText(error)}`));
        return;
      } finally {
        box.classList.remove('loading');
      }
      for (const s of series) s.prior = true;
      this.priorSeries.push(...series);
      box.append(...series.map((s) => this.seriesCard(s)));
    }
    if (!series.length) return;
    const slot = this.slots[this.active];
    const current = slot?.series || this.series[0];
    const beside = matchingSeries(series, current);
    // The prior opens where the current pane is (nearest position), then scrolls with it.
    const shownId = slot?.kind === 'stack' ? this.viewport(slot)?.getCurrentImageId() : null;
    const index = shownId ? nearestIndex(beside, shownId) : 0;
    this.syncOn = true;
    if (this.layout === '1x1' || this.layout === 'mpr') {
      await this.setLayout('1x2', { 1: { series: beside, index } });
    } else {
      const target = this.active === this.slots.length - 1 ? 0 : this.active + 1;
      await this.showSeries(target, beside, index);
    }
    this.updateSync();
  }

  /** Link (or unlink) the stack panes' scrolling, as the sync button says. */
  updateSync() {
    if (this.syncButton) this.syncButton.classList.toggle('on', this.syncOn);
    const stacks = this.slots.filter((slot) => slot.kind === 'stack' && slot.series).map((slot) => slot.id);
    if (this.syncOn) linkScroll(ENGINE, stacks);
    else unlinkScroll();
  }

  /** The study's SR documents under its series (their pixels-less series have no card). */
  listDocuments() {
    if (!this.documents?.length) return;
    const section = el('section', { class: 'documents', id: 'documents' }, el('h2', {}, t('documents')));
    for (const document of this.documents) {
      section.append(el('button', {
        type: 'button', class: 'document-card', 'data-sop': document.sop,
        on: { click: () => this.showDocument(document) },
      }, `${document.number} SR ${document.description}`.trim(), el('br'), el('span', { class: 'date' }, formatDate(document.date))));
    }
    this.panel.append(section);
  }

  async showDocument(document) {
    const close = () => this.setSidePanel(null);
    this.docPanel.replaceChildren(el('p', { class: 'loading' }, t('app.loading')));
    this.setSidePanel(this.docPanel);
    try {
      const tree = await fetchDocument(document);
      this.docPanel.replaceChildren(...documentView(tree, t, close));
      this.docPanel.dataset.sop = document.sop;
    } catch (error) {
      this.docPanel.replaceChildren(el('p', { class: 'error', role: 'alert' }, `${t('app.error')}: ${errorText(error)}`));
    }
  }

  /** Show one side panel (the tags or an SR document) or none. */
  setSidePanel(panel) {
    for (const aside of [this.tags, this.docPanel]) aside.hidden = aside !== panel;
    this.root.classList.toggle('with-tags', Boolean(panel));
    this.engine.resize(true, true);
  }

  async start() {
    if (!this.shared) this.listDocuments();
    if (!this.series.length) {
      this.grid.replaceChildren(el('p', { class: 'error' }, t('noImages')));
      return;
    }
    await this.setLayout('1x1');
    if (!this.shared) await Promise.all([this.loadSaved(), this.loadPriors()]);
  }

  destroy() {
    for (const [target, name, fn] of this.listeners) target.removeEventListener(name, fn);
    this.observer?.disconnect();
    for (const slot of this.slots) this.stopCine(slot);
    unlinkScroll();
    ToolGroupManager.destroyToolGroup(STACK_GROUP);
    ToolGroupManager.destroyToolGroup(MPR_GROUP);
    annotations.state.removeAllAnnotations(); // measurements belong to this study
    this.engine.destroy();
    document.body.classList.remove('shared');
  }

  // -- layouts and viewports ------------------------------------------------------------
  makeSlot(index, kind) {
    const element = el('div', { class: 'vp-element', oncontextmenu: null });
    element.addEventListener('contextmenu', (event) => event.preventDefault());
    const corners = ['tl', 'tr', 'bl', 'br'].map((corner) => el('div', { class: `ov ov-${corner}` }));
    const edges = Object.fromEntries(['top', 'bottom', 'left', 'right'].map((edge) => [edge, el('div', { class: `ov ori ori-${edge}` })]));
    const scale = el('div', { class: 'ov scale-bar', hidden: '' }, el('span', { class: 'bar' }), el('span', { class: 'label' }));
    const planes = overlayLayer();
    const box = el('div', { class: 'vp', 'data-index': String(index) }, element, planes, ...corners, ...Object.values(edges), scale);
    box.addEventListener('pointerdown', () => this.activate(index), true);
    box.addEventListener('dragover', (event) => event.preventDefault());
    box.addEventListener('drop', (event) => {
      event.preventDefault();
      const uid = event.dataTransfer.getData('text/plain');
      const series = this.allSeries().find((s) => s.uid === uid);
      if (series && kind === 'stack') this.showSeries(index, series).then(() => this.updateSync());
    });
    const slot = { id: `vp-${index}`, box, element, planes, corners, edges, scale, kind, series: null, shown: 0, probe: '' };
    this.on(element, Events.IMAGE_RENDERED, () => this.onRendered(slot));
    if (!this.shared && kind === 'stack') {
      element.addEventListener('mousemove', (event) => this.onProbe(slot, event));
      element.addEventListener('mouseleave', () => { slot.probe = ''; this.onRendered(slot); });
    }
    return slot;
  }

  /** Where each pane is (its series and image), so a layout change keeps it. */
  panePositions() {
    return this.slots.map((slot) => {
      const viewport = slot.kind === 'stack' ? this.viewport(slot) : null;
      return { series: slot.series, index: viewport && slot.series ? viewport.getCurrentImageIdIndex() : null };
    });
  }

  async setLayout(layout, overrides = {}) {
    if (layout === 'mpr' && !this.canMpr(this.slots[this.active]?.series)) return;
    const positions = this.panePositions();
    const activePosition = positions[this.active] || { series: this.series[0], index: null };
    // The active pane becomes the first; the others keep their order after it.
    const previous = [activePosition, ...positions.filter((_, i) => i !== this.active)];
    Object.assign(previous, overrides);
    const activeSeries = activePosition.series || this.series[0];
    unlinkScroll();
    for (const slot of this.slots) this.stopCine(slot);
    ToolGroupManager.destroyToolGroup(STACK_GROUP);
    ToolGroupManager.destroyToolGroup(MPR_GROUP);
    for (const slot of this.slots) this.engine.disableElement(slot.id);
    this.layout = layout;
    const mpr = layout === 'mpr';
    const count = mpr ? 3 : LAYOUTS[layout];
    this.slots = Array.from({ length: count }, (_, i) => this.makeSlot(i, mpr ? 'volume' : 'stack'));
    this.grid.className = `grid l${mpr ? '1x3' : layout}`;
    this.grid.replaceChildren(...this.slots.map((slot) => slot.box));
    for (const button of this.toolbar.querySelectorAll('[data-layout]')) button.classList.toggle('on', button.dataset.layout === layout);
    const orientations = [OrientationAxis.AXIAL, OrientationAxis.SAGITTAL, OrientationAxis.CORONAL];
    this.engine.setViewports(this.slots.map((slot, i) => ({
      viewportId: slot.id,
      element: slot.element,
      type: mpr ? ViewportType.ORTHOGRAPHIC : ViewportType.STACK,
      defaultOptions: mpr ? { orientation: orientations[i], background: [0, 0, 0] } : { background: [0, 0, 0] },
    })));
    const group = this.makeToolGroup(mpr ? MPR_GROUP : STACK_GROUP, mpr);
    for (const slot of this.slots) group.addViewport(slot.id, ENGINE);
    this.active = 0;
    this.activate(0);
    if (mpr) {
      await this.showVolume(activeSeries);
      return;
    }
    // Keep what was shown, where it was; fill new viewports with the next series.
    const shown = new Set(previous.map((p) => p?.series?.uid).filter(Boolean));
    const jobs = this.slots.map((slot, i) => {
      let { series, index } = previous[i] || {};
      if (i === 0) series = series || activeSeries;
      if (!series) {
        series = this.series.find((s) => !shown.has(s.uid)) || activeSeries;
        index = null;
      }
      shown.add(series.uid);
      return this.showSeries(i, series, index ?? 0);
    });
    await Promise.all(jobs);
    this.updateSync();
  }

  canMpr(series) {
    return Boolean(series) && !getShouldUseCPURendering() && VOLUME_MODALITIES.has(series.modality)
      && !series.multiframe && series.imageIds.length >= 3;
  }

  makeToolGroup(id, volume) {
    const group = ToolGroupManager.createToolGroup(id);
    for (const tool of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool]) group.addTool(tool.toolName);
    // Values labelled from the catalogue (Cornerstone writes them in English) and the
    // reader's label above them.
    group.addTool(LengthTool.toolName, { getTextLines: lengthTextLines });
    group.addTool(AngleTool.toolName, { getTextLines: angleTextLines });
    for (const tool of [RectangleROITool, EllipticalROITool]) group.addTool(tool.toolName, { getTextLines: areaTextLines });
    group.addToolInstance('PrimaryPan', PanTool.toolName);
    group.addToolInstance('PrimaryZoom', ZoomTool.toolName);
    group.addToolInstance('DragScroll', StackScrollTool.toolName);
    group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] });
    group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }, { numTouchPoints: 2 }] });
    group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }, { numTouchPoints: 3 }] });
    for (const name of [LengthTool, AngleTool, RectangleROITool, EllipticalROITool].map((tool) => tool.toolName)) {
      group.setToolPassive(name);
    }
    if (volume) group.addTool(CrosshairsTool.toolName); // MPR only: it links the three planes
    // Stacks side by side: where the active pane's plane cuts the others (nothing is drawn
    // between parallel planes).
    else if (!this.shared) group.addTool(ReferenceLinesTool.toolName, { sourceViewportId: 'vp-0' });
    if (!group.hasTool(this.primary)) this.primary = WindowLevelTool.toolName;
    group.setToolActive(this.primary, { bindings: [{ mouseButton: MouseBindings.Primary }] });
    this.toolGroup = group;
    this.updateToolButtons();
    if (volume) this.volumeGroup = group;
    return group;
  }

  setPrimary(name) {
    if (this.shared && name === this.primary && name !== 'DragScroll') name = 'DragScroll'; // W/L toggle
    const group = this.toolGroup;
    if (!group || !group.hasTool(name)) return;
    if (this.primary !== name) group.setToolPassive(this.primary);
    this.primary = name;
    group.setToolActive(name, { bindings: [{ mouseButton: MouseBindings.Primary }] });
    this.updateToolButtons();
  }

  updateToolButtons() {
    for (const [name, button] of this.toolButtons) {
      button.classList.toggle('on', name === this.primary);
      button.disabled = Boolean(this.toolGroup) && !this.toolGroup.hasTool(name);
    }
  }

  activate(index) {
    this.active = index;
    for (const [i, slot] of this.slots.entries()) slot.box.classList.toggle('active', i === index);
    this.updateReferenceLines();
    const slot = this.slots[index];
    if (slot?.series) this.afterSeriesChange(slot);
  }

  /** Reference lines from the active pane onto the others (stack layouts of two or more). */
  updateReferenceLines() {
    const group = this.toolGroup;
    const slot = this.slots[this.active];
    if (!group?.hasTool(ReferenceLinesTool.toolName) || !slot) return;
    if (this.slots.length < 2) {
      if (group.getToolOptions(ReferenceLinesTool.toolName)?.mode === 'Enabled') group.setToolDisabled(ReferenceLinesTool.toolName);
      return;
    }
    group.setToolConfiguration(ReferenceLinesTool.toolName, { sourceViewportId: slot.id });
    group.setToolEnabled(ReferenceLinesTool.toolName);
    toolUtils.triggerAnnotationRenderForViewportIds(this.slots.map((s) => s.id));
  }

  viewport(slot = this.slots[this.active]) {
    return slot ? this.engine.getViewport(slot.id) : null;
  }

  async showSeries(index, series, imageIndex = 0) {
    const slot = this.slots[index];
    if (!slot || slot.kind !== 'stack') {
      if (this.layout === 'mpr') { this.slots[this.active].series = series; await this.setLayout('1x1'); }
      return;
    }
    this.stopCine(slot);
    slot.series = series;
    slot.box.dataset.series = series.uid;
    delete slot.box.dataset.rendered;
    const viewport = this.viewport(slot);
    // The first image is requested (and drawn) first; the rest are prefetched after it.
    try {
      await viewport.setStack(series.imageIds, Math.min(imageIndex, series.imageIds.length - 1));
    } catch (error) {
      setLines(slot.corners[2], [`${t('app.error')}: ${error?.message || error?.error?.message || String(error)}`]);
      return;
    }
    viewport.render();
    toolUtils.stackPrefetch.enable(slot.element);
    this.afterSeriesChange(slot);
    for (const [uid, { card }] of this.seriesCards) {
      card.classList.toggle('shown', this.slots.some((s) => s.series?.uid === uid));
    }
  }

  async showVolume(series) {
    const volumeId = `cornerstoneStreamingImageVolume:${series.uid}`;
    for (const slot of this.slots) slot.series = series;
    try {
      const volume = await volumeLoader.createAndCacheVolume(volumeId, { imageIds: series.imageIds });
      volume.load();
      await setVolumesForViewports(this.engine, [{ volumeId }], this.slots.map((slot) => slot.id));
    } catch (error) {
      // Not a regular volume (gantry tilt, uneven spacing, mixed sizes): say so, keep the stack.
      setLines(this.slots[0].corners[2], [`${t('mpr')}: ${error?.message || String(error)}`]);
      return;
    }
    this.engine.renderViewports(this.slots.map((slot) => slot.id));
    this.afterSeriesChange(this.slots[this.active]);
  }

  afterSeriesChange(slot) {
    const series = slot.series;
    const presets = PRESETS[series.modality] || [];
    this.presetSelect.replaceChildren(el('option', { value: '' }, t('wl')),
      ...presets.map(([name, w, c], i) => el('option', { value: name }, `${i + 1}. ${t(name)} ${w}/${c}`)));
    this.presetSelect.hidden = presets.length === 0;
    if (this.cineButton) this.cineButton.disabled = slot.kind !== 'stack' || series.imageIds.length < 2;
    if (this.fpsInput && slot.kind === 'stack' && !this.cine.has(slot)) {
      this.fpsInput.value = String(Math.round(frameRate(slot.item || series.first)));
    }
    if (!this.tags.hidden) this.renderTags();
  }

  // -- overlay --------------------------------------------------------------------------
  onRendered(slot) {
    const viewport = this.viewport(slot);
    const series = slot.series;
    if (!viewport || !series) return;
    let index = 0;
    let total = series.imageIds.length;
    let item = series.first;
    if (slot.kind === 'stack') {
      // A render while the series' first image is still decoding (a tool's mode change
      // re-renders the pane) draws nothing of it yet: the pane is not "rendered" until it does.
      const image = viewport.getCornerstoneImage?.();
      if (!image || !series.itemOf.has(image.imageId)) return;
      index = viewport.getCurrentImageIdIndex();
      item = series.itemOf.get(viewport.getCurrentImageId()) || item;
    } else {
      try {
        const data = csUtils.getImageSliceDataForVolumeViewport(viewport);
        index = data.imageIndex;
        total = data.numberOfSlices;
      } catch { /* volume not ready */ }
    }
    slot.item = item;
    const { voiRange, invert } = viewport.getProperties();
    const [tl, tr, bl, br] = slot.corners;
    setLines(tl, [value(item, '00100010'), value(item, '00100020'),
      [formatDate(value(item, '00100030')), value(item, '00100040')].filter(Boolean).join(' ')]);
    setLines(tr, [value(item, '00081030'), formatDate(value(item, '00080020')),
      `${t('series')} ${value(item, '00200011')}: ${value(item, '0008103E')}`]);
    const lines = [`${t(series.multiframe ? 'frame' : 'slice')} ${index + 1}/${total}`];
    if (voiRange) {
      const { windowWidth, windowCenter } = csUtils.windowLevel.toWindowLevel(voiRange.lower, voiRange.upper);
      lines.push(`W ${Math.round(windowWidth)} L ${Math.round(windowCenter)}${invert ? ' INV' : ''}`);
    }
    setLines(bl, lines);
    const zoom = viewport.getZoom ? viewport.getZoom() : 1;
    setLines(br, [slot.probe, value(item, '00080060'), `${Math.round(zoom * 100)}%`]);
    this.drawMarkers(slot, viewport, item);
    this.drawPlanes(slot, viewport, item);
    if (slot === this.slots[this.active] && this.slots.length > 1 && this.toolGroup?.hasTool(ReferenceLinesTool.toolName)) {
      // The other panes' reference lines follow the active pane's image.
      toolUtils.triggerAnnotationRenderForViewportIds(this.slots.filter((s) => s !== slot).map((s) => s.id));
    }
    if (slot === this.slots[this.active] && this.frameCounter) {
      this.frameCounter.textContent = t('frameCounter', { index: index + 1, total });
    }
    slot.box.dataset.slice = String(index + 1);
    slot.box.dataset.rendered = '1';
    if (slot === this.slots[this.active] && !this.tags.hidden && this.tagsItem !== item) this.renderTags();
  }

  /** Patient directions at the edges and the scale bar, from the pane's current geometry. */
  drawMarkers(slot, viewport, item) {
    const hasPlane = numbers(item, '00200037').length === 6 && !INVENTED_PLANE.has(item);
    const markers = orientationMarkers(viewport, hasPlane);
    for (const [edge, node] of Object.entries(slot.edges)) {
      node.textContent = markers ? markers[edge].map((letter) => t(`orient${letter}`)).join('') : '';
    }
    const hasSpacing = numbers(item, '00280030').length === 2;
    const bar = scaleBar(viewport, hasSpacing);
    slot.scale.hidden = !bar;
    if (bar) {
      slot.scale.firstChild.style.width = `${bar.pixels.toFixed(1)}px`;
      slot.scale.lastChild.textContent = t('scaleMm', { value: bar.mm });
      slot.scale.dataset.mm = String(bar.mm);
    }
  }

  /** The image's 60xx overlay planes (fetched once per image), drawn over a stack pane. */
  drawPlanes(slot, viewport, item) {
    const imageId = slot.kind === 'stack' ? viewport.getCurrentImageId() : null;
    if (!imageId || !hasOverlayPlanes(item)) {
      if (slot.box.dataset.overlayPlanes) drawOverlayPlanes(slot.planes, viewport, imageId, []);
      delete slot.box.dataset.overlayPlanes;
      return;
    }
    overlayPlanes(item).then((found) => {
      if (viewport.getCurrentImageId?.() !== imageId) return; // scrolled on meanwhile
      drawOverlayPlanes(slot.planes, viewport, imageId, found);
      slot.box.dataset.overlayPlanes = String(found.length);
    });
  }

  /** The modality value under the cursor (HU for CT) in the pane's corner. */
  onProbe(slot, event) {
    const viewport = this.viewport(slot);
    if (!viewport || !slot.series) return;
    const found = probe(viewport, [event.offsetX, event.offsetY]);
    const unit = slot.series.modality === 'CT' ? 'HU' : '';
    slot.probe = found ? t('probe', { x: found.column, y: found.row, value: found.value, unit }).trim() : '';
    slot.box.dataset.probe = found ? String(found.value) : '';
    this.onRendered(slot);
  }

  onCached(imageId) {
    if (!imageId) return;
    for (const series of this.allSeries()) {
      if (!series.itemOf.has(imageId) || series.loaded.has(imageId)) continue;
      series.loaded.add(imageId);
      const card = this.seriesCards.get(series.uid);
      card.progress.value = series.loaded.size;
      card.card.dataset.cached = String(series.loaded.size);
      if (series.loaded.size === series.imageIds.length) card.card.classList.add('cached');
    }
  }

  // -- view operations ------------------------------------------------------------------
  applyPreset(name) {
    const slot = this.slots[this.active];
    const preset = (PRESETS[slot?.series?.modality] || []).find(([n]) => n === name);
    if (!preset) return;
    const [, width, center] = preset;
    const viewport = this.viewport(slot);
    viewport.setProperties({ voiRange: csUtils.windowLevel.toLowHighRange(width, center) });
    viewport.render();
    this.presetSelect.value = '';
  }

  invert() {
    const viewport = this.viewport();
    if (!viewport) return;
    viewport.setProperties({ invert: !viewport.getProperties().invert });
    viewport.render();
  }

  rotate() {
    const viewport = this.viewport();
    if (!viewport) return;
    const rotation = viewport.getViewPresentation().rotation || 0;
    viewport.setViewPresentation({ rotation: (rotation + 90) % 360 });
    viewport.render();
  }

  flip(direction) {
    const viewport = this.viewport();
    if (!viewport) return;
    const camera = viewport.getCamera();
    if (direction === 'h') viewport.setCamera({ flipHorizontal: !camera.flipHorizontal });
    else viewport.setCamera({ flipVertical: !camera.flipVertical });
    viewport.render();
  }

  reset() {
    const viewport = this.viewport();
    if (!viewport) return;
    viewport.resetProperties();
    viewport.resetCamera();
    if (viewport.setViewPresentation) viewport.setViewPresentation({ rotation: 0 });
    viewport.render();
  }

  scroll(delta) {
    const viewport = this.viewport();
    if (viewport) csUtils.scroll(viewport, { delta, loop: false });
  }

  jump(where) {
    const slot = this.slots[this.active];
    const viewport = this.viewport(slot);
    if (!viewport || slot.kind !== 'stack') return;
    viewport.setImageIdIndex(where === 'first' ? 0 : slot.series.imageIds.length - 1);
  }

  toggleCine() {
    const slot = this.slots[this.active];
    if (!slot || slot.kind !== 'stack') return;
    if (this.cine.has(slot)) { this.stopCine(slot); return; }
    const fps = this.fps();
    toolUtils.cine.playClip(slot.element, { framesPerSecond: fps, loop: true });
    this.cine.add(slot);
    this.cineButton?.classList.add('on');
    if (this.cineButton) this.cineButton.textContent = t('pause');
  }

  stopCine(slot) {
    if (!this.cine.has(slot)) return;
    toolUtils.cine.stopClip(slot.element);
    this.cine.delete(slot);
    this.cineButton?.classList.toggle('on', this.cine.size > 0);
    if (this.cineButton && this.cine.size === 0) this.cineButton.textContent = t('cine');
  }

  nextSeries(step) {
    const slot = this.slots[this.active];
    if (!slot?.series || slot.kind !== 'stack') return;
    const list = slot.series.siblings || this.series;
    const index = list.indexOf(slot.series) + step;
    if (index >= 0 && index < list.length) this.showSeries(this.active, list[index]).then(() => this.updateSync());
  }

  onKey(event) {
    if (!this.root.isConnected) return; // the user went back to the study list
    if (event.target.closest('input, select, textarea') || event.ctrlKey || event.metaKey || event.altKey) return;
    const actions = {
      ArrowUp: () => this.scroll(-1), ArrowDown: () => this.scroll(1),
      PageUp: () => this.scroll(-10), PageDown: () => this.scroll(10),
      Home: () => this.jump('first'), End: () => this.jump('last'),
      ArrowLeft: () => this.nextSeries(-1), ArrowRight: () => this.nextSeries(1),
      i: () => this.invert(), Escape: () => this.reset(), w: () => this.setPrimary(WindowLevelTool.toolName),
      '?': () => this.showShortcuts(),
    };
    if (!this.shared) {
      Object.assign(actions, {
        p: () => this.setPrimary('PrimaryPan'), z: () => this.setPrimary('PrimaryZoom'),
        s: () => this.setPrimary('DragScroll'), l: () => this.setPrimary(LengthTool.toolName),
        a: () => this.setPrimary(AngleTool.toolName), x: () => this.setPrimary(CrosshairsTool.toolName), q: () => this.setPrimary(RectangleROITool.toolName),
        e: () => this.setPrimary(EllipticalROITool.toolName), r: () => this.rotate(),
        h: () => this.flip('h'), v: () => this.flip('v'), c: () => this.toggleCine(),
        ',': () => this.stepFrame(-1), '.': () => this.stepFrame(1),
        Delete: () => this.deleteMeasurement(), Backspace: () => this.deleteMeasurement(),
        y: () => { this.syncOn = !this.syncOn; this.updateSync(); },
        t: () => this.toggleTags(), m: () => this.setLayout('mpr'), o: () => this.grid.classList.toggle('no-overlay'),
      });
    }
    const slot = this.slots[this.active];
    const presets = PRESETS[slot?.series?.modality] || [];
    if (/^[1-9]$/.test(event.key) && presets[Number(event.key) - 1]) {
      this.applyPreset(presets[Number(event.key) - 1][0]);
      event.preventDefault();
      return;
    }
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  }

  // -- tag browser ----------------------------------------------------------------------
  toggleTags() {
    this.setSidePanel(this.tags.hidden ? this.tags : null);
    if (!this.tags.hidden) this.renderTags();
  }

  renderTags() {
    const slot = this.slots[this.active];
    const item = slot?.item || slot?.series?.first;
    this.tagsItem = item;
    const filter = el('input', { type: 'search', placeholder: t('tagFilter'), class: 'tag-filter' });
    const table = el('table', { class: 'tag-table' }, el('tbody', {}, ...tagRows(item || {}, 0)));
    filter.addEventListener('input', () => {
      const needle = filter.value.toLowerCase();
      for (const row of table.rows) row.hidden = needle !== '' && !row.textContent.toLowerCase().includes(needle);
    });
    this.tags.replaceChildren(el('h2', {}, t('tags')), filter, table);
  }
}

function setLines(node, lines) {
  node.replaceChildren(...lines.filter((line) => line !== '').flatMap((line, i) => (i ? [el('br'), line] : [line])));
}

function tagText(element) {
  if (!element) return '';
  if (element.BulkDataURI) return t('bulkData');
  if (element.InlineBinary) return t('binary', { count: element.InlineBinary.length });
  const values = element.Value || [];
  if (element.vr === 'PN') return values.map((v) => [v.Alphabetic, v.Ideographic, v.Phonetic].filter(Boolean).join('=')).join('\\');
  return values.map((v) => String(v)).join('\\');
}

function tagRows(item, depth) {
  const rows = [];
  for (const tag of Object.keys(item).sort()) {
    const element = item[tag];
    const label = `(${tag.slice(0, 4)},${tag.slice(4)})`;
    const row = el('tr', { class: `depth-${Math.min(depth, 4)}` },
      el('td', { class: 'tag' }, `${'  '.repeat(depth)}${label}`),
      el('td', { class: 'kw' }, TAG_NAMES[tag] || ''),
      el('td', { class: 'vr' }, element?.vr || ''),
      el('td', { class: 'val' }, element?.vr === 'SQ' ? t('items', { count: (element.Value || []).length }) : tagText(element)));
    rows.push(row);
    if (element?.vr === 'SQ') {
      for (const child of element.Value || []) rows.push(...tagRows(child || {}, depth + 1));
    }
  }
  return rows;
}

