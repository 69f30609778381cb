// release diff's commits (lib/release/diff/commits.ts): the source read from a provenance
// envelope as `release publish` writes it (and refused when it is about another tarball or not a
// statement), and `git log FROM..TO` in a real temporary repo, with each reason it cannot list.
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../../lib/core/errors.ts';
import { commitsBetween, sourceOfProvenance } from '../../../../lib/release/diff/commits.ts';
import { provenanceEnvelope, provenanceStatement } from '../../../../lib/release/format/provenance.ts';
import { git, tmpDir } from '../../../_helpers/common.ts';

const SHA = 'c'.repeat(64);

async function envelope(sha256: string, facts: { repo: string; ref?: string; commit?: string }): Promise<Buffer> {
  const statement = provenanceStatement('app-linux-1.0.tar.gz', sha256, {
    ...facts,
    builderId: 'https://example.com/builder',
    started: new Date(0),
    finished: new Date(0),
  });
  return Buffer.from(await provenanceEnvelope(statement, 'f'.repeat(40), async () => new Uint8Array([1, 2, 3])));
}

test('sourceOfProvenance: repo, commit and ref of the statement about this tarball', async () => {
  const commit = 'a'.repeat(40);
  const bytes = await envelope(SHA, { repo: 'octo/site', ref: 'refs/tags/v1.0', commit });
  assert.equal(sourceOfProvenance(bytes, SHA), { repo: 'octo/site', commit, ref: 'refs/tags/v1.0' });
  assert.equal(sourceOfProvenance(await envelope(SHA, { repo: 'octo/site' }), SHA), {
    repo: 'octo/site',
    commit: null,
    ref: null,
  });
});

test('sourceOfProvenance: another tarball, not a statement, not an envelope: each says why', async () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    [
      'another tarball',
      await envelope('d'.repeat(64), { repo: 'octo/site' }),
      /not about the tarball with sha256 c{64}/,
    ],
    ['not JSON', Buffer.from('{"payloadType":'), /not a DSSE envelope/],
    ['another payload type', Buffer.from('{"payloadType":"text/plain","payload":""}'), /payloadType is not/],
    [
      'not a statement',
      Buffer.from(
        JSON.stringify({
          payloadType: 'application/vnd.in-toto+json',
          payload: Buffer.from('{"_type":"x"}').toString('base64'),
        }),
      ),
      /not an in-toto statement/,
    ],
  ];
  for (const [label, bytes, expected] of cases) assert.throws(() => sourceOfProvenance(bytes, SHA), expected, label);
});

let repo: string;
let commits: string[];

test.before(async () => {
  repo = path.join(tmpDir('shipkit-diff-commits-'), 'src');
  await git(path.dirname(repo), 'init', '--quiet', '--initial-branch=main', repo);
  commits = [];
  for (const [author, subject] of [
    ['Ana', 'first'],
    ['Bob', 'second: fix\u001b[31m'],
    ['Eve', 'third'],
    ['Ana', 'fourth'],
  ]) {
    await git(repo, 'commit', '--quiet', '--allow-empty', `--author=${author} <a@example.com>`, '-m', subject);
    commits.push((await git(repo, 'rev-parse', 'HEAD')).stdout.trim());
  }
});

const src = (commit: string | null) => ({ repo: 'octo/site', commit, ref: null });

test('commitsBetween: git log FROM..TO newest first, with authors and subjects as git has them', async () => {
  const list = await commitsBetween(src(commits[0]), src(commits[3]), { repoDir: repo, cwd: '/' });
  assert.equal(
    list.commits?.map((c) => [c.commit, c.author, c.subject]),
    [
      [commits[3], 'Ana', 'fourth'],
      [commits[2], 'Eve', 'third'],
      [commits[1], 'Bob', 'second: fix\u001b[31m'],
    ],
  );
  assert.equal([list.count, list.note], [3, null]);
  // The current folder when it has both commits; a cut list says how many more there are.
  const cut = await commitsBetween(src(commits[0]), src(commits[3]), { cwd: repo, maxCommits: 1 });
  assert.equal(
    cut.commits?.map((c) => c.commit),
    [commits[3]],
  );
  assert.equal([cut.count, cut.note], [3, '2 older commits not listed']);
  // Backwards: what the older release has that the newer has not is nothing.
  const back = await commitsBetween(src(commits[3]), src(commits[0]), { repoDir: repo, cwd: '/' });
  assert.equal([back.commits, back.count], [[], 0]);
});

test('commitsBetween: without both commits, a full id, or a checkout it says why and lists nothing', async () => {
  const elsewhere = tmpDir('shipkit-diff-nogit-');
  const unknown = 'e'.repeat(40);
  const cases: Array<[string, ReturnType<typeof src>, ReturnType<typeof src>, object, RegExp]> = [
    ['no commit', src(null), src(commits[1]), { repoDir: repo }, /the from release names no source commit/],
    ['short commit', src(commits[0]), src(commits[1].slice(0, 12)), { repoDir: repo }, /not a full commit id/],
    ['an option as commit', src('--output=/tmp/x'), src(commits[1]), { repoDir: repo }, /not a full commit id/],
    ['--repo lacks one', src(commits[0]), src(unknown), { repoDir: repo }, /does not have commit e{40}; fetch it/],
    ['cwd is no checkout', src(commits[0]), src(commits[1]), {}, /pass --repo CHECKOUT/],
  ];
  for (const [label, from, to, opts, expected] of cases) {
    const list = await commitsBetween(from, to, { cwd: elsewhere, ...opts });
    assert.is(list.commits, null, label);
    assert.match(list.note ?? '', expected, label);
  }
  const same = await commitsBetween(src(commits[1]), src(commits[1]), { cwd: elsewhere });
  assert.equal([same.commits, same.note], [[], 'both releases were built from the same commit']);
  const error = await commitsBetween(src(commits[0]), src(commits[1]), {
    repoDir: path.join(elsewhere, 'nope'),
    cwd: '/',
  }).catch((e) => e);
  assert.instance(error, ValidationError);
  assert.match(error.message, /--repo .*nope is not a folder/);
});

test.run();
