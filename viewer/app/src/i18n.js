// The browser's message catalogue: the shell's texts (locales/*.json, keys "app.*") and every
// feature's (features/<f>/locales/*.json, keys "<f>.*"), merged here, so a feature brings its
// own texts without touching this file. Language: the pacs.lang cookie (the server reads the
// same cookie for the pages it renders), then the browser's languages, then Vietnamese.
import { createI18n } from 'vue-i18n';

export const LANGUAGES = ['vi', 'en'];
const COOKIE = 'pacs.lang';

const files = import.meta.glob(['./locales/*.json', './features/*/locales/*.json'], { eager: true, import: 'default' });

function collect() {
  const messages = Object.fromEntries(LANGUAGES.map((lang) => [lang, {}]));
  for (const [path, content] of Object.entries(files)) {
    const match = path.match(/^\.\/(?:features\/([^/]+)\/)?locales\/([a-z]+)\.json$/);
    if (!match || !messages[match[2]]) continue;
    messages[match[2]][match[1] || 'app'] = content;
  }
  return messages;
}

function cookieLanguage() {
  const found = document.cookie.split(';').map((part) => part.trim().split('='))
    .find(([name]) => name === COOKIE);
  return found && LANGUAGES.includes(found[1]) ? found[1] : null;
}

function browserLanguage() {
  for (const tag of navigator.languages || [navigator.language || '']) {
    const primary = String(tag).split('-')[0].toLowerCase();
    if (LANGUAGES.includes(primary)) return primary;
  }
  return null;
}

const initial = cookieLanguage() || browserLanguage() || 'vi';
document.documentElement.lang = initial;

export const i18n = createI18n({
  legacy: false,
  locale: initial,
  fallbackLocale: 'vi',
  messages: collect(),
  missingWarn: false,
  fallbackWarn: false,
});

/** Translate outside components (plain modules such as the reader). */
export function t(key, params) {
  return i18n.global.t(key, params || {});
}

export function currentLang() {
  return i18n.global.locale.value;
}

/** Switch language and remember it in the cookie the server negotiates with. */
export function setLang(lang) {
  if (!LANGUAGES.includes(lang)) return;
  i18n.global.locale.value = lang;
  document.documentElement.lang = lang;
  document.cookie = `${COOKIE}=${lang}; path=/; max-age=31536000; samesite=lax`;
}

export function toggleLang() {
  setLang(currentLang() === 'vi' ? 'en' : 'vi');
}
