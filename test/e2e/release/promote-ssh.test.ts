// @deno
// `release promote` and `shipkit approve` into a production DEST reached over ssh (a real sshd on
// loopback, a remote path the remote shell must get quoted): refused until approved with nothing
// written there, the approval kept at that DEST, then the same bytes promoted, VERSION signed and
// the approval named in the remote ledger.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readLedger } from '../../../lib/release/format/ledger.ts';
import { parseVersionFile } from '../../../lib/release/format/version-file.ts';
import { runScript, tmpDir } from '../../_helpers/common.ts';
import { startSshd, type Sshd } from '../../_helpers/ssh.ts';
import { exportPublic, exportSecret, genKey } from '../../fixtures/launchfit/gpg.ts';
import { makeWorld, type World } from '../../fixtures/launchfit/world.ts';
import { environmentsApp } from '../../fixtures/release/environments.ts';

const sshd = await startSshd();
if (typeof sshd === 'string') console.log(`SKIP promote over ssh: ${sshd}`);
const overSsh = typeof sshd === 'string' ? test.skip : test;

const sha256Of = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** PATH with an `ssh` that uses this sshd's port, key and known_hosts, as ~/.ssh/config would. */
function sshPath(s: Sshd): string {
  const bin = tmpDir('shipkit-promote-bin-');
  const config = path.join(bin, 'ssh_config');
  writeFileSync(
    config,
    `Host 127.0.0.1\n  Port ${s.port}\n  IdentityFile ${s.key}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${s.knownHosts}\n  StrictHostKeyChecking yes\n`,
  );
  writeFileSync(path.join(bin, 'ssh'), `#!/bin/sh\nexec /usr/bin/ssh -F '${config}' "$@"\n`, { mode: 0o755 });
  return `${bin}:${process.env.PATH}`;
}

/** shipkit.yml with my-app's staging at the world's folder DEST and production over ssh, needing Alice's approval. */
function writeConfig(w: World, production: string): string {
  const config = path.join(w.base, 'shipkit.yml');
  writeFileSync(
    config,
    [
      `data: ${path.join(w.base, 'data')}`,
      ...environmentsApp(w, `"root@127.0.0.1:${production}"`, ['approvals: { required: 1, from: [keys/alice.asc] }']),
      '',
    ].join('\n'),
  );
  return config;
}

overSsh(
  'over ssh: refused until approved, the approval kept there, then the same bytes and the approval in its ledger',
  async () => {
    const w = await makeWorld();
    try {
      await w.publish('1.4.0');
      const alice = await genKey(w.g, 'Alice <alice@example.com>');
      mkdirSync(path.join(w.base, 'keys'));
      const aliceSecret = await exportSecret(w.g, alice.fpr, path.join(w.base, 'alice-secret.asc'));
      await exportPublic(w.g, alice.fpr, path.join(w.base, 'keys', 'alice.asc'));
      // A remote path with a space and a quote: handed to the remote shell quoted, or it fails.
      const production = path.join(tmpDir('shipkit-promote-remote-'), "prod 'n");
      const env = { PATH: sshPath(sshd as Sshd) };
      const common = ['--config', writeConfig(w, production), '--state', path.join(w.base, 'st')];
      const promote = () =>
        runScript('release', ['promote', 'my-app', '1.4.0', '--from', 'staging', '--to', 'production', ...common], {
          env,
        });

      const first = await promote();
      assert.is(first.exitCode, 2, first.stdout + first.stderr);
      assert.match(first.stderr, /approval/i);
      assert.ok(!existsSync(production) || readdirSync(production).length === 0, 'nothing written at production');

      const approved = await runScript(
        'approve',
        ['my-app', '1.4.0', '--env', 'production', '--key', aliceSecret, ...common],
        { env },
      );
      assert.is(approved.exitCode, 0, approved.stdout + approved.stderr);
      const kept = readdirSync(path.join(production, 'approvals'));
      assert.equal(kept.filter((f) => f.endsWith('.json')).length, 1, kept.join(' '));
      assert.equal(kept.filter((f) => f.endsWith('.json.sig')).length, 1, kept.join(' '));

      const second = await promote();
      assert.is(second.exitCode, 0, second.stdout + second.stderr);
      const tarball = 'my-app-gnu-linux-1.4.0.tar.gz';
      assert.is(sha256Of(path.join(production, tarball)), sha256Of(path.join(w.updates, tarball)), 'the same bytes');
      const version = parseVersionFile(readFileSync(path.join(production, 'VERSION'), 'utf8'));
      assert.equal([version.version, version.seq], ['1.4.0', 1]);
      const entry = readLedger(readFileSync(path.join(production, 'ledger.jsonl'))).entries.at(-1)!;
      assert.equal([entry.action, entry.version, entry.from_env], ['promote', '1.4.0', 'staging']);
      assert.match(
        entry.note ?? '',
        new RegExp(`approved by Alice <alice@example.com> \\(${alice.fpr.slice(0, 16)}\\)`, 'i'),
      );
      // The publish lock released and no temp file left behind at the remote DEST.
      assert.equal(
        readdirSync(production).filter((f) => f.startsWith('.')),
        [],
      );
    } finally {
      await w.server.close();
    }
  },
);

// sshd is this file's child, and the pipe of its stderr would keep the process running after the
// last test: the runner would wait for it until its file timeout.
test.after(() => {
  if (typeof sshd !== 'string') sshd.child.kill('SIGTERM');
});

test.run();
