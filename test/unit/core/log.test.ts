// The logger (lib/core/log.ts): human lines, JSON lines, levels, child fields, colour rules.
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger, formatBytes, linesPerTurn, silentLogger, type LoggerOptions } from '../../../lib/core/log.ts';

const NOW = new Date('2026-01-02T03:04:05.678Z');
const ANSI = /\x1b\[[0-9;]*m/;

function capture(options: Omit<LoggerOptions, 'stream'> & { tty?: boolean } = {}) {
  const lines: string[] = [];
  const stream = {
    isTTY: options.tty ?? false,
    write: (chunk: string) => {
      lines.push(chunk);
      return true;
    },
  } as unknown as NodeJS.WritableStream & { isTTY?: boolean };
  const log = createLogger({ env: {}, now: () => NOW, ...options, stream });
  return { log, lines, text: () => lines.join('') };
}

// [call, fields, expected human line]
const human: Array<[string, 'debug' | 'info' | 'warn' | 'error', Record<string, unknown> | undefined, string]> = [
  ['plain info', 'info', undefined, 'cloned site\n'],
  ['warn tag', 'warn', undefined, 'warn: cloned site\n'],
  ['error tag', 'error', undefined, 'error: cloned site\n'],
  ['simple fields raw', 'info', { repo: 'octo/site', ms: 12, ok: true }, 'cloned site repo=octo/site ms=12 ok=true\n'],
  ['string with spaces quoted', 'info', { error: 'no such host' }, 'cloned site error="no such host"\n'],
  ['empty string', 'info', { note: '' }, 'cloned site note=\n'],
  ['newline in a field is escaped', 'info', { note: 'a\nb' }, 'cloned site note="a\\nb"\n'],
  ['objects as JSON', 'info', { list: [1, 'a'], obj: { x: 1 } }, 'cloned site list=[1,"a"] obj={"x":1}\n'],
  ['undefined fields left out', 'info', { a: undefined, b: 1 }, 'cloned site b=1\n'],
  ['null shown', 'info', { a: null }, 'cloned site a=null\n'],
];

for (const [label, level, fields, want] of human) {
  test(`human: ${label}`, () => {
    const { log, text } = capture();
    log[level]('cloned site', fields);
    assert.is(text(), want);
  });
}

test('human: a message of several lines keeps them, indented below the first (no forged line, no literal \\n)', () => {
  const { log, text } = capture();
  log.error('m.txt:1: bad\nm.txt:2: worse\nerror: forged\r');
  assert.is(text(), 'error: m.txt:1: bad\n  m.txt:2: worse\n  error: forged\\r\n');
});

test('debug lines only with debug: true or SHIPKIT_DEBUG', () => {
  const quiet = capture();
  quiet.log.debug('hidden');
  assert.is(quiet.text(), '');
  const loud = capture({ debug: true });
  loud.log.debug('shown', { n: 1 });
  assert.is(loud.text(), 'debug: shown n=1\n');
  const fromEnv = capture({ env: { SHIPKIT_DEBUG: '1' } });
  fromEnv.log.debug('shown');
  assert.is(fromEnv.text(), 'debug: shown\n');
});

test('child loggers add fields; call fields win; the parent is unchanged', () => {
  const { log, lines } = capture({ fields: { app: 'shipkit' } });
  const child = log.child({ repo: 'octo/site', step: 'pull' });
  const grandchild = child.child({ step: 'install' });
  child.info('a');
  grandchild.info('b', { attempt: 2 });
  child.info('c', { step: 'override' });
  log.info('d');
  assert.equal(lines, [
    'a app=shipkit repo=octo/site step=pull\n',
    'b app=shipkit repo=octo/site step=install attempt=2\n',
    'c app=shipkit repo=octo/site step=override\n',
    'd app=shipkit\n',
  ]);
});

test('JSON: one object per line with time, level, msg and fields', () => {
  const { log, lines } = capture({ json: true, fields: { app: 'x' } });
  assert.is(log.json, true);
  log.info('started', { port: 9000 });
  log.child({ repo: 'octo/site' }).error('failed', { error: 'boom\nline2' });
  log.debug('not shown');
  assert.is(lines.length, 2);
  assert.ok(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n')));
  assert.equal(JSON.parse(lines[0]), { time: NOW.toISOString(), level: 'info', msg: 'started', app: 'x', port: 9000 });
  assert.equal(JSON.parse(lines[1]), {
    time: NOW.toISOString(),
    level: 'error',
    msg: 'failed',
    app: 'x',
    repo: 'octo/site',
    error: 'boom\nline2',
  });
  assert.ok(lines[0].startsWith('{"time":'), 'time first');
});

test('JSON: fields cannot overwrite time, level or msg', () => {
  const { log, lines } = capture({ json: true });
  log.info('real message', { time: 1234, level: 'error', msg: 'forged', other: 1 });
  assert.equal(JSON.parse(lines[0]), { time: NOW.toISOString(), level: 'info', msg: 'real message', other: 1 });
});

test('JSON from LOG_FORMAT=json; an explicit json option wins over the environment', () => {
  const fromEnv = capture({ env: { LOG_FORMAT: 'json' } });
  fromEnv.log.warn('w');
  assert.equal(JSON.parse(fromEnv.text()), { time: NOW.toISOString(), level: 'warn', msg: 'w' });
  const forcedHuman = capture({ env: { LOG_FORMAT: 'json' }, json: false });
  forcedHuman.log.warn('w');
  assert.is(forcedHuman.text(), 'warn: w\n');
  const other = capture({ env: { LOG_FORMAT: 'text' } });
  other.log.info('i');
  assert.is(other.text(), 'i\n');
});

// [label, tty, env, color option, coloured?]
const colours: Array<[string, boolean, NodeJS.ProcessEnv, boolean | undefined, boolean]> = [
  ['TTY', true, {}, undefined, true],
  ['TTY with NO_COLOR=1', true, { NO_COLOR: '1' }, undefined, false],
  ['TTY with NO_COLOR=0 (any value)', true, { NO_COLOR: '0' }, undefined, false],
  ['TTY with TERM=dumb', true, { TERM: 'dumb' }, undefined, false],
  ['pipe', false, {}, undefined, false],
  ['pipe, color forced', false, {}, true, true],
  ['TTY, color off', true, {}, false, false],
];

for (const [label, tty, env, color, coloured] of colours) {
  test(`colour: ${label} → ${coloured ? 'coloured' : 'plain'}`, () => {
    const { log, text } = capture({ tty, env, color });
    log.error('broke', { repo: 'x' });
    log.warn('careful');
    if (coloured) {
      assert.match(text(), ANSI);
      assert.is(text().replace(/\x1b\[[0-9;]*m/g, ''), 'error: broke repo=x\nwarn: careful\n');
    } else {
      assert.is(text(), 'error: broke repo=x\nwarn: careful\n');
    }
  });
}

test('JSON lines are never coloured, even on a TTY', () => {
  const { log, text } = capture({ tty: true, json: true });
  log.error('broke');
  assert.not.match(text(), ANSI);
});

test('logs go to stderr by default, never stdout', () => {
  const writes: Array<[string, string]> = [];
  const outWrite = process.stdout.write;
  const errWrite = process.stderr.write;
  process.stdout.write = ((chunk: string) => {
    writes.push(['out', String(chunk)]);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => {
    writes.push(['err', String(chunk)]);
    return true;
  }) as typeof process.stderr.write;
  try {
    createLogger({ env: {} }).info('to stderr');
  } finally {
    process.stdout.write = outWrite;
    process.stderr.write = errWrite;
  }
  assert.equal(writes, [['err', 'to stderr\n']]);
});

test('silentLogger writes nothing and does not throw', () => {
  silentLogger.info('x', { a: 1 });
  silentLogger.child({ b: 2 }).error('y');
});

test('linesPerTurn: the lines of one turn go out in one write at its end, or at once past 64 KB', async () => {
  const writes: string[] = [];
  const stream = linesPerTurn({ write: (text: string) => writes.push(text) > 0 } as unknown as NodeJS.WritableStream);
  const log = createLogger({ stream, json: true, now: () => new Date(0) });
  log.info('one');
  log.info('two');
  assert.equal(writes, [], 'nothing before the turn ends');
  await new Promise((r) => setImmediate(r));
  assert.is(writes.length, 1);
  assert.equal(
    writes[0]
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l).msg),
    ['one', 'two'],
  );
  log.info('x'.repeat(70_000));
  assert.is(writes.length, 2, 'a turn past 64 KB is written at once');
  log.info('three');
  log.warn('four');
  assert.is(writes.length, 3, 'a warning goes out at once, with what waited before it');
  assert.equal(
    writes[2]
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l).msg),
    ['three', 'four'],
  );
  log.info('five');
  stream.flush();
  assert.is(writes.length, 4, 'flush writes what waits');
  await new Promise((r) => setImmediate(r));
  assert.is(writes.length, 4, 'and nothing twice');
});

test('formatBytes: sizes in log lines, the one helper every command uses', () => {
  assert.is(formatBytes(512), '512 B');
  assert.is(formatBytes(1536), '1.5 KB');
  assert.is(formatBytes(12 * 1024 * 1024), '12.0 MB');
  assert.is(formatBytes(3 * 1024 ** 3), '3.00 GB');
});

test("a warning to a file's WriteStream (whose `flush` is a boolean option) is written, not thrown", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-log-'));
  try {
    const stream = createWriteStream(path.join(dir, 'log'), { flags: 'a' });
    createLogger({ stream, color: false }).warn('careful');
    await new Promise<void>((resolve) => stream.end(resolve));
    assert.is(readFileSync(path.join(dir, 'log'), 'utf8'), 'warn: careful\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
