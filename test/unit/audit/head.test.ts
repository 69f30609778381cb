// The audit trail's kept head (lib/audit/head.ts): a trail held against it is whole, cut or
// rewritten (also past a retention cut); the file is raised by appends, never lowered, and not
// raised over a trail that no longer holds it; a damaged file is refused.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chainLines, sha256Hex, verifyAuditChain, type NewAuditEntry } from '../../../lib/audit/chain.ts';
import { AuditFile } from '../../../lib/audit/file-store.ts';
import { AuditHeadError, hashAt, headProblem, HeadFile, verifyAgainstKept } from '../../../lib/audit/head.ts';
import { ValidationError } from '../../../lib/core/errors.ts';
import { createLogger } from '../../../lib/core/log.ts';
import { tmpDir } from '../../_helpers/common.ts';

const entry = (actor: string, daysAgo = 0): NewAuditEntry => ({
  at: new Date(Date.now() - daysAgo * 86_400_000).toISOString(),
  action: 'login',
  actor,
  from: '127.0.0.1',
  subject: null,
  detail: null,
});

const trailOf = (actors: string[]) =>
  chainLines(
    actors.map((a) => entry(a)),
    undefined,
  ).lines;
const bytesOf = (lines: string[]) => Buffer.from(lines.map((l) => `${l}\n`).join(''));

test('a trail against its kept head: whole, cut, rewritten', () => {
  const lines = trailOf(['a', 'b', 'c', 'd', 'e']);
  const trail = verifyAuditChain(bytesOf(lines));
  const at = (n: number) => ({ n, hash: sha256Hex(lines[n - 1]) });
  for (const n of [1, 3, 5]) assert.is(hashAt(trail, n), at(n).hash);
  assert.is(headProblem(trail, at(5), 'F'), undefined, 'the head itself');
  assert.is(headProblem(trail, at(3), 'F'), undefined, 'a head that lags still holds');
  const cut = headProblem(verifyAuditChain(bytesOf(lines.slice(0, 3))), at(5), 'F');
  assert.is(cut?.kind, 'cut');
  assert.match(cut!.message, 'it ends at entry 3, but its head kept in F is entry 5: entries 4 to 5 were removed');
  assert.match(headProblem(verifyAuditChain(Buffer.alloc(0)), at(2), 'F')!.message, 'it is empty');
  const remade = [
    lines[0],
    ...chainLines(
      ['B', 'c', 'd', 'e'].map((a) => entry(a)),
      at(1),
    ).lines,
  ];
  const rewritten = headProblem(verifyAuditChain(bytesOf(remade)), at(4), 'F');
  assert.is(rewritten?.kind, 'rewritten');
  assert.match(rewritten!.message, 'entry 4 is not the one whose sha256 F keeps');
});

test('past a retention cut: the last entry cut is checked by the first kept, older ones cannot be', async () => {
  const file = path.join(tmpDir('shipkit-audit-'), 'audit', 'audit.jsonl');
  const store = new AuditFile(file);
  const old = chainLines([entry('a', 90), entry('b', 60), entry('c', 1)], undefined).lines;
  await store.append([]);
  writeFileSync(file, bytesOf(old));
  await store.prune(new Date(Date.now() - 30 * 86_400_000), 30, new Date());
  const trail = verifyAuditChain(readFileSync(file));
  assert.equal(
    trail.entries.map((e) => e.n),
    [3, 4],
  );
  assert.is(headProblem(trail, { n: 2, hash: sha256Hex(old[1]) }, 'F'), undefined);
  assert.is(headProblem(trail, { n: 2, hash: 'f'.repeat(64) }, 'F')?.kind, 'rewritten');
  assert.is(headProblem(trail, { n: 1, hash: 'f'.repeat(64) }, 'F'), undefined, 'before the cut: nothing to compare');
});

test('appends raise the kept head, never lower it, and not over a trail that no longer holds it', async () => {
  const dir = tmpDir('shipkit-audit-');
  const logged: string[] = [];
  const log = createLogger({ stream: { write: (s: string) => logged.push(s) > 0 } as NodeJS.WritableStream });
  const head = new HeadFile(path.join(dir, 'audit-head.json'), log);
  const file = path.join(dir, 'audit', 'audit.jsonl');
  const [a, b] = [new AuditFile(file, head), new AuditFile(file, new HeadFile(head.file, log))];
  await Promise.all(
    Array.from({ length: 10 }, (_, i) => [a.append([entry(`a${i}`)]), b.append([entry(`b${i}`)])]).flat(),
  );
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  assert.equal(await head.read(), { n: 20, hash: sha256Hex(lines[19]), at: (await head.read())!.at });
  assert.ok((await verifyAgainstKept(readFileSync(file), head)).kept);

  await head.keep(undefined, { n: 12, hash: sha256Hex(lines[11]) }, async () => undefined);
  assert.is((await head.read())!.n, 20, 'never lowered');

  // The end cut and appended to again: entry 20 is another line now, so the head stays at the old one.
  writeFileSync(file, bytesOf(lines.slice(0, 15)));
  for (let i = 0; i < 6; i++) await a.append([entry(`late${i}`)]);
  assert.is((await head.read())!.hash, sha256Hex(lines[19]));
  assert.match(logged.join(''), 'the trail does not hold its head kept in');
  try {
    await verifyAgainstKept(readFileSync(file), head);
    assert.unreachable('a re-grown trail holds no longer');
  } catch (error) {
    assert.instance(error, AuditHeadError);
    assert.is((error as AuditHeadError).kind, 'rewritten');
  }
});

test('a damaged head file is refused, naming it; none kept is undefined', async () => {
  const head = new HeadFile(path.join(tmpDir('shipkit-audit-'), 'audit-head.json'));
  assert.is(await head.read(), undefined);
  for (const text of ['', '{"n":0,"hash":"00"}', `{"n":3,"hash":"${'A'.repeat(64)}"}`, 'null']) {
    writeFileSync(head.file, text);
    try {
      await head.read();
      assert.unreachable(text);
    } catch (error) {
      assert.instance(error, ValidationError);
      assert.match((error as Error).message, `${head.file} is damaged`);
    }
  }
});

test.run();
