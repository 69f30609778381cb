// shipkit.yml (lib/config/shipkit-yml.ts): defaults, wrong types named by key and line, invalid repo
// names, getRepo, repoPaths (folder names from lib/core/names.ts), and the config file search order.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, ValidationError } from '../../../lib/core/errors.ts';
import {
  DEFAULTS,
  STEPS,
  findConfigFile,
  getRepo,
  loadShipkitConfig,
  repoPaths,
} from '../../../lib/config/shipkit-yml.ts';
import { repoFolderName } from '../../../lib/core/names.ts';
import { tmpDir } from '../../_helpers/common.ts';

const dir = tmpDir();
let counter = 0;

function write(text: string, name = `shipkit-${++counter}.yml`): string {
  const file = path.join(dir, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

async function configFails(text: string, line: number, key: string, message: RegExp): Promise<void> {
  const file = write(text);
  try {
    await loadShipkitConfig(file);
  } catch (error) {
    assert.instance(error, ConfigError, `got ${(error as Error).name}: ${(error as Error).message}`);
    const text = (error as Error).message;
    assert.ok(
      text.startsWith(`${file}:${line}: ${key}: `),
      `expected ${path.basename(file)}:${line}: ${key}: …, got ${text}`,
    );
    assert.match(text, message);
    return;
  }
  assert.unreachable('expected a ConfigError');
}

test('defaults for a repo with no settings', async () => {
  const file = write('repos:\n  octo/site:\n');
  const config = await loadShipkitConfig(file);
  assert.is(config.file, file);
  assert.is(config.listen, DEFAULTS.listen);
  assert.is(config.data, '/var/lib/shipkit');
  assert.is(config.concurrency, 1);
  assert.is(config.secret, undefined);
  assert.is(config.token, undefined);
  assert.equal([...config.repos.keys()], ['octo/site']);
  const repo = config.repos.get('octo/site')!;
  assert.is(repo.name, 'octo/site');
  assert.is(repo.url, undefined);
  assert.is(repo.branch, 'main');
  assert.is(repo.user, undefined);
  assert.equal(repo.steps, [...STEPS]);
  assert.is(repo.compile, undefined);
  assert.is(repo.timeout, 900);
  assert.equal(repo.upload, []);
  assert.is(repo.release, 'release.sh');
});

test('an empty file and a file without repos are valid', async () => {
  const config = await loadShipkitConfig(write(''));
  assert.is(config.repos.size, 0);
  assert.is(config.listen, '127.0.0.1:9000');
});

test('every documented key is read; data is relative to the config file', async () => {
  const file = write(
    `listen: 0.0.0.0:9100
data: ./var
secret: env:SHIPKIT_WEBHOOK_SECRET
token: env:SHIPKIT_TOKEN
concurrency: 2
repos:
  octo/site:
    url: https://github.com/octo/site.git
    branch: gh-pages
    user: site
    steps: [pull, compile]
    compile: litpro
    timeout: 60
    upload:
      - rsync: deploy@web1:/var/www/site/
        from: out
      - s3: { bucket: site, prefix: "" }
        from: out
    release: scripts/release.sh
    secret: file:/etc/shipkit/site.secret
  tool:
`,
    'sub/full.yml',
  );
  const config = await loadShipkitConfig(file);
  assert.is(config.listen, '0.0.0.0:9100');
  assert.is(config.data, path.join(dir, 'sub', 'var'));
  assert.equal(config.secret, [{ ref: 'env:SHIPKIT_WEBHOOK_SECRET' }], 'unresolved: resolved by whoever needs it');
  assert.is(config.token, 'env:SHIPKIT_TOKEN');
  assert.is(config.concurrency, 2);
  const repo = config.repos.get('octo/site')!;
  assert.is(repo.branch, 'gh-pages');
  assert.is(repo.user, 'site');
  assert.equal(repo.steps, ['pull', 'compile']);
  assert.is(repo.compile, 'litpro');
  assert.is(repo.timeout, 60);
  assert.is(repo.release, 'scripts/release.sh');
  assert.equal(repo.secret, [{ ref: 'file:/etc/shipkit/site.secret' }]);
  assert.is(repo.upload.length, 2);
  assert.equal(repo.upload[0], {
    raw: { rsync: 'deploy@web1:/var/www/site/', from: 'out' },
    keyPath: ['repos', 'octo/site', 'upload', 0],
  });
  assert.equal(repo.upload[1].keyPath, ['repos', 'octo/site', 'upload', 1]);
  assert.ok(config.repos.has('tool'), 'a plain name is a valid repo key');
  // The keyPath of an upload entry locates it for the upload lib's own errors.
  assert.is(config.doc.locate(repo.upload[1].keyPath), `${file}:17`);
});

// [label, yaml, line, key path, message]
const bad: Array<[string, string, number, string, RegExp]> = [
  [
    'timeout: "x"',
    'repos:\n  octo/site:\n    branch: main\n    timeout: "x"\n',
    4,
    'repos.octo/site.timeout',
    /must be a number, got string "x"\./,
  ],
  [
    'timeout: 0',
    'repos:\n  octo/site:\n    timeout: 0\n',
    3,
    'repos.octo/site.timeout',
    /must be a positive number of seconds/,
  ],
  ['timeout: -5', 'repos:\n  octo/site:\n    timeout: -5\n', 3, 'repos.octo/site.timeout', /positive/],
  [
    'steps: [bogus]',
    'repos:\n  octo/site:\n    steps: [bogus]\n',
    3,
    'repos.octo/site.steps[0]',
    /unknown step "bogus"; steps are pull, downloads, install, compile, upload, publish, rollout\./,
  ],
  [
    'steps: second item bad, block list',
    'repos:\n  octo/site:\n    steps:\n      - pull\n      - deploy\n',
    5,
    'repos.octo/site.steps[1]',
    /unknown step "deploy"/,
  ],
  [
    'steps: a string',
    'repos:\n  octo/site:\n    steps: pull\n',
    3,
    'repos.octo/site.steps',
    /must be a list of strings, got string "pull"/,
  ],
  ['steps: [1]', 'repos:\n  octo/site:\n    steps: [1]\n', 3, 'repos.octo/site.steps', /must be a list of strings/],
  [
    'branch: a list',
    'repos:\n  octo/site:\n    branch: [main]\n',
    3,
    'repos.octo/site.branch',
    /must be a string, got a list/,
  ],
  ['user: Root', 'repos:\n  octo/site:\n    user: "Root"\n', 3, 'repos.octo/site.user', /must be a Unix user name/],
  ['user: shell injection', 'repos:\n  octo/site:\n    user: "x;id"\n', 3, 'repos.octo/site.user', /Unix user name/],
  ['upload: a string', 'repos:\n  octo/site:\n    upload: "rsync"\n', 3, 'repos.octo/site.upload', /must be a list/],
  [
    'upload: [a string]',
    'repos:\n  octo/site:\n    upload:\n      - rsync host:path\n',
    4,
    'repos.octo/site.upload[0]',
    /each upload target must be a mapping/,
  ],
  [
    'unknown repo key',
    'repos:\n  octo/site:\n    branch: main\n    brnach: dev\n',
    4,
    'repos.octo/site.brnach',
    /unknown key; expected one of: url, branch/,
  ],
  ['repo is a list', 'repos:\n  octo/site: [pull]\n', 2, 'repos.octo/site', /must be a mapping/],
  [
    'unknown top-level key',
    'listen: 127.0.0.1:9000\nlisen: x\n',
    2,
    'lisen',
    /unknown key; expected one of: listen, data/,
  ],
  ['repos: a list', 'repos:\n  - octo/site\n', 1, 'repos', /must be a mapping/],
  ['concurrency: 0', 'concurrency: 0\n', 1, 'concurrency', /whole number of at least 1/],
  ['concurrency: 1.5', 'concurrency: 1.5\n', 1, 'concurrency', /whole number/],
  ['concurrency: "2"', 'concurrency: "2"\n', 1, 'concurrency', /must be a number, got string "2"/],
  ['listen: 9000 (a number)', 'listen: 9000\n', 1, 'listen', /must be a string, got number 9000/],
  ['file is a list', '- a\n- b\n', 1, '(top level)', /must be a mapping of keys/],
  ['file is a scalar', 'just text\n', 1, '(top level)', /must be a mapping/],
];

for (const [label, text, line, key, message] of bad) {
  test(`wrong config: ${label} → line ${line}, ${key}`, () => configFails(text, line, key, message));
}

// `a/b/c` left this list: GitLab subgroups are valid; see the test below.
const badNames = [
  '../etc',
  'octo/../etc',
  'a//c',
  'a/b/',
  '.hidden',
  'octo/.git',
  '-rf',
  'x;rm -rf /',
  'octo/sit\u0435',
  'octo\uff0fsite',
  '/site',
  '"x\\0"',
];

for (const name of badNames) {
  test(`invalid repo name ${JSON.stringify(name)} → line of the key`, () =>
    configFails(
      `data: /tmp/x\nrepos:\n  ok/one:\n  ${name.startsWith('"') ? name : JSON.stringify(name)}:\n    branch: main\n`,
      4,
      `repos.${name.startsWith('"') ? 'x\0' : name}`,
      /is not a valid repository name/,
    ));
}

test('max_body: read as bytes; zero, negative, fractional or a string is refused naming the key', async () => {
  assert.is((await loadShipkitConfig(write('max_body: 1048576\n'))).maxBody, 1048576);
  assert.is((await loadShipkitConfig(write('listen: 127.0.0.1:9000\n'))).maxBody, undefined);
  await configFails('data: /x\nmax_body: 0\n', 2, 'max_body', /at least 1024/);
  await configFails('data: /x\nmax_body: -5\n', 2, 'max_body', /at least 1024/);
  await configFails('data: /x\nmax_body: 2048.5\n', 2, 'max_body', /whole number/);
  await configFails('data: /x\nmax_body: 25MB\n', 2, 'max_body', /must be a number/);
});

test('names that once shared a folder (a/b__c, a__b/c, octo__site, octo/site) now get one each; subgroups and dot-names load', async () => {
  const config = await loadShipkitConfig(
    write('data: /d\nrepos:\n  a/b__c:\n  a__b/c:\n  octo__site:\n  octo/site:\n  group/sub/app:\n  owner/.github:\n'),
  );
  const works = [...config.repos.keys()].map((name) => repoPaths(config, name).work);
  assert.is(new Set(works).size, 6);
  assert.is(repoPaths(config, 'octo/site').work, '/d/repos/octo__site');
  assert.is(repoPaths(config, 'group/sub/app').work, '/d/repos/group__sub__app');
  assert.is(getRepo(config, 'group/sub/app').name, 'group/sub/app');
  assert.is(getRepo(config, '.github').name, 'owner/.github');
});

test('getRepo: full name, unique short name, unknown lists configured, ambiguous, invalid', async () => {
  const config = await loadShipkitConfig(write('repos:\n  octo/site:\n  octo/api:\n  other/api:\n  plain:\n'));
  assert.is(getRepo(config, 'octo/site').name, 'octo/site');
  assert.is(getRepo(config, 'site').name, 'octo/site');
  assert.is(getRepo(config, 'plain').name, 'plain');
  assert.is(getRepo(config, 'other/api').name, 'other/api');
  const cases: Array<[string, RegExp]> = [
    ['octo/nope', /^Repository octo\/nope is not in .*\(configured: octo\/site, octo\/api, other\/api, plain\)\.$/],
    ['nope', /configured: octo\/site, octo\/api, other\/api, plain/],
    ['other/site', /is not in/],
    ['api', /ambiguous.*octo\/api, other\/api/],
    ['../etc', /^Invalid repository name/],
    ['a/b//c', /^Invalid repository name/],
    ['', /^Invalid repository name/],
  ];
  for (const [name, pattern] of cases) {
    try {
      getRepo(config, name);
      assert.unreachable(`getRepo(${JSON.stringify(name)}) should throw`);
    } catch (error) {
      assert.instance(error, ConfigError, `${name}: ${(error as Error).message}`);
      assert.match((error as Error).message, pattern);
    }
  }
  const none = await loadShipkitConfig(write('listen: 127.0.0.1:1\n'));
  try {
    getRepo(none, 'x');
    assert.unreachable('should throw');
  } catch (error) {
    assert.match((error as Error).message, /no repos: configured/);
  }
});

const slugs: Array<[string, string | null]> = [
  ['octo/site', 'octo__site'],
  ['site', 'site'],
  ['Octo.Org/my-site_2', 'Octo.Org__my-site_2'],
  ['../etc', null],
  ['a/b/c', 'a__b__c'],
  ['a/b//c', null],
  ['octo/', null],
  ['', null],
];

for (const [name, want] of slugs) {
  test(`repoFolderName ${JSON.stringify(name)} → ${want ?? 'ValidationError'}`, () => {
    if (want !== null) return assert.is(repoFolderName(name), want);
    assert.throws(
      () => repoFolderName(name),
      (e: unknown) => e instanceof ValidationError,
    );
  });
}

test('repoPaths are DATA/{repos,logs,state}/SLUG', () => {
  assert.equal(repoPaths({ data: '/d' }, 'octo/site'), {
    work: '/d/repos/octo__site',
    logs: '/d/logs/octo__site',
    state: '/d/state/octo__site',
  });
  assert.throws(
    () => repoPaths({ data: '/d' }, '../x'),
    (e: unknown) => e instanceof ValidationError,
  );
});

test('findConfigFile: --config, then $SHIPKIT_CONFIG, then ./shipkit.yml, else a ConfigError', () => {
  const cwd = tmpDir();
  assert.is(findConfigFile('conf/x.yml', { SHIPKIT_CONFIG: '/env.yml' }, cwd), path.join(cwd, 'conf/x.yml'));
  assert.is(findConfigFile(undefined, { SHIPKIT_CONFIG: 'env.yml' }, cwd), path.join(cwd, 'env.yml'));
  assert.is(findConfigFile(undefined, { SHIPKIT_CONFIG: '/abs/env.yml' }, cwd), '/abs/env.yml');
  // An /etc file of this machine (the .deb test installs one) must not decide this test.
  const noSystem = path.join(cwd, 'no-etc-shipkit.yml');
  assert.throws(
    () => findConfigFile(undefined, {}, cwd, noSystem),
    (e: unknown) => e instanceof ConfigError && /pass --config FILE, set SHIPKIT_CONFIG/.test(e.message),
  );
  writeFileSync(noSystem, 'repos: {}\n');
  assert.is(findConfigFile(undefined, {}, cwd, noSystem), noSystem, 'the system file comes last');
  writeFileSync(path.join(cwd, 'shipkit.yml'), 'repos: {}\n');
  assert.is(findConfigFile(undefined, {}, cwd), path.join(cwd, 'shipkit.yml'));
  assert.is(
    findConfigFile(undefined, { SHIPKIT_CONFIG: 'other.yml' }, cwd),
    path.join(cwd, 'other.yml'),
    'env beats ./shipkit.yml',
  );
});

test('findConfigFile: ./.shipkit/shipkit.yml (first start) after ./shipkit.yml and before /etc', () => {
  const cwd = tmpDir();
  const system = path.join(cwd, 'etc-shipkit.yml');
  writeFileSync(system, 'repos: {}\n');
  mkdirSync(path.join(cwd, '.shipkit'));
  writeFileSync(path.join(cwd, '.shipkit', 'shipkit.yml'), 'repos: {}\n');
  assert.is(findConfigFile(undefined, {}, cwd, system), path.join(cwd, '.shipkit', 'shipkit.yml'));
  writeFileSync(path.join(cwd, 'shipkit.yml'), 'repos: {}\n');
  assert.is(findConfigFile(undefined, {}, cwd, system), path.join(cwd, 'shipkit.yml'), './shipkit.yml first');
});

test('a missing config file is a ConfigError naming it', async () => {
  try {
    await loadShipkitConfig(path.join(dir, 'missing.yml'));
    assert.unreachable('should throw');
  } catch (error) {
    assert.instance(error, ConfigError);
    assert.match((error as Error).message, /missing\.yml does not exist/);
  }
});

test('ui: defaults to token; public_url is kept without its trailing slash; bad values name the key and line', async () => {
  const plain = await loadShipkitConfig(write('repos:\n  octo/site:\n'));
  assert.is(plain.ui, 'token');
  assert.is(plain.publicUrl, undefined);
  const set = await loadShipkitConfig(write('ui: public\npublic_url: https://ci.example.com/shipkit/\nrepos: {}\n'));
  assert.is(set.ui, 'public');
  assert.is(set.publicUrl, 'https://ci.example.com/shipkit');
  await configFails('repos: {}\nui: true\n', 2, 'ui', /must be a string, got boolean true/);
  await configFails('repos: {}\nui: private\n', 2, 'ui', /must be one of token, public, off/);
  await configFails('public_url: javascript:alert(1)\n', 1, 'public_url', /must start with https:\/\/ or http:\/\//);
  await configFails('public_url: https://ci.example.com/#x\n', 1, 'public_url', /fragment/);
  const under = await loadShipkitConfig(write('public_url: http://127.0.0.1:8080/a/%2e%2e/ci.x_~-/\nrepos: {}\n'));
  assert.is(under.publicUrl, 'http://127.0.0.1:8080/ci.x_~-');
  // The path goes into every link of the pages and the cookie's Path: plain segments only.
  for (const hostile of [
    'https://ci.example.com//evil.example',
    'https://ci.example.com/ci;Path=/',
    'https://ci.example.com/c i',
    'https://ci.example.com/ci"x',
    'https://ci.example.com/ci//',
    "https://ci.example.com/ci'x",
    'https://ci.example.com/é',
  ]) {
    await configFails(
      `repos: {}\npublic_url: ${JSON.stringify(hostile)}\n`,
      2,
      'public_url',
      /path .* is not plain segments/,
    );
  }
});

test('notify: a repo may have its own list (docs/design.md), which replaces the top-level one for it', async () => {
  const config = await loadShipkitConfig(
    write(
      [
        'notify:',
        '  - slack: https://hooks.example.com/top',
        'repos:',
        '  octo/site:',
        '    notify:',
        '      - webhook: https://hooks.example.com/site',
        '        secret: env:NOTIFY_SECRET',
        '        on: [success]',
        '  octo/docs:',
        '',
      ].join('\n'),
    ),
  );
  assert.equal(
    config.notify.map((t) => [t.channel, t.url]),
    [['slack', 'https://hooks.example.com/top']],
  );
  const site = getRepo(config, 'octo/site').notify!;
  assert.equal(
    site.map((t) => [t.channel, t.url, t.secret, t.on]),
    [['webhook', 'https://hooks.example.com/site', 'env:NOTIFY_SECRET', ['success']]],
  );
  assert.is(getRepo(config, 'octo/docs').notify, undefined);
});

test('queue: (docs/design.md) is kept unresolved; with it, concurrency: 0 leaves every build to workers', async () => {
  const config = await loadShipkitConfig(write('queue: env:SHIPKIT_QUEUE_URL\nconcurrency: 0\nrepos: {}\n'));
  assert.is(config.queue, 'env:SHIPKIT_QUEUE_URL');
  assert.is(config.concurrency, 0);
  assert.is((await loadShipkitConfig(write('repos: {}\n'))).queue, undefined);
  const error = await loadShipkitConfig(write('concurrency: 0\nrepos: {}\n')).catch((e) => e);
  assert.instance(error, ConfigError);
  assert.match(error.message, /at least 1 \(0 only with queue:\)/);
});

test('queue: as a list (a primary and its standbys, docs/ha.md): kept in order; a bad list names its line', async () => {
  const list = 'queue:\n  - postgres://shipkit@db1/shipkit\n  - env:STANDBY_URL\nrepos: {}\n';
  assert.equal((await loadShipkitConfig(write(list))).queue, ['postgres://shipkit@db1/shipkit', 'env:STANDBY_URL']);
  const cases: Array<[string, RegExp]> = [
    ['queue: []\nrepos: {}\n', /:1: queue: must list 1 to 8 PostgreSQL URLs/],
    [
      'queue:\n  - postgres://db1/x\n  - 5432\nrepos: {}\n',
      /:3: queue\[1\]: must be a PostgreSQL URL, env:NAME or file:PATH/,
    ],
    [
      'queue:\n  - postgres://db1/x\n  - mysql://u:hunter2@db2/x\nrepos: {}\n',
      /:3: queue\[1\]: is not a PostgreSQL URL/,
    ],
    ['queue:\n  - postgres://db1/x\n  - postgres://db1/x\nrepos: {}\n', /:3: queue\[1\]: is listed already/],
    ['queue:\n  url: postgres://db1/x\nrepos: {}\n', /queue: must be a string/],
  ];
  for (const [text, expected] of cases) {
    const error = await loadShipkitConfig(write(text)).catch((e) => e);
    assert.instance(error, ConfigError, text);
    assert.match(error.message, expected);
    assert.not.match(error.message, 'hunter2');
  }
});

test.run();
