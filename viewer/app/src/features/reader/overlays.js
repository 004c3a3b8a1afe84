// What a reader reads beside the pixels, computed from the viewport's own geometry (so a
// flip, a rotation, a pan or a zoom is always accounted for): the patient directions at the
// edges of a pane, a scale bar in millimetres, and the modality value (HU for CT) under the
// cursor. Each is a few vector operations per frame; nothing is drawn by Cornerstone tools, so
// the share link's phone layout stays as light as before.
import { utilities as csUtils } from '@cornerstonejs/core';

// Patient coordinate axes (PS3.3 C.7.6.2.1.1): +x towards the patient's left, +y posterior,
// +z head. The letter of each direction is a catalogue key ("orient.L"...).
const AXES = [['L', 'R'], ['P', 'A'], ['H', 'F']];
const NICE_MM = [1, 2, 5, 10, 20, 50, 100, 200, 500];

/** The world (patient, mm) vector of one CSS pixel along ``dx, dy`` on the canvas centre. */
function screenStep(viewport, dx, dy) {
  const { clientWidth: w, clientHeight: h } = viewport.element;
  const a = viewport.canvasToWorld([w / 2, h / 2]);
  const b = viewport.canvasToWorld([w / 2 + dx, h / 2 + dy]);
  return [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
}

/** The direction letters of ``vector``, strongest first (up to two for an oblique plane). */
function letters(vector) {
  const length = Math.hypot(...vector) || 1;
  return vector
    .map((v, axis) => ({ weight: Math.abs(v) / length, letter: AXES[axis][v > 0 ? 0 : 1] }))
    .filter(({ weight }) => weight > 0.3)
    .sort((a, b) => b.weight - a.weight)
    .slice(0, 2)
    .map(({ letter }) => letter);
}

/** The patient direction (catalogue letters) at each edge of the pane, or null when the
 * image has no orientation (a secondary capture without its plane). */
export function orientationMarkers(viewport, hasPlane) {
  if (!hasPlane) return null;
  const right = screenStep(viewport, 1, 0);
  const down = screenStep(viewport, 0, 1);
  return {
    right: letters(right), left: letters(right.map((v) => -v)),
    bottom: letters(down), top: letters(down.map((v) => -v)),
  };
}

/** A scale bar: a round number of millimetres and its length in CSS pixels (at most about a
 * third of the pane), or null when the image has no pixel spacing. */
export function scaleBar(viewport, hasSpacing) {
  if (!hasSpacing) return null;
  const mmPerPixel = Math.hypot(...screenStep(viewport, 1, 0));
  if (!(mmPerPixel > 0)) return null;
  const widest = viewport.element.clientWidth / 3;
  const mm = [...NICE_MM].reverse().find((value) => value / mmPerPixel <= widest);
  return mm ? { mm, pixels: mm / mmPerPixel } : null;
}

/** The stored pixel under ``canvasPoint`` as its modality value (rescale slope and intercept
 * applied, so HU for CT), with its image column and row; null outside the image or for colour. */
export function probe(viewport, canvasPoint) {
  const image = viewport.getCornerstoneImage?.();
  const imageId = viewport.getCurrentImageId?.();
  if (!image || !imageId || image.color || image.numberOfComponents > 1) return null;
  const [x, y] = csUtils.worldToImageCoords(imageId, viewport.canvasToWorld(canvasPoint));
  const column = Math.floor(x);
  const row = Math.floor(y);
  if (column < 0 || row < 0 || column >= image.columns || row >= image.rows) return null;
  const stored = image.getPixelData()[row * image.columns + column];
  const scaled = image.preScale?.scaled || image.isPreScaled;
  const value = scaled ? stored : stored * (image.slope ?? 1) + (image.intercept ?? 0);
  return { column, row, value: Math.round(value * 100) / 100 };
}

// ---- overlay planes (60xx) ---------------------------------------------------------------
// PS3.3 C.9.2: up to 16 groups 6000-601E (even), each a bit plane of OverlayRows x
// OverlayColumns placed at OverlayOrigin (1-based row, column) on the image. Their data comes
// inline or as bulk data; each plane is unpacked once into a small PNG and drawn as an SVG
// image through the pane's image-to-canvas transform, so it follows zoom, pan, flips and
// rotation (an SVG, not a canvas: the pane keeps exactly one canvas, Cornerstone's).
const SVG = 'http://www.w3.org/2000/svg';
const OVERLAY_COLOUR = [255, 255, 64, 255];
const planes = new WeakMap(); // DICOM JSON item -> Promise of [{url, rows, columns, row, column}]

function tagOf(group, element) {
  return `${(0x6000 + group).toString(16).toUpperCase()}${element}`;
}

function overlayGroups(item) {
  const groups = [];
  for (let group = 0; group < 0x20; group += 2) {
    const data = item[tagOf(group, '3000')];
    if (data && (data.InlineBinary || data.BulkDataURI)) groups.push(group);
  }
  return groups;
}

async function overlayBytes(element) {
  if (element.InlineBinary) return Uint8Array.from(atob(element.InlineBinary), (c) => c.charCodeAt(0));
  const response = await fetch(element.BulkDataURI, { credentials: 'same-origin', headers: { Accept: 'application/octet-stream' } });
  if (!response.ok) throw new Error(`overlay: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function unpack(item, group) {
  const number = (element) => Number(item[tagOf(group, element)]?.Value?.[0]);
  const rows = number('0010');
  const columns = number('0011');
  if (!(rows > 0 && columns > 0 && rows * columns <= 16 * 1024 * 1024)) return null;
  const origin = item[tagOf(group, '0050')]?.Value?.map(Number) || [1, 1];
  const bytes = await overlayBytes(item[tagOf(group, '3000')]);
  const canvas = document.createElement('canvas');
  canvas.width = columns;
  canvas.height = rows;
  const context = canvas.getContext('2d');
  const image = context.createImageData(columns, rows);
  const count = Math.min(rows * columns, bytes.length * 8);
  for (let bit = 0; bit < count; bit += 1) {
    if (bytes[bit >> 3] & (1 << (bit & 7))) image.data.set(OVERLAY_COLOUR, bit * 4); // little-endian bit order
  }
  context.putImageData(image, 0, 0);
  return { url: canvas.toDataURL('image/png'), rows, columns, row: origin[0] - 1, column: origin[1] - 1 };
}

/** The overlay planes of ``item`` (a promise; empty when it has none). */
export function overlayPlanes(item) {
  if (!planes.has(item)) {
    const groups = overlayGroups(item);
    planes.set(item, Promise.all(groups.map((group) => unpack(item, group).catch(() => null)))
      .then((found) => found.filter(Boolean)));
  }
  return planes.get(item);
}

export function hasOverlayPlanes(item) {
  return overlayGroups(item).length > 0;
}

/** The SVG layer a pane draws its overlay planes in. */
export function overlayLayer() {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'overlay-plane');
  svg.setAttribute('aria-hidden', 'true');
  return svg;
}

/** Draw ``found`` planes of the image ``imageId`` in ``layer`` (none: clear it). */
export function drawOverlayPlanes(layer, viewport, imageId, found) {
  if (!found.length || !imageId) {
    layer.replaceChildren();
    return;
  }
  const at = (x, y) => viewport.worldToCanvas(csUtils.imageToWorldCoords(imageId, [x, y]));
  const origin = at(0, 0);
  const right = at(1, 0);
  const down = at(0, 1);
  const matrix = [right[0] - origin[0], right[1] - origin[1], down[0] - origin[0], down[1] - origin[1], origin[0], origin[1]];
  layer.replaceChildren(...found.map((plane) => {
    const image = document.createElementNS(SVG, 'image');
    image.setAttribute('href', plane.url);
    image.setAttribute('x', String(plane.column));
    image.setAttribute('y', String(plane.row));
    image.setAttribute('width', String(plane.columns));
    image.setAttribute('height', String(plane.rows));
    image.setAttribute('preserveAspectRatio', 'none');
    image.setAttribute('transform', `matrix(${matrix.map((v) => v.toFixed(4)).join(' ')})`);
    return image;
  }));
}
