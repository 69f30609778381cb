// A repo's `publish:` and `rollout:` blocks (lib/config/pipeline.ts): the values and defaults each
// takes, paths resolved against the config file, push and pull rollouts, and every refusal at
// its FILE:LINE (a folder outside the repo, a missing secret, pull without publish or fleet:).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { FleetApp } from '../../../lib/config/fleet.ts';
import { parsePublishConfig, parseRolloutConfig, ROLLOUT_CONCURRENCY } from '../../../lib/config/pipeline.ts';
import { ConfigError } from '../../../lib/core/errors.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';

const FILE = '/etc/shipkit/shipkit.yml';
const KEY = ['repos', 'octo/site'];
const docOf = (lines: string[]) =>
  parseYamlText(['repos:', '  octo/site:', ...lines.map((l) => `    ${l}`), ''].join('\n'), FILE);
const PUBLISH = [
  'publish:',
  '  from: dist',
  '  name: web',
  '  platform: linux',
  '  key: keys/signing.asc',
  '  to: updates',
];
const fleet = new Map<string, FleetApp>([
  [
    'web',
    {
      app: 'web',
      secrets: ['env:FLEET_WEB', 'env:OLD'],
      maxHosts: 100,
      forgetAfterDays: 30,
      keyPath: ['fleet', 'web'],
    },
  ],
]);

function refused(run: () => unknown, message: RegExp): void {
  assert.throws(
    run,
    (e: unknown) => e instanceof ConfigError && e.message.includes(FILE) && message.test(e.message),
    message.source,
  );
}

test('publish: paths against the config file, remote targets kept, the defaults', () => {
  const p = parsePublishConfig(docOf(PUBLISH), KEY)!;
  assert.equal([p.from, p.name, p.platform, p.to, p.keep], ['dist', 'web', 'linux', '/etc/shipkit/updates', 5]);
  assert.is(p.key, '/etc/shipkit/keys/signing.asc');
  assert.is(p.expiresDays, undefined);
  const s3 = parsePublishConfig(
    docOf([...PUBLISH.slice(0, -1), '  to: s3://bucket/web', '  keep: 3', '  expires: 14']),
    KEY,
  )!;
  assert.equal([s3.to, s3.keep, s3.expiresDays], ['s3://bucket/web', 3, 14]);
  assert.is(parsePublishConfig(docOf(['branch: main']), KEY), undefined);
});

test('publish: exclude and include lists for the tarball; an http URL as to: or a pattern outside from: refused', () => {
  const p = parsePublishConfig(docOf([...PUBLISH, '  exclude: [node_modules, "*.map"]', '  include: [.git]']), KEY)!;
  assert.equal([p.exclude, p.include], [['node_modules', '*.map'], ['.git']]);
  assert.equal(parsePublishConfig(docOf(PUBLISH), KEY)!.exclude, undefined);
  refused(
    () => parsePublishConfig(docOf([...PUBLISH.slice(0, -1), '  to: http://updates.example.com/web/']), KEY),
    /publish\.to: is a URL: give a folder, user@host:path or s3:\/\/bucket\/prefix.*what launchfit reads from/,
  );
  refused(() => parsePublishConfig(docOf([...PUBLISH, '  exclude: [../secrets]']), KEY), /names nothing inside DIR/);
});

test('publish: refused shapes at their line', () => {
  const swap = (key: string, value: string) =>
    PUBLISH.map((l) => (l.startsWith(`  ${key}:`) ? `  ${key}: ${value}` : l));
  refused(() => parsePublishConfig(docOf(swap('from', '../../etc')), KEY), /must be a folder inside the repository/);
  refused(() => parsePublishConfig(docOf(swap('name', 'a/b')), KEY), /is not a valid app name/);
  refused(() => parsePublishConfig(docOf([...PUBLISH, '  colour: red']), KEY), /colour/);
  refused(() => parsePublishConfig(docOf(PUBLISH.filter((l) => !l.includes('key:'))), KEY), /key/);
});

test('rollout: push with its defaults; a secret or insecure: true is required', () => {
  const r = parseRolloutConfig(
    docOf(['rollout:', '  list: servers.txt', '  secret: env:S', '  waves: [25%, 100%]']),
    KEY,
    'octo/site',
    undefined,
  )!;
  assert.is(r.mode, 'push');
  if (r.mode !== 'push') return;
  assert.equal(
    [r.list, r.name, r.canary, r.concurrency, r.retries],
    ['/etc/shipkit/servers.txt', 'site', 0, ROLLOUT_CONCURRENCY, 2],
  );
  assert.equal(r.shares.length, 2);
  refused(
    () => parseRolloutConfig(docOf(['rollout:', '  list: s.txt']), KEY, 'octo/site', undefined),
    /needs secret:.*or insecure: true/,
  );
  refused(
    () => parseRolloutConfig(docOf(['rollout:', '  mode: carrier-pigeon', '  list: s']), KEY, 'octo/site', undefined),
    /must be push .* or pull/,
  );
});

test('rollout: pull takes the app from publish and its secret from fleet:, with its steps and allowances', () => {
  const lines = [
    ...PUBLISH,
    'rollout:',
    '  mode: pull',
    '  steps: [5%, 50%, 100%]',
    '  max_failures: 2%',
    '  fleet_url: http://127.0.0.1:9000/',
  ];
  const doc = docOf(lines);
  const r = parseRolloutConfig(doc, KEY, 'octo/site', parsePublishConfig(doc, KEY), fleet)!;
  assert.is(r.mode, 'pull');
  if (r.mode !== 'pull') return;
  assert.equal(
    [r.name, r.secret, r.fleetUrl, r.steps, r.waitSec, r.rollback],
    ['web', 'env:FLEET_WEB', 'http://127.0.0.1:9000', [5, 50, 100], 600, true],
  );
  assert.equal(r.maxFailures, { percent: 2 });
  assert.equal(r.allowMissing, { count: 0 });
});

test('rollout: pull without publish:, without fleet:, or with bad steps is refused', () => {
  const pull = ['rollout:', '  mode: pull'];
  refused(() => parseRolloutConfig(docOf(pull), KEY, 'octo/site', undefined, fleet), /pull needs a publish: block/);
  const doc = docOf([...PUBLISH, ...pull]);
  refused(
    () => parseRolloutConfig(doc, KEY, 'octo/site', parsePublishConfig(doc, KEY), new Map()),
    /pull needs fleet: web: secret:/,
  );
  const bad = docOf([...PUBLISH, ...pull, '  steps: [50, 10]']);
  refused(() => parseRolloutConfig(bad, KEY, 'octo/site', parsePublishConfig(bad, KEY), fleet), /steps/);
  const url = docOf([...PUBLISH, ...pull, '  fleet_url: ftp://x']);
  refused(
    () => parseRolloutConfig(url, KEY, 'octo/site', parsePublishConfig(url, KEY), fleet),
    /hook-server's http\(s\) URL/,
  );
});

test.run();
