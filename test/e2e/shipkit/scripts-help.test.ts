// @deno
// Every script keeps the common conventions (docs/design.md): --help on stdout with exit 0,
// --version, and an unknown flag → a one-line error on stderr with exit 2. Every subcommand
// (launchfit deploy…, logs rotate, release publish, slave-activate --serve, hook-server
// --end-sessions, upload --from) has its own --help and refuses the flags of the others.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, runScript } from '../../_helpers/common.ts';

const version = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
const scripts = readdirSync(path.join(ROOT, 'scripts'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3));
const bins = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).bin as Record<string, string>;

// As the .deb (tools/deb.ts ON_PATH): the distinctive names on the PATH; the generic ones
// (build, logs, release, upload, downloads, …) are `shipkit NAME` only (docs/design.md).
const ON_PATH = ['shipkit', 'hook-server', 'server-update', 'slave-activate', 'launchfit'];

test('package.json bin: shipkit and the distinctive script names, each a link to the multi-call launcher', () => {
  assert.equal(Object.keys(bins).sort(), [...ON_PATH].sort());
  for (const name of ON_PATH) assert.is(bins[name], 'bin/shipkit.cjs', name);
  for (const name of ON_PATH) assert.ok(scripts.includes(name), `scripts/${name}.ts`);
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
    if (label !== 'release publish') {
      // there --version V is the release's version (docs/design.md)
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

// Each subcommand (and mode) has its own --help naming its own flags, and refuses a flag of
// another one: [script, subcommand words, its own flags, a flag it must refuse (and not show)].
const subcommands: Array<[string, string[], string[], string | undefined]> = [
  ['launchfit', ['deploy'], ['--keyfile', '--key', '--dir'], '--to'],
  ['launchfit', ['run'], ['--dir'], '--force'],
  ['launchfit', ['update'], ['--force', '--dir'], '--to'],
  ['launchfit', ['rollback'], ['--to', '--dir'], '--keyfile'],
  ['launchfit', ['status'], ['--json', '--dir'], '--force'],
  ['logs', ['rotate'], ['--max-size', '--keep', '--force'], '--follow'],
  ['release', ['publish'], ['--platform', '--passphrase-file', '--expires'], '--tag'],
  ['slave-activate', ['--serve'], ['--listen', '--file', '--secret-file', '--drain-timeout'], undefined],
  ['hook-server', ['--end-sessions'], ['--config'], '--listen'],
  ['upload', ['--from', '/tmp'], ['--to', '--endpoint', '--delete'], '--config'],
];
// The scripts' own forms refuse the flags of their subcommands.
const ownForms: Array<[string, string[], string, string]> = [
  ['logs', ['octo/site'], '--max-size', 'logs rotate'],
  ['release', ['octo/site'], '--codename', 'release publish'],
  ['slave-activate', ['site'], '--listen', 'slave-activate --serve'],
  ['slave-activate', ['site'], '--file', 'slave-activate --serve'],
  ['upload', ['octo/site'], '--endpoint', 'upload --from'],
  ['launchfit', ['https://updates.example.com/'], '--to', 'launchfit rollback'],
];

for (const [name, pre, own, foreign] of subcommands) {
  const label = [name, ...pre].join(' ');
  test(`${label} --help names its own flags${foreign ? `; ${foreign} is refused` : ''}`, async () => {
    const help = await runScript(name, [...pre, '--help']);
    assert.is(help.exitCode, 0, help.stderr);
    assert.match(help.stdout, new RegExp(`^Usage: ${name} ${pre[0]}`, 'm'));
    for (const flag of own) assert.ok(help.stdout.includes(flag), `${label} --help names ${flag}:\n${help.stdout}`);
    assert.is(help.stderr.replace(/^npm warn.*\n/gm, ''), '');
    if (!foreign) return;
    assert.not.ok(help.stdout.includes(`${foreign} `), `${label} --help does not list ${foreign}`);
    const bad = await runScript(name, [...pre, foreign, 'x']);
    assert.is(bad.exitCode, 2, bad.stderr);
    assert.match(bad.stderr, new RegExp(`Option ${foreign} belongs to \`${name}`));
    assert.is(bad.stderr.trim().split('\n').length, 1, `one line: ${bad.stderr}`);
    assert.is(bad.stdout, '');
  });
}

for (const [name, pre, foreign, owner] of ownForms) {
  test(`${name} ${pre.join(' ')} ${foreign} → exit 2, "belongs to \`${owner}\`"`, async () => {
    const bad = await runScript(name, [...pre, foreign, 'x']);
    assert.is(bad.exitCode, 2, bad.stderr);
    assert.match(
      bad.stderr,
      new RegExp(`^error: Option ${foreign} belongs to \`${owner}\`; run \`${owner} --help\` for usage\.\n$`),
    );
    assert.is(bad.stdout, '');
  });
}

test('a flag two subcommands share is refused naming both: launchfit URL --force', async () => {
  const bad = await runScript('launchfit', ['https://updates.example.com/', '--force']);
  assert.is(bad.exitCode, 2, bad.stderr);
  assert.match(
    bad.stderr,
    /^error: Option --force belongs to `launchfit update` or `launchfit rollback`; run `launchfit update --help` for usage\.\n$/,
  );
});

test.run();
