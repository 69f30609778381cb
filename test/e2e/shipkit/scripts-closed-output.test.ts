// `logs REPO | head -1`: a reader that leaves early. Every script leaves quietly, as git and
// coreutils do: no stack trace, exit 141 (what the shell shows for a tool ended by SIGPIPE), from
// the one handler all scripts share (lib/core/cli.ts). The pipes are real: bash runs the command
// line a newcomer types, and `${PIPESTATUS[0]}` is the script's own exit status.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSite, type Site } from '../../_helpers/build.ts';
import { runCommand, scriptCommand } from '../../_helpers/common.ts';

let site: Site;

/** `SCRIPT ARGS | READER` in bash: the script's exit status, what the reader printed, the script's stderr. */
async function piped(script: string, args: string[], reader: string) {
  const r = await runCommand(
    'bash',
    ['-c', `"$@" | ${reader}; exit "\${PIPESTATUS[0]}"`, 'piped', ...scriptCommand(script), ...args],
    { timeoutMs: 120_000 },
  );
  return { exitCode: r.exitCode, shown: r.stdout, stderr: r.stderr };
}

test('a build whose log is far longer than a pipe holds', async () => {
  site = await makeSite({ 'README.md': 'x\n' }, 'steps: [pull, compile]\ncompile: seq 1 100000');
  const r = await site.run('build', ['octo/site', '--job-id', 'long-1']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.ok(site.logText().length > 1024 * 1024, `${site.logText().length} bytes of log`);
});

test('logs REPO | head -1: one line shown, nothing on stderr, exit 141', async () => {
  const r = await piped('logs', ['octo/site', '--config', site.config], 'head -1');
  assert.match(r.shown, /^=== shipkit job long-1 start \{.*\}\n$/);
  assert.is(r.stderr, '', 'no EPIPE, no stack trace');
  assert.is(r.exitCode, 141);
});

test('logs REPO --list --json and --job, closed after the first line: the same quiet exit', async () => {
  for (const args of [
    ['--list', '--json'],
    ['--job', 'long-1'],
  ]) {
    const r = await piped('logs', ['octo/site', ...args, '--config', site.config], 'head -c 10');
    assert.is(r.stderr, '', args.join(' '));
    assert.ok(r.exitCode === 141 || r.exitCode === 0, `${args.join(' ')}: exit ${r.exitCode}`);
  }
});

test('build REPO --json | a reader already gone: the build is done and logged, the closed stdout ends it quietly', async () => {
  const r = await piped('build', ['octo/site', '--job-id', 'gone-2', '--json', '--config', site.config], 'true');
  assert.is(r.exitCode, 141, r.stderr);
  assert.not.match(r.stderr, /EPIPE|Error|at .*\.ts:\d+/);
  assert.match(site.logText(), /=== shipkit job gone-2 end .*"status":"succeeded"/);
});

test('--help into a closed pipe, for every kind of script (hook-server, server-update): exit 141, nothing on stderr', async () => {
  for (const script of ['hook-server', 'server-update']) {
    const r = await piped(script, ['--help'], 'true');
    assert.is(r.stderr, '', script);
    assert.is(r.exitCode, 141, script);
  }
});

test.run();
