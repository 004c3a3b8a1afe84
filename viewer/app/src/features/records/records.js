// Calls of the records pages: JSON in and out, STOW-RS one file at a time, folders walked.
import { DICOMWEB, ROOT, request } from '../../api.js';

export async function send(method, path, body) {
  const options = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const response = await request(`${ROOT}${path}`, options);
  return response.status === 204 ? null : response.json();
}

/** Store one file with STOW-RS; 'stored', 'warning' or 'failed' from the server's answer. */
export async function storeFile(file) {
  const boundary = `pacs-upload-${Math.random().toString(16).slice(2)}`;
  const head = `--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`;
  const body = new Blob([head, file, `\r\n--${boundary}--\r\n`]);
  const response = await fetch(`${DICOMWEB}/studies`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: {
      'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
      Accept: 'application/dicom+json',
    },
    body,
  });
  let answer = {};
  try { answer = await response.json(); } catch { /* no JSON body */ }
  const failed = answer['00081198']?.Value?.length;
  const stored = answer['00081199']?.Value?.length;
  if (response.status === 200 && stored) return { outcome: 'stored', status: response.status };
  if (response.status === 202 && stored && !failed) return { outcome: 'warning', status: response.status };
  return { outcome: 'failed', status: response.status };
}

function entryFiles(entry, prefix) {
  if (entry.isFile) {
    return new Promise((resolve) => entry.file(
      (file) => resolve([{ file, path: `${prefix}${file.name}` }]),
      () => resolve([]),
    ));
  }
  if (!entry.isDirectory) return Promise.resolve([]);
  const reader = entry.createReader();
  const all = [];
  return new Promise((resolve) => {
    const next = () => reader.readEntries(async (batch) => {
      if (!batch.length) {
        resolve(all);
        return;
      }
      for (const child of batch) all.push(...await entryFiles(child, `${prefix}${entry.name}/`));
      next();
    }, () => resolve(all));
    next();
  });
}

/** Every file of a drop, folders walked (DataTransferItem entries), with its relative path. */
export async function droppedFiles(dataTransfer) {
  const entries = [...(dataTransfer.items || [])]
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
    .filter(Boolean);
  if (!entries.length) return [...(dataTransfer.files || [])].map((file) => ({ file, path: file.name }));
  const found = [];
  for (const entry of entries) found.push(...await entryFiles(entry, ''));
  return found;
}
