// lib/core/cli.ts: parseArgs (declared flags, unknown flags, missing values, repeats, positionals,
// typed flags, subcommands and modes) in process, and runCli through a real child process
// (test/fixtures/cli/fixture.ts under tsx):
// exit codes, the stdout/stderr split, --help/--version, JSON logs, NO_COLOR on a real pty.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  parseArgs,
  parsePositiveInt,
  parseSeconds,
  usageOf,
  version,
  type Args,
  type CliSpec,
} from '../../../lib/core/cli.ts';
import { UsageError } from '../../../lib/core/errors.ts';
import { ROOT } from '../../_helpers/common.ts';

const FIXTURE = path.join(ROOT, 'test/fixtures/cli/fixture.ts');
const TSX_LOADER = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');
const PKG_VERSION = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;

const spec: CliSpec = {
  name: 'server-update',
  usage: 'Usage: server-update REPO [--list FILE] [--concurrency N] [--json]\n\nSends one signed request per slave.\n',
  flags: {
    list: { type: 'string' },
    concurrency: { type: 'string', default: '32' },
    to: { type: 'string' },
    json: { type: 'boolean' },
    'dry-run': { type: 'boolean', alias: 'n' },
  },
  minPositionals: 1,
  maxPositionals: 1,
};

function usageError(argv: string[], pattern: RegExp, against: CliSpec = spec) {
  try {
    parseArgs(against, argv);
  } catch (error) {
    assert.instance(error, UsageError, `${argv.join(' ')}: got ${(error as Error).message}`);
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`${JSON.stringify(argv)} should be a UsageError`);
}

// ---- parseArgs -------------------------------------------------------------------------------

const goodArgv: Array<[string[], Record<string, unknown>]> = [
  [['site'], { _: ['site'], concurrency: '32', json: false, 'dry-run': false }],
  [['site', '--list', 'l.txt'], { _: ['site'], list: 'l.txt' }],
  [['--list=l.txt', 'site'], { _: ['site'], list: 'l.txt' }],
  [['site', '--concurrency', '4'], { _: ['site'], concurrency: '4' }],
  [['site', '--concurrency', '007'], { concurrency: '007' }],
  [['site', '--json', '--json'], { json: true }],
  [['site', '-n'], { 'dry-run': true, n: true }],
  [['site', '--no-json'], { json: false }],
  // Positionals stay as written (minimist would make these numbers).
  [['007'], { _: ['007'] }],
  [['1.10'], { _: ['1.10'] }],
  [['0x10'], { _: ['0x10'] }],
  [['1e3'], { _: ['1e3'] }],
  // After `--` anything is a positional, even something that looks like a flag.
  [['--', '-rf'], { _: ['-rf'] }],
  [['--', '--bogus'], { _: ['--bogus'] }],
  [['-'], { _: ['-'] }],
];

for (const [argv, want] of goodArgv) {
  test(`parseArgs ${JSON.stringify(argv)}`, () => {
    const args = parseArgs(spec, argv);
    for (const [key, value] of Object.entries(want)) assert.equal(args[key], value, key);
  });
}

const badArgv: Array<[string[], RegExp]> = [
  [['site', '--bogus'], /^Unknown option --bogus\. Run `server-update --help` for usage\.$/],
  [['site', '--bogus=1'], /^Unknown option --bogus\./],
  [['site', '-x'], /^Unknown option -x\./],
  [['site', '--no-bogus'], /^Unknown option --no-bogus/],
  [['site', '--LIST', 'x'], /^Unknown option --LIST/],
  [['site', '-1'], /^Unknown option -1/],
  [['site', '--list'], /^Option --list needs a value\.$/],
  [['site', '--list', '--json'], /^Option --list needs a value\.$/],
  [['site', '--list', 'a', '--list', 'b'], /^Option --list was given more than once\.$/],
  [['site', '--to=a', '--to=b'], /given more than once/],
  [[], /^Missing argument\. Usage: server-update REPO \[--list FILE\]/],
  [['--json'], /^Missing argument/],
  [['site', 'extra'], /^Unexpected argument "extra"\. Usage: server-update REPO/],
  [['a', 'b', 'c'], /^Unexpected argument "b"/],
];

for (const [argv, pattern] of badArgv) {
  test(`parseArgs ${JSON.stringify(argv)} → UsageError`, () => usageError(argv, pattern));
}

test('--help and --version win over other problems', () => {
  assert.is(parseArgs(spec, ['--help', '--bogus']).help, true);
  assert.is(parseArgs(spec, ['-h']).help, true);
  assert.is(parseArgs(spec, ['--version', 'a', 'b', 'c']).version, true);
});

test('a script that declares --version as a string owns it (release publish --version V)', () => {
  const own: CliSpec = {
    name: 'release',
    usage: 'Usage: release publish DIR --version V',
    flags: { version: { type: 'string' } },
    minPositionals: 1,
  };
  const args = parseArgs(own, ['publish', '--version', '1.10']);
  assert.is(args.version, '1.10');
  assert.equal(args._, ['publish']);
  assert.throws(
    () => parseArgs(own, ['publish', '--version']),
    (e: unknown) => e instanceof UsageError && /--version needs a value/.test(e.message),
  );
});

// ---- subcommands, modes and typed flags --------------------------------------------------------

// Shaped like `logs REPO` / `logs rotate` / `slave-activate --serve`: the script's own form, a
// subcommand chosen by a word, and a mode chosen by a flag, each with its own flags.
const tool: CliSpec = {
  name: 'tool',
  usage:
    'Usage: tool REPO [--job ID] [--json]\n       tool rotate [REPO] [--keep N]\n       tool --serve [--listen HOST:PORT]\n',
  flags: { job: { type: 'string' }, json: { type: 'boolean' } },
  minPositionals: 1,
  maxPositionals: 1,
  commands: {
    rotate: {
      usage: 'Usage: tool rotate [REPO] [--keep N] [--max-age SEC] [--tag T]...\n',
      flags: {
        keep: { type: 'integer', min: 0, max: 1000 },
        'max-age': { type: 'seconds' },
        tag: { type: 'string', repeatable: true },
        port: { type: 'integer', repeatable: true, max: 65535 },
        force: { type: 'boolean', alias: 'f' },
        json: { type: 'boolean' },
      },
      maxPositionals: 1,
    },
    '--serve': {
      usage: 'Usage: tool --serve [--listen HOST:PORT] [--port N]\n',
      flags: {
        serve: { type: 'boolean' },
        listen: { type: 'string', default: '0.0.0.0:8080' },
        port: { type: 'integer', max: 65535 },
        json: { type: 'boolean' },
      },
      maxPositionals: 0,
    },
  },
};

// Shaped like launchfit: no form of its own; `lf URL` is `lf deploy URL`.
const lf: CliSpec = {
  name: 'lf',
  usage: 'Usage:\n  lf URL [--dir DIR]\n  lf deploy [URL] [--dir DIR]\n  lf status [--json]\n  lf rollback [--to V]\n',
  defaultCommand: { name: 'deploy', when: /^https?:\/\// },
  commands: {
    deploy: {
      usage: 'Usage: lf deploy [URL] [--dir DIR] [--key FPR]\n',
      flags: { dir: { type: 'string' }, key: { type: 'string' } },
      maxPositionals: 1,
    },
    status: {
      usage: 'Usage: lf status [--dir DIR] [--json]\n',
      flags: { dir: { type: 'string' }, json: { type: 'boolean' } },
      maxPositionals: 0,
    },
    rollback: {
      usage: 'Usage: lf rollback [--dir DIR] [--to V]\n',
      flags: { dir: { type: 'string' }, to: { type: 'string' } },
      maxPositionals: 0,
    },
  },
};

const goodCommands: Array<[CliSpec, string[], Partial<Args>]> = [
  [tool, ['site'], { command: undefined, _: ['site'], json: false }],
  [tool, ['site', '--job', 'j1'], { command: undefined, job: 'j1' }],
  [tool, ['rotate'], { command: 'rotate', _: [], keep: undefined, tag: [], force: false }],
  [tool, ['rotate', 'site', '--keep', '3'], { command: 'rotate', _: ['site'], keep: 3 }],
  [tool, ['--keep', '3', 'rotate'], { command: 'rotate', _: [], keep: 3 }],
  [tool, ['--json', 'rotate', 'site'], { command: 'rotate', _: ['site'], json: true }],
  [tool, ['rotate', '--keep=0'], { keep: 0 }],
  [tool, ['rotate', '--keep', '007'], { keep: 7 }],
  [tool, ['rotate', '--max-age', '1.5'], { 'max-age': 1.5 }],
  [tool, ['rotate', '--tag', 'a', '--tag=b'], { tag: ['a', 'b'] }],
  [tool, ['rotate', '--tag', 'a'], { tag: ['a'] }],
  [tool, ['rotate', '--port', '80', '--port', '443'], { port: [80, 443] }],
  [tool, ['rotate', '-f'], { force: true, f: true }],
  [tool, ['rotate', '--no-force'], { force: false }],
  [tool, ['--serve'], { command: '--serve', serve: true, listen: '0.0.0.0:8080', _: [] }],
  [tool, ['--listen', '127.0.0.1:0', '--serve'], { command: '--serve', listen: '127.0.0.1:0' }],
  [tool, ['--serve', '--port', '8080'], { port: 8080 }],
  // A repo that happens to be called like a subcommand: after `--`, or not in first place.
  [tool, ['--', 'rotate'], { command: undefined, _: ['rotate'] }],
  [tool, ['rotate', 'rotate'], { command: 'rotate', _: ['rotate'] }],
  [lf, [], { command: 'deploy', _: [] }],
  [lf, ['https://updates.example.com/app/'], { command: 'deploy', _: ['https://updates.example.com/app/'] }],
  [lf, ['http://h/', '--dir', 'd'], { command: 'deploy', dir: 'd' }],
  [lf, ['--dir', 'd'], { command: 'deploy', dir: 'd', _: [] }],
  [lf, ['deploy', 'http://h/'], { command: 'deploy', _: ['http://h/'] }],
  [lf, ['--dir', 'status', 'status'], { command: 'status', dir: 'status' }],
  [lf, ['status', '--json'], { command: 'status', json: true }],
  [lf, ['rollback', '--to', '1.10'], { command: 'rollback', to: '1.10' }],
];

for (const [cli, argv, want] of goodCommands) {
  test(`parseArgs ${cli.name} ${JSON.stringify(argv)}`, () => {
    const args = parseArgs(cli, argv);
    for (const [key, value] of Object.entries(want)) assert.equal(args[key], value, key);
  });
}

const badCommands: Array<[CliSpec, string[], RegExp]> = [
  // A flag of another subcommand names its owner.
  [tool, ['site', '--keep', '3'], /^Option --keep belongs to `tool rotate`; run `tool rotate --help` for usage\.$/],
  [tool, ['site', '--force'], /^Option --force belongs to `tool rotate`;/],
  [tool, ['site', '--no-force'], /^Option --no-force belongs to `tool rotate`;/],
  [tool, ['site', '-f'], /^Option -f belongs to `tool rotate`;/],
  [tool, ['rotate', '--job', 'j1'], /^Option --job belongs to `tool`; run `tool --help` for usage\.$/],
  [tool, ['site', '--listen', '127.0.0.1:0'], /^Option --listen belongs to `tool --serve`;/],
  [tool, ['--serve', '--tag', 'x'], /^Option --tag belongs to `tool rotate`;/],
  [tool, ['site', '--port', '80'], /^Option --port belongs to `tool rotate` or `tool --serve`;/],
  [tool, ['rotate', '--bogus'], /^Unknown option --bogus\. Run `tool rotate --help` for usage\.$/],
  [tool, ['--serve', '--bogus=1'], /^Unknown option --bogus\. Run `tool --serve --help` for usage\.$/],
  // Typed values.
  [tool, ['rotate', '--keep', 'many'], /^Option --keep must be a whole number, got "many"\.$/],
  [tool, ['rotate', '--keep', '1.5'], /^Option --keep must be a whole number, got "1\.5"\.$/],
  [tool, ['rotate', '--keep=-1'], /^Option --keep must be a whole number, got "-1"\.$/],
  [tool, ['rotate', '--keep', '1001'], /^Option --keep must be between 0 and 1000, got 1001\.$/],
  [tool, ['rotate', '--keep'], /^Option --keep needs a value\.$/],
  [tool, ['rotate', '--keep', '--force'], /^Option --keep needs a value\.$/],
  [tool, ['rotate', '--keep', '1', '--keep', '2'], /^Option --keep was given more than once\.$/],
  [tool, ['rotate', '--port', '80', '--port', 'x'], /^Option --port must be a whole number, got "x"\.$/],
  [tool, ['rotate', '--tag'], /^Option --tag needs a value\.$/],
  [tool, ['rotate', '--max-age', '0'], /^Option --max-age must be a positive number of seconds, got "0"\.$/],
  [tool, ['rotate', '--max-age', 'soon'], /^Option --max-age must be a positive number of seconds/],
  [tool, ['--serve', '--port', '70000'], /^Option --port must be between 1 and 65535, got 70000\.$/],
  [tool, ['--serve', '--port', '0'], /^Option --port must be between 1 and 65535, got 0\.$/],
  // Positionals are counted per form.
  [tool, ['--serve', 'site'], /^Unexpected argument "site"\. Usage: tool --serve \[--listen HOST:PORT\]/],
  [tool, ['rotate', 'a', 'b'], /^Unexpected argument "b"\. Usage: tool rotate \[REPO\]/],
  [tool, ['site', 'rotate'], /^Unexpected argument "rotate"\. Usage: tool REPO/],
  [tool, [], /^Missing argument\. Usage: tool REPO \[--job ID\]/],
  [lf, ['frobnicate'], /^Unknown command "frobnicate"; use deploy, status or rollback\. Run `lf --help` for usage\.$/],
  [lf, ['--dir', 'd', 'stauts'], /^Unknown command "stauts"/],
  [lf, ['status', '--to', '1.0'], /^Option --to belongs to `lf rollback`;/],
  [lf, ['http://h/', '--json'], /^Option --json belongs to `lf status`;/],
  [lf, ['status', 'extra'], /^Unexpected argument "extra"\. Usage: lf status/],
  [lf, ['http://a/', 'http://b/'], /^Unexpected argument "http:\/\/b\/"\. Usage: lf deploy/],
];

for (const [cli, argv, pattern] of badCommands) {
  test(`parseArgs ${cli.name} ${JSON.stringify(argv)} → UsageError`, () => usageError(argv, pattern, cli));
}

// [spec, argv, the usage --help prints]
const helps: Array<[CliSpec, string[], string]> = [
  [tool, ['--help'], tool.usage],
  [tool, ['site', '-h'], tool.usage],
  [tool, ['rotate', '--help'], tool.commands!.rotate.usage],
  [tool, ['--help', 'rotate'], tool.commands!.rotate.usage],
  [tool, ['rotate', '--bogus', '--keep', 'x', '-h'], tool.commands!.rotate.usage],
  [tool, ['--serve', '--help'], tool.commands!['--serve'].usage],
  [tool, ['--help', '--serve', 'extra'], tool.commands!['--serve'].usage],
  [lf, ['--help'], lf.usage],
  [lf, ['http://h/', '--help'], lf.usage],
  [lf, ['frobnicate', '--help'], lf.usage],
  [lf, ['status', '--help'], lf.commands!.status.usage],
  [lf, ['rollback', '-h'], lf.commands!.rollback.usage],
];

for (const [cli, argv, usage] of helps) {
  test(`usageOf ${cli.name} ${JSON.stringify(argv)}`, () => {
    const args = parseArgs(cli, argv);
    assert.is(args.help, true);
    assert.is(usageOf(cli, args), usage);
  });
}

test('--version in a subcommand that does not declare one', () => {
  assert.is(parseArgs(tool, ['rotate', '--version']).version, true);
  assert.is(parseArgs(tool, ['--serve', '--version']).version, true);
  assert.is(parseArgs(lf, ['--version']).version, true);
});

const ints: Array<[unknown, { min?: number; max?: number }, number | RegExp]> = [
  ['1', {}, 1],
  ['32', { max: 1000 }, 32],
  ['007', {}, 7],
  ['0', {}, /must be between 1 and/],
  ['0', { min: 0 }, 0],
  ['1001', { max: 1000 }, /must be between 1 and 1000, got 1001/],
  ['-1', {}, /must be a whole number, got "-1"/],
  ['1.5', {}, /whole number/],
  ['', {}, /whole number, got ""/],
  ['1e3', {}, /whole number/],
  [' 5', {}, /whole number/],
  [undefined, {}, /whole number, got "undefined"/],
];

for (const [value, range, want] of ints) {
  test(`parsePositiveInt(${JSON.stringify(value)}, ${JSON.stringify(range)})`, () => {
    if (typeof want === 'number') return assert.is(parsePositiveInt(value, 'concurrency', range), want);
    assert.throws(
      () => parsePositiveInt(value, 'concurrency', range),
      (e: unknown) => e instanceof UsageError && /^Option --concurrency /.test(e.message) && want.test(e.message),
    );
  });
}

const secs: Array<[unknown, number | null]> = [
  ['30', 30],
  ['1.5', 1.5],
  ['0.1', 0.1],
  ['0', null],
  ['-1', null],
  ['abc', null],
  ['1s', null],
  ['', null],
  ['Infinity', null],
];

for (const [value, want] of secs) {
  test(`parseSeconds(${JSON.stringify(value)}) → ${want ?? 'UsageError'}`, () => {
    if (want !== null) return assert.is(parseSeconds(value, 'timeout'), want);
    assert.throws(
      () => parseSeconds(value, 'timeout'),
      (e: unknown) => e instanceof UsageError && /--timeout must be a positive number of seconds/.test(e.message),
    );
  });
}

test('version() is the package version', () => {
  assert.is(version(), PKG_VERSION);
});

// ---- runCli through a child process ------------------------------------------------------------

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

// Child processes are started up front, two at a time (tsx start-up is the slow part); each
// test awaits its own.
let running = 0;
const waiting: Array<() => void> = [];
async function limited<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= 2) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

const started = new Map<string, Promise<Result>>();
function runFixture(args: string[], env: Record<string, string | undefined> = {}): Promise<Result> {
  const key = JSON.stringify([args, env]);
  if (!started.has(key))
    started.set(
      key,
      limited(() => spawnFixture(args, env)),
    );
  return started.get(key)!;
}

function spawnFixture(args: string[], env: Record<string, string | undefined>): Promise<Result> {
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    FORCE_COLOR: undefined,
    NO_COLOR: undefined,
    LOG_FORMAT: undefined,
    SHIPKIT_DEBUG: undefined,
  };
  for (const [k, v] of Object.entries(env)) childEnv[k] = v;
  for (const k of Object.keys(childEnv)) if (childEnv[k] === undefined) delete childEnv[k];
  const child = spawn(process.execPath, ['--import', TSX_LOADER, FIXTURE, ...args], {
    cwd: ROOT,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

test('--help: usage on stdout, nothing on stderr, exit 0 (also -h, also with an unknown flag)', async () => {
  const usage = readFileSync(FIXTURE, 'utf8').match(/const usage = `([^`]*)`/)![1];
  for (const argv of [['--help'], ['-h'], ['--help', '--bogus'], ['x', '--help']]) {
    const r = await runFixture(argv);
    assert.is(r.code, 0, argv.join(' '));
    assert.is(r.stdout, usage);
    assert.is(r.stderr, '');
  }
});

test('--version: name and version on stdout, exit 0', async () => {
  const r = await runFixture(['--version']);
  assert.equal(r, { code: 0, stdout: `fixture ${PKG_VERSION}\n`, stderr: '' });
});

// [argv, env, exit code, stderr pattern]
const exits: Array<[string[], Record<string, string>, number, RegExp]> = [
  [['x', '--bogus'], {}, 2, /^error: Unknown option --bogus\. Run `fixture --help` for usage\.\n$/],
  [['x', '--mode'], {}, 2, /^error: Option --mode needs a value\.\n$/],
  [['x', '--mode', 'ok', '--mode', 'ok'], {}, 2, /^error: Option --mode was given more than once\.\n$/],
  [[], {}, 2, /^error: Missing argument\. Usage: fixture ARG \[ARG2\] \[--mode MODE\] \[--json\]\n$/],
  [['a', 'b', 'c'], {}, 2, /^error: Unexpected argument "c"\./],
  [['x', '--mode', 'usage'], {}, 2, /error: bad usage from main\n$/],
  [['x', '--mode', 'config'], {}, 2, /error: shipkit\.yml:3: listen: must be a string\.\n$/],
  [['x', '--mode', 'validation'], {}, 2, /error: Invalid repository "\.\.\/etc"\.\n$/],
  [['x', '--mode', 'verification'], {}, 1, /error: signature does not verify\n$/],
  [['x', '--mode', 'remote'], {}, 1, /error: slave answered 500\n$/],
  [['x', '--mode', 'work'], {}, 1, /error: the clone failed\n$/],
  [['x', '--mode', 'plain'], {}, 1, /error: something unexpected\n$/],
  [['x', '--mode', 'string'], {}, 1, /error: a thrown string\n$/],
  [['x', '--mode', 'exit3'], {}, 3, /^working /],
  [['x'], {}, 0, /^working step=one args=\["x"\]\n$/],
];

for (const [argv, env] of exits) void runFixture(argv, env);

for (const [argv, env, code, stderr] of exits) {
  test(`runCli ${JSON.stringify(argv)} → exit ${code}`, async () => {
    const r = await runFixture(argv, env);
    assert.is(r.code, code, r.stderr);
    assert.match(r.stderr, stderr);
    assert.not.match(r.stderr, /\n\s+at /, 'no stack trace without SHIPKIT_DEBUG');
    assert.not.match(r.stderr, /\x1b\[/, 'no colour on a pipe');
    if (code !== 0) assert.is(r.stdout, '', 'errors never go to stdout');
  });
}

test('results on stdout, logs on stderr', async () => {
  const r = await runFixture(['007', '1.10']);
  assert.is(r.code, 0);
  assert.equal(JSON.parse(r.stdout), { positionals: ['007', '1.10'] });
  assert.match(r.stderr, /^working step=one args=\["007","1\.10"\]\n$/);
});

test('SHIPKIT_DEBUG shows debug lines and the stack of an error', async () => {
  const r = await runFixture(['x', '--mode', 'work'], { SHIPKIT_DEBUG: '1' });
  assert.is(r.code, 1);
  assert.match(r.stderr, /debug: debug detail/);
  assert.match(r.stderr, /WorkError: the clone failed\n\s+at /);
});

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
}

for (const [label, argv, env] of [
  ['--json', ['x', '--json', '--mode', 'work'], {}],
  ['LOG_FORMAT=json', ['x', '--mode', 'work'], { LOG_FORMAT: 'json' }],
] as const) {
  test(`${label}: every stderr line is a JSON object, the error included`, async () => {
    const r = await runFixture([...argv], env);
    assert.is(r.code, 1);
    const lines = jsonLines(r.stderr);
    assert.is(lines.length, 2);
    assert.is(lines[0].level, 'info');
    assert.is(lines[0].msg, 'working');
    assert.is(lines[0].step, 'one');
    assert.equal(lines[0].args, ['x']);
    assert.ok(!Number.isNaN(Date.parse(String(lines[0].time))));
    assert.equal({ level: lines[1].level, msg: lines[1].msg }, { level: 'error', msg: 'the clone failed' });
  });
}

test('--json: a usage error found while parsing is a JSON line too', async () => {
  const r = await runFixture(['x', '--json', '--bogus']);
  assert.is(r.code, 2);
  const [line] = jsonLines(r.stderr);
  assert.is(line.level, 'error');
  assert.match(String(line.msg), /Unknown option --bogus/);
});

test('a large result on a pipe is written out in full before exit', async () => {
  const r = await runFixture(['x', '--mode', 'big']);
  assert.is(r.code, 0);
  assert.is(r.stdout.length, 4 * 1024 * 1024 + 5);
  assert.ok(r.stdout.endsWith('\nend\n'));
});

// On a real terminal (a pty from util-linux `script`) the human log is coloured unless NO_COLOR.
async function onPty(env: Record<string, string | undefined>): Promise<string> {
  const command = [process.execPath, '--import', TSX_LOADER, FIXTURE, 'x', '--mode', 'work']
    .map((a) => `'${a}'`)
    .join(' ');
  const childEnv: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color' };
  delete childEnv.NO_COLOR;
  delete childEnv.FORCE_COLOR;
  Object.assign(childEnv, env);
  const child = spawn('script', ['-qec', command, '/dev/null'], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise((r) => child.on('close', r));
  return out;
}

test('colour on a TTY; none with NO_COLOR', async () => {
  const coloured = await onPty({});
  assert.match(coloured, /error: the clone failed|the clone failed/);
  assert.match(coloured, /\x1b\[\d+m/, `expected ANSI colour on a tty: ${JSON.stringify(coloured)}`);
  const plain = await onPty({ NO_COLOR: '1' });
  assert.match(plain, /error: the clone failed/);
  assert.not.match(plain, /\x1b\[/, `no colour with NO_COLOR: ${JSON.stringify(plain)}`);
});

test.run();
