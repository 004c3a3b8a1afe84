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
