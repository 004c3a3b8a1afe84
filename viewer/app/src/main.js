// Entry: who am I? -> login, the study list, or (share link) straight to the one study.
import { login, logout, me } from './api.js';
import { t, toggleLang } from './i18n.js';
import { showStudyList } from './studylist.js';

const app = document.getElementById('app');
let principal = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'on') for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}
export { el };

function renderBar() {
  document.getElementById('lang').textContent = t('lang');
  const out = document.getElementById('logout');
  out.textContent = t('logout');
  out.hidden = !principal || principal.kind === 'grant';
  document.getElementById('who').textContent = principal && principal.kind !== 'grant' ? principal.name : '';
}

function showLogin(message = '') {
  app.replaceChildren();
  const form = el('form', { id: 'login', class: 'card' },
    el('h1', {}, t('login')),
    el('label', {}, t('username'), el('input', { name: 'username', autocomplete: 'username', required: '' })),
    el('label', {}, t('password'), el('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: '' })),
    el('label', {}, t('otp'), el('input', { name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code' })),
    el('p', { class: 'error', role: 'alert' }, message),
    el('button', { type: 'submit' }, t('login')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      await login(data.get('username'), data.get('password'), data.get('totp'));
      await start();
    } catch (error) {
      const ownMessage = error.status === 429 || /second factor|one-time/i.test(error.message);
      showLogin(ownMessage ? error.message : t('badLogin'));
    }
  });
  app.append(form);
}

export function route() {
  const params = new URLSearchParams(window.location.search);
  const study = params.get('StudyInstanceUIDs') || params.get('study');
  if (principal.kind === 'grant') {
    // A share link opens one study, read-only, phone-first; nothing else is reachable.
    import('./reader.js').then((m) => m.showStudy(principal.study_uid, { shared: true }));
    return;
  }
  if (study) import('./reader.js').then((m) => m.showStudy(study, { shared: false }));
  else showStudyList();
}

async function start() {
  // Opening a study (or a share link): fetch the reader's code while we ask who we are.
  if (new URLSearchParams(window.location.search).has('StudyInstanceUIDs')) import('./reader.js');
  try {
    principal = await me();
  } catch {
    principal = null;
    renderBar();
    showLogin();
    return;
  }
  renderBar();
  route();
}

document.getElementById('lang').addEventListener('click', () => { toggleLang(); renderBar(); if (principal) route(); else showLogin(); });
document.getElementById('logout').addEventListener('click', async () => { await logout(); principal = null; window.history.replaceState({}, '', window.location.pathname); start(); });
window.addEventListener('popstate', () => principal && route());
start();
