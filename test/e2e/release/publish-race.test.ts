// Two `release publish` processes started at the same moment to one rsync DEST (a real sshd on
// loopback, a DEST path the remote shell must get quoted): three rounds, each with exactly one
// winner, the other exiting 1 naming the lock's holder with nothing written; `release history`
// verifies the chain. A lock left by a rollback killed with -9 is reported, then taken over.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCommand, tmpDir } from '../../_helpers/common.ts';
import { startSshd, type Sshd } from '../../_helpers/ssh.ts';
import { killedHolder, makeApps, raceRounds, type Dest } from '../../fixtures/publish-race.ts';

const sshd = await startSshd();
if (typeof sshd === 'string') console.log(`SKIP publish-race over rsync: ${sshd}`);
const overSsh = typeof sshd === 'string' ? test.skip : test;

overSsh('rsync DEST: two publishers at once, three times; a killed holder reported, then taken over', async () => {
  const s = sshd as Sshd;
  const p = await makeApps();
  // A remote path the remote shell must be handed quoted: a space, a quote, a $.
  const remote = path.join(tmpDir('shipkit-race-remote-'), "up dates 'n $HOME");
  // The operator's ssh setup for this host, as ~/.ssh/config would give it.
  const bin = tmpDir('shipkit-race-bin-');
  // The shared connection's socket: a Unix socket path has room for 107 bytes, less than the
  // test's own TMPDIR leaves (test/run.ts gives each file one), so it lives in /tmp itself.
  const sockets = mkdtempSync('/tmp/skcm-');
  const config = path.join(bin, 'ssh_config');
  writeFileSync(
    config,
    `Host 127.0.0.1\n  Port ${s.port}\n  IdentityFile ${s.key}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${s.knownHosts}\n  StrictHostKeyChecking yes\n` +
      // One connection shared by the many short ssh sessions of a publish (as operators set it up).
      `  ControlMaster auto\n  ControlPath ${sockets}/%C\n  ControlPersist 30\n`,
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
    // Each winner also wrote its manifest and a patch from the release before it, whose tarball
    // it read back over rsync.
    const version = (await d.read('VERSION'))!.toString('utf8');
    assert.match(version, /^MANIFEST \S+\.manifest [0-9a-f]{64}$/m);
    const patch = /^PATCH \S+ (\S+) [0-9a-f]{64} (\d+)$/m.exec(version);
    assert.ok(patch, `a PATCH line in ${version}`);
    assert.is(readFileSync(path.join(remote, patch[1])).length, Number(patch[2]));
    await killedHolder(p, d, winners);
    assert.not.ok(existsSync(lockDir));
    assert.equal(
      readdirSync(remote).filter((f) => f.startsWith('.shipkit')),
      [],
    );
  } finally {
    // The shared connection would otherwise outlive the test by ControlPersist.
    await runCommand(path.join(bin, 'ssh'), ['-O', 'exit', '127.0.0.1']);
    rmSync(sockets, { recursive: true, force: true });
  }
});

test.after(() => {
  if (typeof sshd !== 'string') sshd.child.kill('SIGTERM');
});

test.run();
