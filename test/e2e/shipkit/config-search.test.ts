// A newcomer's first commands without a config, or with --config naming a folder,
// run from the checkout as `shipkit SCRIPT`: the message says where the commented
// example is and how to get a copy, or that a folder was given and which file to give instead;
// exit 2, and nothing is written. (The one file and the npm package: install-bundle.test.ts and
// install-npm.test.ts.)
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, runScript, runScriptsFromSources, tmpDir } from '../../_helpers/common.ts';

runScriptsFromSources();
const EXAMPLE = path.join(ROOT, 'shipkit.example.yml');

test('no config anywhere: `shipkit logs` names the installed shipkit.example.yml and `shipkit example-config`, which prints it; exit 2, nothing written', async () => {
  if (existsSync('/etc/shipkit/shipkit.yml')) {
    console.log('skipped: this machine has /etc/shipkit/shipkit.yml, which the search would find');
    return;
  }
  const cwd = tmpDir('shipkit-noconfig-');
  const r = await runScript('shipkit', ['logs', 'octo/site'], { cwd, env: { SHIPKIT_CONFIG: undefined } });
  assert.is(r.exitCode, 2, r.stderr);
  assert.is(
    r.stderr.trim(),
    `error: No config file: pass --config FILE, set SHIPKIT_CONFIG, or create ./shipkit.yml (every key is explained in ${EXAMPLE}; \`shipkit example-config > shipkit.yml\` writes a copy to start from).`,
  );
  assert.ok(existsSync(EXAMPLE));
  assert.equal(readdirSync(cwd), [], 'nothing written');
  const printed = await runScript('shipkit', ['example-config'], { cwd });
  assert.is(printed.exitCode, 0, printed.stderr);
  assert.is(printed.stdout, readFileSync(EXAMPLE, 'utf8'));
  const help = await runScript('shipkit', ['--help'], { cwd });
  assert.match(help.stdout, /shipkit example-config +print shipkit\.example\.yml/);
});

test('--config naming a folder: said in words (not EISDIR), the file inside named when there is one; exit 2, nothing written', async () => {
  const dir = tmpDir('shipkit-configdir-');
  const withFile = path.join(dir, 'etc');
  mkdirSync(withFile);
  writeFileSync(path.join(withFile, 'shipkit.yml'), `data: ${path.join(dir, 'data')}\nrepos:\n  octo/site: {}\n`);
  const empty = path.join(dir, 'empty');
  mkdirSync(empty);
  const cases: Array<[string[], Record<string, string | undefined>, string]> = [
    [
      ['build', 'octo/site', '--config', withFile],
      {},
      `error: --config ${withFile} is a folder; give the shipkit.yml file inside it (${path.join(withFile, 'shipkit.yml')}).`,
    ],
    [
      ['logs', 'octo/site', '--config', empty],
      {},
      `error: --config ${empty} is a folder; give the shipkit.yml file inside it.`,
    ],
    [
      ['hook-server'],
      { SHIPKIT_CONFIG: withFile },
      `error: SHIPKIT_CONFIG=${withFile} is a folder; give the shipkit.yml file inside it (${path.join(withFile, 'shipkit.yml')}).`,
    ],
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
