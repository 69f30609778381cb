// Single gzip members of a real release tarball (lib/release/format/pack-members.ts), packed by
// packReproducible: which member holds a path, the tar path of a manifest path, each member
// gunzipped and its entries named and read back byte for byte; a member that gunzips past what its
// files may take, a bad or cut tar header, and more entries than the index names are refused.
import { lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VerificationError } from '../../../../lib/core/errors.ts';
import type { PackIndex } from '../../../../lib/release/format/pack-index.ts';
import {
  gunzipMember,
  isRegularFile,
  memberOfPath,
  namedEntries,
  tarPathOf,
} from '../../../../lib/release/format/pack-members.ts';
import { packReproducible } from '../../../../lib/release/publish/pack.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const LONG = `${'deep/'.repeat(30)}a-name-longer-than-a-ustar-header-holds.js`;
let src = '';
let index: PackIndex;
let tarball: Buffer;

test.before(async () => {
  const root = tmpDir('shipkit-pack-members-');
  src = path.join(root, 'src');
  const top = path.join(src, 'my-app');
  mkdirSync(path.join(top, path.dirname(LONG)), { recursive: true });
  for (let i = 0; i < 30; i++) writeFileSync(path.join(top, `m${i}.js`), randomBytes(2500).toString('hex'));
  writeFileSync(path.join(top, 'big.bin'), randomBytes(300_000));
  writeFileSync(path.join(top, 'zeros.bin'), Buffer.alloc(400_000));
  writeFileSync(path.join(top, LONG), 'module.exports = 1;\n');
  const out = path.join(root, 'my-app-gnu-linux-1.0.tar.gz');
  const layout = await packReproducible(src, out);
  tarball = readFileSync(out);
  index = { ...layout, tarball: path.basename(out), size: tarball.length };
});

const sizeOf = (p: string) => {
  const st = lstatSync(path.join(src, p));
  return st.isFile() ? st.size : 0;
};
const memberBytes = (i: number) => tarball.subarray(index.members[i].at, index.members[i].at + index.members[i].bytes);

test('tarPathOf: a manifest path under the top folder extraction strips, or as it is without one', () => {
  assert.is(tarPathOf(index, 'm1.js'), 'my-app/m1.js');
  assert.is(tarPathOf({ ...index, root: '' }, 'm1.js'), 'm1.js');
});

test('memberOfPath: every path of the index to the one member holding it', () => {
  const of = memberOfPath(index);
  assert.ok(index.members.length > 2, `${index.members.length} members`);
  assert.is(
    of.size,
    index.members.reduce((n, m) => n + m.paths.length, 0),
  );
  index.members.forEach((m, i) => {
    for (const p of m.paths) assert.is(of.get(p), i, p);
  });
  assert.is(of.get(tarPathOf(index, LONG)) !== undefined, true, 'the long path is indexed');
  assert.is(of.get('my-app/absent.js'), undefined);
});

test('each member gunzips alone under its cap, and its entries are the files on disk, named by the index', async () => {
  let files = 0;
  for (let i = 0; i < index.members.length; i++) {
    const { paths } = index.members[i];
    const tar = await gunzipMember(memberBytes(i), paths, sizeOf);
    const entries = [...namedEntries(tar, paths)];
    assert.equal(
      entries.map((e) => e.path),
      paths,
    );
    for (const e of entries) {
      const st = lstatSync(path.join(src, e.path));
      assert.is(isRegularFile(e.type), st.isFile(), e.path);
      if (st.isFile()) {
        files++;
        assert.ok(e.body.equals(readFileSync(path.join(src, e.path))), `${e.path} reads back byte for byte`);
      }
    }
  }
  assert.is(files, 33, 'every file once, the pax-named one too');
});

test('a member that gunzips to more than its files may take is refused, not inflated', async () => {
  const i = memberOfPath(index).get('my-app/zeros.bin')!;
  const { paths } = index.members[i];
  const error = await gunzipMember(memberBytes(i), paths, () => 0).catch((e: unknown) => e);
  assert.instance(error, VerificationError);
  assert.match((error as Error).message, /does not gunzip to at most the \d+ bytes its files may take/);
  // A bomb: 50 MB of zeros in a member claiming one small file.
  const bomb = gzipSync(Buffer.alloc(50_000_000));
  assert.instance(await gunzipMember(bomb, ['my-app/a.js'], () => 10).catch((e: unknown) => e), VerificationError);
  // Not gzip at all.
  assert.instance(
    await gunzipMember(Buffer.from('not gzip'), ['a'], () => 10).catch((e: unknown) => e),
    VerificationError,
  );
});

const refusal = (tar: Buffer, paths: string[]) => {
  try {
    [...namedEntries(tar, paths)];
  } catch (error) {
    assert.instance(error, VerificationError);
    return (error as Error).message;
  }
  return 'read';
};

test('namedEntries refuses a bad size field, an entry cut short, and more entries than the index names', () => {
  const i = memberOfPath(index).get('my-app/m1.js')!;
  const { paths } = index.members[i];
  const tar = gunzipSync(memberBytes(i));
  assert.is(refusal(tar, paths), 'read');
  const badSize = Buffer.from(tar);
  badSize.write('99999999999\0', 124, 'latin1');
  assert.is(refusal(badSize, paths), 'a member of the tarball has a bad tar header');
  const big = index.members[memberOfPath(index).get('my-app/big.bin')!];
  const bigTar = gunzipSync(tarball.subarray(big.at, big.at + big.bytes));
  assert.is(refusal(bigTar.subarray(0, 100_000), big.paths), 'a member of the tarball ends inside an entry');
  assert.is(refusal(tar, paths.slice(0, -1)), 'a member of the tarball holds more entries than its index says');
  // Fewer entries than the index names: what is there is read; the caller checks each file against the manifest.
  assert.is(refusal(Buffer.alloc(1024), paths), 'read');
});

test("isRegularFile: '0' and old tars' NUL; not folders, links or pax headers", () => {
  for (const [type, want] of [
    ['0', true],
    ['\0', true],
    ['5', false],
    ['2', false],
    ['1', false],
    ['x', false],
  ] as const)
    assert.is(isRegularFile(type.charCodeAt(0)), want, JSON.stringify(type));
});

test.run();
