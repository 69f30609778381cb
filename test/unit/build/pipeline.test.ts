// The release version of a build (lib/build/pipeline.ts releaseVersion) and the
// publish:/rollout: blocks of shipkit.yml (lib/config/pipeline.ts).
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { releaseVersion } from '../../../lib/build/pipeline.ts';
import { parseShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { compareVersions } from '../../../lib/release/version-file.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'shipkit-version-'));
const paths = { work, logs: work, state: work };

test('a tag gives its version without the v; a tag that is no launchfit version is refused', async () => {
  assert.is(await releaseVersion({ ref: 'refs/tags/v1.4.0', paths }), '1.4.0');
  assert.is(await releaseVersion({ ref: 'refs/tags/2.a', paths }), '2.a');
  for (const tag of ['v1.4.0-rc1', 'release', 'pkg@1.2.3']) {
    await releaseVersion({ ref: `refs/tags/${tag}`, paths }).then(() => assert.unreachable(tag), (error) => assert.match(error.message, /is not a launchfit version/));
  }
});

test('a branch build: package.json\'s plain version (else 0) plus the time in ms in hex, growing and above the tag', async () => {
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

const parse = (repoYaml: string) => parseShipkitConfig(parseYamlText(`repos:\n  octo/site:\n${repoYaml.replace(/^/gm, '    ')}\n`, '/etc/shipkit/shipkit.yml'));
const publish = 'publish:\n  from: dist\n  name: my-app\n  platform: gnu-linux\n  key: file:key.asc\n  to: /srv/updates\n';

test('publish: and rollout: blocks: errors name the file, line and key', () => {
  const cases: Array<[string, RegExp]> = [
    [publish.replace('from: dist', 'from: ../etc'), /shipkit\.yml:4: repos\.octo\/site\.publish\.from: must be a folder inside the repository/],
    [publish.replace('from: dist', 'from: /etc'), /publish\.from: must be a folder inside the repository .*relative/],
    [publish.replace('name: my-app', 'name: ../x'), /publish\.name: is not a valid app name/],
    [publish.replace('key: file:key.asc', 'key: env:KEY'), /publish\.key: must name a file/],
    [publish.replace('  to: /srv/updates\n', ''), /publish\.to: is required/],
    [`${publish}  bogus: 1\n`, /publish\.bogus: unknown key/],
    ['rollout:\n  list: fleet.txt\n', /rollout: needs secret:/],
    ['rollout:\n  list: fleet.txt\n  secret: env:S\n  waves: [50%]\n', /rollout\.waves: must end at 100% \(got 50%\)/],
    ['rollout:\n  list: fleet.txt\n  secret: env:S\n  waves: [50%, 25%, 100%]\n', /rollout\.waves: .*must grow/],
    ['rollout:\n  list: fleet.txt\n  secret: env:S\n  canary: -1\n', /rollout\.canary: must be a whole number from 0/],
  ];
  for (const [yaml, pattern] of cases) assert.throws(() => parse(yaml), pattern, yaml);
  const repo = parse(`${publish}rollout:\n  list: fleet.txt\n  secret: env:S\n  waves: 25%,100%\n`).repos.get('octo/site')!;
  assert.equal(repo.publish?.key, '/etc/shipkit/key.asc');
  assert.equal([repo.rollout?.list, repo.rollout?.name, repo.rollout?.shares], ['/etc/shipkit/fleet.txt', 'my-app', [25, 100]]);
  assert.is(parse('branch: main\n').repos.get('octo/site')!.publish, undefined);
});

test.run();
