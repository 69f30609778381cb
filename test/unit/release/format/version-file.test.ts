// The VERSION file (lib/release/format/version-file.ts): parsed strictly (each known key once, every
// value checked, unknown keys ignored), written back the same, hexadecimal versions compared, and
// rollout percents read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../../lib/core/errors.ts';
import {
  compareVersions,
  formatVersionFile,
  MAX_SEQ,
  MAX_VERSION_FILE_BYTES,
  parseRolloutPercent,
  parseVersionFile,
  validateVersion,
} from '../../../../lib/release/format/version-file.ts';

const SHA = 'ab'.repeat(32);
const FULL = [
  'CURRENT 1.23.42b my-app-gnu-linux-1.23.42b.tar.gz',
  'RELEASE icecream soda',
  `SHA256 ${SHA.toUpperCase()}`,
  'SIZE 1048576',
  'EXPIRES 2026-12-01T00:00:00.000Z',
  'APP my-app',
  'PLATFORM gnu-linux',
  'SEQ 1042',
  'ROLLOUT 12.5',
  'FUTURE key the format may grow',
].join('\r\n');

function refused(text: string, message: RegExp): void {
  assert.throws(
    () => parseVersionFile(text),
    (e: unknown) => e instanceof ValidationError && message.test((e as Error).message),
    message.source,
  );
}

test('every key parsed; SHA256 lowercased; CRLF and unknown keys accepted', () => {
  const info = parseVersionFile(FULL);
  assert.equal(
    { ...info, expires: info.expires?.toISOString() },
    {
      version: '1.23.42b',
      file: 'my-app-gnu-linux-1.23.42b.tar.gz',
      release: 'icecream soda',
      sha256: SHA,
      size: 1048576,
      expires: '2026-12-01T00:00:00.000Z',
      app: 'my-app',
      platform: 'gnu-linux',
      seq: 1042,
      rollout: 12.5,
    },
  );
});

test('MAX_SEQ is the largest SEQ a VERSION carries: one more is refused', () => {
  assert.is(parseVersionFile(`CURRENT 1.0 a.tar.gz\nSEQ ${MAX_SEQ}`).seq, MAX_SEQ);
  refused(`CURRENT 1.0 a.tar.gz\nSEQ ${MAX_SEQ + 1}`, /SEQ must be a whole number from 1 to 15 digits/);
});

test('formatVersionFile writes what parseVersionFile reads back', () => {
  const info = parseVersionFile(FULL);
  assert.equal(parseVersionFile(formatVersionFile(info)), info);
});

test('hostile or broken files are refused with the line named', () => {
  refused('CURRENT 1.0 a.tar.gz\nCURRENT 2.0 b.tar.gz', /line 2: CURRENT appears twice/);
  refused('SHA256 abc\nCURRENT 1.0 a.tar.gz', /line 1: SHA256 must be 64 hexadecimal digits/);
  refused('CURRENT 1.0 ../../etc/passwd', /Invalid release file name/);
  refused('CURRENT 1.0', /CURRENT needs a version and a file name/);
  refused('CURRENT 1.0;rm a.tar.gz', /version in VERSION line 1/);
  refused('CURRENT 1.0 a.tar.gz\nSEQ 0', /SEQ must be a whole number/);
  refused('CURRENT 1.0 a.tar.gz\nSEQ 1e3', /SEQ must be a whole number/);
  refused('CURRENT 1.0 a.tar.gz\nROLLOUT 0', /ROLLOUT must be above 0/);
  refused('CURRENT 1.0 a.tar.gz\nROLLOUT 100.001', /ROLLOUT must be a percent/);
  refused('CURRENT 1.0 a.tar.gz\nEXPIRES soon', /EXPIRES must be an ISO-8601 date/);
  refused('CURRENT 1.0 a.tar.gz\nAPP my-app', /APP line without a PLATFORM line/);
  refused('# only a comment\n', /has no CURRENT line/);
  refused(`CURRENT 1.0 a.tar.gz\n#${'x'.repeat(MAX_VERSION_FILE_BYTES)}`, /larger than 65536 bytes/);
});

test('compareVersions: hexadecimal segments, missing ones are 0, leading zeros do not count', () => {
  assert.is(compareVersions('1.2', '1.2.0'), 0);
  assert.is(compareVersions('1.0a', '1.09'), 1, 'a > 9 in hex');
  assert.is(compareVersions('1.10', '1.f'), 1, '0x10 > 0xf');
  assert.is(compareVersions('01.2', '1.2'), 0);
  assert.is(compareVersions('1.2.3', '1.2.4'), -1);
  assert.is(compareVersions('ffffffffffffffffff', 'fffffffffffffffffe'), 1, 'beyond 2^53');
  assert.throws(
    () => compareVersions('1.2-beta', '1.2'),
    (e: unknown) => e instanceof ValidationError,
  );
  assert.throws(() => validateVersion(''), /is empty/);
  assert.throws(() => validateVersion('1'.repeat(65)), /longer than 64/);
});

test('parseRolloutPercent: 10, 0.5 and 10% read; zero, too precise or above 100 refused', () => {
  assert.is(parseRolloutPercent('10'), 10);
  assert.is(parseRolloutPercent(' 0.5 '), 0.5);
  assert.is(parseRolloutPercent('10%'), 10);
  for (const bad of ['0', '0.001', '101', '-5', 'ten', ''])
    assert.throws(() => parseRolloutPercent(bad, '--steps'), /Invalid --steps/, bad);
});

test('versionKey: equal exactly when compareVersions says equal', async () => {
  const { compareVersions, versionKey } = await import('../../../../lib/release/format/version-file.ts');
  const versions = [
    '1',
    '1.0',
    '1.0.0',
    '01.00',
    '1.1',
    '1.1.0',
    '1.01',
    '1.10',
    'a',
    'A',
    '0a',
    '0',
    '0.0',
    '00',
    '10',
    '1.0.1',
    '2',
  ];
  for (const a of versions)
    for (const b of versions) assert.is(versionKey(a) === versionKey(b), compareVersions(a, b) === 0, `${a} vs ${b}`);
});

test.run();
