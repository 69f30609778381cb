// lib/server/push-guard.ts: a replayed older push is judged `superseded` (by the signed push
// time, else by ancestry in a real git clone unless forced), and the clone's remote is pinned.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPushGuard, judgePush, type AcceptedPush } from '../../../lib/server/push-guard.ts';
import { git, makeBareRepo, tmpDir } from '../../_helpers/common.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const accepted = (sha: string, pushedAt?: number): AcceptedPush => ({
  sha,
  at: '2026-11-22T00:00:00Z',
  ...(pushedAt ? { pushedAt } : {}),
});
// A is the oldest commit, then B, then C (A is an ancestor of B and C; B of C).
const order = [A, B, C];
const ancestry = async (x: string, y: string) =>
  order.includes(x) && order.includes(y) ? order.indexOf(x) < order.indexOf(y) : undefined;

const cases: Array<[string, AcceptedPush[], { sha: string; order: Record<string, unknown> }, 'accept' | 'superseded']> =
  [
    ['nothing accepted yet', [], { sha: A, order: {} }, 'accept'],
    ['a redelivery of the newest push (a retry)', [accepted(B, 200)], { sha: B, order: { pushedAt: 200 } }, 'accept'],
    [
      'GitHub: pushed earlier than the newest → superseded',
      [accepted(B, 200)],
      { sha: A, order: { pushedAt: 100 } },
      'superseded',
    ],
    [
      'GitHub: pushed later (a forced rollback to an older commit) → builds',
      [accepted(B, 200)],
      { sha: A, order: { pushedAt: 300, forced: true } },
      'accept',
    ],
    ['GitHub: same second → builds', [accepted(B, 200)], { sha: C, order: { pushedAt: 200 } }, 'accept'],
    [
      'ancestry: an ancestor of the newest → superseded',
      [accepted(C), accepted(B)],
      { sha: A, order: { before: '0'.repeat(40) } },
      'superseded',
    ],
    [
      'ancestry: an ancestor, its before an ancestor too (the replayed original push) → superseded',
      [accepted(C)],
      { sha: B, order: { before: A } },
      'superseded',
    ],
    [
      'ancestry: the previous push while the newest is not fetched yet → superseded',
      [accepted('d'.repeat(40)), accepted(B)],
      { sha: B, order: { before: A } },
      'superseded',
    ],
    ['ancestry: a descendant → builds', [accepted(B)], { sha: C, order: {} }, 'accept'],
    [
      'ancestry: unknown to the clone (a new commit) → builds',
      [accepted(B)],
      { sha: 'e'.repeat(40), order: {} },
      'accept',
    ],
    ['ancestry: forced: true → builds', [accepted(C)], { sha: A, order: { forced: true } }, 'accept'],
    [
      'ancestry: before is the newest (the branch rewound from it) → builds',
      [accepted(C)],
      { sha: A, order: { before: C } },
      'accept',
    ],
    [
      'ancestry: before is not an ancestor of the commit (a rewind) → builds',
      [accepted(C), accepted(B)],
      { sha: A, order: { before: B } },
      'accept',
    ],
  ];
for (const [name, history, push, want] of cases) {
  test(`judgePush: ${name}`, async () => {
    const judgement = await judgePush(history, push as never, ancestry);
    assert.is(judgement.verdict, want);
    if (judgement.verdict === 'superseded') assert.match(judgement.reason, /not newer|before the push of/);
  });
}

test('createPushGuard with a real clone: ancestry, durable history, a pinned remote (also taken from an existing clone)', async () => {
  const data = tmpDir();
  const origin = await makeBareRepo(path.join(data, 'git'), 'site');
  const second = await origin.commit({ 'b.txt': 'b\n' });
  const work = path.join(data, 'repos', 'octo__site');
  await git(data, 'clone', '--quiet', origin.bare, work);
  const guard = createPushGuard({ dataDir: data, workDir: () => work });
  const url = origin.bare;

  // An existing clone (an upgrade, no state yet): its origin is the pin.
  assert.match(
    assertReason(await guard.admit({ repo: 'octo/site', cloneUrl: 'https://evil.example.com/x.git' })),
    /evil\.example\.com.*not the remote pinned at the first clone/,
  );
  // A configured url: the payload's clone URL is not used, so not judged.
  assert.is(
    (await guard.admit({ repo: 'octo/site', configuredUrl: url, cloneUrl: 'https://other.example.com/x.git' })).verdict,
    'accept',
  );

  const push = (sha: string, before?: string) => ({
    repo: 'octo/site',
    cloneUrl: url,
    push: { branch: 'main', sha, order: before ? { before } : {} },
  });
  assert.is((await guard.admit(push(second, origin.first))).verdict, 'accept');
  assert.is((await guard.admit(push(origin.first))).verdict, 'superseded');
  assert.is((await guard.admit(push(second))).verdict, 'accept', 'a retry of the newest');
  assert.is(
    (await guard.admit(push('f'.repeat(40), second))).verdict,
    'accept',
    'a commit the clone does not have yet',
  );
  const undone = await guard.admit(push('e'.repeat(40)));
  assert.is(undone.verdict, 'accept');
  if (undone.verdict === 'accept') undone.undo();
  assert.is(
    (await guard.admit(push(second))).verdict,
    'superseded',
    'after undo, f is the newest again and second is older',
  );
  assert.is((await guard.admit(push(origin.first, second))).verdict, 'accept', 'a rollback from the newest');
  await Promise.all([guard.persist('octo/site'), guard.persist('octo/site'), guard.persist('octo/site')]);
  const file = path.join(data, 'pushes', 'octo__site.json');
  const state = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(state.remote, url);
  assert.equal(
    state.branches.main.map((p: AcceptedPush) => p.sha),
    [origin.first, 'f'.repeat(40), second],
  );
  assert.is(statSync(file).mode & 0o777, 0o600);

  // A fresh guard (a restart) reads the same state: second was accepted before the rollback to first.
  const again = createPushGuard({ dataDir: data, workDir: () => work });
  assert.is((await again.admit(push(second))).verdict, 'superseded');
  assert.match(
    assertReason(await again.admit({ repo: 'octo/site', cloneUrl: 'https://evil.example.com/x.git' })),
    /not the remote pinned at the first clone/,
  );
});

test('createPushGuard without a clone: the first delivery pins the remote; another is refused', async () => {
  const data = tmpDir();
  const guard = createPushGuard({ dataDir: data, workDir: () => path.join(data, 'repos', 'x') });
  const first = { repo: 'group/sub/app', cloneUrl: 'https://gitlab.example.com/group/sub/app.git' };
  assert.is((await guard.admit(first)).verdict, 'accept');
  await guard.persist(first.repo);
  assert.ok(existsSync(path.join(data, 'pushes', 'group__sub__app.json')));
  assert.is((await guard.admit(first)).verdict, 'accept');
  assert.is((await guard.admit({ ...first, cloneUrl: 'https://gitlab.example.com/evil/app.git' })).verdict, 'refused');
});

test('the newest push delivered again changes nothing and writes nothing, but waits for the write it was judged against', async () => {
  const data = tmpDir();
  const guard = createPushGuard({ dataDir: data, workDir: () => path.join(data, 'repos', 'x') });
  const push = (sha: string, pushedAt?: number) => ({
    repo: 'o/site',
    cloneUrl: 'https://example.com/o/site.git',
    push: { branch: 'main', sha, order: pushedAt === undefined ? {} : { pushedAt } },
  });
  const first = await guard.admit(push('a'.repeat(40), 100));
  assert.ok(first.verdict === 'accept' && first.changed, 'a first push is remembered');
  const writing = guard.persist('o/site');
  let writtenFirst = false;
  void writing.then(() => {
    writtenFirst = true;
  });
  const again = await guard.admit(push('a'.repeat(40), 100));
  assert.ok(again.verdict === 'accept' && !again.changed, 'the same push again');
  await guard.written('o/site');
  assert.ok(writtenFirst, 'written() waited for the write already under way');
  const file = path.join(data, 'pushes', 'o__site.json');
  const before = readFileSync(file, 'utf8');
  const { mtimeMs, ino } = statSync(file);
  await new Promise((r) => setTimeout(r, 20));
  const third = await guard.admit(push('a'.repeat(40), 100));
  assert.ok(third.verdict === 'accept' && !third.changed);
  await guard.written('o/site');
  assert.is(readFileSync(file, 'utf8'), before, 'its first acceptance time stands');
  assert.equal([statSync(file).mtimeMs, statSync(file).ino], [mtimeMs, ino], 'not rewritten');
  // Another commit, or the same one with another signed push time, is news.
  const next = await guard.admit(push('b'.repeat(40), 101));
  assert.ok(next.verdict === 'accept' && next.changed);
  const repushed = await guard.admit(push('b'.repeat(40), 102));
  assert.ok(repushed.verdict === 'accept' && repushed.changed);
  await guard.persist('o/site');
  assert.equal(
    JSON.parse(readFileSync(file, 'utf8')).branches.main.map((p: AcceptedPush) => [p.sha[0], p.pushedAt]),
    [
      ['b', 102],
      ['a', 100],
    ],
  );
});

test('serial: deliveries of one repo are judged one at a time, others run alongside', async () => {
  const guard = createPushGuard({ dataDir: tmpDir(), workDir: () => '/nonexistent' });
  const events: string[] = [];
  const slow = (name: string, ms: number) => async () => {
    events.push(`start ${name}`);
    await new Promise((r) => setTimeout(r, ms));
    events.push(`end ${name}`);
  };
  await Promise.all([
    guard.serial('a', slow('a1', 50)),
    guard.serial('a', slow('a2', 1)),
    guard.serial('b', slow('b1', 1)),
  ]);
  assert.ok(events.indexOf('end a1') < events.indexOf('start a2'), events.join(', '));
  assert.ok(events.indexOf('end b1') < events.indexOf('end a1'), events.join(', '));
  // A delivery that failed does not hold up the next one of its repo.
  await guard
    .serial('a', async () => {
      throw new Error('x');
    })
    .catch(() => undefined);
  assert.is(await guard.serial('a', async () => 5), 5);
});

function assertReason(judgement: { verdict: string; reason?: string }): string {
  assert.is(judgement.verdict, 'refused');
  return judgement.reason!;
}

test.run();
