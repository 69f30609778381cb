// shipkit backup under load and on a full disk (docs/backup.md): backups taken while deliveries
// arrive (paced at up to 100 a second; the rate reached is printed) and a build writes its log
// restore to a hook-server that has every job answered before the backup began, each whole;
// a DEST that fills up fails with exit 1, naming the disk, and leaves nothing behind.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, FAKE_BUILD, pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { runScript, startScript, tmpDir } from '../../_helpers/common.ts';
import { mountTinyDisk, skipFullDisk } from '../../_helpers/disk.ts';

const env = { SHIPKIT_BUILD_COMMAND: FAKE_BUILD, SHIPKIT_RELEASE_COMMAND: FAKE_BUILD };
const REPOS = ['octo/ticker', ...Array.from({ length: 9 }, (_, i) => `octo/r${i}`)];

/** A first-start layout with REPOS configured; gives the config file, secret and token. */
async function firstStart(dir: string) {
  const first = await startScript('hook-server', ['--listen', '127.0.0.1:0'], { cwd: dir, env });
  assert.is(await first.stop(), 0);
  const config = path.join(dir, '.shipkit', 'shipkit.yml');
  const text = readFileSync(config, 'utf8').replace(/repos: \{\}\n?/, '');
  writeFileSync(config, `${text}repos:\n${REPOS.map((r) => `  ${r}:\n    branch: main\n`).join('')}`);
  writeFileSync(path.join(dir, '.shipkit', 'ticker-pause'), '0.02');
  writeFileSync(path.join(dir, '.shipkit', 'ticker-lines'), '200');
  const read = (name: string) => readFileSync(path.join(dir, '.shipkit', name), 'utf8').trim();
  return { config, secret: read('webhook-secret'), token: read('token') };
}

async function jobIds(url: string, token: string): Promise<Map<string, string>> {
  const all = new Map<string, string>();
  for (const repo of REPOS) {
    const res = await fetch(`${url}/jobs?limit=1000&repo=${encodeURIComponent(repo)}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.is(res.status, 200);
    const { jobs } = (await res.json()) as { jobs: Array<{ id: string; state: string; repo: string; sha: string }> };
    assert.ok(jobs.length < 1000, 'the page holds all of them');
    for (const job of jobs) {
      assert.ok(job.id && job.state && job.repo === repo && /^[0-9a-f]{40}$/.test(job.sha), 'a whole job');
      all.set(job.id, job.state);
    }
  }
  return all;
}

test('backups taken while deliveries arrive (up to 100/s) restore whole, with every job answered before them', async () => {
  const dir = tmpDir('shipkit-backup-load-');
  const made = await firstStart(dir);
  const server = await startScript('hook-server', ['--config', made.config, '--listen', '127.0.0.1:0'], { env });
  const answered: string[] = [];
  let sending = true;
  let n = 0;
  const began = Date.now();
  const sender = (async () => {
    while (sending) {
      const started = Date.now();
      const batch = Array.from({ length: 20 }, () => {
        const repo = REPOS[n++ % REPOS.length];
        const payload = pushPayload(repo, { sha: randomBytes(20).toString('hex') });
        return deliverGithub(server.url, 'push', payload, made.secret);
      });
      for (const answer of await Promise.all(batch)) {
        assert.is(answer.status, 202, JSON.stringify(answer.json));
        answered.push(answer.json.job);
      }
      await new Promise((r) => setTimeout(r, Math.max(0, 200 - (Date.now() - started))));
    }
  })();
  const backups: Array<{ to: string; before: string[] }> = [];
  try {
    await new Promise((r) => setTimeout(r, 1000));
    for (let i = 0; i < 3; i++) {
      const to = path.join(dir, `backup-${i}`);
      const before = [...answered];
      const run = await runScript('backup', ['--config', made.config, '--to', to]);
      assert.is(run.exitCode, 0, run.stderr);
      backups.push({ to, before });
    }
  } finally {
    sending = false;
    await sender;
    assert.is(await server.stop(), 0);
  }
  const rate = (answered.length / ((Date.now() - began) / 1000)).toFixed(0);
  console.log(`${answered.length} deliveries answered 202 (${rate}/s) while ${backups.length} backups ran`);
  assert.ok(answered.length >= 100, 'the load really ran');

  for (const [i, { to, before }] of backups.entries()) {
    assert.is((await runScript('backup', ['verify', to])).exitCode, 0);
    const target = path.join(dir, `restored-${i}`);
    const restore = await runScript('restore', ['--from', to, '--to', target]);
    assert.is(restore.exitCode, 0, restore.stderr);
    // The secret and token files were left out (no --encrypt-to): put the same ones back by hand.
    for (const name of ['webhook-secret', 'token'])
      writeFileSync(path.join(target, name), readFileSync(path.join(dir, '.shipkit', name)), { mode: 0o600 });
    const again = await startScript(
      'hook-server',
      ['--config', path.join(target, 'shipkit.yml'), '--listen', '127.0.0.1:0'],
      { env },
    );
    try {
      const jobs = await jobIds(again.url, made.token);
      const lost = before.filter((id) => !jobs.has(id));
      assert.equal(lost, [], `backup ${i}: every job answered before it began is in it`);
    } finally {
      assert.is(await again.stop(), 0);
    }
    assert.not.match(again.output(), /torn|damaged|corrupt|skipp/i, 'the journal replays without a broken record');
  }
});

test('a DEST that fills up: exit 1, the disk named, nothing left behind', async () => {
  const disk = mountTinyDisk('512k');
  if (typeof disk === 'string') return skipFullDisk('backup to a full disk', disk);
  const dir = tmpDir('shipkit-backup-full-');
  const made = await firstStart(dir);
  const logs = path.join(dir, '.shipkit', 'logs', 'octo%2Fr0');
  mkdirSync(logs, { recursive: true });
  writeFileSync(path.join(logs, 'logs.txt'), randomBytes(2 * 1024 * 1024));
  const to = path.join(disk.dir, 'backup');
  const run = await runScript('backup', ['--config', made.config, '--to', to]);
  assert.is(run.exitCode, 1, run.stderr);
  assert.match(run.stderr, /ENOSPC|no space left/i);
  assert.match(run.stderr, /nothing was kept there/);
  assert.not.ok(existsSync(to), 'no half backup');
  assert.equal(readdirSync(disk.dir), []);
});

test.run();
