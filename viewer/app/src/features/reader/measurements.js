// Measurements that outlive the page: the lengths, angles and regions drawn on the study's
// images are saved through POST /api/studies/{uid}/measurements (the server stores them as a
// DICOM SR measurement report, TID 1500) and drawn again from GET on the next opening.
// Deleting one is saving the set without it: the newest report is what reloads; saving an
// empty set withdraws the saved reports, so the last one deleted stays deleted too.
//
// Coordinates: the SR holds image coordinates with (0, 0) at the top left corner of the top
// left pixel (PS3.3 C.18.6.1.1), which is what Cornerstone's worldToImageCoords and
// imageToWorldCoords use, so points pass through unchanged.
import { metaData, utilities as csUtils } from '@cornerstonejs/core';
import { annotation as annotations } from '@cornerstonejs/tools';
import { ROOT, getJson, request } from '../../api.js';

const LENGTH = 'Length';
const RECTANGLE = 'RectangleROI';
const ELLIPSE = 'EllipticalROI';
const ANGLE = 'Angle';
const SAVED_TOOLS = [LENGTH, ANGLE, RECTANGLE, ELLIPSE];
const FRAME_URL = /\/instances\/([0-9.]+)\/frames\/([0-9]+)$/;

/** SOP Instance UID and frame number of a reader image ID (the WADO-RS frame URL). */
export function imageRef(imageId) {
  const match = FRAME_URL.exec(imageId || '');
  return match ? { sop: match[1], frame: Number(match[2]) } : null;
}

/** The statistics Cornerstone computed on the annotation's own image. The cache may also
 * hold entries for other targets, computed while the handles were still moving (seen: a
 * 67 mm line saved as 50 mm when the first entry was taken). */
function statsOf(annotation) {
  const stats = annotation.data?.cachedStats || {};
  const own = stats[`imageId:${annotation.metadata.referencedImageId}`];
  if (own && Object.keys(own).length) return own;
  const entries = Object.values(stats).filter((entry) => entry && Object.keys(entry).length);
  return entries[entries.length - 1] || {};
}

/** The annotations of the study (not its priors) that an SR can hold, in the order drawn. */
export function savedAnnotations(studyUid) {
  const all = annotations.state.getAllAnnotations() || [];
  return all.filter((item) => SAVED_TOOLS.includes(item.metadata?.toolName)
    && (item.metadata.referencedImageId || '').includes(`/studies/${studyUid}/`));
}

/** One annotation as the entries the API takes (a region gives its area and, in HU, its mean). */
function entriesOf(item, multiframe) {
  const imageId = item.metadata.referencedImageId;
  const ref = imageRef(imageId);
  if (!ref) return [];
  const image = item.data.handles.points.map((point) => csUtils.worldToImageCoords(imageId, point));
  const base = { sop_instance_uid: ref.sop, frame: multiframe(imageId) ? ref.frame : null, label: item.data.label || '' };
  const stats = statsOf(item);
  const tool = item.metadata.toolName;
  if (tool === LENGTH) {
    if (stats.unit !== 'mm') return []; // no pixel spacing: not a length in mm
    // The length is the distance between the handles in patient space (mm), as drawn.
    const [p, q] = item.data.handles.points;
    const length = Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
    return [{ ...base, kind: 'length', value: length, graphic_type: 'POLYLINE', points: image }];
  }
  if (tool === ANGLE) {
    const angle = angleOf(item.data.handles.points);
    return Number.isFinite(angle) ? [{ ...base, kind: 'angle', value: angle, graphic_type: 'POLYLINE', points: image }] : [];
  }
  // A rectangle's handles are top left, top right, bottom left, bottom right: a closed polyline
  // (SCOORD's polygon).
  const [a, b, c, d] = image;
  const region = tool === RECTANGLE
    ? { graphic_type: 'POLYLINE', points: [a, b, d, c, a] }
    : { graphic_type: 'ELLIPSE', points: image };
  const entries = [];
  if (stats.areaUnit === 'mm²' && Number.isFinite(stats.area)) entries.push({ ...base, ...region, kind: 'area', value: stats.area });
  if (stats.modalityUnit === 'HU' && Number.isFinite(stats.mean)) entries.push({ ...base, ...region, kind: 'mean', value: stats.mean });
  return entries;
}

/** The angle at the middle point of three world points, in degrees (0 to 180), computed from
 * the handles as drawn (not from the stats cache; see statsOf). */
function angleOf(points) {
  if (points.length !== 3) return NaN;
  const [a, vertex, b] = points;
  const u = a.map((v, i) => v - vertex[i]);
  const w = b.map((v, i) => v - vertex[i]);
  const dot = u.reduce((sum, v, i) => sum + v * w[i], 0);
  const norms = Math.hypot(...u) * Math.hypot(...w);
  return norms ? (Math.acos(Math.min(1, Math.max(-1, dot / norms))) * 180) / Math.PI : NaN;
}

/** Save the study's measurements; the server's answer: its SR's UIDs and count, or, for an
 * empty set, the UIDs of the reports it withdrew. An empty set is sent only with
 * ``withdraw`` (saved measurements were shown, and the reader deleted them all): a page
 * that failed to load them must not take them away. Null when nothing was sent. */
export async function saveMeasurements(studyUid, multiframe, { withdraw = false } = {}) {
  const measurements = savedAnnotations(studyUid).flatMap((item) => entriesOf(item, multiframe));
  if (!measurements.length && !withdraw) return null;
  const response = await request(`${ROOT}/api/studies/${studyUid}/measurements`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ measurements }),
  });
  return response.json();
}

/** Remove the selected annotations; how many were removed. */
export function deleteSelected() {
  const selected = annotations.selection.getAnnotationsSelected() || [];
  for (const uid of selected) annotations.state.removeAnnotation(uid);
  return selected.length;
}

function normalOf(imageId) {
  const plane = metaData.get('imagePlaneModule', imageId) || {};
  const row = plane.rowCosines || [1, 0, 0];
  const column = plane.columnCosines || [0, 1, 0];
  return {
    frameOfReference: plane.frameOfReferenceUID,
    normal: [row[1] * column[2] - row[2] * column[1], row[2] * column[0] - row[0] * column[2], row[0] * column[1] - row[1] * column[0]],
    up: column.map((v) => -v),
  };
}

/** Draw the study's saved measurements again; how many annotations were drawn. ``imageIdOf``
 * finds the reader's image ID for a SOP Instance UID and frame (null when not shown). */
export async function loadMeasurements(studyUid, imageIdOf) {
  let saved;
  try {
    saved = await getJson(`/api/studies/${studyUid}/measurements`);
  } catch (error) {
    if (error.status === 404) return 0; // none saved yet
    throw error;
  }
  const seen = new Set();
  let drawn = 0;
  for (const entry of saved.measurements || []) {
    // A region's area and mean are two entries on one drawing.
    const key = JSON.stringify([entry.sop_instance_uid, entry.frame, entry.graphic_type, entry.points]);
    if (seen.has(key)) continue;
    seen.add(key);
    const imageId = imageIdOf(entry.sop_instance_uid, entry.frame || 1);
    const closed = entry.points.length === 5 && entry.points[0].every((v, i) => v === entry.points[4][i]);
    const polyline = entry.kind === 'angle' ? ANGLE : closed ? RECTANGLE : LENGTH;
    const tool = { POLYLINE: polyline, ELLIPSE }[entry.graphic_type];
    if (!imageId || !tool) continue;
    let points = entry.points;
    if (tool === RECTANGLE) points = [points[0], points[1], points[3], points[2]];
    const world = points.map((point) => csUtils.imageToWorldCoords(imageId, point));
    const { frameOfReference, normal, up } = normalOf(imageId);
    const label = entry.label || ''; // empty when unlabelled: the text lines name it
    annotations.state.addAnnotation({
      annotationUID: csUtils.uuidv4(),
      highlighted: false,
      invalidated: true,
      isLocked: false,
      isVisible: true,
      metadata: {
        toolName: tool, referencedImageId: imageId, FrameOfReferenceUID: frameOfReference,
        viewPlaneNormal: normal, viewUp: up,
      },
      data: {
        label,
        handles: {
          points: world,
          activeHandleIndex: null,
          textBox: { hasMoved: false, worldPosition: [0, 0, 0], worldBoundingBox: { topLeft: [0, 0, 0], topRight: [0, 0, 0], bottomLeft: [0, 0, 0], bottomRight: [0, 0, 0] } },
        },
        cachedStats: {},
      },
    }, frameOfReference);
    drawn += 1;
  }
  return drawn;
}
