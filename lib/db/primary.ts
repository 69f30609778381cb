// `queue:` as a list of URLs, a primary and its standbys: each server asked `pg_is_in_recovery()`
// every 2 s (and at once when a session breaks); every session shipkit opens goes to the one that
// accepts writes, none while none or two do (split brain), and sessions on a server no longer
// chosen are cut. The whole story: docs/ha.md.
import type pg from 'pg';
import { ConfigError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import {
  clientConfig,
  commonJsExports,
  describeDbError,
  resolveQueueUrl,
  type Primary,
  type QueueDatabase,
} from './connect.ts';

/** What one server of the list answered. */
export type ServerState =
  | { kind: 'writable' }
  | { kind: 'standby' }
  /** A primary set read-only (`default_transaction_read_only`), as some fence an old primary. */
  | { kind: 'read-only' }
  /** Its password or pg_hba.conf refused us: skipped until that is fixed. */
  | { kind: 'refused'; why: string }
  | { kind: 'unreachable'; why: string };

export interface FinderOptions {
  log?: Logger;
  /** How often every server is asked while one is chosen (default 2 s). */
  everyMs?: number;
  /** How often while none is (default 0.5 s): a promoted standby is found soon. */
  searchEveryMs?: number;
  /** How long one server may take to connect and answer (default 3 s). */
  probeTimeoutMs?: number;
  /** How a server is asked (default: a session of its own, `SELECT pg_is_in_recovery()`). */
  probe?: (server: QueueDatabase) => Promise<ServerState>;
}

/** A session that follows the chosen server: which one it was opened on. */
type FollowingClient = pg.Client & { server?: QueueDatabase };

export class PrimaryFinder implements Primary {
  readonly servers: QueueDatabase[];
  private readonly options: FinderOptions;
  private chosen: QueueDatabase | undefined;
  private why = 'the servers of queue: were not asked yet';
  /** What was last said of each server and of the choice: a line is logged when it changes. */
  private readonly said = new Map<QueueDatabase | 'choice', string>();
  private readonly sessions = new Set<FollowingClient>();
  private looking: Promise<void> | undefined;
  /** When the last round began, and whether the chosen server answered it as writable. */
  private lookedAt = -Infinity;
  private settled = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private Client: typeof pg.Client | undefined;
  private readonly followers = new WeakMap<typeof pg.Client, typeof pg.Client>();

  constructor(servers: QueueDatabase[], options: FinderOptions = {}) {
    this.servers = servers;
    this.options = options;
  }

  /** The server every new session goes to; undefined while none or two accept writes. */
  get current(): QueueDatabase | undefined {
    return this.chosen;
  }

  set log(log: Logger) {
    this.options.log ??= log;
  }

  /** Ask every server now (one round at a time), then again every few seconds. */
  async look(): Promise<void> {
    this.looking ??= this.round().finally(() => {
      this.looking = undefined;
      this.schedule();
    });
    return this.looking;
  }

  /** A session broke or could not open: ask again now, or as soon as the rounds' pace allows. */
  suspect(): void {
    if (this.stopped || this.looking) return;
    const wait = this.lookedAt + (this.options.searchEveryMs ?? 500) - performance.now();
    if (wait <= 0) return void this.look();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.look(), wait);
    this.timer.unref?.();
  }

  /** Rounds until one server is chosen, for up to `waitMs`; a ConfigError (exit 2) saying why not. */
  async ready(waitMs = 3_000): Promise<QueueDatabase> {
    const until = performance.now() + waitMs;
    for (;;) {
      await this.look();
      if (this.chosen) return this.chosen;
      if (performance.now() >= until) throw new ConfigError(`Cannot use the queue database: ${this.why}.`);
      await new Promise((resolve) => setTimeout(resolve, this.options.searchEveryMs ?? 500));
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    const ms = this.settled ? (this.options.everyMs ?? 2_000) : (this.options.searchEveryMs ?? 500);
    this.timer = setTimeout(() => void this.look(), ms);
    this.timer.unref?.();
  }

  private async round(): Promise<void> {
    this.lookedAt = performance.now();
    if (!this.options.probe)
      this.Client ??= commonJsExports<typeof pg>(
        await import('pg'),
        (m) => typeof (m as typeof pg).Client === 'function',
      ).Client;
    const probe = this.options.probe ?? ((server: QueueDatabase) => this.probe(server));
    const states = await Promise.all(this.servers.map(probe));
    this.tellServers(states);
    this.decide(states);
    const chosenAt = this.chosen ? this.servers.indexOf(this.chosen) : -1;
    this.settled = chosenAt >= 0 && states[chosenAt].kind === 'writable';
  }

  /** One server's answer, on a session of its own that is closed after. */
  private async probe(server: QueueDatabase): Promise<ServerState> {
    const timeout = this.options.probeTimeoutMs ?? 3_000;
    const client = new this.Client!({
      ...clientConfig(server, 'shipkit (which server accepts writes)'),
      connectionTimeoutMillis: timeout,
      query_timeout: timeout,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query(
        "SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') = 'on' AS read_only",
      );
      if (rows[0].standby) return { kind: 'standby' };
      return rows[0].read_only ? { kind: 'read-only' } : { kind: 'writable' };
    } catch (error) {
      const code = (error as { code?: string }).code;
      const why = describeDbError(error, server);
      return code === '28P01' || code === '28000' ? { kind: 'refused', why } : { kind: 'unreachable', why };
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** A server that cannot be reached, or whose password (or address) is refused, is named in the log once, and skipped. */
  private tellServers(states: ServerState[]): void {
    states.forEach((state, i) => {
      const server = this.servers[i];
      const failed = state.kind === 'refused' || state.kind === 'unreachable';
      const line =
        state.kind === 'refused' ? `${state.why}; it is skipped until that is fixed` : failed ? state.why : '';
      const before = this.said.get(server);
      if (before === line) return;
      this.said.set(server, line);
      if (failed) this.options.log?.warn(line);
      else if (before) this.options.log?.info(`the queue database at ${server.where} answers again`);
    });
  }

  /**
   * One writable server: chosen. Two or more: none (split brain). None: a chosen server that is a
   * standby (or read-only) now is dropped; one that is only unreachable is kept (its sessions fail
   * on their own, and a moment's silence does not cut the others).
   */
  private decide(states: ServerState[]): void {
    const writable = this.servers.filter((_, i) => states[i].kind === 'writable');
    const summary = this.servers.map((s, i) => describeState(s, states[i])).join('; ');
    if (writable.length === 1) return this.choose(writable[0], `writes go to ${writable[0].where} (${summary})`);
    if (writable.length > 1) {
      this.why =
        `refusing to write: ${writable.map((s) => s.where).join(' and ')} ${writable.length === 2 ? 'both' : 'all'} ` +
        `accept writes (split brain); ` +
        `shipkit writes to none of them until only one does: stop the old primary or make it a standby of the new one`;
      return this.choose(undefined, this.why, 'error');
    }
    this.why = `no server of queue: accepts writes (${summary}); deliveries are refused until one is promoted`;
    const chosenAt = this.chosen ? this.servers.indexOf(this.chosen) : -1;
    const answered = chosenAt >= 0 && (states[chosenAt].kind === 'standby' || states[chosenAt].kind === 'read-only');
    this.choose(chosenAt >= 0 && !answered ? this.chosen : undefined, this.why, 'warn');
  }

  private choose(server: QueueDatabase | undefined, line: string, level: 'info' | 'warn' | 'error' = 'info'): void {
    const previous = this.chosen;
    this.chosen = server;
    if (this.said.get('choice') !== line) {
      this.said.set('choice', line);
      this.options.log?.[level](`the queue database: ${line}`);
    }
    if (previous !== server) for (const session of this.sessions) if (session.server !== server) cut(session);
  }

  /** `Client`, its sessions opened on the chosen server (and refused while there is none). */
  follow(Client: typeof pg.Client): typeof pg.Client {
    let following = this.followers.get(Client);
    if (!following) this.followers.set(Client, (following = this.following(Client)));
    return following;
  }

  private following(Client: typeof pg.Client): typeof pg.Client {
    const finder = this;
    return class extends Client {
      server: QueueDatabase | undefined;

      constructor(config?: string | pg.ClientConfig) {
        const server = finder.chosen;
        const base = typeof config === 'string' ? { connectionString: config } : (config ?? {});
        super(server ? { ...base, connectionString: server.url } : base);
        this.server = server;
        this.on('error', () => finder.suspect());
      }

      override connect(): Promise<pg.Client>;
      override connect(callback: ((error: Error) => void) | ((error: null, client: pg.Client) => void)): void;
      override connect(
        callback?: ((error: Error) => void) | ((error: null, client: pg.Client) => void),
      ): Promise<pg.Client> | void {
        if (!this.server || this.server !== finder.chosen) {
          const error = Object.assign(new Error(finder.chosen ? 'the writable server changed' : finder.why), {
            code: 'ECONNREFUSED',
          });
          if (!callback) return Promise.reject(error);
          return void process.nextTick(callback as (error: Error) => void, error);
        }
        const session = this as FollowingClient;
        finder.sessions.add(session);
        this.once('end', () => finder.sessions.delete(session));
        if (callback)
          return super.connect((error: Error) => {
            if (error) finder.suspect();
            (callback as (error: Error) => void)(error);
          });
        return super.connect().catch((error: unknown) => {
          finder.suspect();
          throw error;
        });
      }
    };
  }
}

function describeState(server: QueueDatabase, state: ServerState): string {
  if (state.kind === 'writable') return `${server.where} accepts writes`;
  if (state.kind === 'standby') return `${server.where} is a standby`;
  if (state.kind === 'read-only') return `${server.where} is read-only`;
  if (state.kind === 'refused') return `${server.where} refuses our login (skipped)`;
  return `${server.where} cannot be reached`;
}

/** A session on a server no longer chosen, cut: its statement fails and its pool drops it. */
function cut(session: FollowingClient): void {
  (session as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** One finder per list in a process: the queue, the audit trail and the sessions' table follow the same choice. */
const finders = new Map<string, PrimaryFinder>();

/**
 * `queue:` resolved: one URL as before (db/connect.ts), or a list whose writable server is found
 * (and followed: `primary`). A list where none or two accept writes is a ConfigError (exit 2).
 */
export async function resolveQueue(
  value: string | string[],
  options: { env?: NodeJS.ProcessEnv; baseDir?: string; where?: string; log?: Logger; waitMs?: number } = {},
): Promise<QueueDatabase> {
  if (typeof value === 'string') return resolveQueueUrl(value, options);
  const where = options.where ?? 'queue';
  const servers: QueueDatabase[] = [];
  for (const [i, entry] of value.entries()) {
    const server = await resolveQueueUrl(entry, { ...options, where: `${where}[${i}]` });
    if (servers.some((s) => s.url === server.url))
      throw new ConfigError(`${where}[${i}]: ${server.where} is listed twice; list each server once.`);
    servers.push(server);
  }
  const key = servers.map((s) => s.url).join('\n');
  const finder = finders.get(key) ?? new PrimaryFinder(servers);
  finders.set(key, finder);
  if (options.log) finder.log = options.log;
  await finder.ready(options.waitMs);
  return followedDatabase(finder);
}

/** The list as one QueueDatabase: named, and reached, as the server chosen now. */
function followedDatabase(finder: PrimaryFinder): QueueDatabase {
  const now = () => finder.current ?? finder.servers[0];
  return {
    get url() {
      return now().url;
    },
    get where() {
      return finder.current?.where ?? finder.servers.map((s) => s.where).join(' or ');
    },
    get password() {
      return now().password;
    },
    passwords: finder.servers.map((s) => s.password),
    primary: finder,
  };
}
