// bench:delta's Node app, made from a seed: a few source files at the top, a package-lock.json and
// node_modules with ~100 packages (a few thousand files), JS-like text that gzip shrinks ~4× and
// incompressible binaries (.node, .wasm, a platform binary), so MB of files pack to ~0.6 MB of
// .tar.gz each. The same seed gives the same bytes; the three updates of the bench are made from
// a copy of 1.0 (unchanged files keep 1.0's mtime, as a build's output synced with rsync would).
import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface AppFile {
  path: string;
  kind: 'text' | 'bin';
  size: number;
}

export interface Package {
  name: string;
  version: string;
  /** The package's files, as paths from the app's root. */
  files: string[];
  binary: boolean;
}

export interface AppShape {
  files: AppFile[];
  packages: Package[];
}

/** mulberry32: a small PRNG, the same numbers for the same seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const seedOf = (...parts: Array<string | number>) =>
  createHash('sha256').update(parts.join('\0')).digest().readUInt32LE(0);

const SYLLABLES = 'ka lo mi ne ru sa to vi ze pa qu ba de fi go hu ja ly mo nu ri se ta wo xe yu'.split(' ');
const WORDS = Array.from({ length: 600 }, (_, i) => {
  const r = prng(i + 1);
  const n = 2 + Math.floor(r() * 3);
  return Array.from({ length: n }, () => SYLLABLES[Math.floor(r() * SYLLABLES.length)]).join('');
});
const camel = (a: string, b: string) => a + b[0].toUpperCase() + b.slice(1);

/** JS-like lines (functions, requires, comments) from `rand`, about `bytes` long. */
export function jsText(rand: () => number, bytes: number): string {
  const w = () => WORDS[Math.floor(rand() * WORDS.length)];
  const n = () => Math.floor(rand() * 1000);
  const out: string[] = ["'use strict';\n"];
  let size = out[0].length;
  while (size < bytes) {
    const f = camel(w(), w());
    const a = w();
    const b = w();
    let chunk: string;
    const pick = rand();
    if (pick < 0.15) chunk = `const ${camel(a, 'mod')} = require('./${w()}');\n`;
    else if (pick < 0.3) chunk = `// ${w()} ${w()} ${w()} ${w()} the ${w()} of ${w()} ${w()}.\n`;
    else if (pick < 0.45) chunk = `exports.${f} = ${f};\n`;
    else
      chunk =
        `function ${f}(${a}, ${b}) {\n  const ${w()} = ${a}.${camel(w(), w())}(${b}, '${w()}-${n()}');\n` +
        `  if (!${a} || ${b} === ${n()}) return null;\n  return ${a}.${w()} + ${n()};\n}\n`;
    out.push(chunk);
    size += chunk.length;
  }
  return out.join('');
}

/** Incompressible bytes for a file: AES-CTR's key stream, keyed by the seed and the path. */
export function binaryBytes(seed: number, file: string, size: number): Buffer {
  const key = createHash('sha256').update(`${seed}\0${file}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

const TOP_SOURCES = [
  'server.js',
  'src/app.js',
  'src/config.js',
  'src/routes/users.js',
  'src/routes/orders.js',
  'src/routes/health.js',
  'src/lib/db.js',
  'src/lib/cache.js',
];

/** Packages, their files, and every file's kind and size for an app of about `mb` MB. */
export function appShape(mb: number, seed: number): AppShape {
  const rand = prng(seed);
  const packages: Package[] = [];
  const weights: Array<{ path: string; kind: 'text' | 'bin'; w: number }> = [];
  for (let i = 0; i < 100; i++) {
    const base = camel(WORDS[(i * 7) % WORDS.length], WORDS[(i * 13 + 5) % WORDS.length]).toLowerCase();
    const name = i % 9 === 0 ? `@${WORDS[i % 40]}/${base}` : base;
    const version = `${Math.floor(rand() * 5)}.${Math.floor(rand() * 20)}.${Math.floor(rand() * 10)}`;
    const dir = `node_modules/${name}`;
    const libs = 3 + Math.floor(rand() ** 2 * 60);
    const text = ['index.js', 'README.md', 'LICENSE', 'types/index.d.ts', `dist/${base}.js`, `dist/${base}.min.js`];
    for (let j = 0; j < libs; j++) text.push(`lib/${WORDS[(i + j * 31) % WORDS.length]}-${j}.js`);
    const bins = i % 8 === 3 ? [`build/Release/${base}.node`, `wasm/${base}.wasm`, `assets/logo-${base}.png`] : [];
    for (const f of text) weights.push({ path: `${dir}/${f}`, kind: 'text', w: Math.exp(rand() * 3) });
    for (const f of bins) weights.push({ path: `${dir}/${f}`, kind: 'bin', w: Math.exp(rand() * 2.5) });
    packages.push({ name, version, binary: bins.length > 0, files: [...text, ...bins].map((f) => `${dir}/${f}`) });
  }
  // One platform binary (as esbuild's or an engine's): the largest file, 5 % of the app.
  const platform = '@esbundle/linux-x64';
  packages.push({ name: platform, version: '0.21.5', binary: true, files: [`node_modules/${platform}/bin/esbundle`] });
  const budget = { text: mb * 0.45 * 2 ** 20, bin: mb * 0.5 * 2 ** 20 };
  const sum = { text: 0, bin: 0 };
  for (const x of weights) sum[x.kind] += x.w;
  const files: AppFile[] = [
    ...TOP_SOURCES.map((p) => ({ path: p, kind: 'text' as const, size: 4096 + Math.floor(rand() * 16384) })),
    { path: 'README.md', kind: 'text', size: 3000 },
    ...weights.map((x) => ({
      path: x.path,
      kind: x.kind,
      size: Math.max(64, Math.round((x.w / sum[x.kind]) * budget[x.kind])),
    })),
    { path: `node_modules/${platform}/bin/esbundle`, kind: 'bin', size: Math.round(mb * 0.05 * 2 ** 20) },
  ];
  return { files, packages };
}

const T0 = new Date('2026-01-15T10:00:00Z');

function packageJson(p: Package): string {
  return `${JSON.stringify({ name: p.name, version: p.version, main: 'index.js', license: 'MIT' }, null, 2)}\n`;
}

function lockfile(shape: AppShape): string {
  const packages: Record<string, unknown> = { '': { name: 'node-app', version: '1.0.0' } };
  for (const p of shape.packages)
    packages[`node_modules/${p.name}`] = {
      version: p.version,
      resolved: `https://registry.npmjs.org/${p.name}/-/${p.name.split('/').pop()}-${p.version}.tgz`,
      integrity: `sha512-${createHash('sha512').update(`${p.name}@${p.version}`).digest('base64')}`,
    };
  return `${JSON.stringify({ name: 'node-app', version: '1.0.0', lockfileVersion: 3, packages }, null, 2)}\n`;
}

/** Writes the app into `dir` with content from `contentSeed`; with `fixedTime`, every mtime is T0. */
export function writeApp(dir: string, shape: AppShape, contentSeed: number, fixedTime = true): void {
  const put = (rel: string, body: string | Buffer) => {
    const file = path.join(dir, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, body);
    if (fixedTime) utimesSync(file, T0, T0);
  };
  for (const f of shape.files)
    put(
      f.path,
      f.kind === 'bin'
        ? binaryBytes(contentSeed, f.path, f.size)
        : jsText(prng(seedOf(contentSeed, f.path)), f.size).slice(0, f.size),
    );
  for (const p of shape.packages) put(`node_modules/${p.name}/package.json`, packageJson(p));
  put('package.json', `${JSON.stringify({ name: 'node-app', version: '1.0.0', main: 'server.js' }, null, 2)}\n`);
  put('package-lock.json', lockfile(shape));
  put('launchify.yml', 'app:\n  exec: node server.js\n  healthy_after: 1\n');
}

/** Replaces `lines` lines from the middle of a text file with new ones, and adds as many again. */
function editText(file: string, rand: () => number, lines: number): void {
  const text = readFileSync(file, 'utf8').split('\n');
  const at = Math.floor(text.length * (0.2 + rand() * 0.6));
  const fresh = jsText(rand, lines * 2 * 40)
    .split('\n')
    .slice(1, lines * 2 + 1);
  text.splice(at, lines, ...fresh);
  writeFileSync(file, text.join('\n'));
}

/** Update (a): one source file changed (a handler added, a few lines changed). */
export function changeSource(dir: string, seed: number): string[] {
  editText(path.join(dir, 'src/routes/users.js'), prng(seedOf(seed, 'a')), 6);
  return ['src/routes/users.js'];
}

/** Update (b): one text-only package bumped: its version, some code in three files, a file added, the lockfile. */
export function bumpDependency(dir: string, shape: AppShape, seed: number): string[] {
  const rand = prng(seedOf(seed, 'b'));
  const p = shape.packages.find((x) => !x.binary && x.files.length >= 20 && x.files.length <= 40) ?? shape.packages[1];
  const [major, minor, patch] = p.version.split('.').map(Number);
  const bumped = { ...p, version: `${major}.${minor}.${patch + 1}` };
  writeFileSync(path.join(dir, `node_modules/${p.name}/package.json`), packageJson(bumped));
  const libs = p.files.filter((f) => f.includes('/lib/'));
  const edited = [0.2, 0.5, 0.8].map((q) => libs[Math.floor(q * libs.length)]);
  for (const f of edited) editText(path.join(dir, f), rand, 4);
  const added = `node_modules/${p.name}/lib/${WORDS[7]}-added.js`;
  writeFileSync(path.join(dir, added), jsText(rand, 6000));
  const lockShape = { ...shape, packages: shape.packages.map((x) => (x === p ? bumped : x)) };
  writeFileSync(path.join(dir, 'package-lock.json'), lockfile(lockShape));
  return [`${p.name}@${bumped.version}`, ...edited, added, 'package-lock.json'];
}

/** Update (c): every file rewritten with new content (the same paths and sizes). */
export function rewriteAll(dir: string, shape: AppShape, seed: number): void {
  writeApp(dir, shape, seedOf(seed, 'c'), false);
}
