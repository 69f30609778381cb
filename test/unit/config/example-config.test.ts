// Where shipkit.example.yml is for the program running (lib/config/example-config.ts): from the
// sources, the checkout's own; none on disk, the hint offers `shipkit example-config` alone. The
// bundle's places (the npm package's root, the .deb's docs) are run in test/e2e/install/.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  exampleConfigCandidates,
  exampleConfigHint,
  exampleConfigPath,
  exampleConfigText,
} from '../../../lib/config/example-config.ts';
import { ROOT } from '../../_helpers/common.ts';

const EXAMPLE = path.join(ROOT, 'shipkit.example.yml');

test("from the sources: the checkout's shipkit.example.yml, its text, and a hint that names it", async () => {
  assert.equal(exampleConfigCandidates(), [EXAMPLE]);
  assert.is(exampleConfigPath(), EXAMPLE);
  assert.is(await exampleConfigText(), readFileSync(EXAMPLE, 'utf8'));
  assert.is(
    exampleConfigHint(),
    `every key is explained in ${EXAMPLE}; \`shipkit example-config > shipkit.yml\` writes a copy to start from`,
  );
});

test('none on disk: no path', () => {
  assert.is(exampleConfigPath({ exists: () => false }), undefined);
});

test.run();
