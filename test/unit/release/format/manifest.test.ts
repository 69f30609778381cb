// A release's manifest (lib/release/format/manifest.ts): read from a real folder (types, packed modes,
// digests, links, a lone top folder stripped), written and read back, and every hostile or broken
// manifest refused with the line and the reason named.
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../../lib/core/errors.ts';
import { READ_STEP } from '../../../../lib/core/read-buffer.ts';
import {
  fileDigest,
  formatManifest,
  linkTargetProblem,
  manifestOf,
  manifestSha256,
  MAX_MANIFEST_BYTES,
  MAX_MANIFEST_ENTRIES,
  parseManifest,
  stripSingleTop,
  type ManifestEntry,
} from '../../../../lib/release/format/manifest.ts';
import { tmpDir } from '../../../_helpers/common.ts';

let base: string;
test.before(() => {
  base = tmpDir('shipkit-manifest-');
});

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

/** A fresh folder holding `files` (a value `-> T` is a symlink to T) with the given modes. */
function folder(files: Record<string, string>, modes: Record<string, number> = {}): string {
  const dir = path.join(base, `src-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(dir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    if (text.startsWith('-> ')) symlinkSync(text.slice(3), file);
    else writeFileSync(file, text, { mode: 0o644 });
  }
  for (const [name, mode] of Object.entries(modes)) chmodSync(path.join(dir, name), mode);
  return dir;
}

const file = (p: string, text: string, mode = '644'): ManifestEntry => ({
  path: p,
  type: 'file',
  mode,
  size: Buffer.byteLength(text),
  sha256: sha(text),
  target: null,
});
const dir = (p: string): ManifestEntry => ({ path: p, type: 'dir', mode: '755', size: 0, sha256: null, target: null });
const link = (p: string, target: string): ManifestEntry => ({
  path: p,
  type: 'symlink',
  mode: '777',
  size: 0,
  sha256: null,
  target,
});

/** One JSON line per value, as a manifest is written (values need not be valid entries). */
const lines = (...values: unknown[]) => values.map((v) => `${JSON.stringify(v)}\n`).join('');

function refused(text: string | Buffer, message: RegExp, maxTotalBytes?: number): void {
  assert.throws(
    () => parseManifest(text, maxTotalBytes),
    (e: unknown) => e instanceof ValidationError && message.test((e as Error).message),
    message.source,
  );
}

test('fileDigest: sha256 and size of an empty file, one of READ_STEP bytes and one read in several steps', async () => {
  for (const size of [0, READ_STEP, 3 * READ_STEP + 7]) {
    const bytes = Buffer.alloc(size, 'ab');
    const file = path.join(base, `digest-${size}`);
    writeFileSync(file, bytes);
    assert.equal(await fileDigest(file), { sha256: createHash('sha256').update(bytes).digest('hex'), size });
  }
});

test('manifestOf: types, packed modes, digests and link targets; the lone top folder stripped', async () => {
  const src = folder(
    {
      'app/a.txt': 'hello',
      'app/bin/run': '#!/bin/sh\n',
      'app/bin/tool': 'tool',
      'app/lib/deep/x.js': 'export {}\n',
      'app/lib/deep/up': '-> ../../a.txt',
      'app/link': '-> a.txt',
      'app/private': 'secret',
    },
    { 'app/bin/run': 0o755, 'app/bin/tool': 0o744, 'app/private': 0o600 },
  );
  const m = await manifestOf(src);
  assert.equal(m, [
    file('a.txt', 'hello'),
    dir('bin'),
    file('bin/run', '#!/bin/sh\n', '755'),
    file('bin/tool', 'tool', '755'),
    dir('lib'),
    dir('lib/deep'),
    link('lib/deep/up', '../../a.txt'),
    file('lib/deep/x.js', 'export {}\n'),
    link('link', 'a.txt'),
    file('private', 'secret', '644'),
  ]);
  assert.equal(parseManifest(formatManifest(m)), m, 'what the publisher writes, the host reads');
});

test('manifestOf: two top-level entries, or a lone top file or link, are kept as they are', async () => {
  const two = await manifestOf(folder({ 'a/x': '1', b: '2' }));
  assert.equal(
    two.map((e) => e.path),
    ['a', 'a/x', 'b'],
  );
  assert.equal(await manifestOf(folder({ only: 'x' })), [file('only', 'x')]);
  assert.equal(stripSingleTop([link('top', 'x')]), [link('top', 'x')]);
  assert.equal(stripSingleTop([dir('top'), file('top/a', 'a')]), [file('a', 'a')]);
});

// The tar lists a folder's contents right after the folder (pack.ts listSorted); the manifest is
// byte-wise ('.' < '/'): lib, lib.js, lib/a.js. It must read back as it was written.
test('manifestOf: a folder and a sibling whose name extends it ("lib", "lib.js") still parse', async () => {
  const m = await manifestOf(folder({ 'lib/a.js': 'a', 'lib.js': 'b', 'lodash/x': 'c', 'lodash.merge/y': 'd' }));
  assert.equal(parseManifest(formatManifest(m)), m);
  assert.equal(
    m.map((e) => e.path),
    ['lib', 'lib.js', 'lib/a.js', 'lodash', 'lodash.merge', 'lodash.merge/y', 'lodash/x'],
  );
});

test('formatManifest: one line per entry, keys in a fixed order, whatever order they came in', () => {
  const shuffled = { target: null, sha256: sha('a'), size: 1, mode: '644', type: 'file', path: 'a' } as const;
  const text = formatManifest([shuffled, dir('d'), link('d/l', '../a')]);
  assert.is(
    text,
    `{"path":"a","type":"file","mode":"644","size":1,"sha256":"${sha('a')}","target":null}\n` +
      '{"path":"d","type":"dir","mode":"755","size":0,"sha256":null,"target":null}\n' +
      '{"path":"d/l","type":"symlink","mode":"777","size":0,"sha256":null,"target":"../a"}\n',
  );
  assert.equal(parseManifest(Buffer.from(text)), parseManifest(text), 'bytes read as text');
  assert.is(manifestSha256(text), sha(text));
});

test('parseManifest: out of order, listed twice, or a file then a folder of the same name', () => {
  refused(lines(file('b', 'b'), file('a', 'a')), /line 2: "a" is out of order or listed twice/);
  refused(lines(file('a', 'a'), file('a', 'a')), /line 2: "a" is out of order or listed twice/);
  refused(lines(file('a', 'a'), dir('a')), /line 2: "a" is out of order or listed twice/);
  refused(lines(file('c', 'c'), file('a', 'a'), file('b', 'b')), /line 2: "a" is out of order/);
  // Byte-wise, not by locale: "B" (0x42) before "a" (0x61), "é" after "z".
  assert.is(parseManifest(lines(file('B', 'B'), file('a', 'a'), file('z', 'z'), file('é', 'e'))).length, 4);
});

test('parseManifest: "..", ".", empty parts, absolute paths, backslashes and NUL refused', () => {
  const problems: Array<[string, RegExp]> = [
    ['../x', /the path "\.\.\/x" has an empty, "\." or "\.\." part/],
    ['a/../../x', /has an empty, "\." or "\.\." part/],
    ['..', /has an empty, "\." or "\.\." part/],
    ['./a', /has an empty, "\." or "\.\." part/],
    ['a//b', /has an empty, "\." or "\.\." part/],
    ['a/', /has an empty, "\." or "\.\." part/],
    ['/etc/passwd', /the path "\/etc\/passwd" is an absolute path/],
    ['a\\b', /contains a NUL byte or a backslash/],
    ['a\0b', /contains a NUL byte or a backslash/],
    ['', /is not a non-empty text/],
    ['x'.repeat(4097), /is longer than 4096 characters/],
  ];
  for (const [p, message] of problems) refused(lines(file(p, 'x')), message);
  refused(lines({ ...file('a', 'x'), path: 7 }), /line 1: the path 7 is not a non-empty text/);
});

test('parseManifest: an entry whose parent is missing, a file or a link is refused', () => {
  refused(lines(file('d/x', 'x')), /line 1: the parent of "d\/x" is not a folder listed before it/);
  refused(lines(dir('a'), file('a/b/c', 'x')), /line 2: the parent of "a\/b\/c" is not a folder/);
  refused(lines(file('a', 'a'), file('a/b', 'b')), /line 2: the parent of "a\/b" is not a folder/);
  refused(lines(link('a', '.'), file('a/b', 'b')), /line 2: the parent of "a\/b" is not a folder/);
  assert.is(parseManifest(lines(dir('a'), dir('a/b'), file('a/b/c', 'x'))).length, 3);
});

test('parseManifest: a link leaving the tree, absolute or without a target is refused', () => {
  refused(lines(link('l', '../x')), /line 1 \("l"\): links to "\.\.\/x", outside the release/);
  refused(lines(dir('a'), link('a/l', '../../x')), /line 2 \("a\/l"\): links to "\.\.\/\.\.\/x", outside/);
  refused(lines(dir('a'), link('a/l', 'b/../../../x')), /outside the release/);
  refused(lines(link('l', '..')), /outside the release/);
  refused(lines(link('l', '/etc/passwd')), /links to the absolute path "\/etc\/passwd"/);
  refused(lines(link('l', '')), /has no valid target/);
  refused(lines({ ...link('l', 'x'), target: null }), /has no valid target/);
  assert.is(parseManifest(lines(dir('a'), link('a/l', '../x'), link('b', '.'))).length, 3, 'inside is fine');
  assert.is(linkTargetProblem('a/b/l', '../../c'), undefined);
});

test('parseManifest: modes past 755, or not three octal digits, refused; a link may say 777', () => {
  for (const mode of ['644', '755', '600', '700', '444', '555']) parseManifest(lines(file('a', 'a', mode)));
  for (const mode of ['666', '777', '775', '757', '664'])
    refused(lines(file('a', 'a', mode)), new RegExp(`mode ${mode} gives write to others or more than 755`));
  for (const mode of ['4755', '64', '8ab', '', 'rwx'])
    refused(lines(file('a', 'a', mode)), /line 1 \("a"\): mode must be three octal digits/);
  refused(lines({ ...file('a', 'a'), mode: 644 }), /mode must be three octal digits/);
  refused(lines({ ...dir('d'), mode: '777' }), /mode 777 gives write to others/);
  assert.is(parseManifest(lines(link('l', 'x'))).length, 1);
});

test('parseManifest: a file needs a sha256 of 64 lowercase hex digits; folders and links have none', () => {
  const bad = [sha('a').toUpperCase(), sha('a').slice(1), `${sha('a')}0`, 'z'.repeat(64), null, 5];
  for (const sha256 of bad)
    refused(lines({ ...file('a', 'a'), sha256 }), /line 1 \("a"\): a file needs a sha256 of 64 hex digits/);
  refused(lines({ ...file('a', 'a'), target: 'b' }), /a file has no target/);
  refused(lines({ ...dir('d'), sha256: sha('d') }), /a dir has no sha256 and size 0/);
  refused(lines({ ...dir('d'), size: 1 }), /a dir has no sha256 and size 0/);
  refused(lines({ ...dir('d'), target: 'x' }), /a folder has no target/);
  refused(lines({ ...link('l', 'x'), sha256: sha('x') }), /a symlink has no sha256 and size 0/);
  for (const size of [-1, 1.5, '1', null, 2 ** 53])
    refused(lines({ ...file('a', 'a'), size }), /size must be a whole number of bytes/);
});

test('parseManifest: broken lines, wrong keys, wrong types and an empty manifest refused', () => {
  refused(lines(file('a', 'a')).slice(0, -1), /does not end with a newline/);
  refused(`${lines(file('a', 'a'))}\n`, /line 2 is not JSON/);
  refused('{"path":\n', /line 1 is not JSON/);
  refused(lines([1]), /line 1 is not a JSON object/);
  refused(lines(null), /line 1 is not a JSON object/);
  refused(lines({ ...file('a', 'a'), extra: 1 }), /must have exactly mode,path,sha256,size,target,type/);
  const { target: _, ...noTarget } = file('a', 'a');
  refused(lines(noTarget), /must have exactly/);
  refused(lines({ ...file('a', 'a'), type: 'fifo' }), /type must be file, dir or symlink/);
  refused('', /lists no entries/);
});

test('parseManifest: too many entries, too many bytes, or files adding up past the cap', () => {
  // Counted before a line is parsed: the lines need not be entries.
  refused('{}\n'.repeat(MAX_MANIFEST_ENTRIES + 1), new RegExp(`more than ${MAX_MANIFEST_ENTRIES} entries`));
  refused(Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20), new RegExp(`larger than ${MAX_MANIFEST_BYTES} bytes`));
  const text = lines(file('a', 'x'.repeat(600)), file('b', 'y'.repeat(400)), file('c', 'z'.repeat(1)));
  refused(text, /files add up to more than 1000 bytes/, 1000);
  assert.is(parseManifest(text, 1001).length, 3, 'exactly at the cap is fine');
});

test.run();
