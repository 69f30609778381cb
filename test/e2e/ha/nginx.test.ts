// Two hook-servers behind Debian's nginx, with the upstream block docs/ha.md shows (its TLS lines
// replaced by a plain loopback port): one node killed with -9 while signed deliveries go through.
// nginx passes a delivery that found the dead node to the other, so each is answered 2xx on its
// first try; each made exactly one job (counted in the database), and the answer names it.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { githubSignature, pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { NGINX, startNginx } from '../../fixtures/nginx.ts';
import { startPostgres } from '../../fixtures/postgres.ts';
import { ROOT, freePort, type Server } from '../../_helpers/common.ts';
import { SECRET, startNode, worldEnv } from '../../fixtures/workers.ts';

const RATE = 100;
const TOTAL = 300;

/** The ```nginx block of docs/ha.md on 127.0.0.1:`port`, in front of `upstreams`. */
function siteFromDocs(port: number, upstreams: number[]): string {
  const doc = readFileSync(path.join(ROOT, 'docs', 'ha.md'), 'utf8');
  const block = /```nginx\n([\s\S]*?)```/.exec(doc)![1];
  let site = block.replace(/listen 443 ssl;/, `listen 127.0.0.1:${port};`).replace(/^\s*ssl_\w+ .*\n/gm, '');
  for (const [i, upstream] of upstreams.entries())
    site = site.replace(`10.0.0.1${i + 1}:9000`, `127.0.0.1:${upstream}`);
  assert.not.match(site, /10\.0\.0\.|ssl/, 'every address and TLS line replaced');
  return site;
}

test('kill -9 of a hook-server behind nginx: each delivery answered 2xx on its first try, one job each', async () => {
  if (!existsSync(NGINX)) return console.log('skipped: nginx is not installed (apt-get install nginx-light)');
  const pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg);
  const repos = { 'octo/site': {} };
  const nodes: Server[] = [];
  for (const name of ['a', 'b']) nodes.push(await startNode(name, repos, env));
  const [a, b] = nodes;
  const port = await freePort();
  const nginx = await startNginx(siteFromDocs(port, [a.port, b.port]), port);
  try {
    const outcomes: Array<Promise<{ delivery: string; status: number; job?: string }>> = [];
    const startedAt = Date.now();
    for (let i = 0; i < TOTAL; i++) {
      const due = startedAt + (i * 1000) / RATE;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      if (i === TOTAL / 3) a.child.kill('SIGKILL');
      const delivery = randomUUID();
      const body = JSON.stringify(pushPayload('octo/site', { sha: (i + 1).toString(16).padStart(40, 'd') }));
      const signature = await githubSignature(SECRET, body);
      outcomes.push(
        fetch(`${nginx.url}/hooks/github`, {
          method: 'POST',
          body,
          headers: {
            'Content-Type': 'application/json',
            'X-GitHub-Event': 'push',
            'X-GitHub-Delivery': delivery,
            'X-Hub-Signature-256': signature,
          },
        }).then(
          async (res) => ({ delivery, status: res.status, job: ((await res.json().catch(() => ({}))) as any).job }),
          () => ({ delivery, status: 0 }),
        ),
      );
    }
    const done = await Promise.all(outcomes);
    const wrong = done.filter((o) => o.status < 200 || o.status >= 300);
    console.log(
      `  ${TOTAL} deliveries at ${RATE}/s through nginx, node a killed after ${TOTAL / 3}: ${done.filter((o) => o.status === 202).length} answered 202, ${done.filter((o) => o.status === 200).length} 200, ${wrong.length} other`,
    );
    assert.equal(wrong, [], 'every delivery answered 2xx on its first try');
    const keys = done.map((o) => `'${o.delivery}'`).join(',');
    const rows = await pg.sql(
      `SELECT record->>'deliveryId', string_agg(id, ',') FROM shipkit.jobs WHERE record->>'deliveryId' IN (${keys}) GROUP BY 1`,
    );
    const jobOf = new Map(rows.split('\n').map((line) => line.split('|') as [string, string]));
    assert.is(jobOf.size, TOTAL, 'each delivery made a job');
    for (const o of done) assert.is(o.job, jobOf.get(o.delivery), `delivery ${o.delivery}: one job, the one answered`);
  } finally {
    nginx.stop();
    await b.stop();
    await a.stop();
  }
});

test.run();
