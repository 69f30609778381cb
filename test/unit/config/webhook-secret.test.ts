// A webhook `secret:` (lib/config/webhook-secret.ts): one secret or a change-over list, the
// current one first, an old one with `until:`; each refusal names the entry and its line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { parseSecretList } from '../../../lib/config/webhook-secret.ts';

const parse = (text: string) => parseSecretList(parseYamlText(text, '/etc/shipkit/shipkit.yml'), ['secret']);

test('absent, one secret, and a list with an old secret that ends', () => {
  assert.is(parse('listen: x\n'), undefined);
  assert.equal(parse('secret: env:HOOK\n'), [{ ref: 'env:HOOK' }]);
  assert.equal(parse('secret:\n  - file:new\n  - { secret: file:old, until: 2026-12-01 }\n  - literal-old\n'), [
    { ref: 'file:new' },
    { ref: 'file:old', until: Date.UTC(2026, 11, 1) },
    { ref: 'literal-old' },
  ]);
  assert.equal(
    parse('secret: [env:A, {secret: env:B, until: "2026-12-01T18:30:00Z"}]\n')![1].until,
    Date.UTC(2026, 11, 1, 18, 30),
  );
});

test('refused, with the entry and line named', () => {
  const cases: Array<[string, RegExp]> = [
    ['secret: []\n', /shipkit\.yml:1.*secret: must list 1 to 4 secrets/],
    ['secret: [a, b, c, d, e]\n', /must list 1 to 4 secrets/],
    ['secret: {a: 1}\n', /secret: must be a secret \(env:NAME, file:PATH\) or a list of them/],
    ['secret:\n  - {secret: env:A, until: 2026-01-01}\n', /secret\[0\]\.until: the first secret is the current one/],
    ['secret:\n  - env:A\n  - {secret: env:B, until: soon}\n', /shipkit\.yml:3.*secret\[1\]\.until: must be a date/],
    ['secret:\n  - env:A\n  - {secret: env:B, from: 2026-01-01}\n', /secret\[1\]\.from: unknown key/],
    ['secret:\n  - env:A\n  - 42\n', /secret\[1\]: must be a secret, or \{secret: SECRET, until: DATE\}/],
    ['secret:\n  - env:A\n  - ""\n', /secret\[1\]: must be a secret/],
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
