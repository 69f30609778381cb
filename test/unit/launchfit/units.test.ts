// Pure launchfit logic, table-driven: VERSION parsing, hexadecimal version order, launchify.yml
// validation (the error names the key and its line), tar entry checks, key pins.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exitCodeFor } from '../../../lib/core/errors.ts';
import {
  parseLaunchConfig,
  parseLaunchConfigText,
  startDeadlineSec,
} from '../../../lib/launchfit/deploy-folder/config.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { errorFromAnswer } from '../../../lib/launchfit/control/socket.ts';
import { entryProblem } from '../../../lib/launchfit/install/extract.ts';
import { parseKeyPin } from '../../../lib/launchfit/deploy-folder/key-pin.ts';
import {
  compareVersions,
  formatVersionFile,
  parseRolloutPercent,
  parseVersionFile,
  versionProblem,
} from '../../../lib/release/format/version-file.ts';

test('compareVersions: segments compared as hexadecimal numbers', () => {
  const cases: Array<[string, string, number]> = [
    ['1.23.42b', '1.23.42b', 0],
    ['1.23.42b', '1.23.42a', 1],
    ['1.9', '1.a', -1],
    ['1.10', '1.f', 1],
    ['1.2', '1.2.0', 0],
    ['01.2', '1.2', 0],
    ['2', '1.ffff', 1],
    ['1.0.1', '1.0', 1],
    ['A.b', 'a.B', 0],
    ['ffffffffffffffffffff', 'fffffffffffffffffffe', 1],
  ];
  for (const [a, b, want] of cases) assert.is(compareVersions(a, b), want, `${a} vs ${b}`);
});

test('versionProblem: only dot-separated hex', () => {
  for (const ok of ['1', '1.23.42b', 'deadbeef.0']) assert.is(versionProblem(ok), undefined, ok);
  for (const bad of ['', '1.g', '1..2', '.1', '1.', 'v1.2', '1.2-rc1', '1 2', '../1', 'x'.repeat(65)])
    assert.ok(versionProblem(bad), bad);
});

test('parseVersionFile: the contract format, unknown keys ignored', () => {
  const info = parseVersionFile(
    [
      'CURRENT 1.23.42b my-app-gnu-linux-1.23.42b.tar.gz',
      'RELEASE icecream-soda-popsticle',
      `SHA256 ${'A'.repeat(64)}`,
      'SIZE 1234',
      'EXPIRES 2030-01-02T03:04:05Z',
      'FUTURE something new',
      'FUTURE twice is fine for keys this version does not know',
      '# comment',
      'APP my-app',
      'PLATFORM gnu-linux',
    ].join('\n'),
  );
  assert.is(info.app, 'my-app');
  assert.is(info.platform, 'gnu-linux');
  assert.is(info.version, '1.23.42b');
  assert.is(info.file, 'my-app-gnu-linux-1.23.42b.tar.gz');
  assert.is(info.release, 'icecream-soda-popsticle');
  assert.is(info.sha256, 'a'.repeat(64));
  assert.is(info.size, 1234);
  assert.is(info.expires!.toISOString(), '2030-01-02T03:04:05.000Z');
  assert.equal(parseVersionFile(formatVersionFile(info)), info);
});

test('parseVersionFile: SEQ and ROLLOUT are read and written; other unknown keys are ignored', () => {
  const info = parseVersionFile('CURRENT 1.2 a.tar.gz\nSEQ 1042\nROLLOUT 10\nFUTURE key words\n');
  assert.equal(info, { version: '1.2', file: 'a.tar.gz', seq: 1042, rollout: 10 });
  assert.match(formatVersionFile(info), /\nSEQ 1042\nROLLOUT 10\n$/);
  assert.equal(parseVersionFile(formatVersionFile(info)), info);
  assert.equal(parseVersionFile('CURRENT 1.2 a.tar.gz\nROLLOUT 0.5').rollout, 0.5);
  assert.equal(parseVersionFile('CURRENT 1.2 a.tar.gz\nROLLOUT 100').rollout, 100);
  assert.equal(parseVersionFile('CURRENT 1.2 a.tar.gz').rollout, undefined);
});

test('ROLLOUT: 0, above 100, negative, not a number, too precise are refused by the parser and never written', () => {
  for (const bad of [
    '0',
    '0.00',
    '100.01',
    '101',
    '-5',
    'abc',
    '10%',
    '1e2',
    '0.125',
    '',
    '10 20',
    'NaN',
    'Infinity',
  ]) {
    assert.throws(() => parseVersionFile(`CURRENT 1.2 a.tar.gz\nROLLOUT ${bad}`), /ROLLOUT/, bad);
  }
  assert.throws(() => parseVersionFile('CURRENT 1.2 a.tar.gz\nROLLOUT 10\nROLLOUT 50'), /twice/);
  for (const bad of [0, 101, -1, Number.NaN, 0.125]) {
    assert.throws(() => formatVersionFile({ version: '1.2', file: 'a.tar.gz', rollout: bad }), /ROLLOUT/, String(bad));
  }
  assert.equal(parseRolloutPercent('10%', '--rollout'), 10);
  assert.throws(() => parseRolloutPercent('0', '--rollout'), /Invalid --rollout "0": it must be above 0/);
  assert.throws(() => parseRolloutPercent('101', '--rollout'), /at most 100/);
  assert.throws(() => parseRolloutPercent('abc', '--rollout'), /must be a percent/);
});

test('parseVersionFile: hostile and broken files are refused with a reason', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /no CURRENT line/],
    ['CURRENT 1.2 ../x.tar.gz', /Invalid release file name/],
    ['CURRENT 1.2 /etc/passwd', /Invalid release file name/],
    ['CURRENT 1.2 a/b.tar.gz', /Invalid release file name/],
    ['CURRENT 1.2 .hidden.tar.gz', /Invalid release file name/],
    ['CURRENT 1.2g app.tar.gz', /hexadecimal/],
    ['CURRENT 1.2', /needs a version and a file name/],
    ['CURRENT 1.2 a.tar.gz\nCURRENT 1.3 b.tar.gz', /twice/],
    ['CURRENT 1.2 a.tar.gz\nSHA256 xyz', /64 hexadecimal/],
    ['CURRENT 1.2 a.tar.gz\nSIZE -1', /number of bytes/],
    ['CURRENT 1.2 a.tar.gz\nEXPIRES soon', /ISO-8601/],
    [`CURRENT 1.2 a.tar.gz\n${'#'.repeat(70_000)}`, /larger than 65536/],
    // Every known key at most once: a second line must not quietly override a first.
    [`CURRENT 1.2 a.tar.gz\nSHA256 ${'a'.repeat(64)}\nSHA256 ${'b'.repeat(64)}`, /line 3: SHA256 appears twice/],
    ['CURRENT 1.2 a.tar.gz\nSIZE 10\nSIZE 20', /line 3: SIZE appears twice/],
    [
      'CURRENT 1.2 a.tar.gz\nEXPIRES 2030-01-01T00:00:00Z\nEXPIRES 2999-01-01T00:00:00Z',
      /line 3: EXPIRES appears twice/,
    ],
    ['CURRENT 1.2 a.tar.gz\nAPP a\nPLATFORM p\nAPP b', /line 4: APP appears twice/],
    ['CURRENT 1.2 a.tar.gz\nAPP a\nPLATFORM p\nPLATFORM q', /line 4: PLATFORM appears twice/],
    ['CURRENT 1.2 a.tar.gz\nRELEASE x\nRELEASE y', /line 3: RELEASE appears twice/],
    ['CURRENT 1.2 a.tar.gz\nAPP a', /APP line without a PLATFORM line/],
    ['CURRENT 1.2 a.tar.gz\nPLATFORM p', /APP line without a PLATFORM line/],
    ['CURRENT 1.2 a.tar.gz\nAPP ../x\nPLATFORM p', /Invalid APP in VERSION line 2/],
    ['CURRENT 1.2 a.tar.gz\nSEQ 0', /SEQ must be a whole number/],
    ['CURRENT 1.2 a.tar.gz\nSEQ 1\nSEQ 2', /SEQ appears twice/],
    ['CURRENT 1.2 a.tar.gz\nSEQ -3', /SEQ must be a whole number/],
    ['CURRENT 1.2 a.tar.gz\nAPP a b\nPLATFORM p', /APP needs exactly one name/],
  ];
  for (const [text, pattern] of cases) assert.throws(() => parseVersionFile(text), pattern, text.slice(0, 40));
});

test('launchify.yml: defaults, merge of the release app section', () => {
  const c = parseLaunchConfigText(
    'app:\n  exec: node server.js\nupdates:\n  server: http://u.example.com/app\n  keep: false\n',
    '/d/launchify.yml',
  );
  assert.is(c.app.exec, 'node server.js');
  assert.is(c.app.kill, 'SIGTERM');
  assert.is(c.app.killTimeoutSec, 10);
  assert.is(c.app.healthyAfterSec, 5);
  assert.is(c.updates.server, 'http://u.example.com/app/');
  assert.is(c.updates.keep, 0);
  assert.is(c.updates.intervalSec, 300);
  assert.is(c.control.secret, 'env:SHIPKIT_SECRET');
  // Signed VERSION required, short metadata deadline, a minimum tarball rate, no pinned binding.
  assert.is(c.updates.allowUnsignedVersion, false);
  assert.is(c.updates.metadataTimeoutSec, 30);
  assert.is(c.updates.minRate, 1024);
  assert.is(c.updates.minRateWindowSec, 30);
  assert.is(c.updates.app, undefined);
  const pinned = parseLaunchConfigText(
    'updates:\n  app: my-app\n  platform: gnu-linux\n  allow_unsigned_version: true\n  min_rate: 0\n',
    '/d/launchify.yml',
  );
  assert.equal(
    [pinned.updates.app, pinned.updates.platform, pinned.updates.allowUnsignedVersion, pinned.updates.minRate],
    ['my-app', 'gnu-linux', true, 0],
  );
});

test('launchify.yml: unknown keys and wrong types name the key and the line', () => {
  const cases: Array<[string, RegExp]> = [
    ['app:\n  exec: x\n  forver: true\n', /launchify\.yml:3: app\.forver: unknown key/],
    ['apps:\n  exec: x\n', /launchify\.yml:1: apps: unknown key/],
    ['app:\n  forever: "yes"\n', /launchify\.yml:2: app\.forever: must be true or false/],
    ['app:\n  kill_timeout: -1\n', /:2: app\.kill_timeout: must be a positive number/],
    ['app:\n  kill: SIGFOO\n', /:2: app\.kill: unknown signal SIGFOO/],
    ['updates:\n  keep: 2.5\n', /:2: updates\.keep: must be a whole number/],
    ['updates:\n  server: ftp://x\n', /:2: updates\.server: must be an http/],
    ['updates:\n  interval: "5m"\n', /:2: updates\.interval: must be a number/],
    ['updates:\n  gpg:\n    key: 12345\n', /:3: updates\.gpg\.key: must be a string/],
    ['updates:\n  gpg:\n    key: "zz"\n', /:3: updates\.gpg\.key: .*neither a full fingerprint/],
    ['updates:\n  gpg:\n    fingerprint: x\n', /:3: updates\.gpg\.fingerprint: unknown key/],
    ['hooks:\n  after_symlink: x\n', /:2: hooks\.after_symlink: unknown key/],
    ['control:\n  listen: nonsense\n', /:2: control\.listen: must be HOST:PORT/],
    ['control:\n  listen: 127.0.0.1:99999\n', /:2: control\.listen: must be HOST:PORT/],
    ['app:\n  env:\n    "BAD-NAME": x\n', /:3: app\.env\.BAD-NAME: is not a valid environment variable name/],
    ['- a list\n', /must be a mapping/],
    ['updates:\n  app: my-app\n', /:2: updates\.app: pins one half of the host's binding/],
    ['updates:\n  platform: gnu-linux\n', /:2: updates\.platform: pins one half/],
    ['updates:\n  app: ../x\n  platform: p\n', /:2: updates\.app: "\.\.\/x" may only hold/],
    [
      'updates:\n  require_signed_version: true\n  allow_unsigned_version: true\n',
      /:3: updates\.allow_unsigned_version: contradicts updates\.require_signed_version: true/,
    ],
    ['updates:\n  metadata_timeout: 0\n', /:2: updates\.metadata_timeout: must be a positive number/],
    ['updates:\n  min_rate: -1\n', /:2: updates\.min_rate: must be a non-negative number/],
  ];
  for (const [text, pattern] of cases)
    assert.throws(() => parseLaunchConfigText(text, '/d/launchify.yml'), pattern, text);
});

test('entryProblem: only files, folders and links that stay inside', () => {
  const ok = [
    { path: 'app/server.js', type: 'File' },
    { path: 'app/', type: 'Directory' },
    { path: 'app/bin/x', type: 'SymbolicLink', linkpath: '../lib/x.js' },
    { path: 'app/h', type: 'Link', linkpath: 'app/server.js' },
  ];
  for (const e of ok) assert.is(entryProblem(e), undefined, e.path);
  const bad: Array<[{ path: string; type: string; linkpath?: string }, RegExp]> = [
    [{ path: '../x', type: 'File' }, /contains "\.\."/],
    [{ path: 'a/../../x', type: 'File' }, /contains "\.\."/],
    [{ path: '/etc/x', type: 'File' }, /absolute/],
    [{ path: 'C:/x', type: 'File' }, /absolute/],
    [{ path: 'a', type: 'SymbolicLink', linkpath: '/etc' }, /absolute path/],
    [{ path: 'a/b', type: 'SymbolicLink', linkpath: '../../x' }, /outside the release/],
    [{ path: 'a', type: 'Link', linkpath: '../x' }, /outside the release/],
    [{ path: 'dev', type: 'CharacterDevice' }, /CharacterDevice/],
    [{ path: 'dev', type: 'BlockDevice' }, /BlockDevice/],
    [{ path: 'fifo', type: 'FIFO' }, /FIFO/],
  ];
  for (const [e, pattern] of bad) assert.match(entryProblem(e) ?? '', pattern, e.path);
});

test('healthy_after: 0 with app.health (the switch at the first 2xx), 5 without; the start deadline stays 5 s', () => {
  const file = '/srv/app/launchify.yml';
  const health = 'app:\n  exec: x\n  health:\n    http: http://127.0.0.1:8080/up\n';
  const withHealth = parseLaunchConfigText(health, file).app;
  assert.equal([withHealth.healthyAfterSec, startDeadlineSec(withHealth)], [0, 5]);
  const without = parseLaunchConfigText('app:\n  exec: x\n', file).app;
  assert.equal([without.healthyAfterSec, startDeadlineSec(without)], [5, 5]);
  // Set anywhere (the deploy folder's file or the release's), it is kept, 0 included.
  const held = parseLaunchConfigText(`${health}  healthy_after: 3\n`, file).app;
  assert.equal([held.healthyAfterSec, startDeadlineSec(held)], [3, 3]);
  const zero = parseLaunchConfigText('app:\n  exec: x\n  healthy_after: 0\n', file).app;
  assert.is(zero.healthyAfterSec, 0, "without health, 0 is the user's");
  const fromRelease = parseLaunchConfig(parseYamlText(health, file), '/srv/app', { healthyAfterSec: 2 }).app;
  assert.is(fromRelease.healthyAfterSec, 2, "the release's healthy_after");
  const healthFromRelease = parseLaunchConfig(parseYamlText('app:\n  exec: x\n', file), '/srv/app', {
    health: withHealth.health,
  }).app;
  assert.is(healthFromRelease.healthyAfterSec, 0, "app.health from the release's file");
  const started = parseLaunchConfigText(`${health}  start_timeout: 20\n`, file).app;
  assert.is(startDeadlineSec(started), 20);
});

test('launchify.example.yml parses and documents every key', async () => {
  const { readFileSync } = await import('node:fs');
  const path = await import('node:path');
  const file = path.join(import.meta.dirname, '../../..', 'launchify.example.yml');
  const text = readFileSync(file, 'utf8');
  const c = parseLaunchConfigText(text, file);
  assert.is(c.app.exec, 'node server.js');
  assert.is(c.control.listen, '127.0.0.1:8900');
  assert.equal([c.app.healthyAfterSec, c.app.startTimeoutSec], [0, 60]);
  assert.is(parseLaunchConfigText('app:\n  exec: x\n', file).app.startTimeoutSec, undefined, 'default: healthy_after');
  assert.throws(() => parseLaunchConfigText('app:\n  healthy_after: -1\n', file), /healthy_after.*non-negative/);
  assert.throws(() => parseLaunchConfigText('app:\n  start_timeout: -1\n', file), /start_timeout/);
  const keys = [
    'exec',
    'forever',
    'backoff_max',
    'stable_after',
    'max_restarts',
    'kill',
    'kill_timeout',
    'healthy_after',
    'start_timeout',
    'env',
    'log_max_size',
    'log_keep',
    'server',
    'keep',
    'interval',
    'require_signed_version',
    'allow_unsigned_version',
    'metadata_timeout',
    'min_rate',
    'min_rate_window',
    'app',
    'platform',
    'max_size',
    'max_unpacked_size',
    'max_ratio',
    'connect_timeout',
    'idle_timeout',
    'download_timeout',
    'gpg',
    'keyfile',
    'key',
    'key_url',
    'before_symlink',
    'timeout',
    'listen',
    'secret',
    'user',
  ];
  for (const key of keys) assert.match(text, new RegExp(`^\\s*${key}:`, 'm'), key);
});

test.run();

test("errorFromAnswer: the running side's category decides the exit code; unknown kinds are work errors", () => {
  const cases: Array<[string | undefined, string, number]> = [
    ['VerificationError', 'VerificationError', 1],
    ['ConfigError', 'ConfigError', 2],
    ['ValidationError', 'ValidationError', 2],
    ['TransferError', 'WorkError', 1],
    ['constructor', 'WorkError', 1],
    ['__proto__', 'WorkError', 1],
    [undefined, 'WorkError', 1],
  ];
  for (const [kind, name, code] of cases) {
    const error = errorFromAnswer({ ok: false, error: 'why', kind });
    assert.ok(error instanceof Error, String(kind));
    assert.is(error.name, name, String(kind));
    assert.is(error.message, 'why');
    assert.is(exitCodeFor(error), code, String(kind));
  }
});
