// shipkit restore next to a running hook-server and under kill -9, backup --encrypt-to with a key
// that cannot encrypt, and a restore without its secrets (docs/backup.md): refused naming the
// pid with the live folder untouched; killed restores leave the target as it was; the start
// command printed works once the secrets named (full paths) are put back.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runScript, scriptCommand, startScript, tmpDir, waitFor } from '../../_helpers/common.ts';

/** Every path under `root` with the bytes of each file (hook-server's lock included). */
const contentsOf = (root: string) =>
  readdirSync(root, { recursive: true, withFileTypes: true })
    .map((e) => path.join(e.parentPath, e.name))
    .sort()
    .map(
      (f) =>
        `${path.relative(root, f)} ${existsSync(f) && !statSync(f).isDirectory() ? readFileSync(f, 'base64') : '/'}`,
    );

let dir: string;
let config: string;
let backup: string;
const secrets = new Map<string, Buffer>();

test.before(async () => {
  dir = tmpDir('shipkit-backup-live-');
  const first = await startScript('hook-server', ['--listen', '127.0.0.1:0'], { cwd: dir });
  assert.is(await first.stop(), 0);
  config = path.join(dir, '.shipkit', 'shipkit.yml');
  for (const name of ['webhook-secret', 'token']) secrets.set(name, readFileSync(path.join(dir, '.shipkit', name)));
  backup = path.join(dir, 'backup');
  const made = await runScript('backup', ['--config', config, '--to', backup]);
  assert.is(made.exitCode, 0, made.stderr);
});

test('restore --force onto the DATA of a running hook-server: exit 2 naming its pid, the live folder untouched', async () => {
  const live = path.join(dir, '.shipkit');
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0']);
  try {
    const before = contentsOf(live);
    const run = await runScript('restore', ['--from', backup, '--to', live, '--force']);
    assert.is(run.exitCode, 2, run.stderr);
    assert.match(run.stderr, `hook-server (pid ${server.child.pid}`);
    assert.match(run.stderr, `is running on ${live}: stop it`);
    assert.equal(contentsOf(live), before, 'not a file changed');
    assert.equal(
      readdirSync(dir).filter((n) => n.includes('.before-restore-') || n.includes('.restoring-')),
      [],
      'nothing moved aside, nothing staged',
    );
    assert.is((await fetch(`${server.url}/healthz`)).status, 200, 'hook-server still serves');
  } finally {
    assert.is(await server.stop(), 0);
  }
  const stopped = await runScript('restore', ['--from', backup, '--to', live, '--force']);
  assert.is(stopped.exitCode, 0, `stopped, it restores: ${stopped.stderr}`);
  assert.match(stopped.stderr, /what was there is kept aside/);
});

test('kill -9 during a restore: the target as it was; the next restore removes the dead staging and works', async () => {
  const big = path.join(dir, 'big');
  mkdirSync(path.join(big, 'logs', 'octo%2Fsite'), { recursive: true });
  writeFileSync(path.join(big, 'shipkit.yml'), 'data: .\nsecret: env:HOOK_SECRET\nrepos: {}\n');
  for (let i = 0; i < 24; i++)
    writeFileSync(path.join(big, 'logs', 'octo%2Fsite', `logs.txt.${i + 1}`), randomBytes(4 << 20));
  const from = path.join(dir, 'big-backup');
  assert.is((await runScript('backup', ['--config', path.join(big, 'shipkit.yml'), '--to', from])).exitCode, 0);
  const target = path.join(tmpDir('shipkit-killed-'), 'conf');
  mkdirSync(target);
  writeFileSync(path.join(target, 'shipkit.yml'), 'mine\n');
  const [cmd, ...args] = scriptCommand('restore');
  const child = spawn(cmd, [...args, '--from', from, '--to', target, '--force'], { stdio: 'ignore' });
  const staging = () => readdirSync(path.dirname(target)).find((n) => n.startsWith('conf.restoring-'));
  await waitFor(() => staging() && existsSync(path.join(path.dirname(target), staging()!, 'logs')), {
    timeoutMs: 30_000,
    what: 'the restore to start staging',
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  assert.is(readFileSync(path.join(target, 'shipkit.yml'), 'utf8'), 'mine\n', 'the target as it was');
  assert.equal(readdirSync(target), ['shipkit.yml']);
  assert.not.ok(
    readdirSync(path.dirname(target)).some((n) => n.includes('.before-restore-')),
    'nothing moved',
  );
  const again = await runScript('restore', ['--from', from, '--to', target, '--force']);
  assert.is(again.exitCode, 0, again.stderr);
  const names = readdirSync(path.dirname(target)).sort();
  assert.is(names.length, 2, names.join(' '));
  assert.match(names[1], /^conf\.before-restore-/, 'the dead staging folder removed; the old target kept aside');
  assert.is(readdirSync(path.join(target, 'logs', 'octo%2Fsite')).length, 24);
});

test('backup --encrypt-to a sign-only release key: exit 2 before anything is written, naming the file', async () => {
  const keys = path.join(tmpDir(), 'release-key');
  const made = await runScript('release', ['keys', 'init', '--out', keys]);
  assert.is(made.exitCode, 0, made.stderr);
  const to = path.join(tmpDir(), 'never');
  for (const key of ['keys.asc', 'signing.asc']) {
    const run = await runScript('backup', ['--config', config, '--to', to, '--encrypt-to', path.join(keys, key)]);
    assert.is(run.exitCode, 2, run.stderr);
    assert.match(run.stderr, `${path.join(keys, key)} has no encryption subkey`);
    assert.not.ok(existsSync(to), 'nothing written');
  }
});

test('a restore without its secret files names each by full path; the start command it prints works once they are back', async () => {
  const target = path.join(tmpDir('shipkit-no-secrets-'), 'conf');
  const run = await runScript('restore', ['--from', backup, '--to', target]);
  assert.is(run.exitCode, 0, run.stderr);
  for (const name of ['webhook-secret', 'token']) {
    const file = path.join(target, name);
    assert.match(run.stderr, `a secret file to put back by hand file=${file}`);
    assert.match(
      run.stdout,
      `  ${file}: left out of the backup (made without --encrypt-to); copy it from the old machine`,
    );
  }
  assert.match(run.stdout, /hook-server will not start until these 2 secrets are supplied:/);
  const command = /^Then start it: (.*)$/m.exec(run.stdout)?.[1];
  assert.is(command, `hook-server --config ${path.join(target, 'shipkit.yml')}`);
  const [, ...args] = command!.split(' ');
  const early = await runScript('hook-server', [...args, '--listen', '127.0.0.1:0']);
  assert.is(early.exitCode, 2, 'without them it does not start');
  for (const name of ['webhook-secret', 'token'])
    writeFileSync(path.join(target, name), secrets.get(name)!, { mode: 0o600 });
  const server = await startScript('hook-server', [...args, '--listen', '127.0.0.1:0']);
  assert.is((await fetch(`${server.url}/healthz`)).status, 200);
  assert.is(await server.stop(), 0);
});

test.run();
