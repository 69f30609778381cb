// The preview records (lib/previews/store.ts): kept across a restart in DATA/previews/previews.json,
// one per repo and pull request, listed newest first, torn-down ones kept but not open, REPO#N read.
import { readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../lib/core/errors.ts';
import { PreviewStore, parsePreviewRef, type PreviewRecord } from '../../../lib/previews/store.ts';
import { tmpDir } from '../../_helpers/common.ts';

const record = (pr: number, over: Partial<PreviewRecord> = {}): PreviewRecord => ({
  repo: 'octo/site',
  pr,
  name: `pr-${pr}`,
  head: 'a'.repeat(40),
  headRef: 'feature',
  headRepo: 'octo/site',
  cloneUrl: 'https://example.com/octo/site.git',
  fromFork: false,
  title: 'A change',
  prUrl: `https://example.com/octo/site/pull/${pr}`,
  state: 'building',
  since: new Date(1_700_000_000_000 + pr * 1000).toISOString(),
  pushed: new Date(1_700_000_000_000).toISOString(),
  ...over,
});

test('records survive a restart, newest change first; torn-down ones are not open', async () => {
  const data = tmpDir('shipkit-previews-');
  const store = await new PreviewStore(data).load();
  assert.equal(store.list(), []);
  await store.put(record(1));
  await store.put(record(2, { state: 'live' }));
  await store.put(record(3, { state: 'torn down' }));
  await store.put(record(1, { state: 'failed', reason: 'the build failed' }));
  const again = await new PreviewStore(data).load();
  assert.equal(
    again.list().map((r) => r.pr),
    [3, 2, 1],
  );
  assert.is(again.get('octo/site', 1)!.state, 'failed');
  assert.equal(
    again.open().map((r) => r.pr),
    [2, 1],
  );
  assert.equal(again.open('octo/other'), []);
  assert.is(statSync(again.file).mode & 0o777, 0o600);
});

test('a damaged file is an error naming it; records whose name is not their number are dropped', async () => {
  const data = tmpDir('shipkit-previews-');
  const store = new PreviewStore(data);
  mkdirSync(path.dirname(store.file), { recursive: true });
  writeFileSync(store.file, '{nope');
  try {
    await store.load();
    assert.unreachable('loaded');
  } catch (error) {
    assert.instance(error, ValidationError);
    assert.match((error as Error).message, /previews\.json is not JSON/);
  }
  writeFileSync(store.file, JSON.stringify({ previews: [record(4, { name: '../../etc' }), record(5)] }));
  assert.equal(
    (await store.load()).list().map((r) => r.pr),
    [5],
  );
  assert.ok(readFileSync(store.file, 'utf8').includes('../../etc'), 'reading changes nothing');
});

test('REPO#N, and what is not', () => {
  assert.equal(parsePreviewRef('octo/site#42'), { repo: 'octo/site', pr: 42 });
  assert.equal(parsePreviewRef('site#1'), { repo: 'site', pr: 1 });
  for (const bad of [
    'octo/site',
    'octo/site#0',
    'octo/site#-1',
    '#4',
    'octo/site#4;rm',
    'octo site#4',
    'a#1234567890',
    '../x#1',
    'octo/../x#2',
  ])
    assert.throws(
      () => parsePreviewRef(bad),
      (e: unknown) => e instanceof ValidationError,
      bad,
    );
});

test.run();
