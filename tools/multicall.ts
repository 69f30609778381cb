// The one-file multi-call bundle dist/shipkit.mjs (tools/bundle.ts). Bundled as one ES module it
// started 3× slower than `node -e 0`: V8 pre-parses all 4 MB although one script runs. So the file
// is a small ES module — scripts/shipkit.ts with its list and --help — plus "units": each script,
// litpro and each heavy library, bundled as CommonJS, brotli-compressed and kept as a line of
// text at the file's end that tools/multicall-units.ts compiles only when it is required. The
// libraries are units of their own so that the scripts share one copy.
import path from 'node:path';
import { once } from 'node:events';
import { brotliDecompressSync, constants as zlib, createBrotliCompress } from 'node:zlib';
import { build, transform, type BuildOptions, type Plugin } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import crypto from 'node:crypto';
import { IMPORT_META_URL, namingText, UNIT_LINE, unitHash, unitText, type UnitPlace } from './multicall-units.ts';

/** Libraries big enough to be a unit of their own; a script's unit requires them at run time. */
// pg and pg-boss: the PostgreSQL queue (lib/jobs/pg/connect.ts), loaded only with `queue:`.
const LIBRARIES = ['zx/core', 'yaml', 'tar', 'openpgp', '@aws-sdk/client-s3', 'pg', 'pg-boss'];

/** What scripts/shipkit.ts loads, by import specifier, and the unit that stands for it. */
function unitOfSpecifier(specifier: string): string | undefined {
  if (specifier === 'litpro/litpro.js') return 'litpro';
  return /^\.\/([a-z-]+)\.ts$/.exec(specifier)?.[1];
}

/**
 * The modules of lib/ that scripts/shipkit.ts imports lazily (the CLI parser for `shipkit` itself)
 * share one unit, so that they share one copy of what they import: runCli's `instanceof
 * UsageError` must see the UsageError the entry throws.
 */
const LIB_UNIT = 'shipkit-lib';
const libModuleOf = (specifier: string): string | undefined => /^\.\.\/(lib\/[a-z/-]+\.ts)$/.exec(specifier)?.[1];

/** The one file's CommonJS twin (the installed bins' entry): where, and its banner instead of `common`'s. */
export interface CommonJsEntry {
  outfile: string;
  banner: string;
}

/**
 * Bundles the multi-call file into `outfile` with `common` (define, banner, target) as for every
 * bundle; with `cjs`, also its entry as CommonJS, which reads its units from `outfile`.
 */
export async function buildMultiCall(
  root: string,
  outfile: string,
  common: BuildOptions,
  cjs?: CommonJsEntry,
): Promise<void> {
  const entry = path.join(root, 'scripts', 'shipkit.ts');
  const loaded: string[] = [];
  const libModules = new Set<string>();
  // First pass: which units the entry loads (its SCRIPTS table), without writing anything.
  await build({
    ...common,
    entryPoints: [entry],
    write: false,
    outfile,
    plugins: [
      stubUnits(
        entry,
        (name) => loaded.push(name),
        (file) => libModules.add(file),
      ),
      unitTable(),
    ],
  });

  const lib = [...libModules];
  const tasks = [
    ...loaded.map((name) => ({
      name,
      contents: `export const unit = () => import(${JSON.stringify(name === 'litpro' ? 'litpro/litpro.js' : `./scripts/${name}.ts`)});`,
    })),
    ...LIBRARIES.map((name) => ({
      name,
      contents: `import * as unit from ${JSON.stringify(name)};\nexport { unit };`,
    })),
    ...(lib.length
      ? [
          {
            name: LIB_UNIT,
            contents: `${lib.map((file, i) => `import * as m${i} from ${JSON.stringify(`./${file}`)};\n`).join('')}export const unit = { ${lib.map((file, i) => `${JSON.stringify(file)}: m${i}`).join(', ')} };`,
          },
        ]
      : []),
  ];
  // Built at once, kept in the tasks' order: the file's bytes do not depend on which finished first.
  const built = await Promise.all(tasks.map(({ name, contents }) => buildUnit(root, name, contents, common)));
  const codes = Object.fromEntries(tasks.map(({ name }, i) => [name, built[i]]));
  // The scripts and the lib unit share most of lib/, each bundled into it: packed after the
  // biggest of them, they take half the room (packUnits, below).
  const sharing = [...loaded.filter((name) => name !== 'litpro'), ...(lib.length ? [LIB_UNIT] : [])];
  const packed = await packUnits(codes, sharing);
  const units = Object.fromEntries(Object.entries(packed).map(([name, { text }]) => [name, text]));

  // Only the names and places go in the code; the units themselves are lines of one block comment
  // at the file's end, read from the file when one is first required (unitsInFile): as a string
  // literal V8 scanned the whole table on every start, even one that runs no unit. V8 skips a
  // block comment in about a third of the instructions per character it spends on a `//` line (it
  // only looks for `*/`, which the units' text and names cannot hold): 19 → 8.5 M of every start.
  for (const [name, text] of Object.entries(units))
    if (`${name} ${text}`.includes('*/')) throw new Error(`the ${name} unit would end the one file's comment`);
  const tail = `\n/*${Object.entries(units)
    .map(([name, text]) => `\n${UNIT_LINE}${name} ${text}`)
    .join('')}\n*/\n`;
  const places: Record<string, UnitPlace> = {};
  for (const [name, { text, after }] of Object.entries(packed)) {
    const fromEnd = tail.length - (tail.indexOf(`\n${UNIT_LINE}${name} `) + UNIT_LINE.length + name.length + 2);
    const hash = unitHash(namingText(units, name, after), crypto);
    places[name] = after
      ? [fromEnd, text.length, hash, codes[name].length, after]
      : [fromEnd, text.length, hash, codes[name].length];
  }
  const tables = `const ${UNITS_TABLE} = ${JSON.stringify(Object.keys(units))};\nconst ${PLACES_TABLE} = ${JSON.stringify(places)};\nconst ${HELP_TABLE} = ${HELP_PLACEHOLDER};`;
  const plugins = () => [
    stubUnits(
      entry,
      () => {},
      () => {},
    ),
    unitTable(),
  ];
  await build({
    ...common,
    banner: { js: `${common.banner?.js ?? ''}\n${tables}` },
    entryPoints: [entry],
    outfile,
    plugins: plugins(),
  });
  // esbuild's stand-in for a require() in an ES module: the entry would need the banner's require,
  // which tools/bundle.ts leaves out of the multi-call file.
  if (/\b__require\b/.test(await readFile(outfile, 'utf8')))
    throw new Error(`${outfile}: the multi-call entry calls require(): bundle it with a banner that makes one`);
  await appendFile(outfile, tail);
  const help = await helpTable(
    outfile,
    loaded.filter((name) => name !== 'litpro'),
  );
  await embedHelp(outfile, help);
  if (!cjs) return;
  // The same entry as CommonJS: `node bin/shipkit.cjs` starts without Node's ES module loader and
  // without the units' text (about 7 and 5 ms of a 115 ms start, docs/benchmarks.md); its units
  // are read from the one file beside it, whose URL stands for import.meta.url: made when first
  // asked for (node:url and pathToFileURL are 0.2 ms of a start, and --version needs no URL).
  const oneFile = `require('node:url').pathToFileURL(require('node:path').join(__dirname, ${JSON.stringify(path.basename(outfile))})).href`;
  const result = await build({
    ...common,
    format: 'cjs',
    banner: { js: `${cjs.banner}const ${ONE_FILE} = { get url() { return (this.href ??= ${oneFile}); } };\n${tables}` },
    define: { ...common.define, 'import.meta.url': `${ONE_FILE}.url` },
    entryPoints: [entry],
    outfile: cjs.outfile,
    plugins: plugins(),
  });
  if (result.warnings.length)
    throw new Error(`the one file's CommonJS entry: ${result.warnings.map((w) => w.text).join('; ')}`);
  await embedHelp(cjs.outfile, help);
}

/** What stands for import.meta in the CommonJS entry: its url is the one file's URL. */
const ONE_FILE = '__shipkitOneFile';

const HELP_TABLE = '__shipkitHelp';
const HELP_PLACEHOLDER = '{ /* shipkit-help */ }';

/**
 * Each script's `--help` text as the built file prints it, as the JSON that embedHelp puts into
 * the entry (scripts/shipkit.ts prints it for a bare `SCRIPT --help`): a cold `hook-server --help`
 * then compiles no script. A script whose --help fails or writes to stderr is left out and loads
 * as before.
 */
async function helpTable(outfile: string, scripts: string[]): Promise<string> {
  const help: Record<string, string> = {};
  for (const name of scripts) {
    const r = spawnSync(process.execPath, [outfile, name, '--help'], {
      encoding: 'utf8',
      cwd: path.dirname(outfile),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', NO_COLOR: '1' },
    });
    if (r.status === 0 && r.stderr === '' && r.stdout) help[name] = r.stdout;
  }
  // Kept ASCII like the rest of the file (esbuild's charset): one non-ASCII byte and Node decodes
  // the whole 1.7 MB file into a two-byte string, which V8 then scans more slowly, on every start.
  return JSON.stringify(help).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The help table (helpTable's JSON) put in its place in the built `file`. */
async function embedHelp(file: string, table: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  if (text.split(HELP_PLACEHOLDER).length !== 2) throw new Error(`${file}: the help table's place is not there once`);
  await writeFile(
    file,
    text.replace(HELP_PLACEHOLDER, () => table),
  );
}

/** One unit's code: CommonJS that requires the other units by name. */
async function buildUnit(root: string, name: string, contents: string, common: BuildOptions): Promise<Buffer> {
  const others = LIBRARIES.filter((library) => library !== name);
  const bundled = await build({
    ...common,
    banner: {},
    stdin: { contents, resolveDir: root, sourcefile: `${name}.unit.js` },
    write: false,
    // Every import() becomes a require() of a unit or a built-in: no ES module loader is needed.
    supported: { 'dynamic-import': false },
    define: {
      ...common.define,
      'import.meta.url': IMPORT_META_URL,
      'import.meta.dirname': '__dirname',
      'import.meta.filename': '__filename',
    },
    external: others,
  });
  // Bundled as an ES module (esbuild has no top-level await in CommonJS; the scripts' await is
  // inside their lazy init by now), then its import and export statements turned into CommonJS.
  const { code, warnings } = await transform(bundled.outputFiles[0].text, { format: 'cjs', target: common.target });
  // Such as an import.meta property without a define above: it would be empty at run time.
  if (warnings.length)
    throw new Error(`the ${name} unit of the multi-call bundle: ${warnings.map((w) => w.text).join('; ')}`);
  return Buffer.from(code);
}

/**
 * The units' code compressed, as text for the one file's tail (unitText). Each unit named in `sharing`
 * but the biggest of them is compressed after that one's code: brotli's window (16 MB) reaches
 * back into it, so what a script shares with the others (most of lib/, bundled into each) costs
 * it a reference, not a copy. Such a unit's `after` is [the base unit, the length of the base's
 * stream up to where its code ends]: tools/multicall-units.ts decompresses those bytes followed
 * by the unit's and drops the base's code. 9.2 MB of code took 2.1 MB compressed alone, 1.2 MB
 * so (29 Nov); every byte of the tail is read, decoded and scanned by each start of the one file.
 * Quality 9: 10% bigger than 11 but built in a thirteenth of the time.
 */
export async function packUnits(
  codes: Record<string, Buffer>,
  sharing: string[],
): Promise<Record<string, { text: string; after?: [string, number] }>> {
  const base = sharing.reduce<string | undefined>(
    (a, b) => (a && codes[a].length >= codes[b].length ? a : b),
    undefined,
  );
  const follows = (name: string) => base !== undefined && name !== base && sharing.includes(name);
  // The base's own stream is flushed where its code ends, so that the others can follow it.
  const streams = await Promise.all(
    Object.entries(codes).map(([name, code]) =>
      name === base ? brotliAfter(code, Buffer.alloc(0)) : brotliAfter(follows(name) ? codes[base!] : undefined, code),
    ),
  );
  const packed = Object.fromEntries(Object.keys(codes).map((name, i) => [name, streams[i]]));
  const baseStream = base === undefined ? undefined : Buffer.concat([packed[base].head, packed[base].rest]);
  return Object.fromEntries(
    Object.entries(packed).map(([name, { head, rest }]) => {
      if (name === base) return [name, { text: unitText(baseStream!) }];
      if (!follows(name)) return [name, { text: unitText(rest) }];
      // The base's stream as the one file holds it must begin with the very bytes this unit
      // follows, and the two must give this unit's code: else the build is wrong, not the file.
      const after = baseStream!.subarray(0, head.length);
      const code = brotliDecompressSync(Buffer.concat([after, rest])).subarray(codes[base!].length);
      if (!after.equals(head) || !code.equals(codes[name]))
        throw new Error(`the ${name} unit of the multi-call bundle does not decompress after the ${base} unit`);
      return [name, { text: unitText(rest), after: [base!, head.length] as [string, number] }];
    }),
  );
}

/** `code` brotli-compressed after `prefix`: the stream of `prefix` flushed (`head`), then the rest. */
async function brotliAfter(prefix: Buffer | undefined, code: Buffer): Promise<{ head: Buffer; rest: Buffer }> {
  const encoder = createBrotliCompress({
    params: { [zlib.BROTLI_PARAM_QUALITY]: 9, [zlib.BROTLI_PARAM_LGWIN]: 24 },
  });
  const chunks: Buffer[] = [];
  encoder.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = once(encoder, 'end');
  if (prefix) {
    encoder.write(prefix);
    await new Promise<void>((resolve) => encoder.flush(zlib.BROTLI_OPERATION_FLUSH, () => resolve()));
  }
  const head = Buffer.concat(chunks.splice(0));
  encoder.end(code);
  await ended;
  return { head, rest: Buffer.concat(chunks) };
}

const UNITS_MODULE = 'shipkit-multicall-units';
const UNITS_TABLE = '__shipkitUnits';
const PLACES_TABLE = '__shipkitUnitPlaces';

/**
 * scripts/shipkit.ts's `import('./build.ts')` becomes "require the build unit and run it"; its
 * `import('../lib/core/cli.ts')` becomes that module's exports in the lib unit.
 */
function stubUnits(entry: string, seen: (name: string) => void, seenLib: (file: string) => void): Plugin {
  return {
    name: 'multicall-stubs',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        // A built-in (print's node:fs where Node has no process.getBuiltinModule) stays an import.
        if (args.importer !== entry || args.kind !== 'dynamic-import' || args.path.startsWith('node:'))
          return undefined;
        const file = libModuleOf(args.path);
        if (file) {
          seenLib(file);
          return { path: file, namespace: 'multicall-lib' };
        }
        const name = unitOfSpecifier(args.path);
        if (!name)
          throw new Error(`scripts/shipkit.ts imports ${args.path}, which tools/multicall.ts does not know as a unit`);
        seen(name);
        return { path: name, namespace: 'multicall-stub' };
      });
      b.onLoad({ filter: /.*/, namespace: 'multicall-stub' }, (args) => ({
        // The script's run handed back, not awaited here: no top-level await, so that the entry
        // builds as CommonJS too (scripts/shipkit.ts awaits `done`).
        contents: `import { unitRequire } from ${JSON.stringify(UNITS_MODULE)};\nexport const done = unitRequire(${JSON.stringify(args.path)})();\n`,
        resolveDir: path.dirname(entry),
      }));
      // CommonJS, so that esbuild hands the unit's exports to the import() as they are.
      b.onLoad({ filter: /.*/, namespace: 'multicall-lib' }, (args) => ({
        contents: `module.exports = require(${JSON.stringify(UNITS_MODULE)}).unitRequire(${JSON.stringify(LIB_UNIT)})[${JSON.stringify(args.path)}];\n`,
        resolveDir: path.dirname(entry),
      }));
    },
  };
}

/** The require that compiles the units, from the table in the banner. */
function unitTable(): Plugin {
  return {
    name: 'multicall-units',
    setup(b) {
      b.onResolve({ filter: new RegExp(`^${UNITS_MODULE}$`) }, () => ({
        path: UNITS_MODULE,
        namespace: 'multicall-units',
      }));
      b.onLoad({ filter: /.*/, namespace: 'multicall-units' }, () => ({
        contents:
          `import { createUnitRequire, unitsInFile } from ${JSON.stringify(path.join(import.meta.dirname, 'multicall-units.ts'))};\n` +
          `export const unitRequire = createUnitRequire(unitsInFile(${UNITS_TABLE}, import.meta.url, ${PLACES_TABLE}), import.meta.url, { places: ${PLACES_TABLE} });\n`,
        resolveDir: import.meta.dirname,
      }));
    },
  };
}
