// Preview databases (docs/previews.md), end to end with real parts: a real PostgreSQL, hook-server
// as a child process taking signed pull_request events, builds of a real git repo run under
// launchfit behind a real nginx. The app reaches its own database, copied from the template; a push
// keeps it, closing drops it, the sweep drops an orphan; a server that refuses fails the preview.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { previewUserEnv } from '../../fixtures/previews/as-user.ts';
import { stopPreview } from '../../../lib/previews/launch.ts';
import { deliverGithub } from '../../fixtures/hooks/deliveries.ts';
import { ownerPullRequest } from '../../fixtures/hooks/pull-requests.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { getThrough, nginxBlock, startPreviewNginx, type PreviewNginx } from '../../fixtures/previews/nginx.ts';
import { ROOT, closedPort, makeBareRepo, startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const WRONG = `wrong-${randomUUID()}`;
const ORPHAN = 'shipkit_preview_octo__site_pr_77';
const OTHER_REPOS = 'shipkit_preview_other__repo_pr_1';
const dir = tmpDir('shipkit-preview-db-');
// launchfit's control socket path has 107 bytes at most: DATA is a short folder of /tmp itself.
const data = mkdtempSync('/tmp/skp-');
const config = path.join(dir, 'shipkit.yml');
const SLUGS = ['octo__site', 'octo__badpw', 'octo__gone'];
let postgres: Postgres | undefined;
let nginx: PreviewNginx;
let server: Server;
let repo: Awaited<ReturnType<typeof makeBareRepo>>;

// The app answers its version, and at /db what its DATABASE_URL reaches: the database and the seed rows.
const APP = `
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { Client } = require(process.env.PG_MODULE);
const version = fs.readFileSync(path.join(__dirname, 'VERSION.txt'), 'utf8').trim();
async function database(res) {
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  try {
    await client.connect();
    const { rows } = await client.query("SELECT current_database() AS db, string_agg(name, ',' ORDER BY name) AS rows FROM seed");
    res.end(JSON.stringify({ version, url: process.env.DATABASE_URL, ...rows[0] }));
  } catch (error) {
    res.statusCode = 500;
    res.end(String(error.message));
  } finally {
    client.end().catch(() => {});
  }
}
const handler = (req, res) => (req.url === '/db' ? database(res) : res.end(version + '\\n'));
const fds = Number(process.env.LISTEN_FDS || 0);
const servers = [];
if (fds > 0) for (let i = 0; i < fds; i++) servers.push(http.createServer(handler).listen({ fd: 3 + i }));
else servers.push(http.createServer(handler).listen(Number(process.env.PORT), '127.0.0.1'));
process.on('SIGTERM', () => {
  for (const s of servers) s.close();
  setTimeout(() => process.exit(0), 200).unref();
});
`;

const through = (pr: number, urlPath = '/') => getThrough(nginx.port, urlPath, `pr-${pr}.preview.test`);
const databaseUrl = (name: string) => {
  const url = new URL(postgres!.url);
  url.pathname = `/${name}`;
  return url.toString();
};

/** Runs `work` on a session of database `name` as the cluster's superuser. */
async function inDatabase<T>(name: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl(name) });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function databases(): Promise<string[]> {
  return (await postgres!.sql('SELECT datname FROM pg_database ORDER BY datname')).split('\n');
}

function event(action: string, pr: number, sha: string, name = 'octo/site') {
  return ownerPullRequest(action, { pr, sha, cloneUrl: `file://${repo.bare}`, repo: name });
}
const deliver = (payload: unknown) => deliverGithub(server.url, 'pull_request', payload, SECRET);

async function listed(): Promise<{ text: string; previews: Array<Record<string, any>> }> {
  const res = await fetch(`${server.url}/previews`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const text = await res.text();
  return { text, previews: JSON.parse(text).previews };
}

/** The record of `name#pr` once it is in `state`; a failure shows it and hook-server's last lines. */
async function waitState(name: string, pr: number, state: string): Promise<Record<string, any>> {
  let last: Record<string, any> | undefined;
  const found = await waitFor(
    async () => {
      last = (await listed()).previews.find((p) => p.repo === name && p.pr === pr);
      return last?.state === state ? last : undefined;
    },
    { timeoutMs: 60_000, what: `${name}#${pr} ${state}` },
  ).catch((error) => {
    throw new Error(`${error.message}; last: ${JSON.stringify(last)}\n${server.output().slice(-3000)}`, {
      cause: error,
    });
  });
  return found!;
}

/** The app's /db through nginx once it answers 200 (nginx's old worker may answer a request or two before). */
async function appDatabase(
  pr: number,
  check: (db: { version: string; url: string; db: string; rows: string }) => boolean,
) {
  return waitFor(
    async () => {
      const r = await through(pr, '/db');
      if (r.status !== 200) return undefined;
      const db = JSON.parse(r.body);
      return check(db) ? db : undefined;
    },
    { timeoutMs: 60_000, what: `pr-${pr}'s /db` },
  ).catch((error) => {
    throw new Error(`${error.message}\n${server.output().slice(-3000)}`, { cause: error });
  });
}

test.before(async () => {
  postgres = await startPostgres();
  if (!postgres) return;
  await postgres.sql('CREATE DATABASE site_seed');
  await inDatabase('site_seed', (c) => c.query("CREATE TABLE seed (name text); INSERT INTO seed VALUES ('seeded')"));
  for (const name of [ORPHAN, OTHER_REPOS]) await postgres.sql(`CREATE DATABASE ${name}`);
  nginx = await startPreviewNginx();
  repo = await makeBareRepo(dir, 'site', { 'server.cjs': APP, 'VERSION.txt': 'v1\n' });
  const previews = (domain: string, url: string, template = '') => [
    '    previews:',
    `      domain: ${domain}`,
    ...nginxBlock(nginx),
    '      start: node server.cjs',
    `      env: { PG_MODULE: ${path.join(ROOT, 'node_modules', 'pg')} }`,
    `      database: { url: ${url}${template} }`,
  ];
  writeFileSync(
    config,
    [
      'listen: 127.0.0.1:0',
      `data: ${data}`,
      'secret: env:HOOK_SECRET',
      'token: env:HOOK_TOKEN',
      'repos:',
      ...['site', 'badpw', 'gone'].flatMap((name) => [
        `  octo/${name}:`,
        `    url: file://${repo.bare}`,
        '    steps: [pull]',
        ...(name === 'site' ? previews('preview.test', 'env:PREVIEW_PG', ', template: site_seed') : []),
        ...(name === 'badpw' ? previews('badpw.test', 'env:BAD_PG') : []),
        ...(name === 'gone' ? previews('gone.test', 'file:gone-pg') : []),
      ]),
      '',
    ].join('\n'),
  );
  const bad = new URL(postgres.url);
  bad.password = WRONG;
  const gone = new URL(postgres.url);
  gone.port = String(await closedPort());
  writeFileSync(path.join(dir, 'gone-pg'), `${gone}\n`);
  server = await startScript('hook-server', ['--config', config], {
    env: {
      ...(await previewUserEnv([dir, data])),
      HOOK_SECRET: SECRET,
      HOOK_TOKEN: TOKEN,
      PREVIEW_PG: postgres.url,
      BAD_PG: bad.toString(),
      SHIPKIT_PREVIEWS_SWEEP_MS: '1000',
    },
  });
});
test.after(async () => {
  await server?.stop('SIGTERM');
  // Previews outlive hook-server by design: a test that failed half-way ends its own.
  for (const slug of SLUGS) {
    const root = path.join(data, 'previews', slug);
    for (const name of existsSync(root) ? readdirSync(root) : []) await stopPreview(path.join(root, name));
  }
  rmSync(data, { recursive: true, force: true });
  await nginx?.stop();
  await postgres?.stop();
});

test("the sweep at start drops an orphan of this repo's previews; other databases are kept", async () => {
  if (!postgres) return;
  await waitFor(async () => !(await databases()).includes(ORPHAN), { what: `${ORPHAN} dropped` });
  const left = await databases();
  for (const kept of [OTHER_REPOS, 'site_seed', 'postgres']) assert.ok(left.includes(kept), `${kept} kept`);
  assert.match(server.output(), /preview database dropped: no open preview owns it/);
});

test("opened: the app's DATABASE_URL is a database of its own, copied from the template", async () => {
  if (!postgres) return;
  const answer = await deliver(event('opened', 2, repo.first));
  assert.equal([answer.status, answer.json.state], [202, 'building']);
  const seen = await appDatabase(2, () => true);
  assert.equal([seen.db, seen.rows], ['shipkit_preview_octo__site_pr_2', 'seeded']);
  const url = new URL(seen.url);
  const configured = new URL(postgres.url);
  assert.equal(
    [url.protocol, url.username, url.password, url.host, url.pathname],
    [
      configured.protocol,
      configured.username,
      configured.password,
      configured.host,
      '/shipkit_preview_octo__site_pr_2',
    ],
  );
});

test('a push keeps the database and the data in it; the template is untouched', async () => {
  if (!postgres) return;
  await inDatabase('shipkit_preview_octo__site_pr_2', (c) => c.query("INSERT INTO seed VALUES ('written by pr-2')"));
  const second = await repo.commit({ 'VERSION.txt': 'v2\n' });
  const answer = await deliver(event('synchronize', 2, second));
  assert.is(answer.status, 202);
  await waitFor(async () => (await through(2)).body === 'v2\n', { timeoutMs: 60_000, what: 'v2 through nginx' });
  // Asked until the new build answers: the old one serves on for a moment after the switch.
  const seen = await appDatabase(2, (db) => db.version === 'v2');
  assert.equal([seen.db, seen.rows], ['shipkit_preview_octo__site_pr_2', 'seeded,written by pr-2']);
  assert.is(server.output().split('preview database created').length - 1, 1, 'made once, when the preview opened');
  const template = await inDatabase('site_seed', (c) => c.query("SELECT string_agg(name, ',') AS rows FROM seed"));
  assert.is(template.rows[0].rows, 'seeded');
});

test('a refused password or a server out of reach fails the preview with why, never the password', async () => {
  if (!postgres) return;
  for (const [name, pr] of [
    ['octo/badpw', 3],
    ['octo/gone', 4],
  ] as const)
    assert.is((await deliver(event('opened', pr, repo.first, name))).status, 202);
  const badpw = await waitState('octo/badpw', 3, 'failed');
  assert.match(
    badpw.reason,
    /^Cannot create the preview database shipkit_preview_octo__badpw_pr_3 on 127\.0\.0\.1:\d+\/postgres as shipkit: the password was refused: check the user and password in previews\.database\.url/,
  );
  const gone = await waitState('octo/gone', 4, 'failed');
  assert.match(
    gone.reason,
    /^Cannot create the preview database shipkit_preview_octo__gone_pr_4 on .*: connection refused/,
  );
  assert.is((await through(2)).status, 200, 'pr-2 serves on');
  // Neither password anywhere a user looks: the reasons, GET /previews, hook-server's log, the previews' logs.
  const logs = SLUGS.slice(1).flatMap((slug) => filesUnder(path.join(data, 'previews', slug)));
  const places: Array<[string, string]> = [
    ['GET /previews', (await listed()).text],
    ["hook-server's log", server.output()],
    ...logs.map((f): [string, string] => [f, readFileSync(f, 'latin1')]),
  ];
  for (const [where, text] of places)
    for (const secret of [WRONG, postgres.password, encodeURIComponent(postgres.password)])
      assert.not.ok(text.includes(secret), `${where} holds a password`);
});

test('closed: the database is dropped with the preview', async () => {
  if (!postgres) return;
  assert.is((await deliver(event('closed', 2, repo.first))).status, 202);
  await waitState('octo/site', 2, 'torn down');
  assert.not.ok((await databases()).includes('shipkit_preview_octo__site_pr_2'), 'dropped');
  assert.match(server.output(), /preview database dropped/);
  assert.not.ok(server.output().includes(postgres.password), "hook-server's log holds the password");
});

function filesUnder(folder: string): string[] {
  if (!existsSync(folder)) return [];
  return readdirSync(folder, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(path.join(folder, e.name)) : e.isFile() ? [path.join(folder, e.name)] : [],
  );
}

test.run();
