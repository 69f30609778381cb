// A repo's `previews:` block (lib/config/previews.ts) read through shipkit.yml as a user writes it:
// the example of docs/previews.md with its defaults, path mode, repos without the block, the
// secrets of env: resolved as the repo's others are, and every bad value refused at FILE:LINE
// with the key and what to write.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, messageOf } from '../../../lib/core/errors.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { parseShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { resolveBuildEnv } from '../../../lib/config/build-env.ts';
import { PREVIEW_DEFAULTS } from '../../../lib/config/previews.ts';
import { fencedBlocks } from '../../_helpers/markdown.ts';
import { ROOT, tmpDir } from '../../_helpers/common.ts';

const FILE = '/etc/shipkit/shipkit.yml';
const KEY = 'repos.octo/site.previews';

const load = (text: string, file = FILE) => parseShipkitConfig(parseYamlText(text, file));
/** shipkit.yml with octo/site's previews: block made of `lines` (indented under it). */
const withPreviews = (...lines: string[]) =>
  ['repos:', '  octo/site:', '    previews:', ...lines.map((l) => `      ${l}`), ''].join('\n');
const previewsOf = (text: string) => load(text).repos.get('octo/site')!.previews;

function refused(text: string, line: number, key: string, message: RegExp): void {
  try {
    load(text);
  } catch (error) {
    assert.instance(error, ConfigError, messageOf(error));
    const got = messageOf(error);
    assert.ok(got.startsWith(`${FILE}:${line}: ${key}: `), `expected line ${line} ${key}, got: ${got}`);
    assert.match(got, message);
    return;
  }
  assert.unreachable(`accepted:\n${text}`);
}

test('the example of docs/previews.md, every key given', () => {
  const previews = previewsOf(
    withPreviews(
      'domain: preview.example.com',
      'nginx:',
      '  dir: /etc/nginx/shipkit-previews',
      '  listen: 127.0.0.1:8080',
      '  test: /usr/sbin/nginx -t -q',
      "  reload: sudo -n '/usr/sbin/nginx' -s reload",
      'start: node server.js',
      'binds: app',
      'health: /healthz',
      'max: 5',
      'ttl: 30m',
      'limits: { memory: 512M, cpu: 50% }',
      'env: { API_URL: https://staging-api.example.com, TOKEN: file:preview-token, N: 3 }',
      'trusted: [alice, bob, alice]',
      'database: { url: env:PREVIEW_PG, template: site_seed }',
      'uids: 1879048192-1879113727',
      'auth: { users_file: previews.htpasswd }',
    ),
  )!;
  assert.is(previews.domain, 'preview.example.com');
  assert.is(previews.path, undefined);
  assert.equal(previews.nginx, {
    dir: '/etc/nginx/shipkit-previews',
    listen: '127.0.0.1:8080',
    test: ['/usr/sbin/nginx', '-t', '-q'],
    reload: ['sudo', '-n', '/usr/sbin/nginx', '-s', 'reload'],
  });
  assert.is(previews.start, 'node server.js');
  assert.is(previews.binds, 'app');
  assert.is(previews.health, '/healthz');
  assert.is(previews.max, 5);
  assert.is(previews.ttlMs, 30 * 60_000);
  assert.equal(previews.limits, { memoryBytes: 512 * 1024 ** 2, cpuPercent: 50 });
  assert.equal(
    previews.env.map((e) => [e.name, e.value, e.secret]),
    [
      ['API_URL', 'https://staging-api.example.com', false],
      ['TOKEN', 'file:preview-token', true],
      ['N', '3', false],
    ],
  );
  assert.equal(previews.trusted, ['alice', 'bob']);
  assert.equal(previews.database, { url: 'env:PREVIEW_PG', template: 'site_seed' });
  assert.equal(previews.uids, { from: 1_879_048_192, to: 1_879_113_727 });
  assert.equal(previews.auth, { usersFile: '/etc/shipkit/previews.htpasswd' }, 'beside the config file');
});

test('defaults: nginx as Debian installs it, / for health, 10 previews, 72h', () => {
  const previews = previewsOf(withPreviews('domain: preview.example.com', 'start: node server.js'))!;
  assert.equal(previews.nginx, {
    dir: PREVIEW_DEFAULTS.dir,
    listen: '80',
    test: ['nginx', '-t'],
    reload: ['nginx', '-s', 'reload'],
  });
  assert.is(previews.health, '/');
  assert.is(previews.binds, 'launchfit', 'launchfit binds the port: no downtime on a push');
  assert.is(previews.max, 10);
  assert.is(previews.ttlMs, 72 * 3_600_000);
  assert.equal(previews.limits, {});
  assert.equal(previews.env, []);
  assert.equal(previews.trusted, []);
  assert.is(previews.database, undefined);
  assert.is(previews.user, undefined);
  assert.is(previews.uids, undefined, 'the default range (lib/previews/user.ts)');
  assert.is(previews.auth, undefined);
  assert.equal(previews.keyPath, ['repos', 'octo/site', 'previews']);
});

test('path mode: one spelling with a trailing slash; a repo without previews: has none', () => {
  assert.is(previewsOf(withPreviews('path: /previews', 'start: x'))!.path, '/previews/');
  assert.is(previewsOf(withPreviews('path: /a/b-c/', 'start: x'))!.path, '/a/b-c/');
  assert.is(previewsOf(withPreviews('path: /', 'start: x'))!.path, '/');
  const config = load('repos:\n  octo/site:\n    branch: main\n  octo/other: {}\n');
  assert.is(config.repos.get('octo/site')!.previews, undefined);
  assert.is(config.repos.get('octo/other')!.previews, undefined);
  assert.equal(previewsOf(withPreviews('domain: Pr.example.com'.toLowerCase(), 'start: x'))!.domain, 'pr.example.com');
  assert.equal(previewsOf(withPreviews('domain: localhost', 'start: x'))!.domain, 'localhost');
  assert.is(previewsOf(withPreviews('domain: a.b', 'start: x', 'nginx: { listen: "8080" }'))!.nginx.listen, '8080');
});

test('env: values resolved as the repo’s other secrets are (env:NAME, file:PATH beside the config)', async () => {
  const dir = tmpDir();
  mkdirSync(path.join(dir, 'keys'));
  writeFileSync(path.join(dir, 'keys', 'preview-token'), 'tok-123\n');
  const file = path.join(dir, 'shipkit.yml');
  const config = load(
    withPreviews('domain: p.example.com', 'start: x', 'env: { A: plain, B: env:FROM_ENV, C: file:keys/preview-token }'),
    file,
  );
  const previews = config.repos.get('octo/site')!.previews!;
  const resolved = await resolveBuildEnv(config.doc, previews.env, { FROM_ENV: 'from-env' });
  assert.equal(resolved.vars, { A: 'plain', B: 'from-env', C: 'tok-123' });
  assert.equal(resolved.secrets, ['from-env', 'tok-123']);
  try {
    await resolveBuildEnv(config.doc, previews.env, {});
    assert.unreachable('a missing variable is an error');
  } catch (error) {
    assert.match(messageOf(error), new RegExp(`^${file}:\\d+: env\\.B: environment variable FROM_ENV is not set`));
  }
});

test('the example of docs/previews.md is read as its table says', () => {
  const doc = readFileSync(path.join(ROOT, 'docs', 'previews.md'), 'utf8');
  const example = fencedBlocks(doc).blocks.find((block) => block.info === 'yaml' && block.code.includes('previews:'));
  assert.ok(example, 'docs/previews.md has a ```yaml example');
  const previews = previewsOf(example!.code)!;
  assert.is(previews.domain, 'preview.example.com');
  assert.equal(previews.nginx, {
    dir: PREVIEW_DEFAULTS.dir,
    listen: '80',
    test: ['nginx', '-t'],
    reload: ['nginx', '-s', 'reload'],
  });
  assert.equal([previews.max, previews.ttlMs, previews.health], [10, 72 * 3_600_000, '/']);
  assert.equal(previews.limits, { memoryBytes: 512 * 1024 ** 2, cpuPercent: 50 });
  assert.equal(previews.trusted, ['alice', 'bob']);
  assert.equal(previews.auth, { usersFile: '/etc/nginx/previews.htpasswd' });
});

const BASE = ['domain: preview.example.com', 'start: node server.js'];

test('refused: unknown keys, at the line of the key', () => {
  refused(withPreviews(...BASE, 'domian: x'), 6, `${KEY}.domian`, /unknown key; expected one of: domain, path/);
  refused(withPreviews(...BASE, 'nginx: { dir: /x, conf: y }'), 6, `${KEY}.nginx.conf`, /unknown key.*dir, listen/);
  refused(withPreviews(...BASE, 'limits: { memory: 1G, disk: 1G }'), 6, `${KEY}.limits.disk`, /unknown key/);
  refused(withPreviews(...BASE, 'database: { url: env:X, name: y }'), 6, `${KEY}.database.name`, /unknown/);
  refused(withPreviews(...BASE, 'auth: { user: a }'), 6, `${KEY}.auth.user`, /expected one of: users_file/);
  refused('repos:\n  octo/site:\n    previews: yes\n', 3, KEY, /must be a mapping/);
});

test('refused: domain and path together, neither, a wildcard, a path without its slash', () => {
  refused(withPreviews(...BASE, 'path: /previews/'), 6, `${KEY}.path`, /is given with domain:; give one/);
  refused(withPreviews('start: x'), 3, KEY, /needs domain: .* or path: /);
  refused(withPreviews('domain: "*.preview.example.com"', 'start: x'), 4, `${KEY}.domain`, /wildcard.*pr-N\./);
  refused(withPreviews('domain: preview.example.com.', 'start: x'), 4, `${KEY}.domain`, /end with a dot/);
  refused(withPreviews('domain: Preview.example.com', 'start: x'), 4, `${KEY}.domain`, /lower case/);
  refused(withPreviews('domain: pre_view.example.com', 'start: x'), 4, `${KEY}.domain`, /DNS name/);
  refused(withPreviews('domain: 10.0.0.1', 'start: x'), 4, `${KEY}.domain`, /not an IP address/);
  refused(withPreviews('domain: "a.b;c"', 'start: x'), 4, `${KEY}.domain`, /DNS name/);
  refused(withPreviews('path: previews/', 'start: x'), 4, `${KEY}.path`, /start with "\/", such as \/previews\//);
  refused(withPreviews('path: /a/../b', 'start: x'), 4, `${KEY}.path`, /plain segments/);
  refused(withPreviews('path: "/a b/"', 'start: x'), 4, `${KEY}.path`, /plain segments/);
  refused(withPreviews('path: "/a;}/"', 'start: x'), 4, `${KEY}.path`, /plain segments/);
  refused(withPreviews('path: //x', 'start: x'), 4, `${KEY}.path`, /"\/\/"/);
  refused(withPreviews('path: /p/', 'start: x', 'nginx: { listen: 80 }'), 6, `${KEY}.nginx.listen`, /domain: only/);
});

test('build_on: here by default; workers only with queue:', () => {
  assert.is(previewsOf(withPreviews(...BASE))!.buildOn, 'here');
  const withQueue = 'queue: postgres://shipkit@db/shipkit\n' + withPreviews(...BASE, 'build_on: workers');
  assert.is(load(withQueue).repos.get('octo/site')!.previews!.buildOn, 'workers');
  refused(withPreviews(...BASE, 'build_on: workers'), 6, `${KEY}.build_on`, /set queue: first/);
  refused(withPreviews(...BASE, 'build_on: ci'), 6, `${KEY}.build_on`, /must be here .* or workers/);
});

test('uids: a range of uids for one each; a bad range or one beside user: refused', () => {
  assert.equal(previewsOf(withPreviews(...BASE, 'uids: 200000-200015'))!.uids, { from: 200_000, to: 200_015 });
  for (const bad of ['1000-2000', '200000-200014', '200015-200000', '200000', 'a-b', '200000-4294967295'])
    refused(withPreviews(...BASE, `uids: ${bad}`), 6, `${KEY}.uids`, /must be a range FROM-TO of at least 16 uids/);
  refused(withPreviews(...BASE, 'user: web', 'uids: 200000-200015'), 7, `${KEY}.uids`, /keep one/);
});

test('refused: listen not a port or ADDRESS:PORT; commands a shell would be needed for', () => {
  for (const listen of ['http', 0, 70_000, '80 ssl', 'localhost:80', '300.0.0.1:80', '127.0.0.1:']) {
    refused(
      withPreviews(...BASE, `nginx: { listen: ${JSON.stringify(listen)} }`),
      6,
      `${KEY}.nginx.listen`,
      /must be a port \(80\) or ADDRESS:PORT \(127\.0\.0\.1:8080\)/,
    );
  }
  refused(withPreviews(...BASE, 'nginx: { test: "nginx -t && true" }'), 6, `${KEY}.nginx.test`, /holds &.*shell/);
  refused(withPreviews(...BASE, 'nginx: { test: "nginx -t; rm -rf /" }'), 6, `${KEY}.nginx.test`, /holds ;/);
  refused(
    withPreviews(...BASE, 'nginx: { reload: "kill -HUP $(cat /run/nginx.pid)" }'),
    6,
    `${KEY}.nginx.reload`,
    /\$/,
  );
  refused(withPreviews(...BASE, `nginx: { reload: "nginx -s 'reload" }`), 6, `${KEY}.nginx.reload`, /not closed/);
  refused(
    withPreviews(...BASE, 'nginx: { reload: "  " }'),
    6,
    `${KEY}.nginx.reload`,
    /is empty.*such as nginx -s reload/,
  );
  refused(withPreviews(...BASE, 'nginx: { dir: "" }'), 6, `${KEY}.nginx.dir`, /is empty/);
  refused(withPreviews(...BASE, 'nginx: { dir: "/etc/x\\ny" }'), 6, `${KEY}.nginx.dir`, /control character/);
});

test('refused: max 0 or 1000, ttl "soon", memory "lots", cpu "150%", trusted not a list', () => {
  refused(withPreviews(...BASE, 'max: 0'), 6, `${KEY}.max`, /whole number of live previews from 1 to 100/);
  refused(withPreviews(...BASE, 'max: 1000'), 6, `${KEY}.max`, /from 1 to 100/);
  refused(withPreviews(...BASE, 'max: 2.5'), 6, `${KEY}.max`, /whole number/);
  refused(withPreviews(...BASE, 'max: ten'), 6, `${KEY}.max`, /must be a number/);
  refused(withPreviews(...BASE, 'ttl: soon'), 6, `${KEY}.ttl`, /duration .* such as 72h, 30m or 7d, got "soon"/);
  refused(withPreviews(...BASE, 'ttl: 3600'), 6, `${KEY}.ttl`, /duration/);
  refused(withPreviews(...BASE, 'ttl: 10s'), 6, `${KEY}.ttl`, /from 1m to 365d/);
  refused(withPreviews(...BASE, 'ttl: 400d'), 6, `${KEY}.ttl`, /from 1m to 365d/);
  refused(withPreviews(...BASE, 'limits: { memory: lots }'), 6, `${KEY}.limits.memory`, /512M or 1G, got "lots"/);
  refused(withPreviews(...BASE, 'limits: { memory: 512 }'), 6, `${KEY}.limits.memory`, /K, M or G/);
  refused(withPreviews(...BASE, 'limits: { memory: 1M }'), 6, `${KEY}.limits.memory`, /at least 16M/);
  refused(withPreviews(...BASE, 'limits: { cpu: 150% }'), 6, `${KEY}.limits.cpu`, /from 1% to 100%.*got "150%"/);
  refused(withPreviews(...BASE, 'limits: { cpu: 0.5 }'), 6, `${KEY}.limits.cpu`, /such as 50%/);
  refused(withPreviews(...BASE, 'trusted: alice'), 6, `${KEY}.trusted`, /list of forge logins, such as \[alice, bob\]/);
  refused(withPreviews(...BASE, 'trusted: [alice, "bob smith"]'), 6, `${KEY}.trusted[1]`, /not a forge login/);
  refused(withPreviews(...BASE, 'trusted: [alice, 3]'), 6, `${KEY}.trusted[1]`, /login/);
});

test('refused: start, health, env, database, user and auth that cannot work', () => {
  refused(withPreviews('domain: p.example.com'), 3, `${KEY}.start`, /is required/);
  refused(withPreviews('domain: p.example.com', 'start: " "'), 5, `${KEY}.start`, /is empty.*node server\.js/);
  refused(withPreviews(...BASE, 'binds: nginx'), 6, `${KEY}.binds`, /must be launchfit .* or app .*got "nginx"/);
  refused(withPreviews(...BASE, 'health: healthz'), 6, `${KEY}.health`, /starting with "\/", such as \/healthz/);
  refused(withPreviews(...BASE, 'health: "/a b"'), 6, `${KEY}.health`, /no spaces/);
  refused(withPreviews(...BASE, 'env: { PORT: "1" }'), 6, `${KEY}.env.PORT`, /set by shipkit for every preview/);
  refused(withPreviews(...BASE, 'env: { DATABASE_URL: x }'), 6, `${KEY}.env.DATABASE_URL`, /set by shipkit/);
  refused(withPreviews(...BASE, 'env: { SHIPKIT_PR: "1" }'), 6, `${KEY}.env.SHIPKIT_PR`, /set by shipkit/);
  refused(withPreviews(...BASE, 'env: { "1X": a }'), 6, `${KEY}.env.1X`, /not a valid variable name/);
  refused(withPreviews(...BASE, 'env: { A: [1] }'), 6, `${KEY}.env.A`, /env:NAME or file:PATH/);
  refused(withPreviews(...BASE, 'database: { template: x }'), 6, `${KEY}.database.url`, /is required/);
  refused(
    withPreviews(...BASE, 'database: { url: mysql://x }'),
    6,
    `${KEY}.database.url`,
    /env:NAME, file:PATH or a postgres/,
  );
  refused(
    withPreviews(...BASE, 'database: { url: env:X, template: "a-b" }'),
    6,
    `${KEY}.database.template`,
    /database name/,
  );
  refused(withPreviews(...BASE, 'user: root'), 6, `${KEY}.user`, /must not be root/);
  refused(withPreviews(...BASE, 'user: "Bad User"'), 6, `${KEY}.user`, /Unix user name/);
  refused(withPreviews(...BASE, 'auth: {}'), 6, `${KEY}.auth.users_file`, /is required/);
  refused(withPreviews(...BASE, 'auth: { users_file: "/etc/a b" }'), 6, `${KEY}.auth.users_file`, /htpasswd file/);
  refused(withPreviews(...BASE, 'auth: { users_file: "/etc/$x" }'), 6, `${KEY}.auth.users_file`, /htpasswd file/);
});

test.run();
