// What `release rollback` tells hook-server (lib/release/rollout/rollback-steps.ts
// tellFleetOfRollback), against a real HTTP server that checks the signature as hook-server does:
// the version left, marked rolled_back at the first step's percent with the steps in its reason;
// nothing for a continued run; a server that refuses or is not there is a warning, never an error.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../../../../lib/core/log.ts';
import { createRequestVerifier } from '../../../../lib/http/signing.ts';
import type { RollbackResult } from '../../../../lib/release/rollout/rollback.ts';
import { tellFleetOfRollback } from '../../../../lib/release/rollout/rollback-steps.ts';
import { closedPort } from '../../../_helpers/common.ts';

const SECRET = 'the fleet secret of my-app';

/** hook-server's POST /fleet/rollouts as far as this needs: the signature checked, the body kept. */
async function fleetServer(status = 202) {
  const verifier = createRequestVerifier(SECRET);
  const posts: Array<{ method: string; url: string; verdict: unknown; body: Record<string, unknown> }> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const bytes = Buffer.concat(chunks);
      const bodySha256 = createHash('sha256').update(bytes).digest('hex');
      const verdict = verifier.verify(req.method!, req.url!, req.headers, { bodySha256 });
      posts.push({ method: req.method!, url: req.url!, verdict, body: JSON.parse(bytes.toString()) });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, posts, close: () => server.close() };
}

const rollback = (extra: Partial<RollbackResult> = {}): RollbackResult => ({
  app: 'my-app',
  from: '1.3',
  version: '1.2',
  file: 'my-app-gnu-linux-1.2.tar.gz',
  seq: 7,
  to: '/srv/updates',
  ...extra,
});

function logged() {
  const lines: string[] = [];
  return { lines, log: createLogger({ stream: { write: (l: string) => lines.push(l) > 0 } as never, json: true }) };
}

test('the version left is posted, signed, as rolled back at the first step, with the steps in its reason', async () => {
  const s = await fleetServer();
  try {
    const { log, lines } = logged();
    await tellFleetOfRollback({ fleet: s.url, secret: SECRET, log }, rollback(), [10, 50, 100]);
    await tellFleetOfRollback({ fleet: `${s.url}/ci/`, secret: SECRET, log }, rollback({ seq: 8 }));
    assert.is(s.posts.length, 2);
    const [steps, whole] = s.posts;
    assert.equal([steps.method, steps.url, steps.verdict], ['POST', '/fleet/rollouts', { ok: true, secret: 0 }]);
    const { at, ...body } = steps.body;
    assert.ok(Math.abs(Date.parse(String(at)) - Date.now()) < 60_000, String(at));
    assert.equal(body, {
      app: 'my-app',
      version: '1.3',
      seq: 7,
      step: 1,
      percent: 10,
      steps: [10, 50, 100],
      state: 'rolled_back',
      reason: 'release rollback to 1.2 (SEQ 7) in steps 10, 50, 100',
    });
    assert.equal([whole.url, whole.verdict], ['/ci/fleet/rollouts', { ok: true, secret: 0 }]);
    assert.equal(
      [whole.body.percent, whole.body.steps, whole.body.reason],
      [100, [100], 'release rollback to 1.2 (SEQ 8)'],
    );
    assert.equal(lines, []);
  } finally {
    s.close();
  }
});

test('a continued run told hook-server before: nothing is posted', async () => {
  const s = await fleetServer();
  try {
    await tellFleetOfRollback(
      { fleet: s.url, secret: SECRET, log: logged().log },
      rollback({ continued: true }),
      [10, 100],
    );
    assert.equal(s.posts, []);
  } finally {
    s.close();
  }
});

test('hook-server refusing the state, or not there: a warning, and the rollback goes on', async () => {
  const s = await fleetServer(401);
  try {
    const refused = logged();
    await tellFleetOfRollback({ fleet: s.url, secret: 'another secret', log: refused.log }, rollback());
    assert.is((s.posts[0].verdict as { ok: boolean }).ok, false, 'signed with another secret');
    assert.match(refused.lines.join(''), /hook-server did not take the rollout state/);
  } finally {
    s.close();
  }
  const gone = logged();
  await tellFleetOfRollback(
    { fleet: `http://127.0.0.1:${await closedPort()}`, secret: SECRET, log: gone.log },
    rollback(),
  );
  assert.match(gone.lines.join(''), /could not tell hook-server the rollout state/);
});

test.run();
