// release diff for a terminal (lib/release/diff/text.ts): sizes in bytes and binary units, and a
// whole diff whose paths, links, authors, refs and package names carry newlines and terminal
// escapes printed with every one of them escaped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bytesText, changeText, formatDiff } from '../../../../lib/release/diff/text.ts';
import type { ReleaseFile } from '../../../../lib/release/diff/files.ts';
import type { DiffSide, ReleaseDiff } from '../../../../lib/release/diff/diff.ts';

test('bytesText and changeText', () => {
  const cases: Array<[number, string, string]> = [
    [0, '0 B', '±0 B'],
    [1023, '1023 B', '+1023 B'],
    [1536, '1.5 KiB', '+1.5 KiB'],
    [-2048, '-2.0 KiB', '-2.0 KiB'],
    [5 * 1024 ** 3, '5.0 GiB', '+5.0 GiB'],
  ];
  for (const [n, size, change] of cases) {
    assert.is(bytesText(n), size, String(n));
    assert.is(changeText(n), change, String(n));
  }
});

const ESC = '\u001b[2J';
const file = (p: string, extra: Partial<ReleaseFile> = {}): ReleaseFile => ({
  path: p,
  type: 'file',
  mode: '644',
  size: 2048,
  sha256: 'a'.repeat(64),
  target: null,
  ...extra,
});
const side = (version: string, n: number, commit: string | null): DiffSide => ({
  version,
  n,
  at: '2026-11-25T00:00:00.000Z',
  by: 'ana@build1',
  signer: 'b'.repeat(40),
  revoked: false,
  file: `my-app-gnu-linux-${version}.tar.gz`,
  sha256: 'c'.repeat(64),
  size: 1000,
  repo: `octo/${ESC}site`,
  commit,
  ref: 'refs/tags/v1\nx',
  sourceFrom: 'provenance',
});

function sample(): ReleaseDiff {
  const before = file(`old\n${ESC}.js`, { size: 100 });
  return {
    app: 'my-app',
    dest: '/srv/updates',
    primary: 'f'.repeat(40),
    from: side('1.0', 1, '1'.repeat(40)),
    to: { ...side('1.1', 3, '2'.repeat(40)), revoked: true, sourceFrom: 'ledger' },
    commits: [{ commit: '2'.repeat(40), author: `Eve${ESC}`, subject: 'fix\rit' }],
    commitCount: 1,
    commitsNote: null,
    files: {
      added: [file(`new${ESC}`), file('link', { type: 'symlink', target: `../${ESC}`, size: 0, sha256: null })],
      removed: [file('gone.txt', { size: 10 })],
      changed: [
        {
          path: `old\n${ESC}.js`,
          type: 'file',
          size: 300,
          sizeChange: 200,
          changes: ['content', 'mode'],
          from: before,
          to: { ...before, size: 300, mode: '755' },
        },
      ],
      total: { from: { files: 2, bytes: 110 }, to: { files: 3, bytes: 2348 } },
    },
    dependencies: {
      added: [{ name: `evil${ESC}`, path: `node_modules/evil${ESC}`, version: '1.0.0', integrity: null }],
      removed: [],
      changed: [
        { name: 'b', path: 'node_modules/a/node_modules/b', from: '1.0.0', to: '2.0.0', integrityChanged: false },
        { name: 'c', path: 'node_modules/c', from: '1.0.0', to: '1.0.0', integrityChanged: true },
      ],
    },
    dependenciesNote: null,
  };
}

test('formatDiff: the releases, commits, files with sizes, a total line and the dependencies', () => {
  const out = formatDiff(sample());
  assert.match(out, /^my-app 1\.0 → 1\.1 at \/srv\/updates \(ledger signed by f{40}\)\n/);
  assert.match(out, /V1 1\.0 +entry 1 +my-app-gnu-linux-1\.0\.tar\.gz {2}2 files, 110 B/);
  assert.match(out, /V2 1\.1 .*\(key revoked, source from the ledger: provenance file gone\)/);
  assert.match(out, /Commits 111111111111\.\.222222222222: 1\n {2}222222222222 fix\\u000dit {2}\(Eve\\u001b\[2J\)/);
  assert.match(out, /Files: 2 added, 1 removed, 1 changed\n/);
  assert.match(out, / {2}\+ new\\u001b\[2J {2}2\.0 KiB\n/);
  assert.match(out, / {2}\+ link {2}symlink → \.\.\/\\u001b\[2J\n/);
  assert.match(out, / {2}- gone\.txt {2}10 B\n/);
  assert.match(out, / {2}~ old\\u000a\\u001b\[2J\.js {2}100 B → 300 B \(\+200 B\), mode 644 → 755\n/);
  assert.match(out, / {2}total: 2 files, 110 B → 3 files, 2\.3 KiB \(\+2\.2 KiB\)\n/);
  assert.match(out, /Dependencies \(package-lock\.json\): 1 added, 0 removed, 2 changed\n/);
  assert.match(out, / {2}~ a > b 1\.0\.0 → 2\.0\.0\n/);
  assert.match(out, / {2}~ c 1\.0\.0 \(same version, another integrity\)\n/);
  assert.not.match(out, /\u001b|\r/, 'no raw escape or carriage return reaches the terminal');
  // Every line is one line: the newline in a path and a ref was escaped.
  assert.ok(out.split('\n').every((line) => !line.startsWith('.js')));
});

test('formatDiff: no commit list and no dependencies say why', () => {
  const d = sample();
  d.commits = null;
  d.commitCount = null;
  d.commitsNote = 'to list them, run it in a checkout of the source that has both commits, or pass --repo CHECKOUT';
  d.dependencies = null;
  d.dependenciesNote = 'the V1 release has no package-lock.json at its root';
  const out = formatDiff(d);
  assert.match(
    out,
    /Commits 111111111111\.\.222222222222 \(octo\/\\u001b\[2Jsite\): not listed; to list them, .* --repo CHECKOUT\n/,
  );
  assert.match(out, /Dependencies: the V1 release has no package-lock\.json at its root\n$/);
});

test.run();
