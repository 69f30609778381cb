// Argument parsing and the one top-level handler every script shares: declared flags,
// --help, --version, unknown flag → exit 2, errors mapped to exit codes (lib/core/errors.ts).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import minimist from 'minimist';
import { UsageError, exitCodeFor, messageOf } from './errors.ts';
import { createLogger, type Logger } from './log.ts';

export interface CliSpec {
  name: string;
  usage: string;
  string?: string[];
  boolean?: string[];
  alias?: Record<string, string>;
  default?: Record<string, unknown>;
  minPositionals?: number;
  maxPositionals?: number;
}

export type Args = minimist.ParsedArgs;
export type Main = (args: Args, log: Logger) => Promise<number | void> | number | void;

export function version(): string {
  if (typeof SHIPKIT_VERSION === 'string') return SHIPKIT_VERSION; // set by the bundler
  try {
    const pkg = JSON.parse(readFileSync(path.join(import.meta.dirname, '../..', 'package.json'), 'utf8'));
    return String(pkg.version);
  } catch {
    return 'unknown';
  }
}
declare const SHIPKIT_VERSION: string | undefined;

/** Parse argv against a spec. Throws UsageError for unknown flags or a wrong positional count. */
export function parseArgs(spec: CliSpec, argv: string[]): Args {
  const strings = spec.string ?? [];
  // `release publish --version V` takes a value; there, --version is that script's own flag.
  const ownsVersion = strings.includes('version');
  const booleans = ['help', ...(ownsVersion ? [] : ['version']), ...(spec.boolean ?? [])];
  const alias = { h: 'help', ...(spec.alias ?? {}) };
  const known = new Set([...booleans, ...strings, ...Object.keys(alias), ...Object.values(alias)]);
  let unknown: string | undefined;
  const args = minimist(argv, {
    boolean: booleans,
    // '_' keeps positionals as written: minimist would turn a repo "007" into 7 and "1.10" into 1.1.
    string: [...strings, '_'],
    alias,
    default: spec.default,
    unknown: (arg) => {
      if (arg.startsWith('-') && arg !== '-' && !unknown) unknown = arg;
      return true;
    },
  });
  if (args.help || args.version === true) return args;
  if (unknown) throw new UsageError(`Unknown option ${unknown.split('=')[0]}. Run \`${spec.name} --help\` for usage.`);
  for (const flag of strings) {
    const value = args[flag];
    if (Array.isArray(value)) throw new UsageError(`Option --${flag} was given more than once.`);
    if (value === '' && argv.some((a) => a === `--${flag}`)) throw new UsageError(`Option --${flag} needs a value.`);
  }
  for (const key of Object.keys(args)) {
    if (key !== '_' && !known.has(key)) throw new UsageError(`Unknown option --${key}. Run \`${spec.name} --help\` for usage.`);
  }
  const count = args._.length;
  if (spec.minPositionals !== undefined && count < spec.minPositionals) {
    throw new UsageError(`Missing argument. Usage: ${firstUsageLine(spec)}`);
  }
  if (spec.maxPositionals !== undefined && count > spec.maxPositionals) {
    throw new UsageError(`Unexpected argument ${JSON.stringify(String(args._[spec.maxPositionals]))}. Usage: ${firstUsageLine(spec)}`);
  }
  args._ = args._.map(String);
  return args;
}

function firstUsageLine(spec: CliSpec): string {
  const lines = spec.usage.split('\n').map((l) => l.trim().replace(/^Usage:\s*/, ''));
  return lines.find((l) => l.startsWith(spec.name.split(' ')[0])) ?? spec.name;
}

/** Runs a script: parse, --help/--version, main, and the exit code. Never returns normally. */
export async function runCli(spec: CliSpec, main: Main, argv = process.argv.slice(2)): Promise<never> {
  let log = createLogger({ json: argv.includes('--json') ? true : undefined });
  let code: number;
  try {
    const args = parseArgs(spec, argv);
    if (args.help) {
      process.stdout.write(spec.usage.endsWith('\n') ? spec.usage : `${spec.usage}\n`);
      return exit(0);
    }
    if (args.version === true) {
      process.stdout.write(`${spec.name} ${version()}\n`);
      return exit(0);
    }
    if (args.json) log = createLogger({ json: true });
    code = (await main(args, log)) ?? 0;
  } catch (error) {
    code = exitCodeFor(error);
    log.error(messageOf(error));
    if (process.env.SHIPKIT_DEBUG && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  }
  return exit(code);
}

async function exit(code: number): Promise<never> {
  // Let stdout drain (it may be a pipe) before leaving.
  await new Promise<void>((resolve) => (process.stdout.write('', () => resolve())));
  process.exit(code);
}

export function parsePositiveInt(value: unknown, flag: string, { min = 1, max = Number.MAX_SAFE_INTEGER } = {}): number {
  const text = String(value);
  if (!/^\d+$/.test(text)) throw new UsageError(`Option --${flag} must be a whole number, got ${JSON.stringify(text)}.`);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`Option --${flag} must be between ${min} and ${max}, got ${n}.`);
  return n;
}

/** Seconds as a number (fractions allowed): "30", "1.5". */
export function parseSeconds(value: unknown, flag: string): number {
  const text = String(value);
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0) throw new UsageError(`Option --${flag} must be a positive number of seconds, got ${JSON.stringify(text)}.`);
  return Number(text);
}
