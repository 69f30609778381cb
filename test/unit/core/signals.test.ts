// lib/core/signals.ts: abortOnSignals through real signals sent to a child process; and the rule
// that no lib/ module installs signal handlers or writes to process.stdout on its own.
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { abortOnSignals } from '../../../lib/core/signals.ts';
import { ROOT } from '../../_helpers/common.ts';

const FIXTURE = path.join(ROOT, 'test/fixtures/signals/abort-on-signals.ts');
const TSX_LOADER = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');

function runUntilSignal(
  signal: NodeJS.Signals,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }> {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, FIXTURE], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (stdout === 'ready\n') child.kill(signal);
  });
  return new Promise((resolve) => child.on('close', (code, sig) => resolve({ code, signal: sig, stdout })));
}

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  test(`${signal} aborts with a reason instead of killing the process`, async () => {
    const result = await runUntilSignal(signal);
    assert.is(result.signal, null, 'the process was not killed by the signal');
    assert.is(result.code, 0);
    assert.is(result.stdout, `ready\naborted: the job received ${signal}\n`);
  });
}

test('a second signal during the cleanup does not kill the process', async () => {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, FIXTURE], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, CLEANUP_MS: '1500' },
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (stdout === 'ready\n') child.kill('SIGINT');
    if (stdout === 'ready\naborted: the job received SIGINT\n') child.kill('SIGINT');
  });
  const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  assert.is(result.signal, null, 'the second SIGINT killed the process');
  assert.is(result.code, 0);
  assert.is(stdout, 'ready\naborted: the job received SIGINT\ncleaned up\n');
});

test('abortOnSignals: other signals, other wording, an injected source', () => {
  const source = new EventEmitter();
  const controller = abortOnSignals(['SIGUSR2'], { what: 'the release', source });
  source.emit('SIGTERM');
  assert.not.ok(controller.signal.aborted);
  source.emit('SIGUSR2');
  assert.ok(controller.signal.aborted);
  assert.is(controller.signal.reason, 'the release received SIGUSR2');
});

function libFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? libFiles(full) : name.endsWith('.ts') ? [full] : [];
  });
}

test('lib/ installs no signal handler and writes nothing to stdout as a side effect', () => {
  // cli.ts is the scripts' one exit path (usage, version, exit); signals.ts is called by scripts.
  const allowed = new Set(['core/cli.ts', 'core/signals.ts']);
  const offences: string[] = [];
  for (const file of libFiles(path.join(ROOT, 'lib'))) {
    const rel = path.relative(path.join(ROOT, 'lib'), file);
    if (allowed.has(rel)) continue;
    // A template literal over several lines (a program handed to `node -e`, lib/jobs/process/spawner.ts)
    // is blanked whole first, its line breaks kept so line numbers stay right.
    const source = readFileSync(file, 'utf8').replace(/`(?:\\[\s\S]|[^`\\])*`/g, (literal) =>
      literal.replace(/[^\n]/g, ' '),
    );
    source.split('\n').forEach((text, i) => {
      // String contents are left out: code handed to a child process (`node -e …`) is not lib's.
      const line = text.replace(/(['"`])(?:\\.|(?!\1).)*\1/g, '""');
      if (
        /process\.(on|once|addListener|prependListener|prependOnceListener)\(|process\.stdout|console\.(log|info|warn|error)|process\.exit\(/.test(
          line,
        )
      )
        offences.push(`${rel}:${i + 1}: ${text.trim()}`);
    });
  }
  assert.equal(offences, []);
});

test.run();
