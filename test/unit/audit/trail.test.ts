// The trail as hook-server uses it: each record stamped with the time (and the node with queue:),
// retention only with keep_days, and who and where an action came from.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AuditTrail, clientOf, commandActor, sessionActor } from '../../../lib/audit/trail.ts';
import { auditFileOf } from '../../../lib/audit/file-store.ts';
import { verifyAuditChain } from '../../../lib/audit/chain.ts';
import { createLogger } from '../../../lib/core/log.ts';
import { tmpDir } from '../../_helpers/common.ts';

const log = createLogger({ json: true, stream: { write: () => true } as never });
const config = (data: string, keepDays?: number) => ({
  file: path.join(data, 'shipkit.yml'),
  data,
  audit: { keepDays },
});

test('a record gets the time; the node only with queue:; keep_days absent cuts nothing', async () => {
  const data = tmpDir('shipkit-trail-');
  let now = new Date(Date.UTC(2026, 0, 1));
  const trail = await AuditTrail.open(config(data), 'test', { log, node: 'a', now: () => now });
  const entry = await trail.record({
    action: 'logout',
    actor: 'session abc',
    from: '::1',
    subject: null,
    detail: null,
  });
  assert.equal(entry, {
    n: 1,
    prev: '0'.repeat(64),
    at: '2026-01-01T00:00:00.000Z',
    action: 'logout',
    actor: 'session abc',
    from: '::1',
    subject: null,
    detail: null,
  });
  now = new Date(Date.UTC(2027, 0, 1));
  assert.equal(await trail.prune(), { cut: 0 });
  await trail.close();
});

test('with keep_days: entries older than that cut at start, the cut recorded', async () => {
  const data = tmpDir('shipkit-trail-');
  let now = new Date(Date.UTC(2026, 0, 1));
  const old = await AuditTrail.open(config(data), 'test', { log, now: () => now });
  await old.record({ action: 'login', actor: 'token', from: 'x', subject: null, detail: null });
  now = new Date(Date.UTC(2026, 2, 1));
  const trail = await AuditTrail.open(config(data, 30), 'test', { log, now: () => now });
  assert.equal(await trail.prune(), { cut: 1, through: 1 });
  const { entries } = verifyAuditChain(readFileSync(auditFileOf(data)));
  assert.equal(
    entries.map((e) => [e.n, e.action, e.detail?.keep_days]),
    [[2, 'retention', 30]],
  );
  await Promise.all([old.close(), trail.close()]);
});

test('who and from where: a session by 8 characters of its id, the socket peer, the command user', () => {
  assert.is(sessionActor('AbCdEfGhIjKlMnOpQrStUv.1700000000000.mac'), 'session AbCdEfGh');
  assert.is(
    clientOf({ socket: { remoteAddress: '10.0.0.7' }, headers: { 'x-forwarded-for': '1.2.3.4' } } as never),
    '10.0.0.7',
  );
  assert.match(commandActor(), /^cli \S+@\S+$/);
});

test.run();
