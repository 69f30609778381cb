// Runs inside the one-file bundle dist/shipkit.mjs (tools/multicall.ts puts it there). Each script,
// litpro and each heavy library (zx, yaml, tar, openpgp, the S3 client) is kept in the file as
// brotli-compressed CommonJS, written 7 bits a character (unitText), and decompressed and compiled
// only when it is first required. V8 skips a comment far faster than it pre-parses code, so a
// start compiles the entry and the one script it runs, not all 4 MB of shipkit.
import type crypto from 'node:crypto';
import type fs from 'node:fs';
import type nodeModule from 'node:module';
import type nodePath from 'node:path';
import type url from 'node:url';
import type vm from 'node:vm';
import type zlib from 'node:zlib';
import { builtinModule, requireBuiltin } from '../lib/core/builtin.ts';
import { V8_FLAGS_SET } from '../lib/core/v8-flags.ts';

// Node's built-ins are taken when first needed, not imported: the one file's imports of node:module,
// node:path and node:url cost every start, `--version` included, ~1.6 M instructions (an import of
// node:fs would make Node build its namespace, whose getters load all of its streams).
const nodeFs = () => requireBuiltin<typeof fs>('node:fs');
const path = {
  join: (...parts: string[]) => requireBuiltin<typeof nodePath>('node:path').join(...parts),
  dirname: (file: string) => requireBuiltin<typeof nodePath>('node:path').dirname(file),
  isAbsolute: (file: string) => requireBuiltin<typeof nodePath>('node:path').isAbsolute(file),
};
const fileURLToPath = (href: string) => requireBuiltin<typeof url>('node:url').fileURLToPath(href);

/** What a unit's `import.meta.url` is replaced with (tools/multicall.ts): the one file's URL. */
export const IMPORT_META_URL = '__shipkit_import_meta_url';
const UNIT_PARAMETERS = ['exports', 'require', 'module', '__filename', '__dirname', IMPORT_META_URL];

/** How a unit's line in the one file's closing block comment starts: `#unit NAME TEXT` (tools/multicall.ts). */
export const UNIT_LINE = '#unit ';

/**
 * Where a unit's text is in the one file: [bytes from its start to the file's end, its length],
 * and what the build knew of it: the hash its cache files are named by (unitHash of the text, after
 * its base's text when it follows one) and the byte length of its code once decompressed
 * (createUnitRequire's text cache); and, for a unit compressed after another's code, that unit
 * and how many bytes of its compressed stream come before this one's (tools/multicall.ts's packUnits).
 */
export type UnitPlace = [
  fromEnd: number,
  length: number,
  hash?: string,
  codeBytes?: number,
  after?: [base: string, headBytes: number],
];

/**
 * How a unit's compressed bytes are written in the one file: 7 bits a character, where base64
 * holds 6. Every start of the one file reads, decodes and scans the whole tail, and what that costs
 * goes with its size (page faults for the file's bytes and for the string Node makes of them, on
 * top of the scan): 1.55 MB of base64 takes 1.38 MB so. The characters are ASCII (one byte each in
 * UTF-8, so Node makes a one-byte string of the file), and five never stand for themselves: `*`
 * (no `*` means no `*` + `/` to end the block comment the units are in), LF and CR (each unit
 * stays one line), NUL (a file with one is binary to many tools) and DEL, which says the next
 * character, one of `01234`, stands for one of those five values. Bits go most significant first;
 * the last character is padded with zeros, and what does not fill a byte is dropped.
 */
const ESCAPED = [0x00, 0x0a, 0x0d, 0x2a, 0x7f];
const ESCAPE = 0x7f;

/** Bytes as one-file text (the 7-bit form above). */
export function unitText(bytes: Uint8Array): string {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  const put = (value: number) => {
    const escaped = ESCAPED.indexOf(value);
    if (escaped < 0) out.push(value);
    else out.push(ESCAPE, 0x30 + escaped);
  };
  for (const byte of bytes) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 7) {
      bits -= 7;
      put((acc >> bits) & 0x7f);
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) put((acc << (7 - bits)) & 0x7f);
  return Buffer.from(out).toString('latin1');
}

/** The bytes of one-file text (unitText's form); throws on what that form cannot hold. */
export function unitBytes(text: string): Buffer {
  const chars = Buffer.from(text, 'latin1');
  const out = Buffer.allocUnsafe(Math.floor((chars.length * 7) / 8));
  let acc = 0;
  let bits = 0;
  let n = 0;
  for (let i = 0; i < chars.length; i++) {
    let value = chars[i];
    if (value === ESCAPE) value = ESCAPED[chars[++i] - 0x30] ?? -1;
    else if (value > 0x7f || value === 0x00 || value === 0x0a || value === 0x0d || value === 0x2a) value = -1;
    if (value < 0) throw new Error(`a unit's text has a character its form cannot hold, at ${i}`);
    acc = (acc << 7) | value;
    bits += 7;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = acc >> bits;
      acc &= (1 << bits) - 1;
    }
  }
  return out.subarray(0, n);
}

/** The name of a unit's cache files: the first 32 hex digits of the SHA-256 of its text. */
export function unitHash(text: string, nodeCrypto: typeof crypto): string {
  return nodeCrypto.createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/**
 * The text a unit's cache files are named by (unitHash): its own, after its base's when it was
 * compressed after another unit's code, whose change changes what it decompresses to.
 */
export const namingText = (units: Record<string, string>, id: string, after: UnitPlace[4]): string =>
  after ? units[after[0]] + units[id] : units[id];

/**
 * The units table of the one file, its text read from the file's own tail (the lines of a block
 * comment after the code) the first time a unit is looked up. As a string literal in the entry
 * module, V8 scanned its 1.6 MB on every start, `--version` included (about 4 ms of a 60 ms start); a
 * comment is skipped much faster, and a start that runs no unit never reads it again. With the
 * unit's place (tools/multicall.ts knows it: the tail is written last, so distances from the end
 * hold whatever the head becomes), only its own bytes are read, not the whole 1.7 MB file as a
 * string; a place that does not hold the unit's line is ignored and the tail searched instead.
 */
export function unitsInFile(
  names: string[],
  bundleUrl: string,
  places: Record<string, UnitPlace> = {},
): Record<string, string> {
  let text: string | undefined;
  const file = fileURLToPath(bundleUrl);
  const units: Record<string, string> = {};
  for (const name of names) {
    Object.defineProperty(units, name, {
      enumerable: true,
      get: () => {
        const placed = Object.hasOwn(places, name) ? unitAt(file, name, places[name]) : undefined;
        if (placed !== undefined) return placed;
        text ??= nodeFs().readFileSync(file, 'latin1');
        const mark = `\n${UNIT_LINE}${name} `;
        const at = text.indexOf(mark);
        if (at < 0) throw new Error(`the one file ${file} has no ${name} unit at its end: it was cut short or changed`);
        const end = text.indexOf('\n', at + mark.length);
        return text.slice(at + mark.length, end < 0 ? undefined : end);
      },
    });
  }
  return units;
}

/** The unit's text read at its place, when its whole line is there; else undefined. */
function unitAt(file: string, name: string, [fromEnd, length]: UnitPlace): string | undefined {
  const mark = `\n${UNIT_LINE}${name} `;
  const { closeSync, fstatSync, openSync, readSync } = nodeFs();
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const start = fstatSync(fd).size - fromEnd - mark.length;
    if (start < 0) return undefined;
    const bytes = Buffer.allocUnsafe(mark.length + length + 1);
    const got = readSync(fd, bytes, 0, bytes.length, start);
    const line = bytes.toString('latin1', 0, got);
    const whole = got === mark.length + length || line[mark.length + length] === '\n';
    return line.startsWith(mark) && got >= mark.length + length && whole
      ? line.slice(mark.length, mark.length + length)
      : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * A `require` that returns a unit's exports, compiling the unit on first use, and falls back to
 * Node's own require (built-ins) for any other name. `bundleUrl` is the one file's import.meta.url:
 * the units see it as theirs, so paths next to the bundle and `bundledCommandFor` still work.
 * `codeCache`: the folder of V8's compiled code of the units (codeCacheDir), null for none.
 * `places`: the build's table (unitsInFile's); a unit whose place has its hash and code length has
 * its decompressed code kept beside its compiled code, and a start that finds both reads neither
 * the unit's text nor node:zlib.
 */
export function createUnitRequire(
  units: Record<string, string>,
  bundleUrl: string,
  options: { codeCache?: string | null; places?: Record<string, UnitPlace> } = {},
): (id: string) => unknown {
  const file = fileURLToPath(bundleUrl);
  const places = options.places ?? {};
  // Found (and made) when the first unit is compiled: `--version` touches no folder.
  let codeCache = options.codeCache;
  // Built-ins as getBuiltinModule gives them (with or without `node:`); anything else, or any
  // name where the runtime has no getBuiltinModule, as the one file's own require would find it.
  let fileRequire: NodeJS.Require | undefined;
  const nodeRequire = (id: string): unknown => {
    const builtin = builtinModule(id);
    if (builtin) return builtin;
    fileRequire ??= requireBuiltin<typeof nodeModule>('node:module').createRequire(bundleUrl);
    return fileRequire(id);
  };
  const loaded = new Map<string, { exports: unknown }>();
  const proxies = new Map<string, unknown>();
  // What a unit's own `require` gives for another unit: a stand-in that compiles it on the first
  // use of one of its exports. A script's top-level `import { $ } from 'zx/core'` becomes
  // `var import_core = require("zx/core")` with every use written `import_core.$`, so `--help` and the
  // code paths that never touch zx, yaml or openpgp do not decompress and compile them.
  const lazyRequire = (id: string): unknown => {
    if (!Object.hasOwn(units, id) || loaded.has(id)) return unitRequire(id);
    let proxy = proxies.get(id);
    if (!proxy) {
      proxy = lazyExports(() => unitRequire(id) as object);
      proxies.set(id, proxy);
    }
    return proxy;
  };
  const unitRequire = (id: string): unknown => {
    const known = loaded.get(id);
    if (known) return (known.exports as { unit: unknown }).unit;
    if (!Object.hasOwn(units, id)) return nodeRequire(id);
    const module = { exports: {} as unknown };
    loaded.set(id, module);
    codeCache ??= codeCacheDir();
    const [, , builtHash, codeBytes, after] = Object.hasOwn(places, id) ? places[id] : [];
    // node:crypto only here, and only when the build did not name the unit: a start that compiles
    // no unit never loads it.
    const hash = codeCache
      ? (builtHash ?? unitHash(namingText(units, id, after), nodeRequire('node:crypto') as typeof crypto))
      : undefined;
    const cached = (suffix: string) => (codeCache && hash ? path.join(codeCache, `${hash}${suffix}`) : undefined);
    const textFile = builtHash && codeBytes !== undefined ? cached('.js') : undefined;
    let code = textFile ? readCodeCache(textFile, codeBytes)?.toString('utf8') : undefined;
    if (code === undefined) {
      // node:zlib and node:vm are loaded here, not at the top: `--version` and a `--help` the entry
      // answers itself need neither (loading a built-in costs a start about a millisecond).
      const bytes = decompress(id, after);
      code = bytes.toString('utf8');
      if (textFile && bytes.length === codeBytes) writeCodeCache(textFile, () => bytes);
    }
    // Strict, as the ES module it replaces was; the wrapper is on line 1 so line numbers hold.
    const wrapped = `(function (${UNIT_PARAMETERS.join(', ')}) {'use strict';${code}\n})`;
    const cacheFile = cached(`-${process.version}-${process.arch}.v8`);
    const cachedData = cacheFile ? readCodeCache(cacheFile) : undefined;
    const script = new (nodeRequire('node:vm') as typeof vm).Script(wrapped, { filename: `${file}#${id}`, cachedData });
    const run = script.runInThisContext() as (...args: unknown[]) => void;
    run.call(module.exports, module.exports, lazyRequire, module, file, path.dirname(file), bundleUrl);
    // Written by the start that found none: after the unit's top level ran (so the functions it
    // ran are in it too), and again as the process ends, with every function the command ran
    // since. V8 compiles a function when it is first called, so a command whose work comes after
    // its top level (all of them: their main is async) would otherwise compile that work from
    // source at every start: ~2% of server-update's fan-out to 200 hosts. Not when a V8 flag was
    // set meanwhile (launchfit's), as the next start would refuse code stamped with it.
    if (cacheFile && (!cachedData || script.cachedDataRejected)) {
      writeCodeCache(cacheFile, () => script.createCachedData());
      keepAtExit(() => writeCodeCache(cacheFile, () => script.createCachedData()));
    }
    return (module.exports as { unit: unknown }).unit;
  };
  // A unit's code from its text; one that follows a base is decompressed after the base's head,
  // and the base's code dropped.
  const decompress = (id: string, after: UnitPlace[4]): Buffer => {
    const { brotliDecompressSync } = nodeRequire('node:zlib') as typeof zlib;
    const own = unitBytes(units[id]);
    if (!after) return brotliDecompressSync(own);
    const [base, headBytes] = after;
    const baseBytes = Object.hasOwn(places, base) ? places[base][3] : undefined;
    if (!Object.hasOwn(units, base) || baseBytes === undefined)
      throw new Error(`the one file ${file}: its ${id} unit follows a ${base} unit it does not have`);
    const head = unitBytes(units[base]).subarray(0, headBytes);
    const both = brotliDecompressSync(Buffer.concat([head, own]));
    if (both.length < baseBytes)
      throw new Error(`the one file ${file}: its ${id} unit does not follow its ${base} unit`);
    return both.subarray(baseBytes);
  };
  return unitRequire;
}

// ---------------------------------------------------------------------------------------------
// V8's code cache of the units: compiling the build unit and yaml from their text is about 25 ms
// of every no-op build's start, and litpro's unit as much of the compile step's; with V8's
// compiled code kept between runs, most of that goes. (Node's own compile cache does not cover
// code compiled through node:vm.) Beside it, the unit's code as decompressed (NAME.js, when the
// build gave its hash and length): loading node:zlib and decompressing is about 3 ms of a start
// that runs a small unit, such as server-update's fan-out; reading the file is a tenth of that.
//
// Who can write the cache matters: V8 accepts cached data after checking its own version, its
// flags and the length of the source, not the source itself, so whoever can write a cache file
// can make shipkit run code of their choosing as the user who runs it. The cache is therefore
// kept only in a folder of the user's own: $XDG_CACHE_HOME/shipkit/code (absolute only), else
// ~/.cache/shipkit/code, made with mode 0700, and used only while lstat shows a real folder (no
// symlink) owned by this process's effective uid that no group or other user may write; each
// file is opened without following a symlink and must be owned by that uid too. Another user
// cannot plant a file there (nor swap the folder: anything they could put in its place is theirs,
// or a symlink, and is refused), so the cache holds only what this user's own shipkit wrote;
// root's and a build user's are their own. A file is named by the hash of its unit's text (and
// the compiled code's by the node version too), a decompressed text is used only at the length
// the build gave, and each is written to a temp file and renamed, so a changed one file or a second
// shipkit running at the same moment never reads half a file or another build's code. Whatever
// is wrong (no home, a read-only disk, a foreign folder): no cache, silently, as before.
// SHIPKIT_CODE_CACHE=0 turns it off.

/** The writes of compiled code left for the process's end (one 'exit' listener for them all). */
let atExit: Array<() => void> | undefined;

function keepAtExit(write: () => void): void {
  if (!atExit) {
    const writes: Array<() => void> = (atExit = []);
    process.once('exit', () => {
      if (!(globalThis as Record<symbol, unknown>)[V8_FLAGS_SET]) for (const w of writes) w();
    });
  }
  atExit.push(write);
}

/** The private folder of the units' compiled code for this user, or null (none usable). */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.SHIPKIT_CODE_CACHE === '0' || typeof process.geteuid !== 'function') return null;
  const { lstatSync, mkdirSync } = nodeFs();
  try {
    const xdg = env.XDG_CACHE_HOME;
    const home = env.HOME || requireBuiltin<typeof import('node:os')>('node:os').homedir();
    const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(home, '.cache');
    const dir = path.join(base, 'shipkit', 'code');
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch {
      // A read-only home: perhaps the folder is there already.
    }
    const info = lstatSync(dir);
    return info.isDirectory() && info.uid === process.geteuid() && (info.mode & 0o022) === 0 ? dir : null;
  } catch {
    return null;
  }
}

/** A cache file's bytes if it is a plain file (no symlink) of this user's (of `size` bytes, given one); else undefined. */
function readCodeCache(file: string, size?: number): Buffer | undefined {
  const { closeSync, constants, fstatSync, openSync, readSync } = nodeFs();
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    const info = fstatSync(fd);
    if (!info.isFile() || info.uid !== process.geteuid?.() || info.size === 0) return undefined;
    if (size !== undefined && info.size !== size) return undefined;
    const bytes = Buffer.allocUnsafe(info.size);
    return readSync(fd, bytes, 0, info.size, 0) === info.size ? bytes : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function writeCodeCache(file: string, data: () => Buffer): void {
  const { renameSync, rmSync, writeFileSync } = nodeFs();
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    writeFileSync(temp, data(), { mode: 0o600, flag: 'wx' });
    renameSync(temp, file);
  } catch {
    try {
      rmSync(temp, { force: true });
    } catch {
      /* no cache, as before */
    }
  }
}

/**
 * An object that stands for `load()`'s result and calls `load` on the first look at it (a property
 * read, `in`, its keys). Properties are reported configurable, as a proxy over an empty object
 * must; reading, calling and assigning them reach the real object.
 */
function lazyExports(load: () => object): object {
  let real: object | undefined;
  const target = () => (real ??= load());
  return new Proxy(
    {},
    {
      get: (_, key) => Reflect.get(target(), key),
      set: (_, key, value) => Reflect.set(target(), key, value),
      has: (_, key) => Reflect.has(target(), key),
      ownKeys: () => Reflect.ownKeys(target()),
      getOwnPropertyDescriptor: (_, key) => {
        const found = Reflect.getOwnPropertyDescriptor(target(), key);
        return found && { ...found, configurable: true };
      },
      getPrototypeOf: () => Reflect.getPrototypeOf(target()),
    },
  );
}
