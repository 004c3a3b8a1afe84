// Taking the study away: a PNG or JPEG of a pane as the reader sees it (pixels, the drawn
// measurements and the overlay text), and the study's DICOM files as a ZIP made by the
// archive's export job (POST /api/exports, followed until done, then its download URL).
import { ROOT, getJson, request } from '../../api.js';

const POLL_MS = 1000;
const EXPORT_DEADLINE_MS = 10 * 60 * 1000;

function drawSvg(context, svg, scale) {
  const text = new XMLSerializer().serializeToString(svg);
  const url = URL.createObjectURL(new Blob([text], { type: 'image/svg+xml' }));
  return new Promise((resolve) => {
    const image = new Image();
    image.onload = () => {
      context.drawImage(image, 0, 0, svg.clientWidth * scale, svg.clientHeight * scale);
      URL.revokeObjectURL(url);
      resolve();
    };
    image.onerror = () => { URL.revokeObjectURL(url); resolve(); }; // the pixels still count
    image.src = url;
  });
}

/** The scale bar: its line with end ticks, its label centred under it. */
function drawScaleBar(context, node, canvasRect, scale) {
  const bar = node.querySelector('.bar').getBoundingClientRect();
  const label = node.querySelector('.label');
  const left = (bar.left - canvasRect.left) * scale;
  const right = (bar.right - canvasRect.left) * scale;
  const bottom = (bar.bottom - canvasRect.top) * scale;
  context.strokeStyle = '#fff';
  context.lineWidth = Math.max(1, scale);
  context.beginPath();
  context.moveTo(left, bottom - bar.height * scale);
  context.lineTo(left, bottom);
  context.lineTo(right, bottom);
  context.lineTo(right, bottom - bar.height * scale);
  context.stroke();
  const style = getComputedStyle(label);
  context.font = `${parseFloat(style.fontSize) * scale}px ${style.fontFamily}`;
  context.textAlign = 'center';
  const rect = label.getBoundingClientRect();
  context.fillText(label.textContent, (left + right) / 2, (rect.bottom - canvasRect.top - 3) * scale);
}

/** Draw each overlay text block of the pane where it stands on screen. */
function drawOverlayText(context, box, canvasRect, scale) {
  context.fillStyle = '#fff';
  context.shadowColor = '#000';
  context.shadowBlur = 2 * scale;
  for (const node of box.querySelectorAll('.ov')) {
    if (node.hidden || !node.textContent.trim()) continue;
    if (node.classList.contains('scale-bar')) {
      drawScaleBar(context, node, canvasRect, scale);
      continue;
    }
    const rect = node.getBoundingClientRect();
    const style = getComputedStyle(node);
    const lineHeight = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.3;
    context.font = `${style.fontWeight} ${parseFloat(style.fontSize) * scale}px ${style.fontFamily}`;
    const right = style.textAlign === 'right';
    context.textAlign = right ? 'right' : (node.classList.contains('ori') ? 'center' : 'left');
    const x = (right ? rect.right : (context.textAlign === 'center' ? (rect.left + rect.right) / 2 : rect.left)) - canvasRect.left;
    node.innerText.split('\n').forEach((line, i) => {
      const y = rect.top - canvasRect.top + lineHeight * (i + 0.8);
      context.fillText(line, x * scale, y * scale);
    });
  }
}

/** The pane as an image canvas: what is drawn, its measurements, its overlay. */
export async function snapshot(box) {
  const source = box.querySelector('canvas');
  const canvasRect = source.getBoundingClientRect();
  const scale = source.width / (canvasRect.width || source.width);
  const canvas = document.createElement('canvas');
  canvas.width = source.width;
  canvas.height = source.height;
  const context = canvas.getContext('2d');
  context.fillStyle = '#000';
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.drawImage(source, 0, 0);
  for (const svg of [box.querySelector('svg.overlay-plane'), box.querySelector('.vp-element svg')]) {
    if (svg && svg.childElementCount) await drawSvg(context, svg, scale);
  }
  drawOverlayText(context, box, canvasRect, scale);
  return canvas;
}

/** Hand ``blob`` to the browser as a file named ``name``. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** A file name from DICOM values: letters, digits, dash and underscore only. */
export function fileName(parts, extension) {
  const stem = parts.filter(Boolean).join('_').normalize('NFD').replace(/[\u0300-\u036f]/g, '')
    .replace(/[đĐ]/g, 'd').replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 80);
  return `${stem || 'image'}.${extension}`;
}

export async function downloadView(box, type, parts) {
  const canvas = await snapshot(box);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, `image/${type}`, 0.92));
  saveBlob(blob, fileName(parts, type === 'jpeg' ? 'jpg' : 'png'));
}

/** Export the study as a ZIP of its DICOM files and start the download; ``progress`` gets
 * (done, total) while the archive's job writes it. */
export async function downloadStudyZip(studyUid, progress) {
  const response = await request(`${ROOT}/api/exports`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ study_uids: [studyUid], media: 'zip' }),
  });
  let job = await response.json();
  const deadline = Date.now() + EXPORT_DEADLINE_MS;
  while (job.status !== 'done') {
    if (job.status === 'failed' || Date.now() > deadline) throw new Error(job.status);
    progress(job.done || 0, job.total || 0);
    await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
    job = await getJson(`/api/exports/${job.id}`);
  }
  const link = document.createElement('a');
  link.href = `${ROOT}/api/exports/${job.id}/download`;
  link.download = '';
  document.body.append(link);
  link.click();
  link.remove();
  return job;
}
