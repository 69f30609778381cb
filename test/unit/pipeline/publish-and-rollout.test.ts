// The release version of a build (lib/pipeline/publish-and-rollout.ts releaseVersion) and the
// publish:/rollout: blocks of shipkit.yml (lib/config/pipeline.ts).
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { releaseVersion } from '../../../lib/pipeline/publish-and-rollout.ts';
import { parseShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { compareVersions } from '../../../lib/release/format/version-file.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'shipkit-version-'));
const paths = { work, logs: work, state: work };

test('a tag gives its version without the v; a tag that is no launchfit version is refused', async () => {
  assert.is(await releaseVersion({ ref: 'refs/tags/v1.4.0', paths }), '1.4.0');
  assert.is(await releaseVersion({ ref: 'refs/tags/2.a', paths }), '2.a');
  for (const tag of ['v1.4.0-rc1', 'release', 'pkg@1.2.3']) {
    await releaseVersion({ ref: `refs/tags/${tag}`, paths }).then(
      () => assert.unreachable(tag),
      (error) => assert.match(error.message, /is not a launchfit version/),
    );
  }
});

test("a branch build: package.json's plain version (else 0) plus the time in ms in hex, growing and above the tag", async () => {
  assert.is(await releaseVersion({ ref: 'refs/heads/main', paths }, 0x18c5f3a2b1e), '0.18c5f3a2b1e');
  writeFileSync(path.join(work, 'package.json'), '{"version": "1.4.0"}');
  const a = await releaseVersion({ paths }, 1_700_000_000_000);
  const b = await releaseVersion({ paths }, 1_700_000_000_001);
  assert.is(a, `1.4.0.${(1_700_000_000_000).toString(16)}`);
  assert.is(compareVersions(b, a), 1);
  assert.is(compareVersions(a, '1.4.0'), 1);
  writeFileSync(path.join(work, 'package.json'), '{"version": "2.0.0-beta.1"}');
  assert.match(await releaseVersion({ paths }, 5), /^0\.5$/);
});

const parse = (repoYaml: string) =>
  parseShipkitConfig(
    parseYamlText(`repos:\n  octo/site:\n${repoYaml.replace(/^/gm, '    ')}\n`, '/etc/shipkit/shipkit.yml'),
  );
const publish =
  'publish:\n  from: dist\n  name: my-app\n  platform: gnu-linux\n  key: file:key.asc\n  to: /srv/updates\n';

test('publish: and rollout: blocks: errors name the file, line and key', () => {
  const cases: Array<[string, RegExp]> = [
    [
      publish.replace('from: dist', 'from: ../etc'),
      /shipkit\.yml:4: repos\.octo\/site\.publish\.from: must be a folder inside the repository/,
    ],
    [publish.replace('from: dist', 'from: /etc'), /publish\.from: must be a folder inside the repository .*relative/],
    [publish.replace('name: my-app', 'name: ../x'), /publish\.name: is not a valid app name/],
    [publish.replace('key: file:key.asc', 'key: env:KEY'), /publish\.key: must name a file/],
    [publish.replace('  to: /srv/updates\n', ''), /publish: needs to: \(a folder.*or an environment of apps: my-app/],
    [`${publish}  bogus: 1\n`, /publish\.bogus: unknown key/],
    ['rollout:\n  list: fleet.txt\n', /rollout: needs secret:/],
    ['rollout:\n  list: fleet.txt\n  secret: env:S\n  waves: [50%]\n', /rollout\.waves: must end at 100% \(got 50%\)/],
    ['rollout:\n  list: fleet.txt\n  secret: env:S\n  waves: [50%, 25%, 100%]\n', /rollout\.waves: .*must grow/],
    ['rollout:\n  list: fleet.txt\n  secret: env:S\n  canary: -1\n', /rollout\.canary: must be a whole number from 0/],
  ];
  for (const [yaml, pattern] of cases) assert.throws(() => parse(yaml), pattern, yaml);
  const repo = parse(`${publish}rollout:\n  list: fleet.txt\n  secret: env:S\n  waves: 25%,100%\n`).repos.get(
    'octo/site',
  )!;
  assert.equal(repo.publish?.key, '/etc/shipkit/key.asc');
  const push = repo.rollout?.mode === 'push' ? repo.rollout : undefined;
  assert.equal(
    [push?.list, push?.name, push?.shares, push?.concurrency],
    ['/etc/shipkit/fleet.txt', 'my-app', [25, 100], 256],
  );
  const narrow = parse(`${publish}rollout:\n  list: fleet.txt\n  secret: env:S\n  concurrency: 8\n`).repos.get(
    'octo/site',
  )!.rollout;
  assert.is(narrow?.mode === 'push' ? narrow.concurrency : undefined, 8);
  assert.is(parse('branch: main\n').repos.get('octo/site')!.publish, undefined);
});

const fleet = 'fleet:\n  my-app:\n    secret: file:fleet-my-app.secret\n';
const parseWithFleet = (repoYaml: string, top = fleet) =>
  parseShipkitConfig(
    parseYamlText(`${top}repos:\n  octo/site:\n${repoYaml.replace(/^/gm, '    ')}\n`, '/etc/shipkit/shipkit.yml'),
  );

test('rollout: mode: pull: steps, wait, max_failures, allow_missing, rollback; errors name the file, line and key', () => {
  const repo = parseWithFleet(
    `${publish}rollout:\n  mode: pull\n  steps: [1, 10, 100]\n  wait: 300\n  max_failures: 2%\n  allow_missing: 1\n  rollback: false\n`,
  ).repos.get('octo/site')!;
  assert.equal(repo.rollout, {
    mode: 'pull',
    name: 'my-app',
    secret: 'file:fleet-my-app.secret',
    fleetUrl: undefined,
    steps: [1, 10, 100],
    waitSec: 300,
    maxFailures: { percent: 2 },
    allowMissing: { count: 1 },
    rollback: false,
    keyPath: ['repos', 'octo/site', 'rollout'],
  });
  const defaults = parseWithFleet(`${publish}rollout:\n  mode: pull\n`).repos.get('octo/site')!.rollout;
  assert.equal(
    defaults?.mode === 'pull' && [
      defaults.steps,
      defaults.waitSec,
      defaults.maxFailures,
      defaults.allowMissing,
      defaults.rollback,
    ],
    [[1, 10, 50, 100], 600, { count: 0 }, { count: 0 }, true],
  );
  const asText = parseWithFleet(
    `${publish}rollout:\n  mode: pull\n  steps: 5%,100%\n  fleet_url: http://10.0.0.2:9000/\n`,
  ).repos.get('octo/site')!.rollout;
  assert.equal(asText?.mode === 'pull' && [asText.steps, asText.fleetUrl], [[5, 100], 'http://10.0.0.2:9000']);
  const cases: Array<[string, string, RegExp]> = [
    [
      `${publish}rollout:\n  mode: pull\n  steps: [10, 5, 100]\n`,
      fleet,
      /shipkit\.yml:\d+: repos\.octo\/site\.rollout\.steps: steps must grow: 5 follows 10/,
    ],
    [`${publish}rollout:\n  mode: pull\n  steps: [1, 50]\n`, fleet, /rollout\.steps: steps must end at 100/],
    [
      `${publish}rollout:\n  mode: pull\n  steps: [0, 100]\n`,
      fleet,
      /rollout\.steps: invalid step in steps "0": it must be above 0/,
    ],
    [
      `${publish}rollout:\n  mode: pull\n  max_failures: lots\n`,
      fleet,
      /rollout\.max_failures: invalid max_failures "lots"/,
    ],
    [
      `${publish}rollout:\n  mode: pull\n  allow_missing: 150%\n`,
      fleet,
      /rollout\.allow_missing: invalid allow_missing "150%"/,
    ],
    [`${publish}rollout:\n  mode: pull\n  wait: 0\n`, fleet, /rollout\.wait: must be a number of seconds above 0/],
    [
      `${publish}rollout:\n  mode: pull\n  list: fleet.txt\n`,
      fleet,
      /rollout\.list: unknown key; expected one of: mode, steps/,
    ],
    [
      `${publish}rollout:\n  mode: pull\n  fleet_url: ftp://x\n`,
      fleet,
      /rollout\.fleet_url: must be hook-server's http\(s\) URL/,
    ],
    [`${publish}rollout:\n  mode: sideways\n`, fleet, /rollout\.mode: must be push .* or pull/],
    [
      'rollout:\n  mode: pull\n',
      fleet,
      /shipkit\.yml:\d+: repos\.octo\/site\.rollout\.mode: pull needs a publish: block/,
    ],
    [`${publish}rollout:\n  mode: pull\n`, '', /rollout\.mode: pull needs fleet: my-app: secret:/],
    [
      `${publish}rollout:\n  mode: pull\n`,
      'fleet:\n  other-app:\n    secret: env:X\n',
      /pull needs fleet: my-app: secret:/,
    ],
    [
      `${publish}rollout:\n  mode: pull\n`,
      'fleet:\n  my-app:\n    secret: hunter2\n',
      /shipkit\.yml:3: fleet\.my-app\.secret: must be env:NAME or file:PATH/,
    ],
    [
      `${publish}rollout:\n  mode: pull\n`,
      'fleet:\n  ../x:\n    secret: env:X\n',
      /fleet\.\.\.\/x: is not a valid app name/,
    ],
    [
      `${publish}rollout:\n  mode: pull\n`,
      'fleet:\n  my-app:\n    secret: env:X\n    token: 1\n',
      /fleet\.my-app\.token: unknown key/,
    ],
  ];
  for (const [yaml, top, pattern] of cases) assert.throws(() => parseWithFleet(yaml, top), pattern, yaml);
});

test.run();
