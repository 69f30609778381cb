// The release ledger end to end, with real processes, gpg keys and HTTP on loopback: publish,
// rollback and history write and read ledger.jsonl; a removed, reordered, edited or forged entry
// is refused with its number by `release history` and by a launchfit host; a host refuses an
// older ledger put back; rollback takes versions only from the ledger; a publisher killed -9
// leaves no trace, and a second one at the same time fails while the first holds DEST.
import { spawn } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readLedger } from '../../../lib/release/format/ledger.ts';
import { loadSigningKey, signDetached } from '../../../lib/release/format/signature.ts';
import { runScript, scriptCommand, waitFor } from '../../_helpers/common.ts';
import { makeWorld, statusOf, type World } from '../../fixtures/launchfit/world.ts';

const history = (w: World, dest = w.updates, extra: string[] = []) =>
  runScript('release', ['history', 'my-app', '--from', dest, '--keys', w.pubAsc, ...extra]);
const rollback = (w: World, extra: string[]) =>
  runScript('release', [
    'rollback',
    'my-app',
    '--to',
    w.updates,
    '--key',
    w.secretKey,
    '--passphrase-file',
    w.passFile,
    ...extra,
  ]);
/** `release publish` of the world's app VERSION to its update folder, as a user types it. */
const publishArgs = (w: World, version: string, extra: string[] = []) => [
  'publish',
  w.makeApp(version),
  '--name',
  'my-app',
  '--platform',
  'gnu-linux',
  '--version',
  version,
  '--key',
  w.secretKey,
  '--passphrase-file',
  w.passFile,
  '--to',
  w.updates,
  ...extra,
];
const ledgerLines = (dest: string) => readFileSync(path.join(dest, 'ledger.jsonl'), 'utf8').trim().split('\n');
const update = (w: World) => runScript('launchfit', ['update', '--dir', w.deploy]);

/** Rewrites DEST's ledger to `lines` and signs it with the world's (valid) key: only the chain can tell. */
async function resign(w: World, lines: string[], dest = w.updates): Promise<void> {
  const text = Buffer.from(`${lines.join('\n')}\n`);
  writeFileSync(path.join(dest, 'ledger.jsonl'), text);
  const key = await loadSigningKey(w.secretKey, w.passFile);
  writeFileSync(path.join(dest, 'ledger.jsonl.sig'), await signDetached(key, { data: text }));
}

test('history lists the releases newest first; rollback goes back by the ledger and marks what it left', async () => {
  const w = await makeWorld();
  try {
    for (const v of ['1.0', '1.1', '1.2']) await w.publish(v);
    let h = await history(w, w.updates, ['--json']);
    assert.is(h.exitCode, 0, h.stderr);
    let rows = JSON.parse(h.stdout).releases;
    assert.equal(
      rows.map((r: any) => [r.version, r.state, r.n]),
      [
        ['1.2', 'current', 3],
        ['1.1', 'previous', 2],
        ['1.0', 'previous', 1],
      ],
    );
    const list = await rollback(w, ['--list', '--json']);
    assert.is(list.exitCode, 0, list.stderr);
    assert.equal(
      JSON.parse(list.stdout).map((r: any) => r.version),
      ['1.1', '1.0'],
    );
    const back = await rollback(w, ['--version', '1.1']);
    assert.is(back.exitCode, 0, back.stderr);
    const entry = JSON.parse(ledgerLines(w.updates)[3]);
    assert.equal([entry.n, entry.action, entry.version, entry.from, entry.seq], [4, 'rollback', '1.1', '1.2', 4]);
    h = await history(w);
    assert.is(h.exitCode, 0, h.stderr);
    assert.match(h.stdout, /1\.2 +rolled back/);
    assert.match(h.stdout, /1\.1 +current/);
    // 1.2 is bad now: published again as 1.3 on top, a rollback to 1.2 is refused with the entry.
    await w.publish('1.3');
    const refused = await rollback(w, ['--version', '1.2']);
    assert.is(refused.exitCode, 2, refused.stderr);
    assert.match(refused.stderr, /ledger entry 4: marks my-app 1\.2 bad/);
    // A version the ledger never saw.
    const unknown = await rollback(w, ['--version', '0.9']);
    assert.is(unknown.exitCode, 2);
    assert.match(unknown.stderr, /my-app 0\.9 is not in the ledger/);
    // A tarball at DEST that is not the one its entry names (signed by the key, so only the ledger knows).
    const file = path.join(w.updates, 'my-app-gnu-linux-1.0.tar.gz');
    writeFileSync(file, readFileSync(path.join(w.updates, 'my-app-gnu-linux-1.1.tar.gz')));
    const key = await loadSigningKey(w.secretKey, w.passFile);
    writeFileSync(`${file}.sig`, await signDetached(key, { file }));
    const before = readFileSync(path.join(w.updates, 'ledger.jsonl'));
    const swapped = await rollback(w, ['--version', '1.0']);
    assert.is(swapped.exitCode, 2, swapped.stderr);
    assert.match(
      swapped.stderr,
      /ledger entry 1: names my-app-gnu-linux-1\.0\.tar\.gz with sha256 [0-9a-f]{64}, but the file/,
    );
    assert.equal(readFileSync(path.join(w.updates, 'ledger.jsonl')), before, 'nothing written');
  } finally {
    await w.server.close();
  }
});

test('names with newlines and escapes are stored escaped and shown escaped', async () => {
  const w = await makeWorld();
  try {
    const ref = 'refs/tags/v1\n\u001b[2J../../x';
    const r = await runScript(
      'release',
      publishArgs(w, '1.0', ['--source-repo', 'octo/\u001b[31mred', '--source-ref', ref]),
      { env: { SHIPKIT_JOB_ID: undefined } },
    );
    assert.is(r.exitCode, 0, r.stderr);
    const raw = readFileSync(path.join(w.updates, 'ledger.jsonl'), 'utf8');
    assert.is(raw.split('\n').length, 2, 'one line: the newline is escaped');
    assert.ok(!raw.includes('\u001b'), 'no raw ESC in the file');
    assert.is(JSON.parse(raw).source.ref, ref);
    const h = await history(w);
    assert.is(h.exitCode, 0, h.stderr);
    assert.ok(!h.stdout.includes('\u001b'), 'no raw ESC on the terminal');
    assert.match(h.stdout, /octo\/\\u001b\[31mred refs\/tags\/v1\\u000a\\u001b\[2J\.\.\/\.\.\/x/);
  } finally {
    await w.server.close();
  }
});

test('a removed, reordered, edited or forged entry is refused with its number, by history and by a host', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    w.writeConfig();
    const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
    assert.is(deployed.exitCode, 0, deployed.stderr);
    for (const v of ['1.1', '1.2', '1.3']) await w.publish(v);
    const good = path.join(w.base, 'good');
    cpSync(w.updates, good, { recursive: true });
    const lines = ledgerLines(good);
    const edited = JSON.parse(lines[1]);
    edited.by = 'someone-else@host';
    const cases: Array<[string, () => Promise<void>, RegExp]> = [
      [
        'removed',
        () => resign(w, [lines[0], lines[2], lines[3]]),
        /ledger entry 2: is numbered 3: an entry was removed or moved/,
      ],
      ['reordered', () => resign(w, [lines[0], lines[2], lines[1], lines[3]]), /ledger entry 2: is numbered 3/],
      [
        'edited',
        () => resign(w, [lines[0], JSON.stringify(edited), lines[2], lines[3]]),
        /ledger entry 3: does not follow entry 2/,
      ],
      [
        'forged (not signed by the key)',
        async () => {
          const forged = JSON.parse(lines[3]);
          forged.n = 5;
          writeFileSync(path.join(w.updates, 'ledger.jsonl'), `${lines.join('\n')}\n${JSON.stringify(forged)}\n`);
        },
        /not a signature of its ledger\.jsonl|ledger entry 5/,
      ],
    ];
    for (const [label, tamper, expected] of cases) {
      cpSync(good, w.updates, { recursive: true });
      await tamper();
      const h = await history(w);
      assert.is(h.exitCode, 2, `${label}: ${h.stderr}`);
      assert.match(h.stderr, expected, label);
      const u = await update(w);
      assert.is(u.exitCode, 1, `${label}: ${u.stderr}`);
      assert.match(u.stderr, /ledger/, label);
      assert.match((await statusOf(w.deploy)).current ?? '', /1\.0/, `${label}: still on 1.0`);
    }
    // The genuine ledger: the host takes 1.3 and remembers entry 4.
    cpSync(good, w.updates, { recursive: true });
    const u = await update(w);
    assert.is(u.exitCode, 0, u.stderr);
    // An older ledger put back (the 3-entry one of a copy) beside a new VERSION: refused.
    const older = [lines[0], lines[1], lines[2]];
    await w.publish('1.4');
    await resign(w, older);
    const put = await update(w);
    assert.is(put.exitCode, 1, put.stderr);
    assert.match(
      put.stderr,
      /ledger entry 3: the ledger ends at entry 3, but entry 4 was seen before: an older ledger was put back/,
    );
    // And without any ledger at all.
    writeFileSync(path.join(w.updates, 'ledger.jsonl'), '');
    const none = await update(w);
    assert.is(none.exitCode, 1, none.stderr);
  } finally {
    await w.server.close();
  }
});

test('a host reads only the entries appended since its last check, else the whole ledger', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    w.writeConfig();
    const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
    assert.is(deployed.exitCode, 0, deployed.stderr);
    const seenBytes = readFileSync(path.join(w.updates, 'ledger.jsonl')).length;
    await w.publish('1.1');
    w.server.requests.length = 0;
    let u = await update(w);
    assert.is(u.exitCode, 0, u.stderr);
    const ledgerGets = () => w.server.requests.filter((r) => r.path === 'ledger.jsonl' || r.path === 'ledger.head.sig');
    assert.equal(
      ledgerGets().map((r) => [r.path, r.range ?? null, r.status]),
      [
        ['ledger.jsonl', `bytes=${seenBytes}-`, 206],
        ['ledger.head.sig', null, 200],
      ],
      'the tail and the head signature, not the whole ledger',
    );
    assert.match((await statusOf(w.deploy)).current ?? '', /1\.1/);

    // A head signature that does not vouch for the new head (another line's): the whole ledger decides.
    const secondBytes = readFileSync(path.join(w.updates, 'ledger.jsonl')).length;
    const oldHeadSig = readFileSync(path.join(w.updates, 'ledger.head.sig'));
    await w.publish('1.2');
    writeFileSync(path.join(w.updates, 'ledger.head.sig'), oldHeadSig);
    w.server.requests.length = 0;
    u = await update(w);
    assert.is(u.exitCode, 0, u.stderr);
    assert.equal(
      ledgerGets().map((r) => [r.path, r.range ?? null, r.status]),
      [
        ['ledger.jsonl', `bytes=${secondBytes}-`, 206],
        ['ledger.head.sig', null, 200],
        ['ledger.jsonl', null, 200],
      ],
    );
    assert.match((await statusOf(w.deploy)).current ?? '', /1\.2/);
  } finally {
    await w.server.close();
  }
});

test("history takes the head line's signature with the chain, else the whole file's", async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    const staleHeadSig = readFileSync(path.join(w.updates, 'ledger.head.sig'));
    await w.publish('1.1');
    const good = path.join(w.base, 'good');
    cpSync(w.updates, good, { recursive: true });
    const cases: Array<[string, () => void, RegExp | undefined]> = [
      ["no ledger.head.sig: the whole file's", () => rmSync(path.join(w.updates, 'ledger.head.sig')), undefined],
      [
        "a stale ledger.head.sig (entry 1's): the whole file's",
        () => writeFileSync(path.join(w.updates, 'ledger.head.sig'), staleHeadSig),
        undefined,
      ],
      [
        'ledger.jsonl.sig spoilt, the head signed: the chain and the head vouch',
        () => writeFileSync(path.join(w.updates, 'ledger.jsonl.sig'), staleHeadSig),
        undefined,
      ],
      [
        'both stale: refused',
        () => {
          writeFileSync(path.join(w.updates, 'ledger.head.sig'), staleHeadSig);
          writeFileSync(path.join(w.updates, 'ledger.jsonl.sig'), staleHeadSig);
        },
        /ledger\.jsonl\.sig at .* is not a signature of its ledger\.jsonl \(2 entries\)/,
      ],
    ];
    for (const [label, tamper, refused] of cases) {
      cpSync(good, w.updates, { recursive: true });
      tamper();
      const h = await history(w, w.updates, ['--json']);
      if (refused) {
        assert.is(h.exitCode, 2, `${label}: ${h.stderr}`);
        assert.match(h.stderr, refused, label);
        assert.is(h.stdout, '', label);
      } else {
        assert.is(h.exitCode, 0, `${label}: ${h.stderr}`);
        assert.equal(
          JSON.parse(h.stdout).releases.map((r: any) => r.version),
          ['1.1', '1.0'],
          label,
        );
      }
    }
  } finally {
    await w.server.close();
  }
});

test('kill -9 of a rollback mid-ledger leaves the old ledger; a publish meanwhile is refused; the chain goes on', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    await w.publish('1.1');
    const before = readFileSync(path.join(w.updates, 'ledger.jsonl'));
    const [cmd, ...pre] = scriptCommand('release');
    const args = ['rollback', 'my-app', '--to', w.updates, '--key', w.secretKey, '--passphrase-file', w.passFile];
    const child = spawn(cmd, [...pre, ...args], {
      env: { ...process.env, SHIPKIT_TEST_PAUSE_AT: 'ledger.jsonl:temp', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await waitFor(() => err.includes('paused at ledger.jsonl:temp') || child.exitCode !== null, {
      timeoutMs: 60_000,
      what: 'release rollback to reach ledger.jsonl:temp',
    });
    assert.is(child.exitCode, null, err);
    // A second writer while the first holds DEST: refused, nothing written.
    const second = await runScript('release', publishArgs(w, '1.2'));
    assert.is(second.exitCode, 1, second.stderr);
    assert.match(second.stderr, /another release publish, rollout or rollback is writing it/);
    child.kill('SIGKILL');
    await exited;
    assert.equal(readFileSync(path.join(w.updates, 'ledger.jsonl')), before, 'the ledger as it was');
    // The dead writer's lock is taken over; the chain continues from entry 2.
    await w.publish('1.2');
    const ledger = readLedger(readFileSync(path.join(w.updates, 'ledger.jsonl')));
    assert.equal(
      ledger.entries.map((e) => [e.n, e.action, e.version]),
      [
        [1, 'publish', '1.0'],
        [2, 'publish', '1.1'],
        [3, 'publish', '1.2'],
      ],
    );
    assert.is((await history(w)).exitCode, 0);
  } finally {
    await w.server.close();
  }
});

test.run();
