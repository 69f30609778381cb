// A patch's header (lib/release/format/patch.ts): written and read back, and refused when it does
// not match what signed metadata says: the format, the versions, the files of the signed manifest
// (each once, with its size and sha256), the old paths, and the patch's signed size.
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../../lib/core/errors.ts';
import { formatManifest, parseManifest, type ManifestEntry } from '../../../../lib/release/format/manifest.ts';
import {
  formatPatchHeader,
  MAX_PATCH_HEADER_BYTES,
  PATCH_FORMAT,
  parsePatchHeader,
  patchFileName,
  type PatchHeader,
} from '../../../../lib/release/format/patch.ts';

const sha = (text: string) => createHash('sha256').update(text).digest('hex');
const file = (p: string, text: string): ManifestEntry => ({
  path: p,
  type: 'file',
  mode: '644',
  size: Buffer.byteLength(text),
  sha256: sha(text),
  target: null,
});

/** The new release's signed manifest, as the host has read it. */
const MANIFEST = parseManifest(
  formatManifest([
    file('a.txt', 'new a'),
    file('b.bin', 'new b, longer'),
    file('c.txt', 'same as old d'),
    { path: 'd', type: 'dir', mode: '755', size: 0, sha256: null, target: null },
    file('d/e', 'unchanged'),
    { path: 'l', type: 'symlink', mode: '777', size: 0, sha256: null, target: 'a.txt' },
  ]),
);

/** A header that matches MANIFEST: a copy, a delta group and a whole group. */
function header(): PatchHeader {
  return {
    format: PATCH_FORMAT,
    from: '1.2',
    to: '1.3',
    copies: [{ path: 'c.txt', from: 'old/d.txt', sha256: sha('same as old d') }],
    groups: [
      {
        kind: 'delta',
        bytes: 120,
        files: [
          { path: 'a.txt', size: 5, sha256: sha('new a'), from: 'a.txt', from_size: 5, from_sha256: sha('old a') },
        ],
      },
      { kind: 'whole', bytes: 30, files: [{ path: 'b.bin', size: 13, sha256: sha('new b, longer') }] },
    ],
  };
}

/** The header line without its newline, as the host cuts it from the patch. */
const lineOf = (h: unknown) => formatPatchHeader(h as PatchHeader).subarray(0, -1);
/** The patch's size when its body is what the groups say (whatever the header holds). */
const sizeOf = (h: PatchHeader) =>
  lineOf(h).length + 1 + (Array.isArray(h.groups) ? h.groups : []).reduce((sum, g) => sum + (Number(g?.bytes) || 0), 0);

/** Parse `h` (changed by `change`) against MANIFEST, versions 1.2 → 1.3 and the size of the unchanged `h`. */
function parse(
  change: (h: PatchHeader) => void = () => {},
  expect: { from?: string; to?: string; size?: number } = {},
) {
  const h = header();
  change(h);
  return parsePatchHeader(lineOf(h), {
    from: expect.from ?? '1.2',
    to: expect.to ?? '1.3',
    size: expect.size ?? sizeOf(h),
    manifest: MANIFEST,
  });
}

function refused(
  change: (h: PatchHeader) => void,
  message: RegExp,
  expect: { from?: string; to?: string; size?: number } = {},
) {
  assert.throws(
    () => parse(change, expect),
    (e: unknown) => e instanceof ValidationError && message.test((e as Error).message),
    message.source,
  );
}

test('patchFileName: app, platform, version and the version it is from', () => {
  assert.is(patchFileName('my-app', 'gnu-linux', '1.3', '1.2'), 'my-app-gnu-linux-1.3.from-1.2.patch');
});

test('formatPatchHeader: one JSON line; parsePatchHeader reads it back with the bytes it makes', () => {
  const bytes = formatPatchHeader(header());
  assert.is(bytes.indexOf(10), bytes.length - 1, 'one newline, at the end');
  const { header: back, outputBytes } = parse();
  assert.equal(back, header());
  assert.is(outputBytes, 5 + 13, 'copies are not decompressed');
  // Versions compare as VERSION compares them: 1.02 is 1.2.
  assert.equal(parse(() => {}, { from: '1.02', to: '1.3.0' }).header, header());
  // A release made of copies alone.
  assert.is(parse((h) => (h.groups = [])).outputBytes, 0);
});

test('the format, JSON and the versions must be what VERSION says', () => {
  refused((h) => ((h as { format: string }).format = 'shipkit-patch/2'), /not in the shipkit-patch\/1 format/);
  refused((h) => delete (h as { format?: string }).format, /not in the shipkit-patch\/1 format/);
  assert.throws(
    () => parsePatchHeader(Buffer.from('{"format":'), { from: '1.2', to: '1.3', size: 11, manifest: MANIFEST }),
    /The patch header is not JSON/,
  );
  assert.throws(
    () => parsePatchHeader(Buffer.from('null'), { from: '1.2', to: '1.3', size: 5, manifest: MANIFEST }),
    /not in the shipkit-patch\/1 format/,
  );
  refused(() => {}, /The patch is from 1\.2 to 1\.3, not 1\.1 to 1\.3/, { from: '1.1' });
  refused(() => {}, /The patch is from 1\.2 to 1\.3, not 1\.2 to 1\.4/, { to: '1.4' });
  refused((h) => (h.to = '1.2'), /The patch is from 1\.2 to 1\.2, not 1\.2 to 1\.3/);
  refused((h) => ((h as { from: unknown }).from = 1.2), /The patch is from 1\.2 to 1\.3, not/);
  refused((h) => (h.from = '1.2;x'), /Invalid version "1\.2;x"/);
});

test('every file made is a file of the signed manifest, with its sha256 and size, made once', () => {
  refused(
    (h) => (h.groups[1].files[0].path = 'nope.txt'),
    /patch group 2: "nope\.txt" is not a file of the new release/,
  );
  refused((h) => (h.groups[1].files[0].path = 'd'), /"d" is not a file of the new release/);
  refused((h) => (h.groups[1].files[0].path = 'l'), /"l" is not a file of the new release/);
  refused((h) => (h.copies[0].path = 'x.txt'), /patch copy: "x\.txt" is not a file of the new release/);
  refused((h) => (h.groups[0].files[0].sha256 = sha('other')), /patch group 1: "a\.txt" does not match the signed/);
  refused((h) => (h.groups[1].files[0].size = 14), /patch group 2: "b\.bin" does not match the signed manifest/);
  refused((h) => (h.copies[0].sha256 = sha('other')), /patch copy: "c\.txt" does not match the signed manifest/);
  refused((h) => h.groups[1].files.push(h.groups[0].files[0]), /patch group 2: "a\.txt" is made twice/);
  refused(
    (h) => h.groups[1].files.push({ path: 'c.txt', size: 13, sha256: sha('same as old d') }),
    /patch group 2: "c\.txt" is made twice/,
  );
  refused((h) => h.copies.push({ ...h.copies[0] }), /patch copy: "c\.txt" is made twice/);
  refused((h) => (h.groups[1].files = [null as never]), /patch group 2: undefined has no size in bytes/);
});

test('a copy or a delta file must name its old file by a path inside the release', () => {
  for (const from of ['../etc/passwd', 'a/../../b', '/etc/passwd', '', 'a\\b']) {
    refused((h) => (h.copies[0].from = from), /^patch copy "c\.txt": its old path /);
    refused((h) => (h.groups[0].files[0].from = from), /^patch group 1 \("a\.txt"\): its old path /);
  }
  refused((h) => delete (h.copies[0] as { from?: string }).from, /its old path is not a non-empty text/);
  refused((h) => (h.copies = [null as never]), /patch copy undefined: its old path is not a non-empty text/);
  refused((h) => delete h.groups[0].files[0].from, /patch group 1 \("a\.txt"\): its old path is not a non-empty/);
  refused((h) => delete h.groups[0].files[0].from_sha256, /a delta file needs from_size and from_sha256/);
  refused((h) => (h.groups[0].files[0].from_sha256 = 'ab'), /a delta file needs from_size and from_sha256/);
  refused((h) => (h.groups[0].files[0].from_size = -1), /a delta file needs from_size and from_sha256/);
  refused((h) => (h.groups[0].files[0].from_size = 1.5), /a delta file needs from_size and from_sha256/);
  // A whole group's files come from nowhere: an old path there is not looked at.
  assert.ok(parse((h) => (h.groups[1].files[0].from = '../x')));
});

test('groups: a kind, a length in bytes, files; the lists present', () => {
  refused((h) => ((h.groups[0] as { kind: string }).kind = 'copy'), /patch group 1: kind must be delta or whole/);
  for (const bytes of [0, -5, 1.5, '120', null, 2 ** 53])
    refused((h) => ((h.groups[1] as { bytes: unknown }).bytes = bytes), /patch group 2: kind must be delta or whole/);
  refused((h) => (h.groups[1].files = []), /patch group 2 makes no files/);
  refused((h) => delete (h.groups[1] as { files?: unknown }).files, /patch group 2 makes no files/);
  refused((h) => (h.groups = [null as never]), /patch group 1: kind must be delta or whole/);
  refused((h) => delete (h as { copies?: unknown }).copies, /The patch header has no copies or groups list/);
  refused((h) => ((h as { groups: unknown }).groups = {}), /The patch header has no copies or groups list/);
});

test("the header's length and the groups' bytes add up to the signed size of the patch", () => {
  const size = sizeOf(header());
  refused(() => {}, new RegExp(`header gives ${size} bytes, but its signed size is ${size - 1}\\.`), {
    size: size - 1,
  });
  refused(() => {}, new RegExp(`header gives ${size} bytes, but its signed size is ${size + 1}\\.`), {
    size: size + 1,
  });
  // A group claiming more bytes than the patch has, the header kept the same length.
  refused((h) => (h.groups[0].bytes = 121), /header gives \d+ bytes, but its signed size is \d+/, { size });
  // Huge groups do not add up to the signed size by rounding.
  refused(
    (h) => {
      h.copies = [];
      h.groups = MANIFEST.filter((e) => e.type === 'file' && e.path !== 'd/e').map((e) => ({
        kind: 'whole' as const,
        bytes: Number.MAX_SAFE_INTEGER,
        files: [{ path: e.path, size: e.size, sha256: e.sha256! }],
      }));
    },
    /but its signed size is \d+\./,
    { size },
  );
});

test('a header line longer than MAX_PATCH_HEADER_BYTES is refused', () => {
  refused(
    (h) => ((h as { note?: string }).note = 'x'.repeat(MAX_PATCH_HEADER_BYTES)),
    /header.*(longer|larger|more) than/,
  );
});

test('a group file without its size is refused', () => {
  refused((h) => delete (h.groups[1].files[0] as { size?: number }).size, /patch group 2/);
});

test.run();
