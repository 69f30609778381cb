// `release diff` as a child process, on releases made by real `release publish` runs (gpg-made
// key, a real git repo whose commits reach the provenance through SHIPKIT_REPO/SHA/TAG): the
// commits, files and package-lock dependencies between two releases, as text and as JSON; and
// every hostile input refused with exit 2, its message, nothing printed and DEST untouched.
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadSigningKey, signDetached } from '../../../lib/release/format/signature.ts';
import { git, runScript, tmpDir, fileDigests } from '../../_helpers/common.ts';
import { exportPublic, makePublisher } from '../../fixtures/launchfit/gpg.ts';

let base: string;
let secret: string;
let passFile: string;
let repo: string;
/** DEST as the two publishes left it; each test works on a copy. */
let good: string;
let commits: string[];

const lock = (packages: Record<string, string>) =>
  JSON.stringify({
    name: 'app',
    lockfileVersion: 3,
    packages: {
      '': { name: 'app' },
      ...Object.fromEntries(Object.entries(packages).map(([k, v]) => [`node_modules/${k}`, { version: v }])),
    },
  });

/** An app folder holding `files`. */
function appDir(name: string, files: Record<string, string>): string {
  const dir = path.join(base, name);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

/** `release publish` of `dir` as VERSION to `dest`, the source commit given as release.sh would get it. */
async function publish(dir: string, version: string, dest: string, commit: string, extra: string[] = []) {
  const r = await runScript(
    'release',
    [
      'publish',
      dir,
      '--name',
      'my-app',
      '--platform',
      'gnu-linux',
      '--version',
      version,
      '--key',
      secret,
      '--passphrase-file',
      passFile,
      '--to',
      dest,
      ...extra,
    ],
    { env: { SHIPKIT_REPO: 'octo/site', SHIPKIT_SHA: commit, SHIPKIT_TAG: `v${version}`, SHIPKIT_JOB_ID: undefined } },
  );
  assert.is(r.exitCode, 0, r.stderr);
}

const diff = (dest: string, args: string[], cwd = base) =>
  runScript('release', ['diff', ...args, '--from', dest], { cwd });

/** A fresh copy of the good DEST. */
function copyOfGood(): string {
  const dest = path.join(tmpDir('shipkit-diff-dest-'), 'dest');
  cpSync(good, dest, { recursive: true });
  return dest;
}

test.before(async () => {
  base = tmpDir('shipkit-diff-e2e-');
  ({ secret, passFile } = await makePublisher(base, 'pw'));
  repo = path.join(base, 'site');
  await git(base, 'init', '--quiet', '--initial-branch=main', repo);
  commits = [];
  for (const [author, subject] of [
    ['Ana', 'first'],
    ['Bob', 'add the report page'],
    ['Eve', 'bump express'],
  ]) {
    await git(repo, 'commit', '--quiet', '--allow-empty', `--author=${author} <${author}@example.com>`, '-m', subject);
    commits.push((await git(repo, 'rev-parse', 'HEAD')).stdout.trim());
  }
  good = path.join(base, 'good');
  await publish(
    appDir('v1', {
      'server.js': 'console.log(1)\n',
      'old.txt': 'old\n',
      'package-lock.json': lock({ express: '4.18.2', lodash: '4.17.20', chalk: '5.0.0' }),
    }),
    '1.0',
    good,
    commits[0],
  );
  await publish(
    appDir('v2', {
      'server.js': 'console.log("two")\n',
      'lib/report.js': 'module.exports = {}\n',
      'package-lock.json': lock({ express: '4.19.0', 'left-pad': '1.3.0', chalk: '5.0.0' }),
    }),
    '1.1',
    good,
    commits[2],
  );
});

test('release diff --help', async () => {
  const r = await runScript('release', ['diff', '--help']);
  assert.is(r.exitCode, 0);
  assert.match(r.stdout, /release diff APP V1 V2 \[--from DEST\]/);
  assert.match(r.stdout, /default the publish.to of the repo in shipkit.yml/);
});

test('commits, files and dependencies between two published releases, in a checkout of the source', async () => {
  const r = await diff(good, ['my-app', '1.0', '1.1'], repo);
  assert.is(r.exitCode, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, /^my-app 1\.0 → 1\.1 at .*good \(ledger signed by [0-9a-f]{40}\)\n/);
  assert.match(
    out,
    new RegExp(
      `V1 1\\.0 +entry 1 +my-app-gnu-linux-1\\.0\\.tar\\.gz .*octo/site refs/tags/v1\\.0 ${commits[0].slice(0, 12)}`,
    ),
  );
  assert.match(out, new RegExp(`Commits ${commits[0].slice(0, 12)}\\.\\.${commits[2].slice(0, 12)}: 2\\n`));
  assert.match(
    out,
    new RegExp(
      `  ${commits[2].slice(0, 12)} bump express  \\(Eve\\)\\n  ${commits[1].slice(0, 12)} add the report page  \\(Bob\\)\\n`,
    ),
  );
  assert.match(out, /Files: 1 added, 1 removed, 2 changed\n/);
  assert.match(out, / {2}\+ lib\/report\.js {2}20 B\n/);
  assert.match(out, / {2}- old\.txt {2}4 B\n/);
  assert.match(out, / {2}~ server\.js {2}15 B → 19 B \(\+4 B\)\n/);
  assert.match(out, / {2}total: 3 files, \d+ B → 3 files, \d+ B/);
  assert.match(
    out,
    /Dependencies \(package-lock\.json\): 1 added, 1 removed, 1 changed\n {2}\+ left-pad 1\.3\.0\n {2}- lodash 4\.17\.20\n {2}~ express 4\.18\.2 → 4\.19\.0\n/,
  );
  assert.not.match(out, /chalk/, 'an unchanged dependency is not listed');
});

test('without --from: DEST is the publish.to of the repo shipkit.yml has publishing the app', async () => {
  const dir = tmpDir('shipkit-diff-config-');
  writeFileSync(
    path.join(dir, 'shipkit.yml'),
    `repos:\n  octo/site:\n    publish:\n      from: dist\n      name: my-app\n      platform: gnu-linux\n      key: ${secret}\n      to: ${good}\n`,
  );
  const r = await runScript('release', ['diff', 'my-app', '1.0', '1.1', '--json'], { cwd: dir });
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(JSON.parse(r.stdout).dest, good);
  const none = await runScript('release', ['diff', 'other-app', '1.0', '1.1'], { cwd: dir });
  assert.is(none.exitCode, 2, none.stderr);
  assert.match(none.stderr, /Missing --from DEST: no repo in .*shipkit\.yml publishes other-app to one place/);
});

test('--json: one object; elsewhere the commits are named with how to list them; --repo lists them', async () => {
  const elsewhere = tmpDir('shipkit-diff-cwd-');
  const r = await diff(good, ['my-app', '1.0', '1.1', '--json'], elsewhere);
  assert.is(r.exitCode, 0, r.stderr);
  const d = JSON.parse(r.stdout);
  assert.equal(Object.keys(d).sort(), [
    'app',
    'commitCount',
    'commits',
    'commitsNote',
    'dependencies',
    'dependenciesNote',
    'dest',
    'files',
    'from',
    'primary',
    'to',
  ]);
  assert.equal(
    [d.app, d.from.version, d.from.commit, d.to.version, d.to.commit],
    ['my-app', '1.0', commits[0], '1.1', commits[2]],
  );
  assert.equal([d.from.repo, d.from.ref, d.from.sourceFrom], ['octo/site', 'refs/tags/v1.0', 'provenance']);
  assert.is(d.commits, null);
  assert.match(d.commitsNote, /pass --repo CHECKOUT/);
  assert.equal(
    [
      d.files.added.map((f: any) => f.path),
      d.files.removed.map((f: any) => f.path),
      d.files.changed.map((f: any) => f.path),
    ],
    [['lib/report.js'], ['old.txt'], ['package-lock.json', 'server.js']],
  );
  assert.equal(
    d.dependencies.changed.map((p: any) => [p.name, p.from, p.to]),
    [['express', '4.18.2', '4.19.0']],
  );
  const text = await diff(good, ['my-app', '1.0', '1.1'], elsewhere);
  assert.match(text.stdout, /Commits [0-9a-f]{12}\.\.[0-9a-f]{12} \(octo\/site\): not listed; .*--repo CHECKOUT/);
  const withRepo = await diff(good, ['my-app', '1.0', '1.1', '--repo', repo, '--json'], elsewhere);
  assert.is(withRepo.exitCode, 0, withRepo.stderr);
  assert.equal(
    JSON.parse(withRepo.stdout).commits.map((c: any) => c.commit),
    [commits[2], commits[1]],
  );
});

test('bad input: exit 2, the reason, nothing printed, DEST untouched', async () => {
  const dest = copyOfGood();
  const before = fileDigests(dest);
  const cases: Array<[string, string[], RegExp]> = [
    [
      'unknown version',
      ['my-app', '0.9', '1.1'],
      /my-app 0\.9 is not in the ledger at .*: it was never published there\. The ledger has my-app 1\.0, 1\.1\./,
    ],
    ['V1 == V2', ['my-app', '1.0', '1.0.0'], /V1 and V2 are the same version \(1\.0\)/],
    ['an app with ..', ['../my-app', '1.0', '1.1'], /Invalid app name "\.\.\/my-app"/],
    ['an app with a newline', ['my-app\nx', '1.0', '1.1'], /Invalid app name "my-app\\nx"/],
    ['a version with a newline', ['my-app', '1.0\n', '1.1'], /V1/],
    ['a version with ..', ['my-app', '1.0', '../1.1'], /V2/],
    [
      'another app',
      ['other-app', '1.0', '1.1'],
      /other-app 1\.0 is not in the ledger .*The ledger has no release of other-app\./,
    ],
    ['a platform with ..', ['my-app', '1.0', '1.1', '--platform', '..'], /Invalid platform/],
  ];
  for (const [label, args, expected] of cases) {
    const r = await diff(dest, args);
    assert.is(r.exitCode, 2, `${label}: ${r.stderr}`);
    assert.match(r.stderr, expected, label);
    assert.is(r.stdout, '', label);
  }
  const noFrom = await runScript('release', ['diff', 'my-app', '1.0', '1.1']);
  assert.is(noFrom.exitCode, 2);
  assert.match(noFrom.stderr, /Missing --from DEST/);
  const missing = await runScript('release', ['diff', 'my-app', '1.0', '--from', dest]);
  assert.is(missing.exitCode, 2);
  assert.match(missing.stderr, /Missing argument/);
  assert.equal(fileDigests(dest), before, 'DEST as it was');
});

test("a tarball whose digest differs from its ledger entry, or whose .sig is not the key's: refused, nothing compared", async () => {
  const key = await loadSigningKey(secret, passFile);
  // Another tarball, signed by the release key itself: only the ledger can tell.
  let dest = copyOfGood();
  const file = path.join(dest, 'my-app-gnu-linux-1.0.tar.gz');
  writeFileSync(file, readFileSync(path.join(dest, 'my-app-gnu-linux-1.1.tar.gz')));
  writeFileSync(`${file}.sig`, await signDetached(key, { file }));
  let before = fileDigests(dest);
  let r = await diff(dest, ['my-app', '1.0', '1.1']);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(
    r.stderr,
    /ledger entry 1: names my-app-gnu-linux-1\.0\.tar\.gz with sha256 [0-9a-f]{64}, but the file at .* has [0-9a-f]{64}: it was replaced or damaged\. Nothing was compared\./,
  );
  assert.is(r.stdout, '');
  assert.equal(fileDigests(dest), before);
  // The right tarball with a signature of something else.
  dest = copyOfGood();
  writeFileSync(
    path.join(dest, 'my-app-gnu-linux-1.1.tar.gz.sig'),
    await signDetached(key, { data: Buffer.from('something else') }),
  );
  before = fileDigests(dest);
  r = await diff(dest, ['my-app', '1.0', '1.1']);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /my-app-gnu-linux-1\.1\.tar\.gz\.sig at .* is not a signature of it by this release key/);
  assert.equal(fileDigests(dest), before);
  // A certificate of another key: the ledger's signature is not its.
  const other = await makePublisher(tmpDir('shipkit-diff-other-'), 'x');
  const otherAsc = await exportPublic(other.g, other.key.fpr, path.join(base, 'other.asc'));
  r = await diff(good, ['my-app', '1.0', '1.1', '--keys', otherAsc]);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /ledger\.jsonl\.sig at .* is not a signature of its ledger\.jsonl/);
});

test('an edited ledger is refused: its signature, or (re-signed) its chain at the entry number', async () => {
  const key = await loadSigningKey(secret, passFile);
  const dest = copyOfGood();
  const lines = readFileSync(path.join(dest, 'ledger.jsonl'), 'utf8').trim().split('\n');
  const write = (first: string, second: string) => {
    const text = Buffer.from(`${first}\n${second}\n`);
    writeFileSync(path.join(dest, 'ledger.jsonl'), text);
    return text;
  };
  // The last entry pointed at another commit: the chain holds, the signature does not.
  const last = JSON.parse(lines[1]);
  last.source.commit = commits[1];
  write(lines[0], JSON.stringify(last));
  let r = await diff(dest, ['my-app', '1.0', '1.1']);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /ledger\.jsonl\.sig at .* is not a signature of its ledger\.jsonl \(2 entries\)/);
  // The first entry edited and the whole file signed again with the release key: the chain breaks at 2.
  const first = JSON.parse(lines[0]);
  first.source.commit = commits[1];
  const text = write(JSON.stringify(first), lines[1]);
  writeFileSync(path.join(dest, 'ledger.jsonl.sig'), await signDetached(key, { data: text }));
  r = await diff(dest, ['my-app', '1.0', '1.1']);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /ledger entry 2: does not follow entry 1/);
  assert.is(r.stdout, '');
});

test('a tarball pruned by --keep: exit 2, said so, with the versions that can still be compared', async () => {
  const dest = copyOfGood();
  for (const [v, commit] of [
    ['1.2', commits[2]],
    ['1.3', commits[2]],
  ])
    await publish(appDir(`v${v}`, { 'server.js': `// ${v}\n` }), v, dest, commit, ['--keep', '2']);
  assert.equal(
    readdirSync(dest).filter((f) => f.endsWith('.tar.gz')),
    ['my-app-gnu-linux-1.2.tar.gz', 'my-app-gnu-linux-1.3.tar.gz'],
  );
  const before = fileDigests(dest);
  const r = await diff(dest, ['my-app', '1.0', '1.3']);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(
    r.stderr,
    /The tarball of my-app 1\.0 \(my-app-\*-V\.tar\.gz\) is no longer at .*: pruned by `release publish --keep`, or removed\. The ledger still records it \(`release history`\)\. Versions that can be compared: 1\.2, 1\.3\./,
  );
  const both = await diff(dest, ['my-app', '1.0', '1.1']);
  assert.match(both.stderr, /The tarball of my-app 1\.0 and 1\.1 .* still records them/);
  assert.equal(fileDigests(dest), before);
  // What is left compares, without a lock on either side.
  const ok = await diff(dest, ['my-app', '1.2', '1.3']);
  assert.is(ok.exitCode, 0, ok.stderr);
  assert.match(ok.stdout, /Dependencies: neither release has package-lock\.json at its root/);
  assert.match(ok.stdout, /both releases were built from the same commit/);
});

test('names from the tarball, the lock, the provenance and git are shown escaped', async () => {
  const dest = path.join(tmpDir('shipkit-diff-hostile-'), 'dest');
  const ESC = '\u001b[2J';
  await publish(appDir('h1', { 'a.txt': '1', 'package-lock.json': lock({}) }), '1.0', dest, commits[0]);
  await publish(
    appDir('h2', {
      'a.txt': '1',
      [`evil\n${ESC}.txt`]: 'x',
      'package-lock.json': lock({ [`pkg${ESC}`]: `1.0.0${ESC}` }),
    }),
    '1.1',
    dest,
    commits[2],
    ['--source-ref', `refs/tags/v1\n${ESC}`],
  );
  const r = await diff(dest, ['my-app', '1.0', '1.1'], repo);
  assert.is(r.exitCode, 0, r.stderr);
  assert.not.match(r.stdout, /\u001b/, 'no raw ESC on the terminal');
  assert.match(r.stdout, / {2}\+ evil\\u000a\\u001b\[2J\.txt {2}1 B\n/);
  assert.match(r.stdout, /refs\/tags\/v1\\u000a\\u001b\[2J/);
  assert.match(r.stdout, / {2}\+ pkg\\u001b\[2J 1\.0\.0\\u001b\[2J\n/);
});

test.run();
