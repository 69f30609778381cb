// The one file's unit loader (tools/multicall-units.ts): units are compiled once, on first
// require, see the bundle's own path and URL, require each other and Node's built-ins, run in
// strict mode as the ES module they replace did, and name themselves in stack traces.
import { spawnSync } from 'node:child_process';
import crypto, { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { brotliCompressSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  codeCacheDir,
  createUnitRequire,
  IMPORT_META_URL,
  namingText,
  UNIT_LINE,
  unitHash,
  unitsInFile,
  unitBytes,
  unitText,
  type UnitPlace,
} from '../../../tools/multicall-units.ts';
import { packUnits } from '../../../tools/multicall.ts';

// The code cache of the tests' units goes to a folder of the test's own, not the user's ~/.cache.
process.env.XDG_CACHE_HOME = mkdtempSync(path.join(os.tmpdir(), 'shipkit-units-cache-'));

const pack = (code: string) => unitText(brotliCompressSync(code));
const BUNDLE = 'file:///usr/lib/shipkit/shipkit.mjs';

/** The name tools/multicall-units.ts gives a unit's cache file. */
const cacheName = (text: string) =>
  `${createHash('sha256').update(text).digest('hex').slice(0, 32)}-${process.version}-${process.arch}.v8`;

function unitsOf(sources: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(sources).map(([id, code]) => [id, pack(code)]));
}

/** Runs `body` with a fresh folder for XDG_CACHE_HOME, removed after. */
function inCacheBase(body: (base: string) => void): void {
  const base = mkdtempSync(path.join(os.tmpdir(), 'shipkit-code-cache-'));
  try {
    body(base);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

test("a unit's bytes as one-file text: 7 bits a character, ASCII, no `*`, line end or NUL, and back", () => {
  const cases = [
    ...Array.from({ length: 40 }, (_, n) => crypto.randomBytes(n)),
    Buffer.from([0x00, 0x0a, 0x0d, 0x2a, 0x7f, 0xff, 0x2a, 0x2f]),
    Buffer.alloc(700, 0x2a),
    crypto.randomBytes(100_000),
  ];
  for (const bytes of cases) {
    const text = unitText(bytes);
    assert.ok(
      /^[\x01-\x09\x0b\x0c\x0e-\x29\x2b-\x7f]*$/.test(text),
      `only what the form holds, for ${bytes.length} bytes`,
    );
    assert.ok(!text.includes('*/'));
    assert.ok(unitBytes(text).equals(bytes), `round trip of ${bytes.length} bytes`);
  }
  const random = unitText(cases.at(-1)!);
  assert.ok(random.length < cases.at(-1)!.toString('base64').length * 0.9, `${random.length} characters`);
  assert.throws(() => unitBytes('abc*def'), /a character its form cannot hold, at 3/);
  assert.throws(() => unitBytes('ab\x7f9'), /a character its form cannot hold, at 3/);
  assert.throws(() => unitBytes('ab\u00e9'), /a character its form cannot hold, at 2/);
});

test('a unit is compiled on its first require only, and its `unit` export is what require returns', () => {
  const units = unitsOf({
    counter: 'globalThis.__unitRuns = (globalThis.__unitRuns ?? 0) + 1; exports.unit = { n: 42 };',
  });
  const unitRequire = createUnitRequire(units, BUNDLE);
  const g = globalThis as { __unitRuns?: number };
  delete g.__unitRuns;
  assert.is(g.__unitRuns, undefined, 'nothing runs before the first require');
  const first = unitRequire('counter');
  assert.equal(first, { n: 42 });
  assert.is(unitRequire('counter'), first);
  assert.is(g.__unitRuns, 1);
  delete g.__unitRuns;
});

test('units require each other by name and built-ins through Node', () => {
  const units = unitsOf({
    lib: 'exports.unit = { twice: (x) => 2 * x };',
    script:
      'const lib = require("lib"); const path = require("node:path"); exports.unit = () => lib.twice(path.basename("/a/bc").length);',
  });
  const run = createUnitRequire(units, BUNDLE)('script') as () => number;
  assert.is(run(), 4);
});

test("a unit's import.meta.url, __filename and __dirname are the one file's", () => {
  const units = unitsOf({ where: `exports.unit = [${IMPORT_META_URL}, __filename, __dirname];` });
  assert.equal(createUnitRequire(units, BUNDLE)('where'), [BUNDLE, '/usr/lib/shipkit/shipkit.mjs', '/usr/lib/shipkit']);
});

test('units run in strict mode and stack traces name the file and the unit', () => {
  const units = unitsOf({
    strict: 'exports.unit = (function () { return this; })();',
    thrower: '\n\nexports.unit = () => { throw new Error("boom"); };',
  });
  const unitRequire = createUnitRequire(units, BUNDLE);
  assert.is(unitRequire('strict'), undefined);
  try {
    (unitRequire('thrower') as () => void)();
    assert.unreachable('it throws');
  } catch (error) {
    assert.match(String((error as Error).stack), /\/usr\/lib\/shipkit\/shipkit\.mjs#thrower:3:/);
  }
});

test('a name that is no unit and no built-in fails as require does', () => {
  const unitRequire = createUnitRequire({}, BUNDLE);
  assert.throws(
    () => unitRequire('no-such-package-here'),
    (e: NodeJS.ErrnoException) => e.code === 'MODULE_NOT_FOUND',
  );
});

test("a unit's require of another unit compiles it only when one of its exports is first used", () => {
  const g = globalThis as { __libRuns?: number };
  delete g.__libRuns;
  const units = unitsOf({
    lib: 'globalThis.__libRuns = (globalThis.__libRuns ?? 0) + 1; exports.unit = { twice: (x) => 2 * x, name: "lib" };',
    script:
      'var import_lib = require("lib"); exports.unit = { run: () => (0, import_lib.twice)(21), keys: () => Object.keys(import_lib), has: () => "name" in import_lib };',
  });
  const script = createUnitRequire(units, BUNDLE)('script') as {
    run: () => number;
    keys: () => string[];
    has: () => boolean;
  };
  assert.is(g.__libRuns, undefined, 'requiring it at the top of the script compiled nothing');
  assert.is(script.run(), 42);
  assert.is(g.__libRuns, 1);
  assert.equal(script.keys(), ['twice', 'name']);
  assert.ok(script.has());
  assert.is(g.__libRuns, 1, 'compiled once');
  delete g.__libRuns;
});

test("units kept as the lines of a block comment at the one file's end are read from it on first use, each whole", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-units-'));
  try {
    const file = path.join(dir, 'shipkit.mjs');
    const units = unitsOf({ a: 'exports.unit = "A";', ab: 'exports.unit = "AB";' });
    writeFileSync(file, `export {};\n/*\n${UNIT_LINE}ab ${units.ab}\n${UNIT_LINE}a ${units.a}`);
    const table = unitsInFile(['a', 'ab', 'gone'], pathToFileURL(file).href);
    assert.ok(Object.hasOwn(table, 'a') && !Object.hasOwn(table, 'zx'));
    const unitRequire = createUnitRequire(table, pathToFileURL(file).href);
    assert.is(unitRequire('a'), 'A', 'the last line, without a newline after it');
    assert.is(unitRequire('ab'), 'AB', 'a name that another begins with');
    assert.throws(() => unitRequire('gone'), /has no gone unit at its end: it was cut short/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with their places, units are read from there; a place that does not hold the line is searched for instead', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-units-'));
  try {
    const file = path.join(dir, 'shipkit.mjs');
    const units = unitsOf({ a: 'exports.unit = "A";', ab: 'exports.unit = "AB";', c: 'exports.unit = "C";' });
    // A stale line for ab before the real one: searching finds it first, so reading ab right shows its place was used.
    const tail = `\n${UNIT_LINE}ab STALE\n${UNIT_LINE}ab ${units.ab}\n${UNIT_LINE}a ${units.a}\n${UNIT_LINE}c ${units.c}`;
    writeFileSync(file, `export {};\n/*${tail}`);
    const fromEnd = (name: string) =>
      tail.length - tail.lastIndexOf(`${UNIT_LINE}${name} `) - UNIT_LINE.length - name.length - 1;
    const places: Record<string, UnitPlace> = {
      ab: [fromEnd('ab'), units.ab.length],
      a: [fromEnd('a'), units.a.length],
      c: [fromEnd('a'), units.a.length],
    };
    const table = unitsInFile(['a', 'ab', 'c'], pathToFileURL(file).href, places);
    assert.is(table.ab, units.ab, 'read at its place');
    assert.is(table.a, units.a);
    assert.is(table.c, units.c, "c's place holds a's line: searched for");
    writeFileSync(file, `export {}; // a longer head, as embedding the help texts makes it\n/*${tail}\n*/\n`);
    assert.is(
      unitsInFile(['a'], pathToFileURL(file).href, { a: [fromEnd('a') + 4, units.a.length] }).a,
      units.a,
      'distances from the end hold across a new head',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("V8's compiled code of a unit is kept in the user's private folder and used by the next start", () => {
  inCacheBase((base) => {
    const dir = codeCacheDir({ XDG_CACHE_HOME: base });
    assert.is(dir, path.join(base, 'shipkit', 'code'));
    assert.is(statSync(dir!).mode & 0o777, 0o700);
    const a = unitsOf({ same: 'exports.unit = "from A";' });
    assert.is(createUnitRequire(a, BUNDLE, { codeCache: dir })('same'), 'from A');
    const files = readdirSync(dir!);
    assert.is(files.length, 1);
    assert.is(statSync(path.join(dir!, files[0])).mode & 0o777, 0o600);
    // V8 checks a cache against the source's length only: A's code under the name of B (as long
    // as A) runs instead of B. That is how it shows the cache is used, and why it must be private.
    // (B is not compiled before: V8 would take its code from its own in-memory cache.)
    const b = unitsOf({ same: 'exports.unit = "from B";' });
    assert.is(files[0], cacheName(a.same));
    renameSync(path.join(dir!, files[0]), path.join(dir!, cacheName(b.same)));
    assert.is(createUnitRequire(b, BUNDLE, { codeCache: dir })('same'), 'from A', 'the planted file was used');
    assert.is(createUnitRequire(b, BUNDLE, { codeCache: null })('same'), 'from B', 'without a cache, its own code');
  });
});

/**
 * Runs a unit in a node process of its own with the cache in `base`, as a command does: its work
 * comes after its top level. With `flag`, a V8 flag is set at run time first (as launchfit does).
 * Returns the compiled code's size as it was when the unit's top level had run, and as the process left it.
 */
function runCommandUnit(base: string, flag: boolean): { afterTopLevel: number; atExit: number; file: string } {
  const tools = path.resolve(import.meta.dirname, '../../../tools/multicall-units.ts');
  const flags = path.resolve(import.meta.dirname, '../../../lib/core/v8-flags.ts');
  // The command's work: functions first called after the top level, so compiled only then.
  const work = Array.from(
    { length: 40 },
    (_, i) => `function step${i}(x) { return [x, ${i}].join('-') + step${i + 1}.name; }`,
  );
  const units = unitsOf({
    command: `${work.join('\n')}\nfunction step40() {}\nexports.unit = 'ran';\nsetImmediate(() => { for (let i = 0; i < 40; i++) eval('step' + i)(i); });`,
  });
  const script = `
    import { readdirSync, statSync } from 'node:fs';
    import path from 'node:path';
    import { codeCacheDir, createUnitRequire } from ${JSON.stringify(tools)};
    import { setV8Flag } from ${JSON.stringify(flags)};
    if (${flag} && !setV8Flag('--no-opt')) throw new Error('flag not set');
    const dir = codeCacheDir();
    if (createUnitRequire(${JSON.stringify(units)}, ${JSON.stringify(BUNDLE)}, { codeCache: dir })('command') !== 'ran') throw new Error('not run');
    const file = readdirSync(dir).find((f) => f.endsWith('.v8'));
    process.stdout.write(JSON.stringify({ file: path.join(dir, file), afterTopLevel: statSync(path.join(dir, file)).size }));
  `;
  const r = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, XDG_CACHE_HOME: base },
  });
  assert.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { file: string; afterTopLevel: number };
  return { ...out, atExit: statSync(out.file).size };
}

test("the start that keeps a unit's compiled code keeps it again as it ends, with the command's work; not after a V8 flag was set", () => {
  inCacheBase((base) => {
    const first = runCommandUnit(base, false);
    assert.ok(
      first.atExit > first.afterTopLevel,
      `${first.afterTopLevel} → ${first.atExit} bytes: the functions run after the top level are in it`,
    );
    // The next start takes it (V8 accepts it): nothing is written again.
    const { ino, mtimeMs } = statSync(first.file);
    const next = runCommandUnit(base, false);
    assert.is(next.afterTopLevel, first.atExit);
    assert.equal([statSync(first.file).ino, statSync(first.file).mtimeMs], [ino, mtimeMs], 'not written again');
  });
  inCacheBase((base) => {
    // A flag set at run time stamps what V8 compiles from then on; the next start, without it,
    // would refuse that code: the code kept after the top level stays.
    const flagged = runCommandUnit(base, true);
    assert.is(flagged.atExit, flagged.afterTopLevel);
  });
});

test('a cache folder or file that another user could have written is not used', () => {
  inCacheBase((base) => {
    assert.is(codeCacheDir({ XDG_CACHE_HOME: base, SHIPKIT_CODE_CACHE: '0' }), null, 'turned off');
    assert.is(
      codeCacheDir({ XDG_CACHE_HOME: 'relative/dir', HOME: base }),
      path.join(base, '.cache', 'shipkit', 'code'),
      'a relative XDG_CACHE_HOME is ignored',
    );
    const open = path.join(base, 'open');
    mkdirSync(path.join(open, 'shipkit', 'code'), { recursive: true });
    chmodSync(path.join(open, 'shipkit', 'code'), 0o777);
    assert.is(codeCacheDir({ XDG_CACHE_HOME: open }), null, 'a folder others may write in');
    const linked = path.join(base, 'linked');
    mkdirSync(path.join(linked, 'shipkit'), { recursive: true });
    symlinkSync(path.join(base, '.cache', 'shipkit', 'code'), path.join(linked, 'shipkit', 'code'));
    assert.is(codeCacheDir({ XDG_CACHE_HOME: linked }), null, 'a symlink, even to a private folder');
    if (process.getuid?.() === 0) {
      const foreign = path.join(base, 'foreign');
      mkdirSync(path.join(foreign, 'shipkit', 'code'), { recursive: true, mode: 0o700 });
      chownSync(path.join(foreign, 'shipkit', 'code'), 65534, 65534);
      assert.is(codeCacheDir({ XDG_CACHE_HOME: foreign }), null, "another user's folder");
    }
    // A cache file that is a symlink (to this user's own cache of another unit) is not read.
    const dir = codeCacheDir({ XDG_CACHE_HOME: path.join(base, 'mine') })!;
    const other = mkdtempSync(path.join(base, 'other-'));
    createUnitRequire(unitsOf({ same: 'exports.unit = "from C";' }), BUNDLE, { codeCache: other })('same');
    const d = unitsOf({ same: 'exports.unit = "from D";' });
    symlinkSync(path.join(other, readdirSync(other)[0]), path.join(dir, cacheName(d.same)));
    assert.is(createUnitRequire(d, BUNDLE, { codeCache: dir })('same'), 'from D');
  });
});

test("with the build's hash and length, a unit's code is kept decompressed beside its compiled code, and the next start reads only that", () => {
  inCacheBase((base) => {
    const dir = codeCacheDir({ XDG_CACHE_HOME: base })!;
    const code = 'exports.unit = "from A";';
    const text = pack(code);
    const hash = unitHash(text, crypto);
    assert.is(hash, cacheName(text).split('-')[0], 'the build names the files as a start does');
    const places: Record<string, UnitPlace> = { same: [0, text.length, hash, Buffer.byteLength(code)] };
    assert.is(createUnitRequire({ same: text }, BUNDLE, { codeCache: dir, places })('same'), 'from A');
    const textFile = path.join(dir, `${hash}.js`);
    assert.equal(readdirSync(dir).sort(), [`${hash}.js`, cacheName(text)].sort());
    assert.is(readFileSync(textFile, 'utf8'), code);
    assert.is(statSync(textFile).mode & 0o777, 0o600);
    // The next start: the unit's text (read from the one file, then decompressed) is not looked at.
    const unread = Object.defineProperty({}, 'same', {
      enumerable: true,
      get: () => {
        throw new Error("the unit's text was read");
      },
    }) as Record<string, string>;
    assert.is(createUnitRequire(unread, BUNDLE, { codeCache: dir, places })('same'), 'from A');
    // Without the build's length (or hash), no text is kept or read: only the compiled code.
    const other = mkdtempSync(path.join(base, 'other-'));
    createUnitRequire({ same: text }, BUNDLE, { codeCache: other, places: { same: [0, text.length, hash] } })('same');
    assert.equal(readdirSync(other), [cacheName(text)]);
  });
});

test('a kept code of another length, or a symlink, is not used: the unit is decompressed again and the file written anew', () => {
  inCacheBase((base) => {
    const dir = codeCacheDir({ XDG_CACHE_HOME: base })!;
    // Each case its own unit text, so that neither V8's compiled code on disk nor the one it keeps
    // in memory for a source it compiled before can stand in for the kept code being read.
    const unitOf = (label: string) => {
      const code = `exports.unit = "${label}";`;
      const text = pack(code);
      const hash = unitHash(text, crypto);
      return {
        code,
        text,
        file: path.join(dir, `${hash}.js`),
        place: [0, text.length, hash, code.length] as UnitPlace,
      };
    };
    const short = unitOf('short one');
    writeFileSync(short.file, 'exports.unit = "cut";', { mode: 0o600 });
    assert.is(
      createUnitRequire({ u: short.text }, BUNDLE, { codeCache: dir, places: { u: short.place } })('u'),
      'short one',
    );
    assert.is(readFileSync(short.file, 'utf8'), short.code, 'written anew');

    const linked = unitOf('linked one');
    const planted = path.join(base, 'planted.js');
    writeFileSync(planted, 'exports.unit = "PLANTED!!!";', { mode: 0o600 });
    assert.is(Buffer.byteLength(readFileSync(planted)), linked.code.length, 'as long as the real code');
    symlinkSync(planted, linked.file);
    assert.is(
      createUnitRequire({ u: linked.text }, BUNDLE, { codeCache: dir, places: { u: linked.place } })('u'),
      'linked one',
    );
    assert.not.ok(lstatSync(linked.file).isSymbolicLink(), 'the symlink replaced by a file of its own');
    assert.is(readFileSync(planted, 'utf8'), 'exports.unit = "PLANTED!!!";', 'the file it pointed to untouched');
  });
});

test("units packed after another's code take less room, decompress with its head, and their kept code is named by both", async () => {
  // Three units sharing a long stretch of code, as the scripts share lib/; one that shares nothing.
  const shared = Array.from({ length: 400 }, (_, i) => `function helper${i}(x) { return x * ${i} + ${i * 7}; }`).join(
    '\n',
  );
  const codes = {
    big: Buffer.from(
      `${shared}\nfunction more() { return "only the big one has this"; }\nexports.unit = "big " + helper3(2);`,
    ),
    small: Buffer.from(`${shared}\nexports.unit = { text: "small " + helper5(1) };`),
    alone: Buffer.from(`exports.unit = "alone";`),
    lib: Buffer.from(`${shared.split('\n').slice(0, 30).join('\n')}\nexports.unit = require("small").text + "!";`),
  };
  const packed = await packUnits(codes, ['small', 'big', 'lib']);
  assert.equal(packed.big.after, undefined, 'the biggest is the base');
  assert.equal(packed.alone.after, undefined, 'a unit not named sharing is packed alone');
  assert.equal(packed.small.after?.[0], 'big');
  assert.equal(packed.lib.after?.[0], 'big');
  assert.ok(packed.small.text.length < pack(codes.small.toString()).length / 4, 'a reference to the base, not a copy');
  const units = Object.fromEntries(Object.entries(packed).map(([name, { text }]) => [name, text]));
  const places: Record<string, UnitPlace> = Object.fromEntries(
    Object.entries(packed).map(([name, { text, after }]) => {
      const hash = unitHash(namingText(units, name, after), crypto);
      const place: UnitPlace = after
        ? [0, text.length, hash, codes[name as keyof typeof codes].length, after]
        : [0, text.length, hash, codes[name as keyof typeof codes].length];
      return [name, place];
    }),
  );
  inCacheBase((base) => {
    const dir = codeCacheDir({ XDG_CACHE_HOME: base })!;
    const unitRequire = createUnitRequire(units, BUNDLE, { codeCache: dir, places });
    assert.is(unitRequire('lib'), 'small 40!');
    assert.is(unitRequire('big'), 'big 27');
    assert.is(unitRequire('alone'), 'alone');
    // Kept decompressed: the follower's own code, without the base's.
    assert.is(readFileSync(path.join(dir, `${places.small[2]}.js`), 'utf8'), codes.small.toString());
    // Without the build's hash the start names it the same way, from both texts.
    const again = mkdtempSync(path.join(base, 'again-'));
    const unhashed = { ...places, small: [0, units.small.length, undefined, undefined, places.small[4]] as UnitPlace };
    assert.equal(createUnitRequire(units, BUNDLE, { codeCache: again, places: unhashed })('small'), {
      text: 'small 40',
    });
    assert.equal(readdirSync(again), [cacheName(units.big + units.small)]);
    // A follower whose base is missing, or whose base's code is not that long, is refused plainly.
    const orphan = { small: units.small };
    assert.throws(
      () => createUnitRequire(orphan, BUNDLE, { codeCache: null, places: { small: places.small } })('small'),
      /its small unit follows a big unit it does not have/,
    );
    const wrong = { ...places, big: [0, units.big.length, places.big[2], codes.big.length * 2] as UnitPlace };
    assert.throws(
      () => createUnitRequire(units, BUNDLE, { codeCache: null, places: wrong })('small'),
      /its small unit does not follow its big unit/,
    );
  });
});

test.run();
