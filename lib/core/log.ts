// The logger every script uses. Human lines on a TTY (colour unless NO_COLOR), JSON lines with
// --json or LOG_FORMAT=json. Logs go to stderr so that stdout carries only results.
// Colours are three SGR codes written here, not chalk: every script loads this file, and chalk's
// module body (its style tables, supports-color's terminal probing, node:os and node:tty) ran on
// every start, --help and --version included.
import { perTurn } from './batch.ts';

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  child(fields: Fields): Logger;
  readonly json: boolean;
}

export interface LoggerOptions {
  json?: boolean;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  color?: boolean;
  fields?: Fields;
  debug?: boolean;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
}

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

type Paint = Record<'red' | 'yellow' | 'gray', (text: string) => string>;
// 39 resets the foreground only, as chalk did. Nothing painted is painted again, so chalk's
// re-opening of nested styles is not needed.
const sgr = (open: number) => (text: string) => `\x1b[${open}m${text}\x1b[39m`;
const PAINT: Paint = { red: sgr(31), yellow: sgr(33), gray: sgr(90) };
const PLAIN: Paint = { red: String, yellow: String, gray: String };

export function createLogger(options: LoggerOptions = {}): Logger {
  const env = options.env ?? process.env;
  const stream = options.stream ?? process.stderr;
  const json = options.json ?? env.LOG_FORMAT === 'json';
  const color =
    options.color ??
    (Boolean(stream.isTTY) && !env.NO_COLOR /* no-color.org: set and not empty */ && env.TERM !== 'dumb');
  const paint = color ? PAINT : PLAIN;
  const minimum = options.debug || env.SHIPKIT_DEBUG ? ORDER.debug : ORDER.info;
  const now = options.now ?? (() => new Date());

  function write(level: Level, message: string, base: Fields, fields: Fields = {}) {
    if (ORDER[level] < minimum) return;
    const all = { ...base, ...fields };
    if (json) {
      // The logger's own keys win: a field named time/level/msg must not forge them.
      const core = { time: now().toISOString(), level, msg: message };
      stream.write(`${JSON.stringify({ ...core, ...all, ...core })}\n`);
      return urgent(level);
    }
    const extra = Object.entries(all)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
      .join(' ');
    const tag =
      level === 'error'
        ? paint.red('error')
        : level === 'warn'
          ? paint.yellow('warn')
          : level === 'debug'
            ? paint.gray('debug')
            : '';
    // Control characters from request data must not forge a second log line: they are escaped,
    // and the lines of a message of several (a list of manifest problems) are indented below it.
    const safe = message
      .replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1))
      .replace(/\n/g, '\n  ');
    const line = [tag && `${tag}:`, safe, extra && paint.gray(extra)].filter(Boolean).join(' ');
    stream.write(`${line}\n`);
    urgent(level);
  }

  /** A warning or an error goes out at once, with what a per-turn stream held before it. */
  function urgent(level: Level) {
    if (level !== 'warn' && level !== 'error') return;
    // A file's WriteStream has a `flush` too: the boolean option of fs.createWriteStream.
    const { flush } = stream as { flush?: unknown };
    if (typeof flush === 'function') flush.call(stream);
  }

  function make(base: Fields): Logger {
    return {
      json,
      debug: (m, f) => write('debug', m, base, f),
      info: (m, f) => write('info', m, base, f),
      warn: (m, f) => write('warn', m, base, f),
      error: (m, f) => write('error', m, base, f),
      child: (fields) => make({ ...base, ...fields }),
    };
  }
  return make(options.fields ?? {});
}

/** Past this many characters waiting, the lines go out at once rather than at the turn's end. */
const TURN_BUFFER_MAX = 64 * 1024;

/**
 * `stream` with what one turn of the event loop writes sent in one write at its end: for a
 * server that logs a line or two per request (hook-server), one write(2) per turn instead of one
 * per line (stderr is written synchronously on Linux). flush() sends what waits: at exit, and
 * (createLogger) after a warning or an error, which never wait.
 */
export function linesPerTurn(stream: NodeJS.WritableStream): NodeJS.WritableStream & { flush(): void } {
  let waiting = 0;
  const lines = perTurn<string>((all) => {
    waiting = 0;
    stream.write(all.join(''));
  });
  const write = (text: string) => {
    lines(text);
    waiting += text.length;
    if (waiting > TURN_BUFFER_MAX) lines.flush();
    return true;
  };
  return Object.assign(Object.create(stream) as NodeJS.WritableStream, { write, flush: lines.flush, isTTY: false });
}

/** A logger that drops everything: for library calls in tests that do not care. */
export const silentLogger: Logger = createLogger({
  stream: { write: () => true } as unknown as NodeJS.WritableStream,
  json: true,
});

/** 1536 → "1.5 KB": sizes in human log lines. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}
