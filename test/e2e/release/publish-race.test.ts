// Two `release publish` processes started at the same moment to one rsync DEST (a real sshd on
// loopback) and to one S3 DEST (s3rver): exactly one exits 0, the other exits 1 naming the lock's
// holder and writes nothing; `release history` verifies the chain and VERSION names the winner.
// A lock left by a publisher killed with -9 is reported, then taken over once it is stale.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readLedger } from '../../../lib/release/ledger.ts';
import { parseVersionFile } from '../../../lib/release/version-file.ts';
import { runCommand, runScript, scriptCommand, tmpDir, waitFor } from '../../_helpers/common.ts';
import { startSshd, type Sshd } from '../../_helpers/ssh.ts';
import { exportPublic, makePublisher } from '../../fixtures/launchfit/gpg.ts';
import { APP_SOURCE } from '../../fixtures/launchfit/world.ts';
import { s3rverEnv, startS3rver } from '../../fixtures/s3rver.ts';

const LOCK_HELD =
  /Another release publish, rollout or rollback holds the lock of .+ since \d{4}-\d\d-\d\dT[\d:.]+Z \(by [^)]+@[^)]+, process \d+@[^)]+\); try again when it is done\. Nothing was written\./;
const ROUNDS = 3;

const sshd = await startSshd();
if (typeof sshd === 'string') console.log(`SKIP publish-race over rsync: ${sshd}`);
const overSsh = typeof sshd === 'string' ? test.skip : test;

/** A DEST as the commands see it, with ways for the test to look at what is there. */
interface Dest {
  to: string;
  env: Record<string, string>;
  read(name: string): Promise<Buffer | undefined>;
  /** Makes the lock left at DEST look as if its holder stopped renewing it 11 minutes ago. */
  ageLock(): Promise<void>;
}

interface Publisher {
  secret: string;
  passFile: string;
  pubAsc: string;
  app(version: string): string;
}

async function makeApps(): Promise<Publisher> {
  const base = tmpDir('shipkit-race-');
  const { g, key, secret, passFile } = await makePublisher(base, 'pw');
  const pubAsc = await exportPublic(g, key.fpr, path.join(base, 'pub.asc'));
  const app = (version: string) => {
    const dir = path.join(base, `app-${version}`);
    mkdirSync(dir, { recursive: true });
    copyFileSync(APP_SOURCE, path.join(dir, 'server.cjs'));
    writeFileSync(path.join(dir, 'version.txt'), `${version}\n`);
    return dir;
  };
  return { secret, passFile, pubAsc, app };
}

const keyArgs = (p: Publisher) => ['--key', p.secret, '--passphrase-file', p.passFile];
const publish = (p: Publisher, d: Dest, version: string) =>
  runScript(
    'release',
    [
      'publish',
      p.app(version),
      '--name',
      'my-app',
      '--platform',
      'gnu-linux',
      '--version',
      version,
      '--to',
      d.to,
    ].concat(keyArgs(p)),
    { env: d.env, timeoutMs: 60_000 },
  );
const history = (p: Publisher, d: Dest) =>
  runScript('release', ['history', 'my-app', '--from', d.to, '--keys', p.pubAsc, '--json'], { env: d.env });

/** Publishes two versions at once, ROUNDS times; each time one wins and the other wrote nothing. */
async function raceRounds(p: Publisher, d: Dest): Promise<string[]> {
  const winners: string[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const versions = [`${round}.0`, `${round}.1`];
    const runs = await Promise.all(versions.map((v) => publish(p, d, v)));
    const codes = runs.map((r) => r.exitCode);
    assert.equal([...codes].sort(), [0, 1], `round ${round}: ${runs.map((r) => r.stderr).join('\n---\n')}`);
    const winner = versions[codes.indexOf(0)];
    const loser = runs[codes.indexOf(1)];
    assert.match(loser.stderr, LOCK_HELD, `round ${round}: ${loser.stderr}`);
    assert.is(loser.stdout, '', 'the loser printed no result');
    winners.push(winner);
    const lost = versions[codes.indexOf(1)];
    assert.is(await d.read(`my-app-gnu-linux-${lost}.tar.gz`), undefined, 'no tarball of the loser at DEST');
    assert.is(
      parseVersionFile((await d.read('VERSION'))!.toString('utf8')).version,
      winner,
      'VERSION names the winner',
    );
    assert.equal(
      readLedger((await d.read('ledger.jsonl'))!).entries.map((e) => [e.n, e.version]),
      winners.map((v, i) => [i + 1, v]),
      `round ${round}: one entry per round, the winner's`,
    );
  }
  const h = await history(p, d);
  assert.is(h.exitCode, 0, h.stderr);
  assert.equal(
    JSON.parse(h.stdout).releases.map((r: { version: string }) => r.version),
    [...winners].reverse(),
  );
  return winners;
}

/** A rollback paused while it holds DEST's lock, then killed with -9: its lock is reported, then taken over. */
async function killedHolder(p: Publisher, d: Dest, winners: string[]): Promise<void> {
  const [cmd, ...pre] = scriptCommand('release');
  const child = spawn(cmd, [...pre, 'rollback', 'my-app', '--to', d.to, ...keyArgs(p)], {
    env: { ...process.env, ...d.env, SHIPKIT_TEST_PAUSE_AT: 'checked', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (chunk) => (err += chunk));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await waitFor(() => err.includes('paused at checked') || child.exitCode !== null, {
    timeoutMs: 30_000,
    what: 'release rollback to hold the lock',
  });
  assert.is(child.exitCode, null, err);
  child.kill('SIGKILL');
  await exited;
  const ledgerBefore = await d.read('ledger.jsonl');
  const refused = await publish(p, d, '9.0');
  assert.is(refused.exitCode, 1, refused.stderr);
  assert.match(refused.stderr, LOCK_HELD, 'the dead holder is named until its lock is stale');
  assert.match(refused.stderr, new RegExp(`process ${child.pid}@`));
  assert.equal(await d.read('ledger.jsonl'), ledgerBefore, 'nothing written');
  await d.ageLock();
  const taken = await publish(p, d, '9.0');
  assert.is(taken.exitCode, 0, taken.stderr);
  const h = await history(p, d);
  assert.is(h.exitCode, 0, h.stderr);
  assert.equal(
    readLedger((await d.read('ledger.jsonl'))!).entries.map((e) => e.version),
    [...winners, '9.0'],
  );
}

overSsh('rsync DEST: two publishers at once, three times; a killed holder reported, then taken over', async () => {
  const s = sshd as Sshd;
  const p = await makeApps();
  // A remote path the remote shell must be handed quoted: a space, a quote, a $.
  const remote = path.join(tmpDir('shipkit-race-remote-'), "up dates 'n $HOME");
  // The operator's ssh setup for this host, as ~/.ssh/config would give it.
  const bin = tmpDir('shipkit-race-bin-');
  const config = path.join(bin, 'ssh_config');
  writeFileSync(
    config,
    `Host 127.0.0.1\n  Port ${s.port}\n  IdentityFile ${s.key}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${s.knownHosts}\n  StrictHostKeyChecking yes\n` +
      // One connection shared by the many short ssh sessions of a publish (as operators set it up).
      `  ControlMaster auto\n  ControlPath ${bin}/cm-%C\n  ControlPersist 30\n`,
  );
  writeFileSync(path.join(bin, 'ssh'), `#!/bin/sh\nexec /usr/bin/ssh -F '${config}' "$@"\n`, { mode: 0o755 });
  const lockDir = path.join(remote, '.shipkit-publish.lock');
  const d: Dest = {
    to: `root@127.0.0.1:${remote}`,
    env: { PATH: `${bin}:${process.env.PATH}` },
    read: async (name) => (existsSync(path.join(remote, name)) ? readFileSync(path.join(remote, name)) : undefined),
    async ageLock() {
      const r = await runCommand('touch', ['-d', '11 minutes ago', path.join(lockDir, 'owner')]);
      assert.is(r.exitCode, 0, r.stderr);
    },
  };
  try {
    const winners = await raceRounds(p, d);
    assert.not.ok(existsSync(lockDir), 'the lock is gone after each publish');
    await killedHolder(p, d, winners);
    assert.not.ok(existsSync(lockDir));
    assert.equal(
      readdirSync(remote).filter((f) => f.startsWith('.shipkit')),
      [],
    );
  } finally {
    // The shared connection would otherwise outlive the test by ControlPersist.
    await runCommand(path.join(bin, 'ssh'), ['-O', 'exit', '127.0.0.1']);
  }
});

test('S3 DEST: two publishers at once, three times; a killed holder reported, then taken over', async () => {
  const s3rver = await startS3rver('releases');
  const p = await makeApps();
  const base = `${s3rver.endpoint}/releases/app-updates`;
  const env = s3rverEnv(s3rver.endpoint);
  const lockClaims = async () => {
    const list = await (
      await fetch(`${s3rver.endpoint}/releases?list-type=2&prefix=app-updates/.shipkit-publish.lock/`)
    ).text();
    return [...list.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]);
  };
  const d: Dest = {
    to: 's3://releases/app-updates',
    env,
    async read(name) {
      const res = await fetch(`${base}/${name}`);
      return res.status === 200 ? Buffer.from(await res.arrayBuffer()) : (await res.arrayBuffer(), undefined);
    },
    async ageLock() {
      const claims = await lockClaims();
      assert.equal(claims.length, 2, 'the killed holder left its claim and its held mark');
      for (const key of claims) {
        const owner = JSON.parse(await (await fetch(`${s3rver.endpoint}/releases/${key}`)).text());
        const renewed = new Date(Date.now() - 11 * 60_000).toISOString();
        const put = await fetch(`${s3rver.endpoint}/releases/${key}`, {
          method: 'PUT',
          body: JSON.stringify({ ...owner, renewed }),
        });
        assert.is(put.status, 200);
      }
    },
  };
  try {
    const winners = await raceRounds(p, d);
    assert.equal(await lockClaims(), [], 'no claim left after each publish');
    await killedHolder(p, d, winners);
    assert.equal(await lockClaims(), []);
  } finally {
    await s3rver.close();
  }
});

test.after(() => {
  if (typeof sshd !== 'string') sshd.child.kill('SIGTERM');
});

test.run();
