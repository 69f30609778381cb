// Reaching shipkit's PostgreSQL database (`queue:`): the URL (literal, env: or file:), the
// database named in messages without its password, PostgreSQL's refusals as sentences, TCP
// keepalives on every session, pools and transactions. pg is loaded only when a database is used.
// The whole story: docs/internals.md.
import type pg from 'pg';
import { ConfigError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { redactUrls } from '../core/redact.ts';
import { resolveSecret } from '../core/secrets.ts';

/** What a store's queries need of a pool or a client. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

export interface QueueDatabase {
  url: string;
  /** `db.internal:5432/shipkit as shipkit`: what messages name. */
  where: string;
  password: string;
  /** A list's passwords, every one kept from messages. */
  passwords?: string[];
  /** A list (a primary and its standbys): the writable one, followed (db/primary.ts). */
  primary?: Primary;
}

/** The server of a list that accepts writes, followed by every session opened through `follow`. */
export interface Primary {
  follow(Client: typeof pg.Client): typeof pg.Client;
}

/** `queue:` or `--queue`, resolved and checked: a postgres:// or postgresql:// URL. */
export async function resolveQueueUrl(
  value: string,
  {
    env = process.env,
    baseDir = process.cwd(),
    where = 'queue',
  }: { env?: NodeJS.ProcessEnv; baseDir?: string; where?: string } = {},
): Promise<QueueDatabase> {
  const text = await resolveSecret(value, { env, baseDir, where });
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(
      `${where}: not a URL; give the queue database as postgres://USER@HOST[:PORT]/DATABASE (the password ` +
        `in the URL, or via env:NAME / file:PATH).`,
    );
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError(
      `${where}: ${redactUrls(`${url.protocol}//${url.host}`)} is not a PostgreSQL URL; use postgres://USER@HOST[:PORT]/DATABASE.`,
    );
  }
  const password = decodeURIComponent(url.password);
  const database = url.pathname.replace(/^\//, '') || decodeURIComponent(url.username) || 'postgres';
  return {
    url: text,
    password,
    where: `${url.hostname || 'localhost'}:${url.port || 5432}/${database}${url.username ? ` as ${decodeURIComponent(url.username)}` : ''}`,
  };
}

/** `text` with every credential of a URL and the password itself replaced by ***. */
export function redactPassword(text: string, db: Pick<QueueDatabase, 'password' | 'passwords'>): string {
  let redacted = redactUrls(text);
  for (const password of db.passwords ?? [db.password]) if (password) redacted = redacted.split(password).join('***');
  return redacted;
}

const HINTS: Record<string, string> = {
  ECONNREFUSED: 'connection refused: is PostgreSQL running, and listening on that address?',
  ENOTFOUND: 'no such host: check the host name in queue:',
  EAI_AGAIN: 'the host name could not be resolved now: check DNS and the host name in queue:',
  ETIMEDOUT: 'no answer in time: check the address, the firewall and the network',
  ECONNRESET: 'the connection was cut',
  '28P01': 'the password was refused: check the user and password in queue:',
  '28000': "the server refused this user or address (pg_hba.conf): check queue: and the server's pg_hba.conf",
  '3D000': 'no such database: create it (createdb) or fix the database name in queue:',
  '57P03': 'the server is starting up or shutting down; it is tried again',
  '53300': "too many connections: raise max_connections or lower the workers' concurrency",
};

/** A failure to reach or use the queue database, as a sentence naming the database, never its password. */
export function describeDbError(error: unknown, db: QueueDatabase): string {
  const e = error as { code?: string; message?: string };
  const hint = (e.code && HINTS[e.code]) ?? e.message ?? String(error);
  return redactPassword(
    `the queue database at ${db.where}: ${hint}${e.code && HINTS[e.code] && e.message ? ` (${e.message})` : ''}`,
    db,
  );
}

/** The same, as the ConfigError a program starts with (exit 2). */
export function startError(error: unknown, db: QueueDatabase): ConfigError {
  return new ConfigError(`Cannot use ${describeDbError(error, db)}.`);
}

/** Settings for every session: keepalives from the client and (per session) from the server. */
export function clientConfig(db: QueueDatabase, applicationName: string): pg.ClientConfig {
  return {
    connectionString: db.url,
    application_name: applicationName.slice(0, 63),
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    connectionTimeoutMillis: 10_000,
    // The server ends a silent peer's session after 10 + 3 × 5 s: its advisory locks go with it.
    options: '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3',
  };
}

/** A pool for short transactions (enqueue, transitions, the reaper); its errors are told, never thrown. */
export function newPool(
  pgModule: Pick<typeof pg, 'Pool' | 'Client'>,
  db: QueueDatabase,
  applicationName: string,
  onError: (message: string) => void,
  max = 8,
): pg.Pool {
  const pool = new pgModule.Pool({
    ...clientConfig(db, applicationName),
    max,
    idleTimeoutMillis: 30_000,
    ...(db.primary ? { Client: db.primary.follow(pgModule.Client) } : {}),
  });
  pool.on('error', (error) => onError(describeDbError(error, db)));
  return pool;
}

/** A session of its own (not yet connected), on the writable server of a list. */
export function newSession(pgModule: Pick<typeof pg, 'Client'>, db: QueueDatabase, applicationName: string): pg.Client {
  const Client = db.primary ? db.primary.follow(pgModule.Client) : pgModule.Client;
  return new Client(clientConfig(db, applicationName));
}

/** A small pool of its own on the queue database (no pg-boss): for what hook-server and one-off commands keep there besides jobs. */
export async function connectPool(db: QueueDatabase, applicationName: string, log: Logger, max = 2): Promise<pg.Pool> {
  const pgModule = commonJsExports<typeof pg>(await import('pg'), (m) => typeof (m as typeof pg).Pool === 'function');
  return newPool(pgModule, db, applicationName, (message) => log.warn(message), max);
}

/** Run `work` in one transaction on a client of `pool`. */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (error) {
    // A session that cannot even roll back is broken: the pool drops it instead of lending it again.
    const rolledBack = await client.query('ROLLBACK').then(
      () => true,
      () => false,
    );
    client.release(!rolledBack);
    throw error;
  }
}

/**
 * A CommonJS module's exports from its namespace: one `default` down through Node's loader, two
 * through the one-file bundle's unit require (tools/multicall.ts), which wraps the namespace again.
 */
export function commonJsExports<T>(namespace: unknown, looksRight: (m: unknown) => boolean): T {
  for (let m = namespace; m; m = (m as { default?: unknown }).default) if (looksRight(m)) return m as T;
  throw new Error('pg or pg-boss did not load as expected');
}
