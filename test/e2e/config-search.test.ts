// A newcomer's --config naming a folder (issue 24 item 9), run from the checkout as
// `shipkit SCRIPT`: the message says that a folder was given and which file to give instead;
// exit 2, and nothing is written.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runScript, tmpDir } from '../helpers.ts';

test('--config naming a folder: said in words (not EISDIR), the file inside named when there is one; exit 2, nothing written', async () => {
  const dir = tmpDir('shipkit-configdir-');
  const withFile = path.join(dir, 'etc');
  mkdirSync(withFile);
  writeFileSync(path.join(withFile, 'shipkit.yml'), `data: ${path.join(dir, 'data')}\nrepos:\n  octo/site: {}\n`);
  const empty = path.join(dir, 'empty');
  mkdirSync(empty);
  const cases: Array<[string[], Record<string, string | undefined>, string]> = [
    [['build', 'octo/site', '--config', withFile], {}, `error: --config ${withFile} is a folder; give the shipkit.yml file inside it (${path.join(withFile, 'shipkit.yml')}).`],
    [['logs', 'octo/site', '--config', empty], {}, `error: --config ${empty} is a folder; give the shipkit.yml file inside it.`],
    [['hook-server'], { SHIPKIT_CONFIG: withFile }, `error: SHIPKIT_CONFIG=${withFile} is a folder; give the shipkit.yml file inside it (${path.join(withFile, 'shipkit.yml')}).`],
  ];
  for (const [args, env, message] of cases) {
    const r = await runScript('shipkit', args, { cwd: dir, env });
    assert.is(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.is(r.stderr.trim(), message);
    assert.not.match(r.stderr, /EISDIR/);
  }
  assert.equal(readdirSync(dir).sort(), ['empty', 'etc'], 'no data folder, no first-run .shipkit');
  assert.equal(readdirSync(withFile), ['shipkit.yml']);
});

test.run();
