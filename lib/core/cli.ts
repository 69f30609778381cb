// Argument parsing and the one top-level handler every script shares: typed flags declared up
// front (per subcommand, like npm's per-command params or meow's `flags`), --help/--version,
// unknown flag or a flag of another subcommand → exit 2, errors mapped to exit codes
// (lib/core/errors.ts).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import minimist from 'minimist';
import { UsageError, exitCodeFor, messageOf } from './errors.ts';
import { createLogger, linesPerTurn, type Logger } from './log.ts';
import { requirePrograms } from './programs.ts';

/**
 * string: the text as given; boolean: a switch (`--no-x` turns it off); integer: a whole number
 * between min (default 1) and max; seconds: a positive number, fractions allowed ("1.5").
 */
export type FlagType = 'string' | 'boolean' | 'integer' | 'seconds';

export interface FlagSpec {
  type: FlagType;
  /** A one-letter alias: `n` for --dry-run means `-n` works too. */
  alias?: string;
  default?: string | number | boolean;
  /** May be given more than once; the value is then an array, in order. Otherwise a repeat is an error. */
  repeatable?: boolean;
  /** Bounds of an integer flag. */
  min?: number;
  max?: number;
}

/** What one form of a script accepts: its flags, its positional arguments, its usage text. */
export interface CommandSpec {
  usage: string;
  flags?: Record<string, FlagSpec>;
  minPositionals?: number;
  maxPositionals?: number;
  /**
   * Programs this form runs that node does not bring (`bash` for zx, `git`): checked on the PATH
   * after --help and before any work, so a missing one is named (exit 2), not a crash inside.
   */
  needs?: string[];
}

export interface CliSpec extends CommandSpec {
  name: string;
  /**
   * Subcommands, each with its own flags and usage. A key that is a word (`rotate`) is chosen
   * by the first positional argument; a key that is a flag (`--serve`, `--from`) is a mode
   * chosen when that flag is given (the flag stays one of the mode's own flags).
   */
  commands?: Record<string, CommandSpec>;
  /**
   * The command run when the first positional names none (`launchfit URL` = deploy): then the
   * script has no form of its own, and a first positional that fails `when` is an unknown command.
   */
  defaultCommand?: { name: string; when?: RegExp };
  /**
   * A server's log: the lines of one turn of the event loop written together (linesPerTurn in
   * log.ts), and flushed as the process exits. Not where stderr is a terminal.
   */
  logPerTurn?: boolean;
}

export interface Args {
  _: string[];
  /** The chosen subcommand's key (`rotate`, `--serve`); undefined for the script's own form. */
  command?: string;
  help?: boolean;
  [flag: string]: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- values typed by the spec
}
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

interface Chosen {
  key?: string;
  label: string;
  command: CommandSpec;
  argv: string[];
  /** Chosen as spec.defaultCommand, not named on the command line. */
  byDefault?: boolean;
}

/** Which form of the script argv asks for, and argv without the subcommand's word. */
function chooseCommand(spec: CliSpec, argv: string[]): Chosen {
  const end = argv.indexOf('--') === -1 ? argv.length : argv.indexOf('--');
  const commands = spec.commands ?? {};
  for (const key of Object.keys(commands).filter((k) => k.startsWith('--'))) {
    if (argv.slice(0, end).some((a) => a === key || a.startsWith(`${key}=`)))
      return { key, label: `${spec.name} ${key}`, command: commands[key], argv };
  }
  const first = firstPositional(spec, argv);
  if (first !== undefined && Object.hasOwn(commands, argv[first]) && !argv[first].startsWith('-')) {
    const key = argv[first];
    return { key, label: `${spec.name} ${key}`, command: commands[key], argv: argv.filter((_, i) => i !== first) };
  }
  if (spec.defaultCommand) {
    const { name, when } = spec.defaultCommand;
    if (first !== undefined && when && !when.test(argv[first])) {
      const words = Object.keys(commands).filter((k) => !k.startsWith('--'));
      throw new UsageError(
        `Unknown command ${JSON.stringify(argv[first])}; use ${words.slice(0, -1).join(', ')} or ` +
          `${words.at(-1)}. Run \`${spec.name} --help\` for usage.`,
      );
    }
    return { key: name, label: `${spec.name} ${name}`, command: commands[name], argv, byDefault: true };
  }
  return { label: spec.name, command: spec, argv };
}

/** Index of the first positional argument, skipping flags and the values of flags that take one. */
function firstPositional(spec: CliSpec, argv: string[]): number | undefined {
  const takesValue = new Set<string>();
  for (const command of [spec, ...Object.values(spec.commands ?? {})]) {
    for (const [name, flag] of Object.entries(command.flags ?? {})) {
      if (flag.type !== 'boolean') takesValue.add(name).add(flag.alias ?? name);
    }
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') return undefined; // after `--` a word is an argument, never a command
    if (arg.startsWith('-') && arg !== '-') {
      if (!arg.includes('=') && takesValue.has(arg.replace(/^--?/, ''))) i++;
      continue;
    }
    return i;
  }
  return undefined;
}

/** Which other forms of the script declare a flag, e.g. ["logs rotate"]. */
function ownersOf(spec: CliSpec, flag: string, chosen: Chosen): string[] {
  const name = flag.replace(/^--?/, '').split('=')[0];
  const forms: Array<[string, CommandSpec]> = Object.entries(spec.commands ?? {}).map(([k, c]) => [
    `${spec.name} ${k}`,
    c,
  ]);
  if (!spec.defaultCommand) forms.unshift([spec.name, spec]);
  return forms
    .filter(
      ([label, c]) =>
        label !== chosen.label &&
        Object.entries(c.flags ?? {}).some(
          ([n, f]) => n === name || f.alias === name || (f.type === 'boolean' && `no-${n}` === name),
        ),
    )
    .map(([label]) => label);
}

function isHelp(argv: string[]): boolean {
  const end = argv.indexOf('--') === -1 ? argv.length : argv.indexOf('--');
  return argv.slice(0, end).some((a) => a === '--help' || a === '-h');
}

/**
 * Parse argv against a spec: choose the subcommand, then check its flags (unknown, of another
 * subcommand, missing value, repeated, wrong type) and positional count. Throws UsageError.
 * `--help` anywhere wins: the result then has help: true and the command whose usage to print.
 */
export function parseArgs(spec: CliSpec, argv: string[]): Args {
  let chosen: Chosen;
  try {
    chosen = chooseCommand(spec, argv);
  } catch (error) {
    if (isHelp(argv)) return { _: [], help: true };
    throw error;
  }
  const { command, label } = chosen;
  // `launchfit --help` is the overview; `launchfit deploy --help` is deploy's own.
  if (isHelp(argv)) return { _: [], help: true, command: chosen.byDefault ? undefined : chosen.key };
  const flags = command.flags ?? {};
  const entries = Object.entries(flags);
  const ownsVersion = Object.hasOwn(flags, 'version'); // `release publish --version V`
  const booleans = [
    ...(ownsVersion ? [] : ['version']),
    ...entries.filter(([, f]) => f.type === 'boolean').map(([n]) => n),
  ];
  const valued = entries.filter(([, f]) => f.type !== 'boolean');
  const alias: Record<string, string> = {};
  for (const [n, f] of entries) if (f.alias) alias[f.alias] = n;
  const known = new Set([...booleans, ...entries.map(([n]) => n), ...Object.keys(alias)]);
  let unknown: string | undefined;
  const args = minimist(chosen.argv, {
    boolean: booleans,
    // '_' keeps positionals as written: minimist would turn a repo "007" into 7 and "1.10" into 1.1.
    string: [...valued.map(([n]) => n), '_'],
    alias,
    default: Object.fromEntries(
      entries.filter(([, f]) => f.type === 'boolean' && f.default !== undefined).map(([n, f]) => [n, f.default]),
    ),
    unknown: (arg) => {
      if (arg.startsWith('-') && arg !== '-' && !unknown) unknown = arg;
      return true;
    },
  }) as Args;
  if (args.version === true && !ownsVersion) return { ...args, _: [], command: chosen.key };
  const stray = unknown ?? Object.keys(args).find((key) => key !== '_' && !known.has(key));
  if (stray !== undefined) {
    const flag = stray.startsWith('-') ? stray.split('=')[0] : `--${stray}`;
    const owners = ownersOf(spec, flag, chosen);
    if (owners.length)
      throw new UsageError(
        `Option ${flag} belongs to ${owners.map((o) => `\`${o}\``).join(' or ')}; run \`${owners[0]} --help\` for usage.`,
      );
    throw new UsageError(`Unknown option ${flag}. Run \`${label} --help\` for usage.`);
  }
  for (const [name, flag] of valued) {
    args[name] = typedValue(args[name], name, flag, chosen.argv);
    if (flag.alias) args[flag.alias] = args[name];
  }
  const count = args._.length;
  if (command.minPositionals !== undefined && count < command.minPositionals) {
    throw new UsageError(`Missing argument. Usage: ${firstUsageLine(command, label, spec.name)}`);
  }
  if (command.maxPositionals !== undefined && count > command.maxPositionals) {
    throw new UsageError(
      `Unexpected argument ${JSON.stringify(String(args._[command.maxPositionals]))}. Usage: ${firstUsageLine(command, label, spec.name)}`,
    );
  }
  args._ = args._.map(String);
  args.command = chosen.key;
  return args;
}

/** A valued flag's raw minimist value checked and converted as its spec says. */
function typedValue(raw: unknown, name: string, flag: FlagSpec, argv: string[]): unknown {
  if (raw === undefined) return flag.default ?? (flag.repeatable ? [] : undefined);
  if (Array.isArray(raw) && !flag.repeatable) throw new UsageError(`Option --${name} was given more than once.`);
  const values = (Array.isArray(raw) ? raw : [raw]).map(String);
  if (
    values.includes('') &&
    argv.some((a) => a === `--${name}` || (flag.alias !== undefined && a === `-${flag.alias}`))
  ) {
    throw new UsageError(`Option --${name} needs a value.`);
  }
  const typed = values.map((value) => {
    if (flag.type === 'integer')
      return parsePositiveInt(value, name, { min: flag.min ?? 1, max: flag.max ?? Number.MAX_SAFE_INTEGER });
    if (flag.type === 'seconds') return parseSeconds(value, name);
    return value;
  });
  return flag.repeatable ? typed : typed[0];
}

function firstUsageLine(command: CommandSpec, label: string, script: string): string {
  const lines = command.usage.split('\n').map((l) => l.trim().replace(/^Usage:\s*/, ''));
  return lines.find((l) => l.startsWith(label)) ?? lines.find((l) => l.startsWith(script)) ?? label;
}

/** The form of the script parseArgs chose: a subcommand's spec, or the script's own. */
function commandOf(spec: CliSpec, args: Args): CommandSpec {
  return args.command !== undefined && spec.commands?.[args.command] ? spec.commands[args.command] : spec;
}

/** The usage text `--help` prints for the command parseArgs chose. */
export function usageOf(spec: CliSpec, args: Args): string {
  const { usage } = commandOf(spec, args);
  return usage.endsWith('\n') ? usage : `${usage}\n`;
}

/** Runs a script: parse, --help/--version, main, and the exit code. Never returns normally. */
export async function runCli(spec: CliSpec, main: Main, argv = process.argv.slice(2)): Promise<never> {
  exitQuietlyOnClosedOutput();
  const stream = spec.logPerTurn && !process.stderr.isTTY ? linesPerTurn(process.stderr) : undefined;
  if (stream) process.once('exit', stream.flush);
  let log = createLogger({ json: argv.includes('--json') ? true : undefined, stream });
  let code: number;
  try {
    const args = parseArgs(spec, argv);
    if (args.help) {
      process.stdout.write(usageOf(spec, args));
      return exit(0);
    }
    if (args.version === true) {
      process.stdout.write(`${spec.name} ${version()}\n`);
      return exit(0);
    }
    if (args.json) log = createLogger({ json: true, stream });
    requirePrograms(commandOf(spec, args).needs ?? []);
    code = (await main(args, log)) ?? 0;
  } catch (error) {
    code = exitCodeFor(error);
    log.error(messageOf(error));
    if (process.env.SHIPKIT_DEBUG && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  }
  return exit(code);
}

/** What a shell reports for a program ended by SIGPIPE (128 + 13): `git log | head -1` gives it too. */
export const CLOSED_OUTPUT_EXIT = 141;

/**
 * `logs REPO | head -1`: the reader is gone. A C tool dies of SIGPIPE; node ignores that signal
 * and gets EPIPE on its next write, which would crash with a stack trace. Leave as they do:
 * nothing printed (there is nowhere to print it), exit 141, whichever of stdout or stderr broke.
 */
export function exitQuietlyOnClosedOutput(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr]): void {
  for (const stream of streams) {
    if (stream.listeners('error').includes(onOutputError)) continue;
    stream.on('error', onOutputError);
  }
}

function onOutputError(error: NodeJS.ErrnoException): void {
  if (error.code === 'EPIPE') process.exit(CLOSED_OUTPUT_EXIT);
  throw error;
}

async function exit(code: number): Promise<never> {
  // Let stdout drain (it may be a pipe) before leaving.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}

export function parsePositiveInt(
  value: unknown,
  flag: string,
  { min = 1, max = Number.MAX_SAFE_INTEGER } = {},
): number {
  const text = String(value);
  if (!/^\d+$/.test(text))
    throw new UsageError(`Option --${flag} must be a whole number, got ${JSON.stringify(text)}.`);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`Option --${flag} must be between ${min} and ${max}, got ${n}.`);
  return n;
}

/** Seconds as a number (fractions allowed): "30", "1.5". */
export function parseSeconds(value: unknown, flag: string): number {
  const text = String(value);
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0)
    throw new UsageError(`Option --${flag} must be a positive number of seconds, got ${JSON.stringify(text)}.`);
  return Number(text);
}

/** A seconds flag's value in milliseconds; a flag not given stays undefined. */
export function milliseconds(seconds: number | undefined): number | undefined {
  return seconds === undefined ? undefined : seconds * 1000;
}
