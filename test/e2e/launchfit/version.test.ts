// @deno
// VERSION and its transport against the real `launchfit`, each case in its own deploy folder:
// an unsigned VERSION (refused unless updates.allow_unsigned_version, and then a fast-forward
// VERSION is still refused), a first deploy answered 304, a server frozen on a 304 past EXPIRES,
// a VERSION and a tarball dripped a byte at a time.
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { publishRelease } from '../../../lib/release/publish/publish.ts';
import { runScript, waitFor } from '../../_helpers/common.ts';
import { currentOf, makeWorld, startLaunchfit, statusOf } from '../../fixtures/launchfit/world.ts';

/** Answer with `body` one byte every `everyMs`, Content-Length announced, until the client leaves. */
function drip(res: ServerResponse, body: Buffer, everyMs: number): true {
  res.writeHead(200, { 'Content-Length': body.length });
  let sent = 0;
  const timer = setInterval(() => {
    if (sent < body.length) res.write(body.subarray(sent, ++sent));
    else {
      clearInterval(timer);
      res.end();
    }
  }, everyMs);
  res.on('close', () => clearInterval(timer));
  return true;
}

function assertNothingInstalled(deploy: string) {
  assert.is(currentOf(deploy), undefined, 'no current symlink');
  assert.equal(
    existsSync(path.join(deploy, 'releases')) ? readdirSync(path.join(deploy, 'releases')) : [],
    [],
    'no release installed',
  );
}

test('a first deploy answered 304 to an unconditional request exits 1 with nothing installed', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    w.server.overrides.set('VERSION', (_req, res) => {
      res.writeHead(304).end();
      return true;
    });
    const r = await runScript('launchfit', [w.server.url, '--dir', w.deploy, '--keyfile', w.pubAsc]);
    assert.is(r.exitCode, 1, r.stderr);
    assert.match(
      r.stderr,
      /VERSION answered 304 Not Modified to a request that was not conditional; the update server is misconfigured or hostile\. Nothing was installed\./,
    );
    assert.is(
      w.server.requests.find((q) => q.path === 'VERSION')!.ifNoneMatch,
      undefined,
      'the request was unconditional',
    );
    assertNothingInstalled(w.deploy);
    assert.equal(
      readdirSync(w.deploy).filter((n) => n !== '.launchfit'),
      [],
      'launchify.yml and trusted.asc taken back',
    );
  } finally {
    await w.server.close();
  }
});

test('a server without ETags (python3 -m http.server): the next poll sends If-Modified-Since and gets a 304', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    const stamp = new Date(Date.now() - 60_000).toUTCString();
    const asked: (string | undefined)[] = [];
    w.server.overrides.set('VERSION', (req, res) => {
      const since = req.headers['if-modified-since'];
      asked.push(since);
      if (since === stamp) res.writeHead(304).end();
      else res.writeHead(200, { 'Last-Modified': stamp }).end(readFileSync(path.join(w.updates, 'VERSION')));
      return true;
    });
    const first = await runScript('launchfit', [w.server.url, '--dir', w.deploy, '--keyfile', w.pubAsc]);
    assert.is(first.exitCode, 0, first.stderr);
    const again = await runScript('launchfit', ['update', '--dir', w.deploy]);
    assert.is(again.exitCode, 0, again.stderr);
    assert.equal(asked, [undefined, stamp], 'the second VERSION request was conditional');
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
  } finally {
    await w.server.close();
  }
});

test('an unsigned VERSION is refused; with allow_unsigned_version, CURRENT ff.0 naming the signed 1.1 tarball is still refused', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    const sig10 = readFileSync(path.join(w.updates, 'VERSION.sig'));
    rmSync(path.join(w.updates, 'VERSION.sig'));
    w.writeConfig();
    const refused = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
    assert.is(refused.exitCode, 1, refused.stderr);
    assert.match(
      refused.stderr,
      /VERSION\.sig is missing; an unsigned VERSION is refused \(publish with `release publish`, which signs it, or set updates\.allow_unsigned_version: true, which is weaker\)/,
    );
    assertNothingInstalled(w.deploy);

    w.writeConfig('  allow_unsigned_version: true\n');
    const first = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
    assert.is(first.exitCode, 0, first.stderr);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');

    // The attack of the audit: an old, genuinely signed tarball offered as version ff.0.
    // (The publisher trusts DEST's SEQ only with its signature: give it back first.)
    writeFileSync(path.join(w.updates, 'VERSION.sig'), sig10);
    await w.publish('1.1');
    const genuine = readFileSync(path.join(w.updates, 'VERSION'), 'utf8');
    rmSync(path.join(w.updates, 'VERSION.sig'));
    writeFileSync(path.join(w.updates, 'VERSION'), 'CURRENT ff.0 my-app-gnu-linux-1.1.tar.gz\n');
    const ff = await runScript('launchfit', ['update', '--dir', w.deploy]);
    assert.is(ff.exitCode, 1, ff.stderr);
    assert.match(
      ff.stderr,
      /VERSION offers version ff\.0 but names the file my-app-gnu-linux-1\.1\.tar\.gz, which is not NAME-ff\.0\.tar\.gz/,
    );
    let s = await statusOf(w.deploy);
    assert.is(s.highest, '1.0', 'not frozen at ff.0');
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
    assert.is(s.lastCheck.ok, false);

    // The real 1.1 is not refused as a downgrade afterwards.
    writeFileSync(path.join(w.updates, 'VERSION'), genuine);
    const real = await runScript('launchfit', ['update', '--dir', w.deploy]);
    assert.is(real.exitCode, 0, real.stderr);
    s = await statusOf(w.deploy);
    assert.is(s.highest, '1.1');
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  } finally {
    await w.server.close();
  }
});

test('frozen through 304: after the cached VERSION expires, a 304 is a failed check, in status and the log', async () => {
  const w = await makeWorld();
  const lf = await (async () => {
    // Long enough for deploy and `run` to start and poll once on a loaded machine.
    const expiresInSec = 30;
    await publishRelease({
      dir: w.makeApp('1.0'),
      name: 'my-app',
      platform: 'gnu-linux',
      version: '1.0',
      key: w.secretKey,
      passphraseFile: w.passFile,
      to: w.updates,
      log: silentLogger,
      expiresDays: expiresInSec / 86_400,
    });
    w.writeConfig();
    const r = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
    assert.is(r.exitCode, 0, r.stderr);
    return startLaunchfit(w.deploy, { LAUNCHFIT_INTERVAL_MS: '500' });
  })();
  try {
    const expires = new Date(/EXPIRES (\S+)/.exec(readFileSync(path.join(w.updates, 'VERSION'), 'utf8'))![1]);
    await waitFor(async () => (await statusOf(w.deploy)).lastCheck?.message === 'VERSION not modified', {
      what: 'an idle poll before EXPIRES',
      timeoutMs: Math.max(1000, expires.getTime() - Date.now()),
    });
    assert.ok(Date.now() < expires.getTime(), 'the idle poll came before EXPIRES');
    assert.is((await statusOf(w.deploy)).lastCheck.ok, true, 'a 304 before EXPIRES is a healthy check');
    const s = await waitFor(
      async () => {
        const st = await statusOf(w.deploy);
        return st.lastCheck?.ok === false && st;
      },
      { what: 'a failed check after EXPIRES', timeoutMs: expires.getTime() - Date.now() + 30_000 },
    );
    assert.ok(Date.now() >= expires.getTime());
    assert.match(
      s.lastCheck.message,
      new RegExp(
        `answers 304 Not Modified, but the VERSION it stands for expired on ${expires.toISOString().replace(/\./g, '\\.')}`,
      ),
    );
    assert.is(s.versionExpires, expires.toISOString());
    const after = w.server.requests.filter((q) => q.path === 'VERSION').at(-1)!;
    assert.is(after.status, 304, 'the server did answer 304');
    // The log line reaches us through a pipe, after status already says it.
    await waitFor(
      () =>
        /update check failed: The update server answers 304 Not Modified, but the VERSION it stands for expired/.test(
          lf.output(),
        ),
      { what: 'the failed check in the log' },
    );
    const text = await runScript('launchfit', ['status', '--dir', w.deploy]);
    assert.match(text.stdout, /checked: {2}\S+ FAILED: The update server answers 304 Not Modified/);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0', 'the app keeps running what it has');
  } finally {
    await lf.stop();
    await w.server.close();
  }
});

test('a VERSION dripped at 1 byte/s fails at updates.metadata_timeout; a tarball dripped below updates.min_rate fails after its window', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    // delta: false, so that 1.1 comes as the tarball this test drips (not as a patch).
    w.writeConfig('  metadata_timeout: 2\n  min_rate: 1000\n  min_rate_window: 2\n  delta: false\n');
    const r = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
    assert.is(r.exitCode, 0, r.stderr);
    await w.publish('1.1');

    const version = readFileSync(path.join(w.updates, 'VERSION'));
    w.server.overrides.set('VERSION', (_req, res) => drip(res, version, 1000));
    let t0 = Date.now();
    const slowVersion = await runScript('launchfit', ['update', '--dir', w.deploy], { timeoutMs: 30_000 });
    const versionMs = Date.now() - t0;
    assert.is(slowVersion.exitCode, 1, slowVersion.stderr);
    assert.match(
      slowVersion.stderr,
      /Fetching http:\/\/127\.0\.0\.1:\d+\/VERSION failed: no complete answer within 2 s\./,
    );
    assert.ok(versionMs < 12_000, `refused in ${versionMs} ms`);
    w.server.overrides.delete('VERSION');

    const tarball = readFileSync(path.join(w.updates, 'my-app-gnu-linux-1.1.tar.gz'));
    w.server.overrides.set('my-app-gnu-linux-1.1.tar.gz', (_req, res) => drip(res, tarball, 100));
    t0 = Date.now();
    const slowTarball = await runScript('launchfit', ['update', '--dir', w.deploy], { timeoutMs: 30_000 });
    const tarballMs = Date.now() - t0;
    assert.is(slowTarball.exitCode, 1, slowTarball.stderr);
    assert.match(
      slowTarball.stderr,
      /my-app-gnu-linux-1\.1\.tar\.gz failed: the body came slower than 1000 bytes\/s over 2 s \(updates\.min_rate\)/,
    );
    assert.ok(tarballMs < 12_000, `refused in ${tarballMs} ms`);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
    assert.equal(readdirSync(path.join(w.deploy, 'releases')), ['my-app-gnu-linux-1.0']);
    console.log(
      `    drip refused: VERSION after ${versionMs} ms (metadata_timeout 2 s), tarball after ${tarballMs} ms (min_rate 1000 B/s, window 2 s)`,
    );
  } finally {
    await w.server.close();
  }
});

test.run();
