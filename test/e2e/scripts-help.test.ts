// @deno
// Every script keeps the common conventions (DESIGN §4): --help on stdout with exit 0,
// --version, and an unknown flag → a one-line error on stderr with exit 2.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, runScript } from '../helpers.ts';

const version = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
const scripts = readdirSync(path.join(ROOT, 'scripts')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3));
const bins = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).bin as Record<string, string>;

test('package.json has a bin entry for every script (links to the multi-call launcher)', () => {
  for (const name of scripts) assert.is(bins[name], 'bin/shipkit.mjs', name);
});

const forms: Array<[string, string[]]> = [...scripts.map((s): [string, string[]] => [s, []]), ['release', ['publish']]];
for (const [name, pre] of forms) {
  const label = [name, ...pre].join(' ');
  test(`${label} --help / --version / unknown flag`, async () => {
    const help = await runScript(name, [...pre, '--help']);
    assert.is(help.exitCode, 0, help.stderr);
    assert.match(help.stdout, /Usage/i);
    assert.match(help.stdout, new RegExp(label.replace(' ', '\\s+')));
    assert.is(help.stderr.replace(/^npm warn.*\n/gm, ''), '');
    if (label !== 'release publish') { // there --version V is the release's version (DESIGN §5)
      const v = await runScript(name, [...pre, '--version']);
      assert.is(v.exitCode, 0, v.stderr);
      assert.match(v.stdout, new RegExp(version.replace(/\./g, '\\.')));
    }
    const bad = await runScript(name, [...pre, '--definitely-not-a-flag']);
    assert.is(bad.exitCode, 2, bad.stderr);
    assert.match(bad.stderr, /--definitely-not-a-flag/);
    assert.is(bad.stderr.trim().split('\n').length, 1, `one line: ${bad.stderr}`);
    assert.is(bad.stdout, '');
  });
}

test.run();
