// The patient's prior studies beside the one being read: GET /api/studies/{uid}/priors lists
// them (newest first, found by Patient ID on the server), the reader lists them under its
// series and opens one on request (its metadata is fetched only then), and scrolling is
// synchronised by patient position between panes whose images share an orientation.
import { metaData, utilities as csUtils } from '@cornerstonejs/core';
import { SynchronizerManager, synchronizers } from '@cornerstonejs/tools';
import { getJson } from '../../api.js';

const SYNC = 'pacs-slice-sync';

/** The priors of ``studyUid`` as DICOM JSON study items (none on a share link's grant). */
export async function fetchPriors(studyUid) {
  const answer = await getJson(`/api/studies/${studyUid}/priors`);
  return answer?.priors || [];
}

function orientation(series) {
  return (series.first?.['00200037']?.Value || []).map(Number);
}

/** The prior series to show beside ``current``: same modality and orientation first. */
export function matchingSeries(priorSeries, current) {
  const want = orientation(current);
  const sameOrientation = (series) => want.length === 6 && orientation(series).length === 6
    && orientation(series).every((v, i) => Math.abs(v - want[i]) < 0.05);
  return priorSeries.find((s) => s.modality === current?.modality && sameOrientation(s))
    || priorSeries.find((s) => s.modality === current?.modality) || priorSeries[0];
}

/** The index of ``series``' image nearest in patient position to image ``imageId`` (0 when the
 * positions are unknown). */
export function nearestIndex(series, imageId) {
  const from = metaData.get('imagePlaneModule', imageId)?.imagePositionPatient;
  if (!from) return 0;
  let best = 0;
  let bestDistance = Infinity;
  for (const [index, id] of series.imageIds.entries()) {
    const at = metaData.get('imagePlaneModule', id)?.imagePositionPatient;
    if (!at) continue;
    const distance = Math.hypot(at[0] - from[0], at[1] - from[1], at[2] - from[2]);
    if (distance < bestDistance) { best = index; bestDistance = distance; }
  }
  return best;
}

/**
 * Scroll the panes together by patient position: Cornerstone's image slice synchronizer moves
 * each pane to its image nearest to the source image's position, when the panes' planes are
 * parallel. Studies have their own frames of reference; Cornerstone would register them from
 * the images shown when linked (and looks that image up by a wrong key in 5.14), so the
 * registration between every pair of panes is set to identity: positions are compared as the
 * scanners wrote them, which is what "by position" means for a patient's studies on the same
 * equipment.
 */
export function linkScroll(engineId, viewportIds) {
  unlinkScroll();
  if (viewportIds.length < 2) return;
  const identity = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  for (const a of viewportIds) {
    for (const b of viewportIds) if (a !== b) csUtils.spatialRegistrationMetadataProvider.add([a, b], identity);
  }
  const sync = synchronizers.createImageSliceSynchronizer(SYNC);
  for (const viewportId of viewportIds) sync.add({ renderingEngineId: engineId, viewportId });
}

export function unlinkScroll() {
  SynchronizerManager.destroySynchronizer(SYNC);
}
