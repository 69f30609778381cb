// @deno
// `release publish` as a child process: usage errors exit 2, a publish writes the contract's
// files, and gpgv accepts the signatures. With `release keys`: keys.asc beside signing.asc is
// published beside VERSION, and a certificate of another key, or one in which the signing
// subkey is revoked, is refused before anything is written.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCommand, runScript, tmpDir } from '../../_helpers/common.ts';
import { makeGpgHome, makePublisher } from '../../fixtures/launchfit/gpg.ts';

let base: string;
let secret: string;
let passFile: string;
let keyring: string;
let src: string;

test.before(async () => {
  base = tmpDir();
  ({ secret, passFile, keyring } = await makePublisher(base, 'pw'));
  src = path.join(base, 'app');
  mkdirSync(src);
  writeFileSync(path.join(src, 'server.js'), 'console.log(1)\n');
});

test('release publish --help', async () => {
  const r = await runScript('release', ['publish', '--help']);
  assert.is(r.exitCode, 0);
  assert.match(r.stdout, /release publish DIR --name APP --platform PLATFORM --version V/);
  assert.match(r.stdout, /--passphrase-file/);
});

test('usage errors exit 2 and write nothing', async () => {
  const to = path.join(base, 'never');
  const cases: Array<[string[], RegExp]> = [
    [[src, '--platform', 'gnu-linux', '--key', secret, '--to', to], /Missing --name/],
    [[src, '--name', '../x', '--platform', 'gnu-linux', '--key', secret, '--to', to], /Invalid app name/],
    [
      [
        src,
        '--name',
        'app',
        '--platform',
        'gnu-linux',
        '--version',
        '1.0',
        '--key',
        secret,
        '--to',
        to,
        '--keep',
        'many',
      ],
      /--keep must be a whole number/,
    ],
    [['--name', 'app'], /Missing argument|Usage/],
  ];
  for (const [args, pattern] of cases) {
    const r = await runScript('release', ['publish', ...args]);
    assert.is(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
  const wrongKey = await runScript('release', [
    'publish',
    src,
    '--name',
    'app',
    '--platform',
    'gnu-linux',
    '--version',
    '1.0',
    '--key',
    path.join(base, 'nope.asc'),
    '--to',
    to,
  ]);
  assert.is(wrongKey.exitCode, 2, wrongKey.stderr);
  assert.match(wrongKey.stderr, /Cannot read the secret key/);
  const badVersion = await runScript('release', [
    'publish',
    src,
    '--name',
    'app',
    '--platform',
    'gnu-linux',
    '--version',
    '1.0-rc1',
    '--key',
    secret,
    '--to',
    to,
  ]);
  assert.is(badVersion.exitCode, 2, badVersion.stderr);
  assert.match(badVersion.stderr, /hexadecimal/);
  assert.throws(() => readdirSync(to));
});

test('release publish DIR --version V … publishes what gpgv accepts', async () => {
  const to = path.join(base, 'updates');
  const args = [
    'publish',
    src,
    '--name',
    'my-app',
    '--platform',
    'gnu-linux',
    '--version',
    '2.a',
    '--key',
    secret,
    '--passphrase-file',
    passFile,
    '--to',
    to,
    '--codename',
    'soda',
    '--json',
  ];
  // No source repo (no --source-repo, no SHIPKIT_REPO): no provenance.
  const r = await runScript('release', args, { env: { SHIPKIT_REPO: undefined } });
  assert.is(r.exitCode, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.is(result.file, 'my-app-gnu-linux-2.a.tar.gz');
  assert.equal(readdirSync(to).sort(), [
    'VERSION',
    'VERSION.sig',
    'keys.asc',
    'ledger.head.sig',
    'ledger.jsonl',
    'ledger.jsonl.sig',
    'my-app-gnu-linux-2.a.index', // where each file is in the tarball, for delta updates
    'my-app-gnu-linux-2.a.manifest', // for delta updates; the first release has no patch
    'my-app-gnu-linux-2.a.tar.gz',
    'my-app-gnu-linux-2.a.tar.gz.sig',
    'pubkey.asc',
  ]);
  assert.match(
    readFileSync(path.join(to, 'VERSION'), 'utf8'),
    /^CURRENT 2\.a my-app-gnu-linux-2\.a\.tar\.gz\nRELEASE soda\nSHA256 [0-9a-f]{64}\nSIZE \d+\nEXPIRES /,
  );
  // The tarball, and the ledger's first entry signed as a whole file, by the same key.
  for (const file of ['my-app-gnu-linux-2.a.tar.gz', 'ledger.jsonl']) {
    const v = await runCommand('gpgv', ['--keyring', keyring, path.join(to, `${file}.sig`), path.join(to, file)]);
    assert.is(v.exitCode, 0, `${file}: ${v.stderr}`);
  }
  const [entry] = readFileSync(path.join(to, 'ledger.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(
    [entry.n, entry.prev, entry.action, entry.app, entry.version, entry.seq],
    [1, '0'.repeat(64), 'publish', 'my-app', '2.a', 1],
  );
  assert.is(entry.sha256, result.sha256);
  assert.is(entry.note, 'soda');
});

test('release publish --source-repo/--source-ref/--source-commit, else SHIPKIT_REPO/TAG/SHA: APP-PLATFORM-V.intoto.jsonl that gpgv accepts over the DSSE PAE', async () => {
  const to = path.join(base, 'updates-prov');
  const common = [
    'publish',
    src,
    '--name',
    'my-app',
    '--platform',
    'gnu-linux',
    '--key',
    secret,
    '--passphrase-file',
    passFile,
    '--to',
    to,
  ];
  const statementOf = (version: string) => {
    const lines = readFileSync(path.join(to, `my-app-gnu-linux-${version}.intoto.jsonl`), 'utf8')
      .split('\n')
      .filter(Boolean);
    assert.is(lines.length, 1);
    return JSON.parse(lines[0]);
  };
  const commit = 'a'.repeat(40);
  const flags = await runScript(
    'release',
    [
      ...common,
      '--version',
      '1.0',
      '--source-repo',
      'https://git.example/octo/site',
      '--source-ref',
      'refs/tags/v1.0',
      '--source-commit',
      commit,
      '--builder-id',
      'https://ci.example/runner',
    ],
    { env: { SHIPKIT_REPO: 'ignored/repo' } },
  );
  assert.is(flags.exitCode, 0, flags.stderr);
  const envelope = statementOf('1.0');
  assert.is(envelope.payloadType, 'application/vnd.in-toto+json');
  const body = Buffer.from(envelope.payload, 'base64');
  const statement = JSON.parse(body.toString());
  const sha256 = createHash('sha256')
    .update(readFileSync(path.join(to, 'my-app-gnu-linux-1.0.tar.gz')))
    .digest('hex');
  assert.equal(statement.subject, [{ name: 'my-app-gnu-linux-1.0.tar.gz', digest: { sha256 } }]);
  assert.equal(statement.predicate.buildDefinition.externalParameters.source, {
    repository: 'https://git.example/octo/site',
    ref: 'refs/tags/v1.0',
    commit,
  });
  assert.is(statement.predicate.runDetails.builder.id, 'https://ci.example/runner');
  const pae = path.join(base, 'e2e-pae.bin');
  const sig = path.join(base, 'e2e-pae.sig');
  writeFileSync(pae, Buffer.concat([Buffer.from(`DSSEv1 28 application/vnd.in-toto+json ${body.length} `), body]));
  writeFileSync(sig, Buffer.from(envelope.signatures[0].sig, 'base64'));
  const v = await runCommand('gpgv', ['--keyring', keyring, sig, pae]);
  assert.is(v.exitCode, 0, v.stderr);

  const fromEnv = await runScript('release', [...common, '--version', '1.1'], {
    env: {
      SHIPKIT_REPO: 'octo/site',
      SHIPKIT_TAG: 'v1.1',
      SHIPKIT_SHA: commit,
      SHIPKIT_BUILD_STARTED: '2030-01-01T00:00:00Z',
    },
  });
  assert.is(fromEnv.exitCode, 0, fromEnv.stderr);
  const s2 = JSON.parse(Buffer.from(statementOf('1.1').payload, 'base64').toString());
  assert.equal(s2.predicate.buildDefinition.externalParameters.source, {
    repository: 'octo/site',
    ref: 'refs/tags/v1.1',
    commit,
  });
  assert.is(s2.predicate.runDetails.metadata.startedOn, '2030-01-01T00:00:00.000Z');
});

test('release keys init, then release publish --key DIR/signing.asc publishes DIR/keys.asc beside VERSION', async () => {
  const keys = path.join(base, 'release-key');
  const init = await runScript('release', ['keys', 'init', '--out', keys, '--passphrase-file', passFile]);
  assert.is(init.exitCode, 0, init.stderr);
  assert.match(
    init.stdout,
    /^primary [0-9a-f]{40} \(certify only; hosts pin this: updates\.gpg\.key\)\n {2}subkey [0-9a-f]{40} .* valid {2}<- new\n/,
  );
  const to = path.join(base, 'keyed');
  const r = await runScript('release', [
    'publish',
    src,
    '--name',
    'my-app',
    '--platform',
    'gnu-linux',
    '--version',
    '1.0',
    '--key',
    path.join(keys, 'signing.asc'),
    '--passphrase-file',
    passFile,
    '--to',
    to,
  ]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(readFileSync(path.join(to, 'keys.asc'), 'utf8'), readFileSync(path.join(keys, 'keys.asc'), 'utf8'));
  assert.is(
    readFileSync(path.join(to, 'pubkey.asc'), 'utf8'),
    readFileSync(path.join(keys, 'keys.asc'), 'utf8'),
    'older hosts read the same certificate',
  );
  const g = makeGpgHome();
  await g.gpg('--import', path.join(to, 'keys.asc'));
  await g.gpg(
    '--verify',
    path.join(to, 'my-app-gnu-linux-1.0.tar.gz.sig'),
    path.join(to, 'my-app-gnu-linux-1.0.tar.gz'),
  );
});

test('a keys.asc of another key, or in which the signing subkey is revoked: exit 2, nothing published', async () => {
  const keys = path.join(base, 'release-key');
  const publishWith = (key: string, extra: string[], to: string) =>
    runScript('release', [
      'publish',
      src,
      '--name',
      'my-app',
      '--platform',
      'gnu-linux',
      '--version',
      '1.1',
      '--key',
      key,
      '--passphrase-file',
      passFile,
      '--to',
      to,
      ...extra,
    ]);
  const other = await publishWith(secret, ['--keys', path.join(keys, 'keys.asc')], path.join(base, 'never-1'));
  assert.is(other.exitCode, 2, other.stderr);
  assert.match(
    other.stderr,
    /keys\.asc is the certificate of key [0-9a-f]{40}, but the release is signed by key [0-9a-f]{40}/,
  );
  assert.not.ok(existsSync(path.join(base, 'never-1')));
  // A build machine whose signing.asc is older than the revocation made offline.
  const stale = path.join(base, 'stale');
  mkdirSync(stale);
  copyFileSync(path.join(keys, 'signing.asc'), path.join(stale, 'signing.asc'));
  const list = JSON.parse((await runScript('release', ['keys', 'list', '--dir', keys, '--json'])).stdout);
  await runScript('release', ['keys', 'rotate', '--dir', keys, '--passphrase-file', passFile]);
  const revoke = await runScript('release', [
    'keys',
    'revoke',
    list.subkeys[0].fingerprint,
    '--dir',
    keys,
    '--reason',
    'compromised',
    '--passphrase-file',
    passFile,
  ]);
  assert.is(revoke.exitCode, 0, revoke.stderr);
  assert.match(revoke.stdout, /revoked \(compromised\) {2}<- revoked now/);
  copyFileSync(path.join(keys, 'keys.asc'), path.join(stale, 'keys.asc'));
  const revoked = await publishWith(path.join(stale, 'signing.asc'), [], path.join(base, 'never-2'));
  assert.is(revoked.exitCode, 2, revoked.stderr);
  assert.match(
    revoked.stderr,
    new RegExp(
      `The subkey ${list.subkeys[0].fingerprint} that would sign is not valid in .*keys\\.asc \\(revoked, expired or missing there\\)`,
    ),
  );
  assert.not.ok(existsSync(path.join(base, 'never-2')));
  const fresh = await publishWith(path.join(keys, 'signing.asc'), [], path.join(base, 'after-rotation'));
  assert.is(fresh.exitCode, 0, fresh.stderr);
});

test.run();
