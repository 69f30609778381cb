// One request id per request on every listener (lib/http/request-id.ts, assigned by
// startHttpServer): sent back as X-Request-Id and the same one the handler logs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requestIdOf } from '../../../lib/http/request-id.ts';
import { sendJson, startHttpServer } from '../../../lib/http/server.ts';

test('every answer carries its own X-Request-Id, the one the handler sees; also on a handler that throws', async () => {
  const seen: string[] = [];
  const server = await startHttpServer(
    async (req, res) => {
      seen.push(requestIdOf(req));
      if (req.url === '/boom') throw new Error('boom');
      sendJson(res, 200, { id: requestIdOf(req) });
    },
    { host: '127.0.0.1', port: 0 },
  );
  try {
    const answers = await Promise.all([1, 2, 3].map(() => fetch(`${server.url}/`)));
    const ids = answers.map((r) => r.headers.get('x-request-id') ?? '');
    for (const [i, r] of answers.entries()) assert.equal(await r.json(), { id: ids[i] });
    for (const id of ids) assert.match(id, /^[0-9a-f]{12}$/);
    assert.is(new Set(ids).size, 3);
    assert.equal([...seen].sort(), [...ids].sort());
    const failed = await fetch(`${server.url}/boom`);
    assert.is(failed.status, 500);
    assert.is(failed.headers.get('x-request-id'), seen.at(-1));
  } finally {
    await server.close(1000);
  }
});

test('ids stay distinct and 12 hex digits across many requests (they are drawn 256 at a time)', async () => {
  const server = await startHttpServer(async (req, res) => sendJson(res, 200, {}), { host: '127.0.0.1', port: 0 });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 600; i++) {
      const r = await fetch(`${server.url}/`);
      await r.arrayBuffer();
      ids.push(r.headers.get('x-request-id') ?? '');
    }
    for (const id of ids) assert.match(id, /^[0-9a-f]{12}$/);
    assert.is(new Set(ids).size, 600);
  } finally {
    await server.close(1000);
  }
});

test.run();
