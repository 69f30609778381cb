// The `fleet:` block (lib/config/fleet.ts): one secret, or a change-over list (current first);
// every entry a reference (env:/file:), never a literal; max_hosts and forget_after with their
// defaults and bounds; the errors name the key and its line; shipkit.example.yml shows each key.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { parseFleetConfig } from '../../../lib/config/fleet.ts';
import { ROOT } from '../../_helpers/common.ts';

const parse = (text: string) => parseFleetConfig(parseYamlText(text, '/etc/shipkit/shipkit.yml'));

test('one secret, or a list with the current one first', () => {
  assert.equal(parse('fleet:\n  web:\n    secret: env:FLEET_WEB\n').get('web')!.secrets, ['env:FLEET_WEB']);
  assert.equal(parse('fleet:\n  web:\n    secret: [env:NEW, file:/etc/old]\n').get('web')!.secrets, [
    'env:NEW',
    'file:/etc/old',
  ]);
  assert.is(parse('repos: {}\n').size, 0, 'no fleet: block, no apps');
});

test('max_hosts (default 50000) and forget_after in days (default 30; 0 = never)', () => {
  const defaults = parse('fleet:\n  web:\n    secret: env:A\n').get('web')!;
  assert.equal([defaults.maxHosts, defaults.forgetAfterDays], [50_000, 30]);
  const set = parse('fleet:\n  web:\n    secret: env:A\n    max_hosts: 12000\n    forget_after: 0\n').get('web')!;
  assert.equal([set.maxHosts, set.forgetAfterDays], [12_000, 0]);
});

test("shipkit.example.yml's commented fleet: block parses and shows every key", () => {
  const text = readFileSync(path.join(ROOT, 'shipkit.example.yml'), 'utf8');
  const block = /^# fleet:\n(?:#   .*\n)+/m.exec(text)?.[0];
  assert.ok(block, 'a commented fleet: block');
  const app = parse(block.replace(/^# ?/gm, '')).get('my-app')!;
  assert.equal(app.secrets, ['file:/etc/shipkit/fleet-my-app.secret']);
  for (const key of ['secret', 'max_hosts', 'forget_after'])
    assert.match(block, new RegExp(`^#     ${key}: `, 'm'), key);
});

test('refused: a literal secret (also inside a list), an empty or long list, a list of non-strings, a bad app name', () => {
  const cases: Array<[string, RegExp]> = [
    ['fleet:\n  web:\n    secret: hunter2\n', /shipkit\.yml:3.*fleet\.web\.secret: must be env:NAME or file:PATH/],
    ['fleet:\n  web:\n    secret: [env:A, hunter2]\n', /fleet\.web\.secret\[1\]: must be env:NAME or file:PATH/],
    ['fleet:\n  web:\n    secret: []\n', /fleet\.web\.secret: must name 1 to 4 secrets/],
    ['fleet:\n  web:\n    secret: [env:A, env:B, env:C, env:D, env:E]\n', /must name 1 to 4 secrets/],
    ['fleet:\n  web:\n    secret: [1, 2]\n', /fleet\.web\.secret: must be a list of strings/],
    ['fleet:\n  web:\n    other: 1\n', /fleet\.web\.other: unknown key/],
    ['fleet:\n  "../x":\n    secret: env:A\n', /is not a valid app name/],
    [
      'fleet:\n  web:\n    secret: env:A\n    max_hosts: 0\n',
      /shipkit\.yml:4: fleet\.web\.max_hosts: must be a whole number from 1 to/,
    ],
    ['fleet:\n  web:\n    secret: env:A\n    max_hosts: 2.5\n', /fleet\.web\.max_hosts: must be a whole number/],
    ['fleet:\n  web:\n    secret: env:A\n    max_hosts: many\n', /fleet\.web\.max_hosts: must be a number/],
    [
      'fleet:\n  web:\n    secret: env:A\n    forget_after: -1\n',
      /shipkit\.yml:4: fleet\.web\.forget_after: must be a whole number from 0 to 36500/,
    ],
    ['fleet:\n  web:\n    secret: env:A\n    forget_after: 30d\n', /fleet\.web\.forget_after: must be a number/],
  ];
  for (const [text, pattern] of cases) {
    try {
      parse(text);
      assert.unreachable(text);
    } catch (error) {
      assert.instance(error, ConfigError, text);
      assert.match((error as Error).message, pattern, text);
    }
  }
});

test.run();
