// @deno
// build of a private repository over https with `token:` (docs/design.md): git's smart HTTP
// (`git http-backend`) behind Debian's nginx + fcgiwrap on 127.0.0.1 checks the Authorization
// header. A right token clones and fetches and is nowhere to be read (log, output, .git/config,
// argv, DATA); a wrong one is explained; a redirect to another server is not followed with the
// token (that server records what it receives); bad config is refused before anything runs.
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  git,
  makeBareRepo,
  runCommand,
  runScript,
  startScript,
  tmpDir,
  waitFor,
  rootBuildUser,
} from '../../_helpers/common.ts';
import { gitHttpMissing, startGitHttp, type GitHttpServer } from '../../fixtures/git-http.ts';
import { deliverGithub, pushPayload, waitForJobState } from '../../fixtures/hooks/deliveries.ts';

const missing = gitHttpMissing();
if (missing) console.log(`SKIP build-private-https: ${missing}`);
const it = missing ? test.skip : test;

const TOKEN = `ghp_${randomUUID().replace(/-/g, '')}`;
const BASIC = Buffer.from(`x-access-token:${TOKEN}`).toString('base64');

const root = tmpDir('shipkit-https-repos-');
let server: GitHttpServer;
let open: GitHttpServer;
let redirecting: GitHttpServer;

test.before(async () => {
  if (missing) return;
  // `open` plays another host: no token needed, and it logs whatever Authorization it gets.
  open = await startGitHttp({ root });
  server = await startGitHttp({ root, authorization: `Basic ${BASIC}` });
  redirecting = await startGitHttp({
    root,
    authorization: `Basic ${BASIC}`,
    redirect: { prefix: 'moved', to: `${open.base}/` },
  });
});
test.after(async () => {
  await Promise.all([server, open, redirecting].filter(Boolean).map((s) => s.stop()));
});

/** Everything under `dir` that holds one of `needles`, as paths. */
function filesHolding(dir: string, needles: string[]): string[] {
  const found: string[] = [];
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && needles.some((n) => readFileSync(full).includes(n))) found.push(full);
    }
  };
  if (existsSync(dir)) walk(dir);
  return found;
}

/** A site (with a submodule on the same host and one on another) and a shipkit.yml for it. */
async function privateSite(name: string) {
  const base = tmpDir('shipkit-https-');
  const lib = await makeBareRepo(root, `${name}-lib`, { 'lib.txt': 'same host\n' });
  const other = await makeBareRepo(root, `${name}-other`, { 'other.txt': 'another host\n' });
  const site = await makeBareRepo(root, name, { 'README.md': 'private\n' });
  writeFileSync(
    path.join(site.work, '.gitmodules'),
    [
      '[submodule "lib"]',
      '\tpath = lib',
      `\turl = ../${name}-lib.git`,
      '[submodule "other"]',
      '\tpath = other',
      `\turl = ${open.base}/${name}-other.git`,
      '',
    ].join('\n'),
  );
  await git(site.work, 'add', '.gitmodules');
  await git(site.work, 'update-index', '--add', '--cacheinfo', `160000,${lib.first},lib`);
  await git(site.work, 'update-index', '--add', '--cacheinfo', `160000,${other.first},other`);
  await git(site.work, 'commit', '--quiet', '-m', 'add submodules');
  await git(site.work, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main');
  const config = path.join(base, 'shipkit.yml');
  const data = path.join(base, 'data');
  const write = (url: string, more: string[] = ['token: env:SITE_GIT_TOKEN']) =>
    writeFileSync(
      config,
      [
        `data: ${data}`,
        'repos:',
        '  octo/site:',
        `    url: ${url}`,
        '    steps: [pull, compile]',
        '    timeout: 60',
        // The build's own commands must not see the token's variable nor the pull's git config.
        `    compile: 'echo token-var:\${SITE_GIT_TOKEN:-unset} git-config:\${GIT_CONFIG_COUNT:-unset}'`,
        ...more.map((line) => `    ${line}`),
        '',
      ].join('\n'),
    );
  write(`${server.base}/${name}.git`);
  const run = (token = TOKEN) =>
    runScript('build', ['octo/site', '--config', config], {
      timeoutMs: 60_000,
      env: { HOME: base, SITE_GIT_TOKEN: token },
    });
  return { base, data, config, site, write, run, work: path.join(data, 'repos', 'octo__site') };
}

/** The command lines of every process while `during` runs (polled), for a look at argv. */
async function watchCommandLines<T>(during: Promise<T>): Promise<{ result: T; lines: string[] }> {
  const lines = new Set<string>();
  let done = false;
  const poll = (async () => {
    while (!done) {
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/.test(pid)) continue;
        try {
          const line = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
          if (line) lines.add(line);
        } catch {
          /* gone */
        }
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  const result = await during;
  done = true;
  await poll;
  return { result, lines: [...lines] };
}

it('the right token: clone with submodules and a later fetch build the pushed commit; the token is nowhere to be read', async () => {
  const s = await privateSite('site1');
  const before = open.requests().length;
  const { result: first, lines } = await watchCommandLines(s.run());
  assert.is(first.exitCode, 0, first.stderr);
  assert.is(readFileSync(path.join(s.work, 'README.md'), 'utf8'), 'private\n');
  assert.is(
    readFileSync(path.join(s.work, 'lib', 'lib.txt'), 'utf8'),
    'same host\n',
    'a submodule on the same host gets the token',
  );
  assert.is(readFileSync(path.join(s.work, 'other', 'other.txt'), 'utf8'), 'another host\n');
  const toOther = open.requests().slice(before);
  assert.ok(toOther.length > 0, 'the submodule on another host was fetched from it');
  assert.equal(
    toOther.filter((r) => r.authorization),
    [],
    'the other host never saw an Authorization header',
  );
  assert.ok(
    lines.some((l) => /\bgit\b/.test(l) && l.includes('127.0.0.1')),
    `git's processes were seen (${lines.length} command lines)`,
  );
  assert.equal(
    lines.filter((l) => l.includes(TOKEN) || l.includes(BASIC)),
    [],
    'no command line holds the token',
  );

  const head = await s.site.commit({ 'README.md': 'second\n' });
  const second = await s.run();
  assert.is(second.exitCode, 0, second.stderr);
  assert.match(second.stderr, new RegExp(`pull: ok .*at ${head}`));
  assert.is(readFileSync(path.join(s.work, 'README.md'), 'utf8'), 'second\n');

  const log = readFileSync(path.join(s.data, 'logs', 'octo__site', 'logs.txt'), 'utf8');
  assert.match(
    log,
    /token-var:unset git-config:unset/,
    "the build commands see neither the token variable nor the pull's git config",
  );
  for (const text of [first.stdout, first.stderr, second.stdout, second.stderr, log]) {
    assert.not.ok(text.includes(TOKEN) || text.includes(BASIC), 'the token is not in the output or the log');
  }
  assert.not.match(
    readFileSync(path.join(s.work, '.git', 'config'), 'utf8'),
    /extraheader|authorization/i,
    'nothing of the token is written into the clone',
  );
  assert.equal(filesHolding(s.data, [TOKEN, BASIC]), [], 'no file under DATA holds the token');
  assert.ok(
    server.requests().some((r) => r.path.startsWith('/site1.git/') && r.authorization === `Basic ${BASIC}`),
    'the token went to its server',
  );
});

it('a wrong token: exit 1, saying the token was refused, and nothing is checked out', async () => {
  const s = await privateSite('site2');
  const r = await s.run('ghp_wrong');
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(
    r.stderr,
    /build of octo\/site failed at step pull: The token for /,
    'exit 1 names the step (docs/design.md)',
  );
  assert.match(
    r.stderr,
    new RegExp(
      `The token for http://127\\.0\\.0\\.1:${server.port} was refused \\(HTTP 401\\): check that token: in shipkit\\.yml holds a current token`,
    ),
  );
  assert.not.match(r.stderr, /terminal prompts disabled\.? Log/, "git's own words are not the message");
  assert.not.ok(existsSync(s.work), 'nothing was cloned');
  assert.not.ok(r.stderr.includes('ghp_wrong'), 'even a wrong token is not printed');
});

it('a remote that redirects to another server: that server never sees the token, and the build says to set url: to the final address', async () => {
  const s = await privateSite('site3');
  s.write(`${redirecting.base}/moved/site3.git`);
  const before = open.requests().length;
  const r = await s.run();
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `The remote http://127\\.0\\.0\\.1:${redirecting.port}/moved/site3\\.git/ redirected to http://127\\.0\\.0\\.1:${open.port}/site3\\.git \\(HTTP 301\\); the token is only sent to http://127\\.0\\.0\\.1:${redirecting.port} and redirects are not followed with it: set url: in shipkit\\.yml to the final address`,
    ),
  );
  assert.equal(
    open
      .requests()
      .slice(before)
      .filter((q) => q.authorization),
    [],
    'the other server received no Authorization header',
  );
  assert.not.ok(existsSync(s.work));
});

it('refused before the job (exit 2, FILE:LINE, nothing written): a token for an ssh remote, for plain http to another host, from an unset variable', async () => {
  const s = await privateSite('site4');
  s.write('git@github.com:octo/site.git');
  let r = await s.run();
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(
    r.stderr,
    /shipkit\.yml:8: token: the remote git@github\.com:octo\/site\.git is reached over ssh, where a token does not apply: use ssh_key:/,
  );

  s.write('http://git.example.com/octo/site.git');
  r = await s.run();
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(
    r.stderr,
    /shipkit\.yml:8: token: the remote http:\/\/git\.example\.com is plain http:\/\/, where the token would cross the network .*use its https:\/\/ address/,
  );

  s.write(`${server.base}/site4.git`);
  r = await runScript('build', ['octo/site', '--config', s.config], {
    timeoutMs: 60_000,
    env: { HOME: s.base, SITE_GIT_TOKEN: undefined },
  });
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /shipkit\.yml:8: token: environment variable SITE_GIT_TOKEN is not set or empty/);

  s.write(`${server.base}/site4.git`, ['token_user: "a:b"', 'token: env:SITE_GIT_TOKEN']);
  r = await s.run();
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /shipkit\.yml:8: repos\.octo\/site\.token_user: must be a user name without ":"/);
  assert.not.ok(existsSync(s.data), 'nothing was written under DATA');
});

it("a repo built as its Unix user by hook-server (root): the token reaches that user's git, not its output", async () => {
  const as = await rootBuildUser();
  if (!as) return;
  const { user } = as;
  const dir = tmpDir();
  chmodSync(dir, 0o755);
  const site = await makeBareRepo(root, 'site5', { 'README.md': 'as a user\n' });
  const secret = `hook-${randomUUID()}`;
  const bearer = `read-${randomUUID()}`;
  const config = path.join(dir, 'shipkit.yml');
  writeFileSync(
    config,
    [
      `data: ${path.join(dir, 'data')}`,
      'secret: env:HOOK_SECRET',
      'token: env:HOOK_TOKEN',
      'repos:',
      '  t/site5:',
      `    url: ${server.base}/site5.git`,
      `    user: ${user}`,
      '    steps: [pull]',
      '    timeout: 60',
      '    token: env:SITE_GIT_TOKEN',
      '',
    ].join('\n'),
  );
  chmodSync(config, 0o644);
  const hook = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: { HOOK_SECRET: secret, HOOK_TOKEN: bearer, SITE_GIT_TOKEN: TOKEN },
  });
  try {
    const res = await deliverGithub(hook.url, 'push', pushPayload('t/site5', { sha: site.first }), secret);
    assert.is(res.status, 202);
    const job = await waitForJobState(hook.url, bearer, res.json.job, ['succeeded', 'failed'], 60_000);
    const output = readFileSync(path.join(dir, 'data/jobs', job.id, 'output.log'), 'utf8');
    assert.is(job.state, 'succeeded', output.slice(-2000));
    assert.is(readFileSync(path.join(dir, 'data/repos/t__site5/README.md'), 'utf8'), 'as a user\n');
    await waitFor(() => existsSync(path.join(dir, 'data/logs/t__site5/logs.txt')));
    assert.equal(filesHolding(path.join(dir, 'data'), [TOKEN, BASIC]), [], 'no file under DATA holds the token');
    assert.not.ok(hook.output().includes(TOKEN));
    assert.equal(
      server.requests().filter((r) => r.path.startsWith('/site5.git/') && r.authorization !== `Basic ${BASIC}`),
      [],
      "no request without the token (hook-server's own first clone is left to the build)",
    );
  } finally {
    assert.is(await hook.stop(), 0);
  }
});

it("`build` as root with user: and a file: token only root can read: the user's git clones with it", async () => {
  const as = await rootBuildUser();
  if (!as) return;
  const { user, uid } = as;
  const dir = tmpDir();
  chmodSync(dir, 0o755);
  await makeBareRepo(root, 'site6', { 'README.md': 'file token\n' });
  const tokenFile = path.join(dir, 'site-git-token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const config = path.join(dir, 'shipkit.yml');
  writeFileSync(
    config,
    [
      `data: ${path.join(dir, 'data')}`,
      'repos:',
      '  t/site6:',
      `    url: ${server.base}/site6.git`,
      `    user: ${user}`,
      '    steps: [pull]',
      '    timeout: 60',
      `    token: file:${tokenFile}`,
      '',
    ].join('\n'),
  );
  const r = await runScript('build', ['t/site6', '--config', config], { timeoutMs: 60_000 });
  assert.is(r.exitCode, 0, r.stderr);
  const work = path.join(dir, 'data/repos/t__site6');
  assert.is(readFileSync(path.join(work, 'README.md'), 'utf8'), 'file token\n');
  assert.is(statSync(path.join(work, '.git')).uid, uid, 'cloned as the user');
  assert.equal(filesHolding(path.join(dir, 'data'), [TOKEN, BASIC]), []);
});

test.run();
