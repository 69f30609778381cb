// PostgreSQL advisory locks shipkit takes, by name: each key is made here once, so the PL/pgSQL
// of db/migrations.ts and the TypeScript that takes the same lock cannot come to disagree.
// A key is an SQL expression (hashtextextended of 'shipkit NAME', with a value for a per-repo one).

const named = (name: string) => `hashtextextended('shipkit ${name}', 0)`;
const per = (name: string) => (value: string) => `hashtextextended('shipkit ${name} ' || ${value}, 0)`;

export const LOCKS = {
  /** One process at a time creates the tables and pg-boss's queues (jobs/pg/connect.ts). */
  setup: named('setup'),
  /** One migration at a time (db/schema.ts). */
  schema: named('schema'),
  /** The local journal copied into the database once (jobs/pg/import.ts). */
  import: named('import'),
  /** One appender of the audit trail's chain at a time (audit/pg-store.ts). */
  audit: named('audit'),
  /** Held by the leading hook-server's session (jobs/pg/leader.ts). */
  leader: named('leader'),
  /** A transaction that reads and changes a repo's jobs; `value` is the SQL holding the repo's name. */
  repo: per('repo'),
  /** Held by a worker's session while it runs the job; `value` is the SQL holding the job id. */
  job: per('job'),
} as const;
