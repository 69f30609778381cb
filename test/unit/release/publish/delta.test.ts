// What `release publish` adds for delta updates (lib/release/publish/delta.ts): the releases of one
// app and platform among DEST's names, newest first by version; which names are a tarball's
// patches; patches over half the tarball dropped, their files removed; the manifest staged with its
// digest, or no delta at all when its name would be refused.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger, silentLogger } from '../../../../lib/core/log.ts';
import { openDestination } from '../../../../lib/release/dest/destination.ts';
import { parseManifest } from '../../../../lib/release/format/manifest.ts';
import { isPatchOf, releasesIn, stageDelta, withoutLargePatches } from '../../../../lib/release/publish/delta.ts';
import { tmpDir } from '../../../_helpers/common.ts';

test('releasesIn: this app and platform only, valid versions only, newest first by hex segments', () => {
  const names = [
    'my-app-gnu-linux-1.9.tar.gz',
    'my-app-gnu-linux-1.a.tar.gz', // hex: 1.a is 1.10, after 1.9
    'my-app-gnu-linux-1.10.tar.gz', // hex 0x10: after 1.f
    'my-app-gnu-linux-2.tar.gz',
    'my-app-gnu-linux-1.9.manifest',
    'my-app-gnu-linux-1.9.index',
    'my-app-gnu-linux-2.from-1.9.patch',
    'my-app-musl-linux-3.0.tar.gz', // another platform
    'my-app-2-gnu-linux-4.0.tar.gz', // another app whose name starts the same
    'my-app-gnu-linux-v5.tar.gz', // not a version
    'my-app-gnu-linux-.tar.gz',
    'VERSION',
    'ledger.jsonl',
  ];
  assert.equal(releasesIn(names, 'my-app', 'gnu-linux'), [
    { file: 'my-app-gnu-linux-2.tar.gz', version: '2' },
    { file: 'my-app-gnu-linux-1.10.tar.gz', version: '1.10' },
    { file: 'my-app-gnu-linux-1.a.tar.gz', version: '1.a' },
    { file: 'my-app-gnu-linux-1.9.tar.gz', version: '1.9' },
  ]);
  assert.equal(releasesIn(names, 'other', 'gnu-linux'), []);
  assert.equal(releasesIn([], 'my-app', 'gnu-linux'), []);
});

test("isPatchOf: a tarball's patches, not another release's, not its manifest or index", () => {
  const tarball = 'my-app-gnu-linux-1.2.tar.gz';
  for (const [name, want] of [
    ['my-app-gnu-linux-1.2.from-1.1.patch', true],
    ['my-app-gnu-linux-1.2.from-1.0.3.patch', true],
    ['my-app-gnu-linux-1.2.1.from-1.2.patch', false],
    ['my-app-gnu-linux-1.3.from-1.2.patch', false],
    ['my-app-gnu-linux-1.2.manifest', false],
    ['my-app-gnu-linux-1.2.index', false],
    ['my-app-gnu-linux-1.2.from-1.1.patch.tmp', false],
    ['other-gnu-linux-1.2.from-1.1.patch', false],
  ] as const)
    assert.is(isPatchOf(tarball, name), want, name);
});

const patch = (from: string, size: number) => ({
  from,
  file: `my-app-gnu-linux-2.from-${from}.patch`,
  sha256: 'a'.repeat(64),
  size,
});

test('withoutLargePatches: over half the tarball is dropped and its file removed; the rest kept and said', async () => {
  const stage = tmpDir('shipkit-delta-');
  const patches = [patch('1.0', 1000), patch('1.1', 500), patch('1.2', 501)];
  for (const p of patches) writeFileSync(path.join(stage, p.file), 'x');
  const lines: string[] = [];
  const log = createLogger({ stream: { write: (l: string) => lines.push(l) > 0 } as never, json: true });
  const manifest = { file: 'my-app-gnu-linux-2.manifest', sha256: 'b'.repeat(64) };
  const kept = await withoutLargePatches({ manifest, index: 'i', patches }, 1000, stage, log);
  assert.equal(kept, { manifest, index: 'i', patches: [patches[1]] });
  assert.equal(
    patches.map((p) => existsSync(path.join(stage, p.file))),
    [false, true, false],
  );
  const said = lines.map((l) => JSON.parse(l) as { msg?: string; message?: string; from: string });
  assert.equal(
    said.map((l) => [l.from, /^patch made/.test(l.msg ?? l.message ?? '')]),
    [
      ['1.0', false],
      ['1.1', true],
      ['1.2', false],
    ],
  );
  assert.equal((await withoutLargePatches({ manifest, patches: [] }, 0, stage, silentLogger)).patches, []);
});

test('stageDelta: the manifest of the folder, staged with its digest; no delta when its name would be refused', async () => {
  const root = tmpDir('shipkit-delta-stage-');
  const [dir, stage, dest] = ['app', 'stage', 'dest'].map((d) => path.join(root, d));
  for (const d of [dir, stage, dest]) mkdirSync(d, { recursive: true });
  writeFileSync(path.join(dir, 'index.js'), 'console.log(1);\n');
  writeFileSync(path.join(dir, 'skip.me'), 'left out\n');
  const common = {
    destination: openDestination(dest, silentLogger),
    app: 'my-app',
    platform: 'gnu-linux',
    version: '2.0',
    dir,
    stage,
    log: silentLogger,
    skip: (rel: string) => rel === 'skip.me',
  };
  const files = await stageDelta({ ...common, file: 'my-app-gnu-linux-2.0.tar.gz', count: 0 });
  assert.is(files?.manifest.file, 'my-app-gnu-linux-2.0.manifest');
  const text = readFileSync(path.join(stage, 'my-app-gnu-linux-2.0.manifest'));
  assert.is(files?.manifest.sha256, createHash('sha256').update(text).digest('hex'));
  assert.equal(
    parseManifest(text).map((e) => e.path),
    ['index.js'],
  );
  assert.equal(files?.patches, []);
  // Patches asked for, but DEST holds no older release: none (whether or not zstd is installed).
  assert.equal((await stageDelta({ ...common, file: 'my-app-gnu-linux-2.0.tar.gz', count: 3 }))?.patches, []);
  const lines: string[] = [];
  const log = createLogger({ stream: { write: (l: string) => lines.push(l) > 0 } as never, json: true });
  const long = `${'a'.repeat(95)}.tar.gz`;
  assert.is(await stageDelta({ ...common, log, file: long, count: 3 }), undefined);
  assert.match(lines.join(''), /no delta updates: the manifest's name/);
});

test.run();
