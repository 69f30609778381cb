// Which requests for /jobs/ID get the HTML job page: a browser's navigation, not curl or fetch.
// A logout the DATA folder cannot take: the viewer is told, and this process refuses the session.
import { mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createDeliveryOutcomes } from '../../../lib/notify/outcomes.ts';
import { createPageRoutes, prefersHtml } from '../../../lib/web/page-routes.ts';
import type { ReadSources } from '../../../lib/web/read-sources.ts';
import { tmpDir } from '../../_helpers/common.ts';

test('prefersHtml: browsers yes; */*, JSON, ties and nothing no', () => {
  const cases: Array<[string | undefined, boolean]> = [
    ['text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8', true],
    ['text/html', true],
    ['*/*', false],
    [undefined, false],
    ['application/json', false],
    ['text/html, application/json', false],
    ['application/json;q=0.5, text/html', true],
    ['text/html;q=0.5, */*', false],
    ['text/html;q=abc', false],
    ['text/event-stream', false],
  ];
  for (const [accept, expected] of cases) assert.is(prefersHtml(accept), expected, String(accept));
});

test('a logout that cannot be written: a page says so (500), the cookie is cleared, and this process refuses the session from then on', async () => {
  const data = path.join(tmpDir(), 'data');
  mkdirSync(data);
  const errors: string[] = [];
  const log = { debug() {}, info() {}, warn() {}, error: (m: string) => void errors.push(m), child: () => log };
  const sources: ReadSources = {
    ui: 'token',
    token: 'the-read-token',
    dataDir: data,
    log: log as unknown as ReadSources['log'],
    jobs: () => [],
    list: () => [],
    get: () => undefined,
    isJobId: () => false,
    readLog: async () => undefined,
    branchOf: () => undefined,
    repos: () => [],
    renderMetrics: () => '',
    deliveries: createDeliveryOutcomes(),
  };
  const pages = createPageRoutes(sources);
  const server = createServer((req, res) => {
    void pages.handle(req, res, new URL(req.url ?? '/', 'http://localhost'), (status, message) => {
      res.writeHead(status).end(message);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const login = await fetch(`${url}/login`, {
      method: 'POST',
      body: 'token=the-read-token',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      redirect: 'manual',
    });
    assert.is(login.status, 303);
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    const page = () =>
      fetch(`${url}/`, { headers: { Cookie: cookie, Accept: 'text/html' } }).then(async (r) => {
        await r.arrayBuffer();
        return r.status;
      });
    assert.is(await page(), 200);
    rmSync(data, { recursive: true });
    const out = await fetch(`${url}/logout`, { method: 'POST', headers: { Cookie: cookie }, redirect: 'manual' });
    assert.is(out.status, 500);
    assert.match(await out.text(), 'the server could not record it');
    assert.match(out.headers.get('set-cookie')!, /^shipkit_session=; /);
    assert.is(errors.length, 1, 'logged');
    assert.is(await page(), 401, 'refused by this process all the same');
  } finally {
    server.close();
  }
});

test.run();
