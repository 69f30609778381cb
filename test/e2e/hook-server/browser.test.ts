// @deno
// The status page in a real browser: Debian's headless chromium driven by puppeteer-core loads
// `/` of a real hook-server running real builds, sees the login form, types the token, opens the
// running job's page and watches its log grow live (no reload) until the job ends and the page
// shows its final state; no console errors, no CSP violations. With SHIPKIT_SCREENSHOT=1 it saves
// the status page to docs/status-page.png (the README shows it). Without chromium it says why
// it skips (CI installs it).
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, pushPayload, waitForJobState } from '../../fixtures/hooks/deliveries.ts';
import { ROOT, makeBareRepo, startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;

const HOSTILE_LINE = '<img src=x onerror=document.title=1> <b>bold</b>';

interface Repo {
  name: string;
  compile: string;
  message: string;
  author: string;
}

const REPOS: Repo[] = [
  {
    name: 'acme/api',
    compile: 'echo "compiled 42 modules"',
    message: 'Rate-limit the login endpoint',
    author: 'Ada Lovelace',
  },
  {
    name: 'acme/docs',
    compile: 'echo "checking links"; echo "guide.md:12: broken link to /pricing"; exit 1',
    message: 'Rewrite the getting-started guide',
    author: 'Grace Hopper',
  },
  // Its output carries markup: the live log must show it as text.
  {
    name: 'acme/website',
    compile: `echo '${HOSTILE_LINE}'; for i in $(seq 1 30); do echo "rendering page $i of 30"; sleep 0.25; done`,
    message: 'Fix the pricing table on small screens',
    author: 'Linus Example',
  },
];

async function startServer(base: string): Promise<{ server: Server; urls: Map<string, string> }> {
  const urls = new Map<string, string>();
  const lines = [
    `data: ${path.join(base, 'data')}`,
    'listen: 127.0.0.1:0',
    'secret: env:HOOK_SECRET',
    'token: env:HOOK_TOKEN',
    'concurrency: 2',
    'repos:',
  ];
  for (const repo of REPOS) {
    const git = await makeBareRepo(path.join(base, 'git'), repo.name.split('/')[1], {
      'lprc.js': 'module.exports = () => {};\n',
      'README.md': `# ${repo.name}\n`,
    });
    urls.set(repo.name, git.bare);
    lines.push(
      `  ${repo.name}:`,
      `    url: ${git.bare}`,
      '    branch: main',
      '    timeout: 120',
      `    compile: ${JSON.stringify(repo.compile)}`,
    );
  }
  const config = path.join(base, 'shipkit.yml');
  writeFileSync(config, `${lines.join('\n')}\n`);
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN },
    timeoutMs: 30_000,
  });
  return { server, urls };
}

async function push(server: Server, repo: Repo, cloneUrl: string): Promise<string> {
  const payload = pushPayload(repo.name, { sha: 'a'.repeat(40), cloneUrl });
  // The build pulls the branch; the payload's commit text is what the page shows.
  payload.after = (await import('node:child_process'))
    .execFileSync('git', ['--git-dir', cloneUrl, 'rev-parse', 'main'])
    .toString()
    .trim();
  if (payload.head_commit)
    Object.assign(payload.head_commit, {
      id: payload.after,
      message: repo.message,
      author: { ...payload.head_commit.author, name: repo.author },
    });
  const res = await deliverGithub(server.url, 'push', payload, SECRET);
  assert.is(res.status, 202, JSON.stringify(res.json));
  return String(res.json.job);
}

test('log in, open the running job, watch its log grow live, see it end; no console errors or CSP violations', async () => {
  if (!existsSync(CHROMIUM)) {
    console.log(`SKIP: no chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM=PATH)`);
    return;
  }
  const puppeteer = (await import('puppeteer-core')).default;
  const base = tmpDir('shipkit-browser-');
  const { server, urls } = await startServer(base);
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${path.join(base, 'chromium')}`,
    ],
  });
  const problems: string[] = [];
  try {
    const [api, docs, website] = REPOS;
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 800 });
    page.on('console', (m) => {
      if (m.type() !== 'error' && m.type() !== 'warn') return;
      // The login page answers 401 and there is no favicon: the browser logs both loads.
      const from = m.location()?.url ?? '';
      if (/^Failed to load resource/.test(m.text()) && (from === `${server.url}/` || from.endsWith('/favicon.ico')))
        return;
      problems.push(`console ${m.type()}: ${m.text()} (${from})`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${(e as Error).message}`));
    await page.evaluateOnNewDocument(() => {
      document.addEventListener('securitypolicyviolation', (e) =>
        console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`),
      );
    });

    // Not signed in: the login form.
    const first = await page.goto(`${server.url}/`, { waitUntil: 'load' });
    assert.is(first!.status(), 401);
    await page.waitForSelector('input#token');
    assert.match(
      await page.$eval('label[for=token]', (el) => el.textContent ?? ''),
      /the value of token: in hook-server's config \(not the webhook secret\)/,
    );
    await page.type('input#token', TOKEN);
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button[type=submit]')]);

    // First run: the repos are configured and nothing was pushed yet. The page says what to do
    // next, with this server's own webhook URLs, and that a forge cannot reach a loopback address.
    const empty = await page.evaluate(() => document.body.innerText);
    assert.match(empty, /Getting started\s+No jobs yet: nothing has been pushed to this server\./);
    for (const forge of ['github', 'gitea', 'gitlab'])
      assert.ok(empty.includes(`${server.url}/hooks/${forge}`), `the ${forge} webhook URL: ${empty.slice(0, 1500)}`);
    assert.match(empty, /content type application\/json, the secret that is secret: in the config/);
    assert.match(empty, /copy shipkit's hooks\/post-receive-webhook to the bare repository's hooks\/post-receive/);
    assert.ok(empty.includes(`git config shipkit.webhook ${server.url}/hooks/gitea`), empty.slice(0, 1500));
    assert.match(empty, /a forge on another machine cannot reach: put hook-server behind a reverse proxy/);
    assert.match(empty, /No jobs yet: see Getting started above\./);
    if (process.env.SHIPKIT_SCREENSHOT === '1')
      await page.screenshot({ path: path.join(ROOT, 'docs', 'status-page-first-run.png'), fullPage: true });

    // The finished jobs the page lists beside the live one.
    const done = [await push(server, api, urls.get(api.name)!), await push(server, docs, urls.get(docs.name)!)];
    assert.is((await waitForJobState(server.url, TOKEN, done[0], ['succeeded', 'failed'], 90_000)).state, 'succeeded');
    assert.is((await waitForJobState(server.url, TOKEN, done[1], ['succeeded', 'failed'], 90_000)).state, 'failed');
    await page.goto(`${server.url}/`, { waitUntil: 'load' });
    const listed = await page.evaluate(() => document.body.innerText);
    for (const repo of [api, docs])
      assert.ok(listed.includes(repo.name), `${repo.name} on the status page: ${listed.slice(0, 600)} ${page.url()}`);
    assert.not.match(listed, /Getting started/, 'gone once there are jobs');
    // The states and columns in words, one click away.
    assert.not.match(listed, /a newer push to the same branch arrived/);
    await page.click('details.legend summary');
    const legend = await page.$eval('details.legend', (el) => (el as HTMLElement).innerText);
    assert.match(legend, /superseded\s+a newer push to the same branch arrived before this one started/);
    assert.match(legend, /interrupted\s+hook-server \(or its machine\) stopped while it ran/);
    assert.match(legend, /Trigger says what started it/);
    // A failed job's page says what failed means and how to run it again.
    await page.goto(`${server.url}/jobs/${done[1]}`, { waitUntil: 'load' });
    assert.match(
      await page.evaluate(() => document.body.innerText),
      /Failed: a step failed .* To run it again, redeliver its webhook/,
    );

    const id = await push(server, website, urls.get(website.name)!);
    await waitForJobState(server.url, TOKEN, id, ['running'], 60_000);
    await page.goto(`${server.url}/jobs/${id}`, { waitUntil: 'load' });
    await page.evaluate(() => {
      (window as unknown as { marker: number }).marker = 1;
    });
    const lines = () =>
      page.evaluate(
        () =>
          (document.querySelector('#log pre')?.textContent ?? '')
            .split('\n')
            .filter((l) => l.includes('rendering page')).length,
      );
    await page.waitForFunction(
      () => (document.querySelector('#log pre')?.textContent ?? '').includes('rendering page 3 of'),
      { timeout: 60_000 },
    );
    const early = await lines();
    await page.waitForFunction(
      (n: number) =>
        (document.querySelector('#log pre')?.textContent ?? '').split('\n').filter((l) => l.includes('rendering page'))
          .length >
        n + 5,
      { timeout: 30_000 },
      early,
    );
    const later = await lines();
    assert.ok(later > early + 5, `the log grew from ${early} to ${later} lines`);
    assert.is(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 1, 'without a reload');
    assert.match(await page.$eval('#log', (el) => el.previousElementSibling?.textContent ?? ''), /live/);
    assert.ok(
      (await page.$eval('#log pre', (el) => el.textContent ?? '')).includes(HOSTILE_LINE),
      'the markup shown as text',
    );
    assert.is(await page.$$eval('#log img, #log b', (els) => els.length), 0, 'and never made into elements');

    // The end: the label changes, the page reloads into the finished job's page.
    await waitForJobState(server.url, TOKEN, id, ['succeeded', 'failed'], 60_000);
    let final = '';
    for (let i = 0; i < 100 && !/succeeded/.test(final); i++) {
      await new Promise((r) => setTimeout(r, 100));
      final = await page.$eval('h2 .state', (el) => el.textContent ?? '').catch(() => '');
    }
    assert.match(final, /succeeded/);
    await page.waitForFunction(
      () => !(window as unknown as { marker?: number }).marker && document.readyState === 'complete',
      { timeout: 10_000 },
    );
    const finished = await page.evaluate(() => document.body.textContent ?? '');
    assert.match(finished, /rendering page 30 of 30/);
    assert.not.ok(await page.$('[data-follow]'), 'a finished job is not followed');

    if (process.env.SHIPKIT_SCREENSHOT === '1') {
      await page.goto(`${server.url}/`, { waitUntil: 'load' });
      mkdirSync(path.join(ROOT, 'docs'), { recursive: true });
      await page.screenshot({ path: path.join(ROOT, 'docs', 'status-page.png'), fullPage: true });
    }
    assert.equal(problems, [], problems.join('\n'));
  } finally {
    await browser.close();
    assert.is(await server.stop(), 0);
  }
});

test.run();
