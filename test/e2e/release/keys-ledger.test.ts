// `release keys rotate|revoke --to DEST` (docs/release.md "Key changes at DEST") end to end, with
// the real `release` script and a key made by `release keys init`: keys.asc is placed at DEST and
// the change is a signed `keys` entry in its ledger; killed at every write, DEST's ledger still
// verifies against the keys.asc beside it; a launchfit host pinned to the primary takes the next
// release over a ledger with key entries; an unknown subkey, an edited ledger, no valid subkey
// left or a DEST without VERSION: exit 2 and nothing written, neither at DEST nor in DIR.
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readLedger } from '../../../lib/release/format/ledger.ts';
import { loadSigningKey, signDetached } from '../../../lib/release/format/signature.ts';
import { runScript, scriptCommand, tmpDir, waitFor, fileDigests } from '../../_helpers/common.ts';
import { APP_SOURCE } from '../../fixtures/launchfit/world.ts';
import { startUpdateServer } from '../../fixtures/launchfit/update-server.ts';

let base: string;
let passFile: string;
/** The key folder as `release keys init` made it (one subkey), and a copy rotated once (two). */
let keys0: string;
let keys1: string;
/** DEST with 1.0 and 1.1 published by keys0's subkey: two ledger entries. */
let dest0: string;
let primary: string;
let subkeys: string[];
let n = 0;

const fresh = (from: string) => {
  const to = path.join(base, `copy-${++n}`);
  cpSync(from, to, { recursive: true });
  return to;
};
const keysCli = (args: string[], env: Record<string, string> = {}) =>
  runScript('release', ['keys', ...args, '--passphrase-file', passFile], { env });
const publish = (keys: string, dest: string, version: string) => {
  const src = path.join(base, `src-${version}-${++n}`);
  mkdirSync(src);
  cpSync(APP_SOURCE, path.join(src, 'server.cjs'));
  writeFileSync(path.join(src, 'version.txt'), `${version}\n`);
  writeFileSync(path.join(src, 'launchify.yml'), 'app:\n  exec: node server.cjs\n  healthy_after: 0.5\n');
  return runScript('release', [
    'publish',
    src,
    '--name',
    'my-app',
    '--platform',
    'gnu-linux',
    '--version',
    version,
    '--key',
    path.join(keys, 'signing.asc'),
    '--passphrase-file',
    passFile,
    '--to',
    dest,
  ]);
};
/** `release history` as an operator runs it without --keys: against the keys.asc at DEST. */
const history = (dest: string) => runScript('release', ['history', 'my-app', '--from', dest, '--json']);
const entriesOf = (dest: string) => readLedger(readFileSync(path.join(dest, 'ledger.jsonl'))).entries;

test.before(async () => {
  base = tmpDir('shipkit-keys-ledger-');
  passFile = path.join(base, 'pass');
  writeFileSync(passFile, 'keys ledger pass\n');
  keys0 = path.join(base, 'keys0');
  const init = await keysCli(['init', '--out', keys0, '--expires', '30', '--json']);
  assert.is(init.exitCode, 0, init.stderr);
  const made = JSON.parse(init.stdout);
  primary = made.primary;
  subkeys = [made.subkey];
  dest0 = path.join(base, 'dest0');
  for (const v of ['1.0', '1.1']) {
    const r = await publish(keys0, dest0, v);
    assert.is(r.exitCode, 0, r.stderr);
  }
  // The rotated subkey is created in a later second than the first, so it is the one that signs.
  await new Promise((res) => setTimeout(res, 1100));
  keys1 = fresh(keys0);
  const rotated = await keysCli(['rotate', '--dir', keys1, '--json']);
  assert.is(rotated.exitCode, 0, rotated.stderr);
  subkeys.push(JSON.parse(rotated.stdout).subkey);
});

test('rotate --to: keys.asc placed, an entry signed by the new subkey; history, rollback and a host go on', async () => {
  const keys = fresh(keys0);
  const dest = fresh(dest0);
  const server = await startUpdateServer(dest);
  try {
    const host = path.join(base, 'host-rotate');
    mkdirSync(host);
    writeFileSync(
      path.join(host, 'launchify.yml'),
      `app:\n  env:\n    PORT: 1\nupdates:\n  server: ${server.url}\n  interval: 3600\n  gpg:\n    key: "${primary}"\n`,
    );
    const deployed = await runScript('launchfit', ['deploy', '--dir', host]);
    assert.is(deployed.exitCode, 0, deployed.stderr);
    const r = await keysCli(['rotate', '--dir', keys, '--to', dest]);
    assert.is(r.exitCode, 0, r.stderr);
    const entries = entriesOf(dest);
    const entry = entries[2];
    assert.equal(
      [entry.n, entry.action, entry.app, entry.version, entry.seq, entry.sha256],
      [3, 'keys', 'my-app', null, null, null],
    );
    const subkey = entry.note!.match(/^rotate: new signing subkey ([0-9a-f]{40}), expires \d{4}-\d\d-\d\dT/)?.[1];
    assert.ok(subkey, entry.note!);
    assert.is(entry.signer, subkey, 'signed by the new subkey');
    assert.match(r.stdout, new RegExp(`placed it at ${dest}; ledger entry 3: rotate: new signing subkey ${subkey}`));
    assert.is(readFileSync(path.join(dest, 'keys.asc'), 'utf8'), readFileSync(path.join(keys, 'keys.asc'), 'utf8'));
    assert.is(readFileSync(path.join(dest, 'pubkey.asc'), 'utf8'), readFileSync(path.join(keys, 'keys.asc'), 'utf8'));
    // history reads past the key entry: the same releases, nothing marked bad by it.
    const h = await history(dest);
    assert.is(h.exitCode, 0, h.stderr);
    const rows = JSON.parse(h.stdout);
    assert.is(rows.entries, 3);
    assert.equal(
      rows.releases.map((x: any) => [x.version, x.state]),
      [
        ['1.1', 'current'],
        ['1.0', 'previous'],
      ],
    );
    assert.equal(
      rows.keys.map((k: any) => [k.n, k.note]),
      [[3, entry.note]],
      'the key change is listed apart from the releases',
    );
    const shown = await runScript('release', ['history', 'my-app', '--from', dest]);
    assert.match(shown.stdout, `key change (entry 3)`);
    // A rollback after it signs with the new subkey and chains on.
    const back = await runScript('release', [
      'rollback',
      'my-app',
      '--to',
      dest,
      '--version',
      '1.0',
      '--key',
      path.join(keys, 'signing.asc'),
      '--passphrase-file',
      passFile,
    ]);
    assert.is(back.exitCode, 0, back.stderr);
    assert.equal(
      entriesOf(dest).map((e) => [e.n, e.action, e.signer === subkey]),
      [
        [1, 'publish', false],
        [2, 'publish', false],
        [3, 'keys', true],
        [4, 'rollback', true],
      ],
    );
    // The host, pinned to the primary only, takes a release over the ledger with the key entry.
    const next = await publish(keys, dest, '1.2');
    assert.is(next.exitCode, 0, next.stderr);
    const u = await runScript('launchfit', ['update', '--dir', host]);
    assert.is(u.exitCode, 0, u.stdout + u.stderr);
    const state = JSON.parse(readFileSync(path.join(host, '.launchfit/state.json'), 'utf8'));
    assert.is(state.ledger.n, 5, 'the host verified the ledger up to the publish after the key entry');
    assert.ok(state.installed['my-app-gnu-linux-1.2'], JSON.stringify(state.installed));
  } finally {
    await server.close();
  }
});

/** Runs `release keys ARGS` until it pauses at `step`, checks DEST with `release history`, kills it. */
async function historyWhenPausedAt(args: string[], dest: string, step: string): Promise<void> {
  const [cmd, ...pre] = scriptCommand('release');
  const child = spawn(cmd, [...pre, 'keys', ...args, '--passphrase-file', passFile], {
    env: { ...process.env, SHIPKIT_TEST_PAUSE_AT: step, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await waitFor(() => err.includes(`paused at ${step}`) || child.exitCode !== null, {
      timeoutMs: 60_000,
      what: `release keys ${args[0]} to reach ${step}`,
    });
    assert.is(child.exitCode, null, `${args[0]} at ${step}: ${err}`);
    const h = await history(dest);
    assert.is(h.exitCode, 0, `${args[0]} paused at ${step}: ${h.stderr}`);
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

test('killed at every write, DEST verifies: rotate puts keys.asc first, revoke the entry first', async () => {
  const steps = ['keys.asc', 'ledger.jsonl.sig(both)', 'ledger.jsonl', 'ledger.jsonl.sig'];
  for (const step of steps) {
    const dest = fresh(dest0);
    await historyWhenPausedAt(['rotate', '--dir', fresh(keys0), '--to', dest], dest, step);
  }
  // keys1 knows a second subkey dest0's keys.asc does not: revoke places the unrevoked keys.asc
  // first, the entry (signed by that second subkey) next, the revocation last.
  for (const step of [...steps, 'pubkey.asc']) {
    const dest = fresh(dest0);
    await historyWhenPausedAt(['revoke', subkeys[0], '--dir', fresh(keys1), '--to', dest], dest, step);
  }
  // The other order would not do: the revoking keys.asc beside a ledger its revoked subkey signed last.
  const keys = fresh(keys1);
  assert.is((await keysCli(['revoke', subkeys[0], '--dir', keys])).exitCode, 0);
  const dest = fresh(dest0);
  cpSync(path.join(keys, 'keys.asc'), path.join(dest, 'keys.asc'));
  const h = await history(dest);
  assert.is(h.exitCode, 2, h.stderr);
  assert.match(h.stderr, new RegExp(`ledger entry 2: .* last signed by subkey ${subkeys[0]}, which is revoked`));
});

test('revoke --to: the entry is signed by the valid subkey; a VERSION signed by the revoked one is called out', async () => {
  const keys = fresh(keys1);
  const dest = fresh(dest0);
  const r = await keysCli(['revoke', subkeys[0], '--dir', keys, '--to', dest, '--reason', 'compromised']);
  assert.is(r.exitCode, 0, r.stderr);
  const entry = entriesOf(dest)[2];
  assert.equal(
    [entry.n, entry.action, entry.signer, entry.note],
    [3, 'keys', subkeys[1], `revoke: subkey ${subkeys[0]}, reason compromised`],
  );
  assert.is(readFileSync(path.join(dest, 'keys.asc'), 'utf8'), readFileSync(path.join(keys, 'keys.asc'), 'utf8'));
  assert.match(r.stderr, new RegExp(`warning: VERSION at .* is signed by the revoked subkey ${subkeys[0]}`));
  const listed = await runScript('release', ['keys', 'list', '--dir', keys, '--json']);
  assert.is(JSON.parse(listed.stdout).subkeys[0].revoked, 'compromised');
  const h = await history(dest);
  assert.is(h.exitCode, 0, h.stderr);
  // Publishing again with the key folder clears the warning's cause: the next VERSION is signed by subkey 2.
  const next = await publish(keys, dest, '1.2');
  assert.is(next.exitCode, 0, next.stderr);
  assert.is(entriesOf(dest)[3].signer, subkeys[1]);
});

test('refused with exit 2, nothing written at DEST or in DIR: an unknown subkey, an edited ledger, no valid subkey left, no VERSION', async () => {
  const cases: Array<[string, (keys: string, dest: string) => Promise<string[]>, RegExp]> = [
    [
      'revoke of a subkey the key does not have',
      async (keys, dest) => ['revoke', 'ab'.repeat(20), '--dir', keys, '--to', dest],
      /has no subkey abab/,
    ],
    [
      'rotate to a DEST whose ledger was edited',
      async (keys, dest) => {
        const lines = readFileSync(path.join(dest, 'ledger.jsonl'), 'utf8').trim().split('\n');
        const edited = JSON.parse(lines[0]);
        edited.by = 'someone-else@host';
        const text = Buffer.from(`${JSON.stringify(edited)}\n${lines[1]}\n`);
        writeFileSync(path.join(dest, 'ledger.jsonl'), text);
        const key = await loadSigningKey(path.join(keys, 'signing.asc'), passFile);
        writeFileSync(path.join(dest, 'ledger.jsonl.sig'), await signDetached(key, { data: text }));
        return ['rotate', '--dir', keys, '--to', dest];
      },
      /ledger entry 2: does not follow entry 1/,
    ],
    [
      'revoke of the only valid subkey',
      async (keys, dest) => ['revoke', subkeys[0], '--dir', keys, '--to', dest],
      /No signing subkey stays valid after this change/,
    ],
    [
      'rotate to a folder with no VERSION',
      async (keys) => {
        const empty = path.join(base, `empty-${++n}`);
        mkdirSync(empty);
        return ['rotate', '--dir', keys, '--to', empty];
      },
      /has no VERSION; publish a release there first/,
    ],
  ];
  for (const [label, make, message] of cases) {
    const keys = fresh(keys0);
    const dest = fresh(dest0);
    const args = await make(keys, dest);
    const target = args[args.length - 1];
    const before = { dest: fileDigests(target), keys: fileDigests(keys) };
    const r = await keysCli(args);
    assert.is(r.exitCode, 2, `${label}: ${r.stderr}`);
    assert.match(r.stderr, message, label);
    assert.equal(fileDigests(target), before.dest, `${label}: nothing written at DEST`);
    assert.equal(fileDigests(keys), before.keys, `${label}: the key folder unchanged`);
  }
});

test.run();
