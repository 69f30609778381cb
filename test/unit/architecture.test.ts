// The picture in ARCHITECTURE.md held against the code: every import in lib/ (static, dynamic
// `import()` and `typeof import()`) read from the source. An import between two systems must be
// an edge ARCHITECTURE.md lists, and every listed edge must still exist; core imports nothing of
// ours and http only core; no two systems lean on each other, and no files import in a circle.
// test/unit mirrors lib/: a module without its test is listed in ARCHITECTURE.md with why.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from '../_helpers/common.ts';

const LIB = path.join(ROOT, 'lib');
const BASE = new Set(['core', 'http', 'db']);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? sources(full) : e.name.endsWith('.ts') ? [full] : [];
  });
}

/** Relative specifiers of a file: `from '…'`, `import '…'`, `import('…')`, `typeof import('…')`. */
export function importsOf(text: string): string[] {
  const found: string[] = [];
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"`])(\.{1,2}\/[^'"`]+)\1/g))
    found.push(m[2]);
  return found;
}

const systemOf = (file: string) => path.relative(LIB, file).split(path.sep)[0];

const files = sources(LIB);
const graph = new Map<string, string[]>(
  files.map((f) => [f, importsOf(readFileSync(f, 'utf8')).map((s) => path.resolve(path.dirname(f), s))]),
);

function systemEdges(): Map<string, string[]> {
  const edges = new Map<string, string[]>();
  for (const [file, targets] of graph) {
    for (const target of targets) {
      const [from, to] = [systemOf(file), systemOf(target)];
      if (from === to || BASE.has(to)) continue;
      const key = `${from} → ${to}`;
      edges.set(key, [
        ...(edges.get(key) ?? []),
        `${path.relative(ROOT, file)} imports ${path.relative(ROOT, target)}`,
      ]);
    }
  }
  return edges;
}

/** The edges ARCHITECTURE.md lists under "Edges between systems": lines `- \`a\` → \`b\`: why`. */
function listedEdges(): Set<string> {
  const doc = readFileSync(path.join(ROOT, 'ARCHITECTURE.md'), 'utf8');
  const section = /^## Edges between systems\n([\s\S]*?)(?=^## )/m.exec(doc)?.[1];
  assert.ok(section, 'ARCHITECTURE.md has a "## Edges between systems" section');
  return new Set([...section.matchAll(/^- `(\w+)` → `(\w+)`/gm)].map((m) => `${m[1]} → ${m[2]}`));
}

test('importsOf reads static, side-effect, dynamic and type-only imports, not comments', () => {
  const text = [
    "import { a } from './a.ts';",
    "import type { B } from '../b/b.ts';",
    "import './side.ts';",
    "const c = await import('../c/c.ts');",
    "type D = typeof import('./d.ts');",
    "export { e } from './e.ts';",
    "// import { x } from './commented.ts';",
    "import zx from 'zx';",
  ].join('\n');
  assert.equal(importsOf(text), ['./a.ts', '../b/b.ts', './side.ts', '../c/c.ts', './d.ts', './e.ts']);
});

test('core imports nothing of ours, http and db only core', () => {
  const wrong = [...graph].flatMap(([file, targets]) =>
    targets
      .filter((t) => {
        const [from, to] = [systemOf(file), systemOf(t)];
        return (
          (from === 'core' && to !== 'core') || ((from === 'http' || from === 'db') && to !== from && to !== 'core')
        );
      })
      .map((t) => `${path.relative(ROOT, file)} imports ${path.relative(ROOT, t)}`),
  );
  assert.equal(wrong, []);
});

test('every import between systems is an edge ARCHITECTURE.md lists, and every listed edge exists', () => {
  const actual = systemEdges();
  const listed = listedEdges();
  const unlisted = [...actual].filter(([edge]) => !listed.has(edge)).map(([edge, why]) => `${edge} (${why[0]})`);
  assert.equal(unlisted, [], 'add the edge to ARCHITECTURE.md with its reason, or remove the import');
  assert.equal(
    [...listed].filter((edge) => !actual.has(edge)),
    [],
    'ARCHITECTURE.md lists an edge the code no longer has',
  );
});

/** Strongly connected components of more than one node (Tarjan), each a circle. */
function circles(nodes: string[], next: (n: string) => string[]): string[][] {
  let index = 0;
  const idx = new Map<string, number>(),
    low = new Map<string, number>(),
    stack: string[] = [],
    on = new Set<string>(),
    found: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of next(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const part: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        part.push(w);
      } while (w !== v);
      if (part.length > 1) found.push(part.sort());
    }
  };
  for (const n of nodes) if (!idx.has(n)) visit(n);
  return found;
}

test('no two systems lean on each other, through any chain', () => {
  const edges = [...systemEdges().keys()].map((e) => e.split(' → '));
  const systems = [...new Set(files.map(systemOf))];
  assert.equal(
    circles(systems, (s) => edges.filter(([a]) => a === s).map(([, b]) => b)),
    [],
  );
});

test('every module has its unit test (test/unit mirrors lib/), or ARCHITECTURE.md says where it is tested', () => {
  const doc = readFileSync(path.join(ROOT, 'ARCHITECTURE.md'), 'utf8');
  const section = /^## Modules without a unit test of their own\n([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(doc)?.[1] ?? '';
  const listed = new Set([...section.matchAll(/^- `(lib\/[^`]+\.ts)`: \S/gm)].map((m) => m[1]));
  const mirrored = (file: string) =>
    existsSync(path.join(ROOT, 'test/unit', path.relative(LIB, file).replace(/\.ts$/, '.test.ts')));
  const modules = files.map((f) => path.relative(ROOT, f));
  assert.equal(
    modules.filter((m) => !mirrored(path.join(ROOT, m)) && !listed.has(m)),
    [],
    'write its unit test, or list it in ARCHITECTURE.md with where it is tested',
  );
  assert.equal(
    [...listed].filter((m) => !modules.includes(m) || mirrored(path.join(ROOT, m))),
    [],
    'ARCHITECTURE.md lists a module that is gone or now has its own test',
  );
});

test('no files import each other in a circle', () => {
  const found = circles(files, (f) => (graph.get(f) ?? []).filter((t) => graph.has(t)));
  assert.equal(
    found.map((c) => c.map((f) => path.relative(ROOT, f))),
    [],
  );
});

/** Every file under `dir`, at any depth. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)],
  );
}

test('code points at docs/ pages, never at documents a clone does not have (DESIGN §N, issue N)', () => {
  const scripts = sources(path.join(ROOT, 'scripts'));
  const pages = [
    'README.md',
    'ARCHITECTURE.md',
    ...readdirSync(path.join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => path.join('docs', f)),
  ].map((f) => path.join(ROOT, f));
  // The example configs and templates/ are read by users too (the .deb ships them as examples).
  const examples = [
    ...readdirSync(ROOT)
      .filter((f) => f.includes('.example.'))
      .map((f) => path.join(ROOT, f)),
    ...filesUnder(path.join(ROOT, 'templates')),
  ];
  assert.ok(
    examples.some((f) => f.endsWith('shipkit.example.yml')) && examples.some((f) => f.includes('templates')),
    'the example configs and templates/ are looked at',
  );
  const pointing = [...files, ...scripts, ...pages, ...examples].filter((f) =>
    /DESIGN|\bissue \d+/.test(readFileSync(f, 'utf8')),
  );
  assert.equal(
    pointing.map((f) => path.relative(ROOT, f)),
    [],
  );
});

test('a file opens with a header of at most 5 comment lines (the rest is in docs/internals.md)', () => {
  const scripts = sources(path.join(ROOT, 'scripts'));
  const long = [...files, ...scripts].filter((f) => {
    const lines = readFileSync(f, 'utf8').split('\n');
    const from = lines[0].startsWith('#!') ? 1 : 0;
    let n = from;
    while (lines[n]?.startsWith('//')) n++;
    return n - from > 5;
  });
  assert.equal(
    long.map((f) => path.relative(ROOT, f)),
    [],
  );
});

test('every backoff is core/retry.ts: no other file doubles a wait with 2 ** n', () => {
  const doubling = files.filter(
    (f) => !f.endsWith(path.join('core', 'retry.ts')) && /2 \*\* \(?[a-z]/.test(readFileSync(f, 'utf8')),
  );
  assert.equal(
    doubling.map((f) => path.relative(ROOT, f)),
    [],
  );
});

test("an error's message is read with messageOf (lib/core/errors.ts), never `(error as Error).message`", () => {
  const scripts = sources(path.join(ROOT, 'scripts'));
  const casts = [...files, ...scripts].filter((f) => /as Error\)\.message/.test(readFileSync(f, 'utf8')));
  assert.equal(
    casts.map((f) => path.relative(ROOT, f)),
    [],
  );
});

/**
 * The rooms of a system, top to bottom, from ARCHITECTURE.md "## Rooms inside a system": lines
 * `- \`system\`: \`a\` → \`b\` → …`, where a room is a folder of the system, one of its top
 * files (`worker-command.ts`), or `.` for its other top files.
 */
function listedRooms(): Map<string, string[]> {
  const doc = readFileSync(path.join(ROOT, 'ARCHITECTURE.md'), 'utf8');
  const section = /^## Rooms inside a system\n([\s\S]*?)(?=^## )/m.exec(doc)?.[1];
  assert.ok(section, 'ARCHITECTURE.md has a "## Rooms inside a system" section');
  const rooms = new Map<string, string[]>();
  for (const m of section.matchAll(/^- `(\w+)`: (.+)$/gm))
    rooms.set(
      m[1],
      [...m[2].matchAll(/`([^`]+)`/g)].map((r) => r[1]),
    );
  return rooms;
}

function roomOf(file: string, order: string[]): string {
  const [, ...rest] = path.relative(LIB, file).split(path.sep);
  if (rest.length > 1) return rest[0];
  return order.includes(rest[0]) ? rest[0] : '.';
}

test('inside a system, imports go down its rooms as ARCHITECTURE.md orders them', () => {
  const rooms = listedRooms();
  const wrong: string[] = [];
  for (const [system, order] of rooms) {
    for (const [file, targets] of graph) {
      if (systemOf(file) !== system) continue;
      for (const target of targets.filter((t) => systemOf(t) === system)) {
        const [from, to] = [roomOf(file, order), roomOf(target, order)];
        if (from === to) continue;
        if (!order.includes(from) || !order.includes(to) || order.indexOf(from) > order.indexOf(to))
          wrong.push(`${path.relative(ROOT, file)} (${from}) imports ${path.relative(ROOT, target)} (${to})`);
      }
    }
  }
  assert.equal(wrong, []);
});

test.run();
