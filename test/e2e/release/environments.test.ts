// Staging to production by name (docs/environments.md), real processes and gpg keys, with the
// apps: block of a real shipkit.yml: a promote refused until approved (the approvers told once,
// by a real webhook), then the same bytes in production with the approval in its ledger entry and
// the audit trail; a 1.4 approval copied for 1.5, a deny window, --force and --override without
// an approval, each exit 2 with nothing written; `release history` shows each version's path.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readLedger } from '../../../lib/release/format/ledger.ts';
import { parseVersionFile } from '../../../lib/release/format/version-file.ts';
import { ROOT, runScript, scriptCommand, waitFor } from '../../_helpers/common.ts';
import { exportPublic, exportSecret, genKey } from '../../fixtures/launchfit/gpg.ts';
import { makeWorld, type World } from '../../fixtures/launchfit/world.ts';
import { environmentsApp } from '../../fixtures/release/environments.ts';

const sha256Of = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const listing = (dir: string) =>
  existsSync(dir)
    ? Object.fromEntries(
        readdirSync(dir, { recursive: true, withFileTypes: true })
          .filter((e) => e.isFile())
          .map((e) => {
            const file = path.join(e.parentPath, e.name);
            return [path.relative(dir, file), sha256Of(file)];
          }),
      )
    : {};
const entries = (dir: string) => readLedger(readFileSync(path.join(dir, 'ledger.jsonl'))).entries;

/** A webhook receiver on loopback: the approvers' notify target. */
async function startReceiver() {
  const bodies: Array<Record<string, unknown>> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return { url, bodies, close: () => new Promise((resolve) => server.close(resolve)) };
}

interface Setup {
  w: World;
  config: string;
  production: string;
  alice: string;
  state: string[];
  hook: Awaited<ReturnType<typeof startReceiver>>;
}

async function setUp(windows = '', more: string[] = []): Promise<Setup> {
  const w = await makeWorld();
  const key = await genKey(w.g, 'Alice <alice@example.com>');
  mkdirSync(path.join(w.base, 'keys'));
  const alice = await exportSecret(w.g, key.fpr, path.join(w.base, 'alice-secret.asc'));
  await exportPublic(w.g, key.fpr, path.join(w.base, 'keys', 'alice.asc'));
  const production = path.join(w.base, 'production');
  const hook = await startReceiver();
  const config = path.join(w.base, 'shipkit.yml');
  const secret = path.join(w.base, 'hook.secret');
  writeFileSync(secret, 'approvals-webhook-secret-0123456789\n');
  writeFileSync(
    config,
    [
      `data: ${path.join(w.base, 'data')}`,
      `notify: [{ webhook: "${hook.url}", secret: "file:${secret}" }]`,
      ...environmentsApp(w, production, [
        'approvals: { required: 1, from: [keys/alice.asc] }',
        ...(windows ? [`windows: [${windows}]`] : []),
        ...more,
      ]),
      '',
    ].join('\n'),
  );
  return { w, config, production, alice, state: ['--state', path.join(w.base, 'st')], hook };
}

const promote = (s: Setup, version: string, extra: string[] = []) =>
  runScript('release', [
    'promote',
    'my-app',
    version,
    '--from',
    'staging',
    '--to',
    'production',
    '--config',
    s.config,
    ...s.state,
    ...extra,
  ]);
const approve = (s: Setup, version: string) =>
  runScript('approve', ['my-app', version, '--env', 'production', '--key', s.alice, '--config', s.config, ...s.state]);

/** A refused promote: exit 2, its message, nothing written at production. */
async function refused(s: Setup, run: ReturnType<typeof promote>, message: RegExp) {
  const before = listing(s.production);
  const r = await run;
  assert.is(r.exitCode, 2, r.stdout + r.stderr);
  assert.ok(message.test(r.stderr), r.stderr);
  assert.equal(listing(s.production), before, 'nothing written at production');
}

test('refused until approved (approvers told once); then the same bytes, the approval in the ledger and the audit trail', async () => {
  const s = await setUp();
  try {
    await s.w.publish('1.4.0');
    await refused(
      s,
      promote(s, '1.4.0'),
      /my-app 1\.4\.0 into production needs 1 approval; 0 given \(waiting for Alice <alice@example\.com>\).*shipkit approve my-app 1\.4\.0 --env production/,
    );
    assert.is(s.hook.bodies.length, 1, 'the approvers were told');
    assert.equal(
      [s.hook.bodies[0].event, s.hook.bodies[0].app, s.hook.bodies[0].version, s.hook.bodies[0].env],
      ['approval.requested', 'my-app', '1.4.0', 'production'],
    );
    await refused(s, promote(s, '1.4.0'), /needs 1 approval/);
    assert.is(s.hook.bodies.length, 1, 'a promote run again tells nobody twice');

    const given = await approve(s, '1.4.0');
    assert.is(given.exitCode, 0, given.stderr);
    const r = await promote(s, '1.4.0');
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /Promoted my-app 1\.4\.0 .* from staging to production: VERSION SEQ 1/);
    const tarball = 'my-app-gnu-linux-1.4.0.tar.gz';
    assert.is(sha256Of(path.join(s.production, tarball)), sha256Of(path.join(s.w.updates, tarball)));
    const inode = (dir: string) => statSync(path.join(dir, tarball)).ino;
    assert.is(inode(s.production), inode(s.w.updates), 'one filesystem: linked, not copied');
    assert.is(parseVersionFile(readFileSync(path.join(s.production, 'VERSION'), 'utf8')).version, '1.4.0');
    const promoted = entries(s.production).at(-1)!;
    assert.equal([promoted.action, promoted.from_env], ['promote', 'staging']);
    assert.match(promoted.note ?? '', /approved by Alice <alice@example\.com> \([0-9a-f]{16}\) at 20/);

    const audit = await runScript('audit', ['--config', s.config, '--json']);
    assert.is(audit.exitCode, 0, audit.stderr);
    const actions = audit.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string; detail: unknown });
    const record = actions.find((a) => a.action === 'release.promote');
    assert.ok(record, audit.stdout);
    assert.match(JSON.stringify(record.detail), /"version":"1\.4\.0".*"from":"staging","to":"production"/);

    const history = await runScript('release', [
      'history',
      'my-app',
      '--config',
      s.config,
      '--keys',
      s.w.pubAsc,
      ...s.state,
    ]);
    assert.is(history.exitCode, 0, history.stderr);
    assert.match(history.stdout, /my-app across 2 environments:/);
    assert.match(history.stdout, /\n {2}production {2}1\.4\.0 \(current\)/);
    assert.match(
      history.stdout,
      /1\.4\.0: staging: published .*, current → production: promoted from staging .*, current/,
    );
  } finally {
    await s.hook.close();
    await s.w.server.close();
  }
});

/** `release promote … --wait` as a child of its own (so it can be killed), asking again every 200 ms. */
function waitingPromote(s: Setup, version: string, wait: string) {
  const [cmd, ...pre] = scriptCommand('release');
  const child = spawn(
    cmd,
    [...pre, 'promote', 'my-app', version, '--from', 'staging', '--to', 'production', '--config', s.config].concat(
      s.state,
      ['--wait', wait],
    ),
    { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', SHIPKIT_GATE_POLL_MS: '200' }, stdio: 'pipe' },
  );
  child.stdin.end();
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => (out.stdout += d));
  child.stderr.on('data', (d) => (out.stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, out, exited };
}

test('--wait holds for the approval; killed -9 while waiting and run again, the approvers are told once', async () => {
  const s = await setUp();
  try {
    await s.w.publish('1.4.0');
    const first = waitingPromote(s, '1.4.0', '2m');
    await waitFor(() => first.out.stderr.includes('Waiting up to'), { what: 'the first promote waits' });
    first.child.kill('SIGKILL');
    await first.exited;
    assert.equal(listing(s.production), {}, 'nothing written at production');
    const second = waitingPromote(s, '1.4.0', '2m');
    await waitFor(() => second.out.stderr.includes('needs 1 approval'), { what: 'the second promote waits' });
    const given = await approve(s, '1.4.0');
    assert.is(given.exitCode, 0, given.stderr);
    assert.is(await second.exited, 0, second.out.stderr);
    assert.match(second.out.stdout, /Promoted my-app 1\.4\.0 .* from staging to production: VERSION SEQ 1/);
    assert.is(s.hook.bodies.length, 1, 'the approvers were told once, by the first run');
    assert.is(entries(s.production).filter((e) => e.action === 'promote').length, 1, 'promoted once');

    await s.w.publish('1.5.0');
    const timedOut = waitingPromote(s, '1.5.0', '1s');
    assert.is(await timedOut.exited, 2, timedOut.out.stderr);
    assert.match(timedOut.out.stderr, /my-app 1\.5\.0 into production needs 1 approval.*Nothing was written/s);
    assert.is(parseVersionFile(readFileSync(path.join(s.production, 'VERSION'), 'utf8')).version, '1.4.0');
    const bad = await promote(s, '1.5.0', ['--wait', 'soon']);
    assert.is(bad.exitCode, 2);
    assert.match(bad.stderr, /--wait takes a duration such as 30s, 45m or 24h, got "soon"/);
  } finally {
    await s.hook.close();
    await s.w.server.close();
  }
});

test('--wait holds through a deny window and promotes when it ends, with no --override', async () => {
  const now = Date.now();
  const at = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
  const ends = Math.floor((now + 4_000) / 1000) * 1000;
  const s = await setUp(`{ deny: "${at(now - 60_000)} - ${at(ends)}", tz: UTC }`);
  try {
    await s.w.publish('1.4.0');
    assert.is((await approve(s, '1.4.0')).exitCode, 0);
    const r = waitingPromote(s, '1.4.0', '1m');
    assert.is(await r.exited, 0, r.out.stderr);
    assert.match(r.out.stderr, /Waiting up to .*: production is in a deny window/);
    const promoted = entries(s.production).at(-1)!;
    assert.ok(Date.parse(promoted.at) >= ends, `promoted at ${promoted.at}, the window ended ${at(ends)}`);
    assert.not.match(promoted.note ?? '', /overridden/);
  } finally {
    await s.hook.close();
    await s.w.server.close();
  }
});

test('an approval of 1.4.0 copied for 1.5.0 does not count; --force and --override need an approval of their own', async () => {
  const s = await setUp();
  try {
    await s.w.publish('1.4.0');
    assert.is((await approve(s, '1.4.0')).exitCode, 0);
    await s.w.publish('1.5.0');
    const folder = path.join(s.production, 'approvals');
    for (const name of readdirSync(folder))
      cpSync(path.join(folder, name), path.join(folder, name.replace('1.4.0', '1.5.0')));
    await refused(s, promote(s, '1.5.0'), /needs 1 approval; 0 given.*not counted: .*1\.4\.0/);
    await refused(s, promote(s, '1.5.0', ['--force', '--reason', 'hotfix']), /needs 1 approval; 0 given/);
    for (const name of readdirSync(folder).filter((n) => n.includes('1.5.0')))
      renameSync(path.join(folder, name), path.join(s.w.base, name));
    await refused(s, promote(s, '1.5.0', ['--override', '--reason', 'x']), /needs 1 approval/);
  } finally {
    await s.hook.close();
    await s.w.server.close();
  }
});

test('a deny window refuses the promote; --override --reason with an approval goes through, the reason kept', async () => {
  const now = Date.now();
  const at = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
  // With copy: true on production (so the promote copies, where it would link).
  const s = await setUp(`{ deny: "${at(now - 3_600_000)} - ${at(now + 3_600_000)}", tz: UTC }`, ['copy: true']);
  try {
    await s.w.publish('1.4.0');
    assert.is((await approve(s, '1.4.0')).exitCode, 0);
    await refused(
      s,
      promote(s, '1.4.0'),
      /production is in a deny window "20.*" \(UTC\) until 20.*: promote after it, or pass --override --reason TEXT/,
    );
    await refused(s, promote(s, '1.4.0', ['--override']), /--force and --override need --reason TEXT/);
    const r = await promote(s, '1.4.0', ['--override', '--reason', 'security fix, approved by alice']);
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(entries(s.production).at(-1)!.note ?? '', /overridden: security fix, approved by alice/);
    const tarball = 'my-app-gnu-linux-1.4.0.tar.gz';
    assert.is.not(statSync(path.join(s.production, tarball)).ino, statSync(path.join(s.w.updates, tarball)).ino);
    assert.is(sha256Of(path.join(s.production, tarball)), sha256Of(path.join(s.w.updates, tarball)));
  } finally {
    await s.hook.close();
    await s.w.server.close();
  }
});

test('bad input at config read: a bad time zone or range is exit 2 naming shipkit.yml:LINE, nothing written', async () => {
  for (const [window, message] of [
    [
      '{ deny: "Fri 15:00 - Mon 08:00", tz: Europe/Berln }',
      /shipkit\.yml:12: .*windows\[0\]: tz "Europe\/Berln" is not an IANA time zone/,
    ],
    ['{ deny: "Fri 25:00 - Mon 08:00" }', /shipkit\.yml:12: .*windows\[0\]: .*25:00 is not a time/],
  ] as const) {
    const s = await setUp(window);
    try {
      await s.w.publish('1.4.0');
      const staging = listing(s.w.updates);
      await refused(s, promote(s, '1.4.0'), message);
      assert.equal(listing(s.w.updates), staging, 'nothing written at staging');
    } finally {
      await s.hook.close();
      await s.w.server.close();
    }
  }
});

test.run();
