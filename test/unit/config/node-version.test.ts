// Node version requests (lib/config/node-version.ts): the semver subset shipkit reads from
// `node:`, .nvmrc, .node-version and engines.node, the highest matching version of a list, and
// `node:` checked at config load with FILE:LINE.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { loadShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import {
  highestSatisfying,
  highestVersion,
  parseNodeRequest,
  parseVersion,
  satisfies,
  type NodeRequest,
} from '../../../lib/config/node-version.ts';
import { tmpDir } from '../../_helpers/common.ts';

const VERSIONS = [
  '18.20.4',
  '20.0.0',
  '20.5.1',
  '20.18.0',
  '21.7.3',
  '22.0.0',
  '22.9.0',
  '22.10.0',
  '22.23.3',
  '23.1.0',
  '24.1.0',
  '26.10.0',
  '26.11.0-rc.1',
  'junk',
];

function request(text: string): NodeRequest {
  const parsed = parseNodeRequest(text);
  if ('problem' in parsed) throw new Error(`${text}: ${parsed.problem}`);
  return parsed;
}

test('the highest listed version each request accepts', () => {
  const cases: Array<[string, string | undefined]> = [
    ['22', '22.23.3'],
    ['v22', '22.23.3'],
    ['22.x', '22.23.3'],
    ['22.*', '22.23.3'],
    ['22.9', '22.9.0'],
    ['22.9.0', '22.9.0'],
    ['v22.9.0', '22.9.0'],
    ['22.9.x', '22.9.0'],
    ['=22.10.0', '22.10.0'],
    ['22.1', undefined],
    ['99', undefined],
    ['>=20', '26.10.0'],
    ['>= 20', '26.10.0'],
    ['>20', '26.10.0'],
    ['>20.5', '26.10.0'],
    ['<=20', '20.18.0'],
    ['<20', '18.20.4'],
    ['<22.10', '22.9.0'],
    ['^22', '22.23.3'],
    ['^22.9.0', '22.23.3'],
    ['^20.6', '20.18.0'],
    ['~22.9', '22.9.0'],
    ['~22', '22.23.3'],
    ['~20.5.0', '20.5.1'],
    ['>=20 <22', '21.7.3'],
    ['>=18.0.0 <19', '18.20.4'],
    ['20 || 22', '22.23.3'],
    ['18 || 20', '20.18.0'],
    ['^18.17 || ^20.5', '20.18.0'],
    ['*', '26.10.0'],
    ['x', '26.10.0'],
  ];
  for (const [text, expected] of cases) assert.is(highestSatisfying(VERSIONS, request(text)), expected, text);
});

test('bounds are exact at the edges', () => {
  const v = (s: string) => parseVersion(s)!;
  assert.ok(satisfies(v('22.0.0'), request('^22')));
  assert.not.ok(satisfies(v('23.0.0'), request('^22')));
  assert.not.ok(satisfies(v('22.8.9'), request('>=22.9')));
  assert.ok(satisfies(v('0.9.5'), request('^0.9.1')));
  assert.not.ok(satisfies(v('0.10.0'), request('^0.9.1')));
  assert.not.ok(satisfies(v('22.9.0'), request('>22.9.0')));
  assert.ok(satisfies(v('22.9.1'), request('>22.9.0')));
  assert.ok(satisfies(v('22.9.0'), request('<=22.9.0')));
  assert.is(highestVersion(VERSIONS), '26.10.0', 'pre-releases and junk are never chosen');
});

test('anything that is not a version or a range is refused with a reason', () => {
  const refused: Array<[string, RegExp]> = [
    ['', /empty/],
    ['; rm -rf /', /not a Node version/],
    ['$(touch /tmp/pwned)', /not a Node version/],
    ['../../x', /"\.\.\/\.\.\/x", which is not a Node version/],
    ['22.9.0.1', /not a version/],
    ['22.x.3', /not a version/],
    ['022', /not a version/],
    ['lts/*', /alias shipkit does not resolve.*such as 22/],
    ['lts/iron', /alias/],
    ['node', /alias/],
    ['18 - 20', /"-"|not a Node version/],
    ['20 ||', /empty alternative/],
    ['>=', /not a version/],
    ['1'.repeat(101), /longer than 100/],
    ['22\n$(id)', /not a Node version/],
  ];
  for (const [text, why] of refused) {
    const parsed = parseNodeRequest(text);
    assert.ok('problem' in parsed, `${JSON.stringify(text)} was accepted`);
    assert.match((parsed as { problem: string }).problem, why, text);
  }
});

const dir = tmpDir('shipkit-node-config-');
let counter = 0;

async function loadNode(value: string) {
  const file = path.join(dir, `shipkit-${++counter}.yml`);
  writeFileSync(file, `data: ${dir}/data\nrepos:\n  octo/site:\n    url: /srv/git/site.git\n    node: ${value}\n`);
  try {
    return { file, node: (await loadShipkitConfig(file)).repos.get('octo/site')!.node };
  } catch (error) {
    return { file, error: error as Error };
  }
}

test('node: in shipkit.yml: versions load; anything else is a config error at its line', async () => {
  for (const [value, text] of [
    ['22', '22'],
    ['"22.9"', '22.9'],
    ['"22.9.0"', '22.9.0'],
    ['"^22"', '^22'],
    ['">=20 <23"', '>=20 <23'],
  ]) {
    const { node, error } = await loadNode(value);
    assert.not.ok(error, `${value}: ${error?.message}`);
    assert.is(node?.text, text);
  }
  for (const [value, why] of [
    ['"; rm -rf /"', /not a Node version/],
    ['../../x', /not a Node version/],
    ['22.9', /number 22\.9; write a version with a dot in quotes/],
    ['22.10', /number 22\.1; write a version with a dot in quotes/],
    ['[22]', /must be a Node version/],
    ['lts/*', /alias/],
  ] as const) {
    const { file, error } = await loadNode(value);
    assert.instance(error, ConfigError, value);
    assert.ok(error!.message.startsWith(`${file}:5: repos.octo/site.node: `), error!.message);
    assert.match(error!.message, why);
  }
});

test.run();
