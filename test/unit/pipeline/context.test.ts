// A build's shared helpers (lib/pipeline/context.ts): a step's failure carries the command's last
// lines and exit; a command run before the work tree exists says to pull first; a git query gives
// trimmed output or undefined; the stage libraries' log lines land in the job log as output lines.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkError } from '../../../lib/core/errors.ts';
import { gitQuery, run, stageLogger, StepFailure, type BuildContext } from '../../../lib/pipeline/context.ts';
import { git, tmpDir } from '../../_helpers/common.ts';

test('StepFailure: a WorkError with the last lines, whether it timed out, and the exit', () => {
  const plain = new StepFailure('npm ci failed');
  assert.instance(plain, WorkError);
  assert.equal([plain.name, plain.lastLines, plain.timedOut, plain.commandExit], ['StepFailure', [], false, undefined]);
  const full = new StepFailure('x', { lastLines: ['ERR!'], timedOut: true, commandExit: 137 });
  assert.equal([full.lastLines, full.timedOut, full.commandExit], [['ERR!'], true, 137]);
});

test('a command before the work tree exists: a StepFailure that says to pull first', async () => {
  const ctx = {
    paths: { work: path.join(tmpDir('shipkit-ctx-'), 'missing') },
    repo: { name: 'octo/site' },
  } as unknown as BuildContext;
  const error = await run(ctx, ['npm', 'ci']).catch((e: unknown) => e);
  assert.instance(error, StepFailure);
  assert.match(
    String(error),
    /does not exist yet; run the pull step first \(`shipkit build octo\/site` without --steps\)/,
  );
});

test('gitQuery: trimmed stdout of a real repo, undefined when git says no', async () => {
  const work = path.join(tmpDir('shipkit-ctx-'), 'work');
  mkdirSync(work);
  await git(work, 'init', '-q', '-b', 'main');
  writeFileSync(path.join(work, 'a'), 'a');
  await git(work, 'add', '.');
  await git(work, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '-m', 'one');
  const ctx = {
    paths: { work },
    env: { PATH: process.env.PATH },
    deadline: Date.now() + 10_000,
  } as unknown as BuildContext;
  assert.match((await gitQuery(ctx, ['rev-parse', 'HEAD']))!, /^[0-9a-f]{40}$/);
  assert.is(await gitQuery(ctx, ['rev-parse', '--verify', '--quiet', 'refs/heads/nope']), undefined);
});

test('stageLogger writes into the job log as output lines (`| `), one per message', () => {
  const lines: string[] = [];
  const logger = stageLogger({ line: (text: string) => void lines.push(text) } as never);
  logger.info('uploaded 3 files');
  logger.warn('skipping passwd: symbolic link outside');
  assert.is(lines.length, 2);
  assert.ok(
    lines.every((l) => l.startsWith('| ')),
    lines.join('\n'),
  );
  assert.match(lines[0], /uploaded 3 files/);
  assert.match(lines[1], /skipping passwd/);
});

test.run();
