// DATA/audit/audit.jsonl on a real disk: appends from two writers at once keep one chain, a torn
// last line is cut before the next append, a cut of old entries leaves a trail that verifies, and
// a trail that does not verify is neither cut nor appended to after a damaged last line.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AuditFile } from '../../../lib/audit/file-store.ts';
import { AuditChainError, verifyAuditChain, type NewAuditEntry } from '../../../lib/audit/chain.ts';
import { ValidationError } from '../../../lib/core/errors.ts';
import { tmpDir } from '../../_helpers/common.ts';

const entry = (actor: string, at = new Date()): NewAuditEntry => ({
  at: at.toISOString(),
  action: 'login',
  actor,
  from: '127.0.0.1',
  subject: null,
  detail: null,
});

const fileIn = () => path.join(tmpDir('shipkit-audit-'), 'audit', 'audit.jsonl');

test('two writers appending at once keep one chain; read selects by since and limit', async () => {
  const file = fileIn();
  const [a, b] = [new AuditFile(file), new AuditFile(file)];
  await Promise.all(
    Array.from({ length: 20 }, (_, i) => [a.append([entry(`a${i}`)]), b.append([entry(`b${i}`)])]).flat(),
  );
  const { entries } = verifyAuditChain(readFileSync(file));
  assert.is(entries.length, 40);
  assert.equal(
    (await a.read({ since: { after: 37 }, limit: 10 })).map((r) => r.entry.n),
    [38, 39, 40],
  );
  assert.equal(
    (await a.read({ limit: 2 })).map((r) => r.entry.n),
    [39, 40],
  );
});

test('a torn last line (a write that never finished) is cut before the next append', async () => {
  const file = fileIn();
  const store = new AuditFile(file);
  await store.append([entry('one')]);
  appendFileSync(file, '{"n":2,"prev":"');
  const [added] = await store.append([entry('two')]);
  assert.is(added.n, 2);
  assert.is(verifyAuditChain(readFileSync(file)).entries.length, 2);
});

test('a damaged last line: nothing appended, the error says to verify', async () => {
  const file = fileIn();
  const store = new AuditFile(file);
  await store.append([entry('one')]);
  appendFileSync(file, 'garbage\n');
  const before = readFileSync(file, 'utf8');
  try {
    await store.append([entry('two')]);
    assert.unreachable('appended after a damaged line');
  } catch (error) {
    assert.instance(error, ValidationError);
    assert.match(String(error), 'shipkit audit --verify');
  }
  assert.is(readFileSync(file, 'utf8'), before);
});

test('old entries cut with a retention entry; the chain verifies from there; a broken trail is not cut', async () => {
  const file = fileIn();
  const store = new AuditFile(file);
  const day = (d: number) => new Date(Date.UTC(2026, 0, d));
  for (const d of [1, 2, 3, 20]) await store.append([entry(`day ${d}`, day(d))]);
  const pruned = await store.prune(day(10), 7, day(21));
  assert.equal(pruned, { cut: 3, through: 3 });
  const { entries } = verifyAuditChain(readFileSync(file));
  assert.equal(
    entries.map((e) => [e.n, e.action]),
    [
      [4, 'login'],
      [5, 'retention'],
    ],
  );
  assert.equal(entries[1].detail!.cut, 3);
  assert.equal(await store.prune(day(10), 7, day(21)), { cut: 0 }, 'nothing more to cut');

  const text = readFileSync(file, 'utf8').replace('day 20', 'day 99');
  writeFileSync(file, text);
  try {
    await store.prune(day(30), 7, day(31));
    assert.unreachable('cut a trail that does not verify');
  } catch (error) {
    assert.instance(error, AuditChainError);
  }
  assert.is(readFileSync(file, 'utf8'), text);
});

test.run();
