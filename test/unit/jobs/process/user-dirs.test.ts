// A repo's folders for its build user (lib/jobs/process/user-dirs.ts): which repos leave the first
// clone to the build (a token or deploy key), and, as root, the work tree, logs and state made and
// given to the user, with the first clone made as that user from a real local repository.
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import { newJobRecord } from '../../../../lib/jobs/job-queue.ts';
import { clonesWithCredentials, prepareUserDirs } from '../../../../lib/jobs/process/user-dirs.ts';
import type { ShipkitConfig } from '../../../../lib/config/shipkit-yml.ts';
import { git, rootBuildUser, runCommand, tmpDir } from '../../../_helpers/common.ts';

test('a token or a deploy key leaves the first clone to the build', () => {
  assert.is(clonesWithCredentials(undefined), false);
  assert.is(clonesWithCredentials({ gitToken: undefined, gitAuth: {} } as never), false);
  assert.is(clonesWithCredentials({ gitToken: { token: 'env:T' }, gitAuth: {} } as never), true);
  assert.is(clonesWithCredentials({ gitToken: undefined, gitAuth: { sshKey: '/keys/deploy' } } as never), true);
});

test('as root: the folders belong to the build user, and its first clone is made as that user', async () => {
  const as = await rootBuildUser('giving folders to another user needs root (chown)');
  if (!as) return;
  const root = tmpDir('shipkit-userdirs-');
  await runCommand('chmod', ['755', root]);
  const origin = path.join(root, 'origin');
  mkdirSync(origin);
  await git(origin, 'init', '-q', '-b', 'main');
  writeFileSync(path.join(origin, 'index.html'), 'hi');
  await git(origin, 'add', '.');
  await git(origin, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '-m', 'one');
  // Another user's repository is "dubious ownership" to git: the origin is the build user's, as a
  // forge's would be someone else's server.
  await runCommand('chown', ['-R', String(as.uid), origin]);
  const data = path.join(root, 'data');
  const config = { data } as ShipkitConfig;
  const job = newJobRecord({ repo: 'octo/site', kind: 'build' }, 1, new Date().toISOString());
  const gid = Number((await runCommand('id', ['-g', as.user])).stdout.trim());
  const account = { name: as.user, uid: as.uid, gid, home: '/nonexistent', shell: '/usr/sbin/nologin' };
  await prepareUserDirs(config, job, account, origin, silentLogger);
  for (const dir of ['repos', 'logs', 'state']) {
    const info = statSync(path.join(data, dir, 'octo__site'));
    assert.is(info.uid, as.uid, `${dir} belongs to the build user`);
  }
  assert.is(statSync(path.join(data, 'repos')).uid, 0, 'DATA/repos itself stays root');
  const head = statSync(path.join(data, 'repos', 'octo__site', '.git', 'HEAD'));
  assert.is(head.uid, as.uid, 'cloned as the user');
});

test.run();
