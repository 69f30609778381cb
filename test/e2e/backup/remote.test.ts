// shipkit backup --to s3://… and restore --from s3://… against s3rver on loopback
// (docs/backup.md): the backup uploads with its manifest last, verifies and restores from the
// bucket to a hook-server with the same jobs; a prefix that holds a backup already, or none, is refused.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, FAKE_BUILD, pushPayload, waitForJobState } from '../../fixtures/hooks/deliveries.ts';
import { s3rverEnv, startS3rver } from '../../fixtures/s3rver.ts';
import { runScript, startScript, tmpDir } from '../../_helpers/common.ts';

const env: Record<string, string> = { SHIPKIT_BUILD_COMMAND: FAKE_BUILD };

async function jobsOf(url: string, token: string): Promise<string[]> {
  const res = await fetch(`${url}/jobs`, { headers: { Authorization: `Bearer ${token}` } });
  return ((await res.json()) as { jobs: Array<{ id: string; state: string }> }).jobs
    .map((j) => `${j.id} ${j.state}`)
    .sort();
}

test('backup to s3://, verify and restore from it: the same jobs; an occupied or empty prefix refused', async () => {
  const s3rver = await startS3rver('backups');
  Object.assign(env, s3rverEnv(s3rver.endpoint));
  try {
    const dir = tmpDir('shipkit-backup-s3-');
    const first = await startScript('hook-server', ['--listen', '127.0.0.1:0'], { cwd: dir, env });
    assert.is(await first.stop(), 0);
    const config = path.join(dir, '.shipkit', 'shipkit.yml');
    writeFileSync(
      config,
      readFileSync(config, 'utf8').replace(/repos: \{\}/, 'repos:\n  octo/site:\n    branch: main'),
    );
    const secret = readFileSync(path.join(dir, '.shipkit', 'webhook-secret'), 'utf8').trim();
    const token = readFileSync(path.join(dir, '.shipkit', 'token'), 'utf8').trim();
    const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
    let jobs: string[];
    try {
      const sent = await deliverGithub(server.url, 'push', pushPayload('octo/site'), secret);
      assert.is(sent.status, 202);
      await waitForJobState(server.url, token, sent.json.job, ['succeeded']);
      jobs = await jobsOf(server.url, token);
    } finally {
      assert.is(await server.stop(), 0);
    }

    const dest = 's3://backups/site/2026-11-24';
    const backup = await runScript('backup', ['--config', config, '--to', dest, '--json'], { env });
    assert.is(backup.exitCode, 0, backup.stderr);
    assert.is(JSON.parse(backup.stdout).to, dest);
    const again = await runScript('backup', ['--config', config, '--to', dest], { env });
    assert.is(again.exitCode, 2, again.stderr);
    assert.match(again.stderr, /already holds a backup \(MANIFEST\.json\)/);

    const verify = await runScript('backup', ['verify', dest, '--json'], { env });
    assert.is(verify.exitCode, 0, verify.stderr);
    assert.ok(JSON.parse(verify.stdout).parts >= 3);

    const target = path.join(tmpDir(), 'restored');
    const restore = await runScript('restore', ['--from', dest, '--to', target], { env });
    assert.is(restore.exitCode, 0, restore.stderr);
    for (const name of ['webhook-secret', 'token'])
      writeFileSync(path.join(target, name), readFileSync(path.join(dir, '.shipkit', name)), { mode: 0o600 });
    const restored = await startScript(
      'hook-server',
      ['--config', path.join(target, 'shipkit.yml'), '--listen', '127.0.0.1:0'],
      { env },
    );
    try {
      assert.equal(await jobsOf(restored.url, token), jobs);
    } finally {
      assert.is(await restored.stop(), 0);
    }

    const none = await runScript('restore', ['--from', 's3://backups/nothing-here', '--to', tmpDir()], { env });
    assert.is(none.exitCode, 2, none.stderr);
    assert.match(none.stderr, /holds no MANIFEST\.json: not a backup, or one that did not finish uploading/);
  } finally {
    await s3rver.close();
  }
});

test.run();
