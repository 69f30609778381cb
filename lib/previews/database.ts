// A preview's own PostgreSQL database (`previews.database`, docs/previews.md): named from its
// repo and pull request under a prefix of ours, made from the template when missing (a push keeps
// its data), dropped with the preview, and listed so the sweep finds those no open preview owns.
// The app's DATABASE_URL is the configured URL on that database; no message holds the password.
import { createHash } from 'node:crypto';
import path from 'node:path';
import type pg from 'pg';
import type { PreviewsConfig } from '../config/previews.ts';
import { ValidationError, WorkError, messageOf } from '../core/errors.ts';
import { resolveSecret } from '../core/secrets.ts';
import { formatKeyPath, type ConfigDoc } from '../core/yaml-config.ts';
import { clientConfig, commonJsExports, redactPassword, resolveQueueUrl, type QueueDatabase } from '../db/connect.ts';
import { previewName } from './name.ts';

/** Every preview database's name starts so; the sweep drops no other database. */
export const PREVIEW_DATABASE_PREFIX = 'shipkit_preview_';
/** PostgreSQL's identifiers are 63 bytes at most (NAMEDATALEN - 1); longer ones are cut silently. */
const MAX_IDENTIFIER = 63;
/** Room for the repo in a name: 63 less the prefix and `_pr_999999999`. */
const MAX_REPO_PART = MAX_IDENTIFIER - PREVIEW_DATABASE_PREFIX.length - '_pr_'.length - 9;
const HASH_DIGITS = 10;
const OURS = /^shipkit_preview_[a-z0-9_]{1,47}$/;

/** A repo's folder name (`octo__site`) as it stands in its previews' database names. */
function repoPart(repoFolder: string): string {
  const clean = repoFolder.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  if (clean === repoFolder && clean.length > 0 && clean.length <= MAX_REPO_PART) return clean;
  // Lower-cased, changed or too long: a readable start and a digest of the whole, so two repos never share.
  const digest = createHash('sha256').update(repoFolder).digest('hex').slice(0, HASH_DIGITS);
  return `${clean.slice(0, MAX_REPO_PART - HASH_DIGITS - 1)}_${digest}`;
}

/** `shipkit_preview_octo__site_pr_42`: lower case, [a-z0-9_] only, at most 63 bytes. */
export function previewDatabaseName(repoFolder: string, pr: number): string {
  previewName(pr);
  return `${PREVIEW_DATABASE_PREFIX}${repoPart(repoFolder)}_pr_${pr}`;
}

/** The pull request a database of this repo's previews is for; undefined for any other database. */
export function prOfPreviewDatabase(repoFolder: string, database: string): number | undefined {
  const start = `${PREVIEW_DATABASE_PREFIX}${repoPart(repoFolder)}_pr_`;
  if (!database.startsWith(start)) return undefined;
  const digits = database.slice(start.length);
  return /^[1-9][0-9]{0,8}$/.test(digits) ? Number(digits) : undefined;
}

/** The app's DATABASE_URL: the configured URL with its database replaced (user, password, host, port, query kept). */
export function previewDatabaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  // libpq reads a database from the query too, where it would win over the path.
  if (url.searchParams.has('dbname') || url.searchParams.has('database')) {
    url.searchParams.delete('dbname');
    url.searchParams.delete('database');
  }
  return url.toString();
}

/** `previews.database.url` resolved now (env:/file: read here): the server, named in messages without its password. */
export async function resolvePreviewDatabaseServer(
  doc: ConfigDoc,
  previews: Pick<PreviewsConfig, 'database' | 'keyPath'>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<QueueDatabase> {
  const keyPath = [...previews.keyPath, 'database', 'url'];
  const where = `${doc.locate(keyPath)}: ${formatKeyPath(keyPath)}`;
  const text = await resolveSecret(previews.database!.url, { env, baseDir: path.dirname(doc.file), where });
  let protocol: string | undefined;
  try {
    protocol = new URL(text).protocol;
  } catch {
    // not a URL: said below, without the text, which may be a password
  }
  if (protocol !== 'postgres:' && protocol !== 'postgresql:')
    throw new ValidationError(
      `${where}: not a PostgreSQL URL; give postgres://USER:PASSWORD@HOST[:PORT]/DATABASE of a role that may create databases.`,
    );
  return resolveQueueUrl(text, { where });
}

/** Makes `database` (from `template`) unless it exists; says which. */
export async function createPreviewDatabase(
  server: QueueDatabase,
  database: string,
  template?: string,
): Promise<'created' | 'kept'> {
  checkOurs(database);
  return withClient(server, `create the preview database ${database}`, template, async (client) => {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount) return 'kept';
    const from = template ? ` TEMPLATE ${client.escapeIdentifier(template)}` : '';
    try {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}${from}`);
    } catch (error) {
      // Made meanwhile by another session.
      if ((error as { code?: string }).code === '42P04') return 'kept';
      throw error;
    }
    return 'created';
  });
}

/** Drops `database` and ends its sessions; false when there was none. */
export async function dropPreviewDatabase(server: QueueDatabase, database: string): Promise<boolean> {
  checkOurs(database);
  return withClient(server, `drop the preview database ${database}`, undefined, async (client) => {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!found.rowCount) return false;
    const version = Number((await client.query('SHOW server_version_num')).rows[0].server_version_num);
    for (const statement of dropStatements(client.escapeIdentifier(database), database, version))
      await client.query(statement.text, statement.values);
    return true;
  });
}

/** Every database on the server whose name has our prefix, in name order. */
export function listPreviewDatabases(server: QueueDatabase): Promise<string[]> {
  return withClient(server, 'list the preview databases', undefined, async (client) => {
    const { rows } = await client.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE left(datname, $1) = $2 ORDER BY datname',
      [PREVIEW_DATABASE_PREFIX.length, PREVIEW_DATABASE_PREFIX],
    );
    return rows.map((r) => r.datname);
  });
}

/**
 * What drops a database that may still have sessions: `WITH (FORCE)` from PostgreSQL 13; before,
 * its sessions ended first (one that connects again in between makes the DROP fail, and the sweep
 * tries again).
 */
export function dropStatements(quoted: string, database: string, serverVersion: number): pg.QueryConfig[] {
  if (serverVersion >= 130000) return [{ text: `DROP DATABASE IF EXISTS ${quoted} WITH (FORCE)` }];
  return [
    {
      text: 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      values: [database],
    },
    { text: `DROP DATABASE IF EXISTS ${quoted}` },
  ];
}

/** Refuses a name that is not one of ours: nothing here drops or makes another database. */
function checkOurs(database: string): void {
  if (!OURS.test(database))
    throw new ValidationError(
      `Invalid preview database name ${JSON.stringify(database.slice(0, 80))}: it must be ${PREVIEW_DATABASE_PREFIX} and [a-z0-9_], 63 bytes at most.`,
    );
}

const HINTS: Record<string, string> = {
  ECONNREFUSED: 'connection refused: is PostgreSQL running, and listening on that address?',
  ENOTFOUND: 'no such host: check the host in previews.database.url',
  EAI_AGAIN: 'the host name could not be resolved now: check DNS and the host in previews.database.url',
  ETIMEDOUT: 'no answer in time: check the address, the firewall and the network',
  ECONNRESET: 'the connection was cut',
  '28P01': 'the password was refused: check the user and password in previews.database.url',
  '28000': "the server refused this user or address: check previews.database.url and the server's pg_hba.conf",
  '3D000': 'no such database: previews.database.url names one to connect to first (postgres will do)',
  '42501': 'the role may not create or drop databases: give it CREATEDB (ALTER ROLE … CREATEDB) or use one that has it',
  '55006': 'the template has sessions: PostgreSQL copies a database only when no one is connected to it',
  '53300': 'too many connections: raise max_connections or close some',
};

/** One short session on the server's URL; a failure is a WorkError naming the server and what was done, never the password. */
async function withClient<T>(
  server: QueueDatabase,
  doing: string,
  template: string | undefined,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const pgModule = commonJsExports<typeof pg>(await import('pg'), (m) => typeof (m as typeof pg).Client === 'function');
  const client = new pgModule.Client(clientConfig(server, 'shipkit previews'));
  // A session cut while idle: the query under way fails and says so.
  client.on('error', () => {});
  let connected = false;
  try {
    await client.connect();
    connected = true;
    return await work(client);
  } catch (error) {
    const e = error as { code?: string; message?: string };
    let hint = (e.code && HINTS[e.code]) || messageOf(error);
    if (connected && template && e.code === '3D000')
      hint = `the template database ${template} does not exist: create it, or fix previews.database.template`;
    const detail = hint !== e.message && e.message ? ` (${e.message})` : '';
    // No `cause`: the driver's error goes no further than these words, which are redacted.
    throw new WorkError(redactPassword(`Cannot ${doing} on ${server.where}: ${hint}${detail}.`, server));
  } finally {
    await client.end().catch(() => {});
  }
}
