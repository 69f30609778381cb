// The commit a release's tag names (lib/server/tag-commit.ts), read from a real clone: lightweight
// and annotated tags give the commit; an unknown tag or a folder that is no clone gives nothing.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tagCommit } from '../../../lib/server/tag-commit.ts';
import { git, tmpDir } from '../../_helpers/common.ts';

const repo = path.join(tmpDir('shipkit-tag-'), 'clone');
mkdirSync(repo);
await git(repo, 'init', '-q', '-b', 'main');
writeFileSync(path.join(repo, 'a.txt'), 'a');
await git(repo, 'add', '.');
await git(repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '-m', 'one');
await git(repo, 'tag', 'v1.0.0');
await git(repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'tag', '-a', 'v1.0.1', '-m', 'annotated');
const head = (await git(repo, 'rev-parse', 'HEAD')).stdout.trim();

test('a lightweight and an annotated tag both give the commit, not the tag object', async () => {
  assert.is(await tagCommit(repo, 'v1.0.0'), head);
  assert.is(await tagCommit(repo, 'v1.0.1'), head);
});

test('an unknown tag, or a folder that is no clone, gives undefined', async () => {
  assert.is(await tagCommit(repo, 'v9'), undefined);
  assert.is(await tagCommit(tmpDir('shipkit-tag-'), 'v1.0.0'), undefined);
});

test.run();
