// Record which sources the committed build came from: sha256 over the sorted source files (path and
// content), written to ../dist/build-hash.txt. tests/viewer/test_build_hash.py recomputes it, so CI
// fails when the sources or the lock file change but dist/ was not rebuilt.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const TOP = ['index.html', 'vite.config.js', 'package.json', 'package-lock.json', 'build-hash.mjs'];

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

export function sourceHash() {
  const files = [...TOP.map((name) => join(here, name)), ...walk(join(here, 'src'))]
    .map((path) => relative(here, path).split(sep).join('/'))
    .sort();
  const hash = createHash('sha256');
  for (const name of files) {
    const content = readFileSync(join(here, name));
    hash.update(`${name}\n${content.length}\n`);
    hash.update(content);
  }
  return hash.digest('hex');
}

const digest = sourceHash();
writeFileSync(join(here, '..', 'dist', 'build-hash.txt'), `${digest}\n`);
console.log(`build-hash ${digest}`);
