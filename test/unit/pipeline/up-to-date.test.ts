// lib/pipeline/up-to-date.ts's reading of a commit's tree from its loose object, held against
// `git rev-parse` on a real repository; a packed commit, a short id or another object is left to git.
// The decision itself runs in a real hook-server: test/e2e/hook-server/up-to-date.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { treeOfLooseCommit } from '../../../lib/pipeline/up-to-date.ts';
import { git, makeBareRepo, tmpDir } from '../../_helpers/common.ts';

test('a loose commit gives the tree git names; packed, short or not a commit gives undefined', async () => {
  const { work, first } = await makeBareRepo(tmpDir(), 'site');
  const tree = (await git(work, 'rev-parse', `${first}^{tree}`)).stdout.trim();
  assert.is(await treeOfLooseCommit(work, first), tree);
  assert.is(await treeOfLooseCommit(work, first.slice(0, 12)), undefined);
  assert.is(await treeOfLooseCommit(work, tree), undefined, 'a tree object is not a commit');
  assert.is(await treeOfLooseCommit(work, 'f'.repeat(40)), undefined);
  await git(work, 'gc', '--quiet');
  assert.is(await treeOfLooseCommit(work, first), undefined, 'packed: git is asked');
});

test.run();
