// The `fleet:` block (lib/config/fleet.ts): one secret, or a change-over list (current first);
// every entry a reference (env:/file:), never a literal; the errors name the key and its line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { parseFleetConfig } from '../../../lib/config/fleet.ts';

const parse = (text: string) => parseFleetConfig(parseYamlText(text, '/etc/shipkit/shipkit.yml'));

test('one secret, or a list with the current one first', () => {
  assert.equal(parse('fleet:\n  web:\n    secret: env:FLEET_WEB\n').get('web')!.secrets, ['env:FLEET_WEB']);
  assert.equal(parse('fleet:\n  web:\n    secret: [env:NEW, file:/etc/old]\n').get('web')!.secrets, [
    'env:NEW',
    'file:/etc/old',
  ]);
  assert.is(parse('repos: {}\n').size, 0, 'no fleet: block, no apps');
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
