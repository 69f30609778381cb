// The audit trail as hook-server and the commands use it: opened on DATA's file or, with `queue:`,
// on the database's table; each record stamped with the time and the node; old entries cut once
// an hour when `audit: keep_days:` is set, the cut recorded in the trail itself.
// The whole story: docs/audit.md.
import { peerAddress } from '../http/peer.ts';
import type { IncomingMessage } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { resolveQueue } from '../db/primary.ts';
import type { AuditEntry, NewAuditEntry } from './chain.ts';
import { AuditFile, auditFileOf } from './file-store.ts';
import { auditHeadFileOf, HeadFile } from './head.ts';
import { AuditTable } from './pg-store.ts';
import type { AuditQuery } from './query.ts';
import type { AuditRow, AuditStore, Pruned } from './store.ts';

const DAY_MS = 86_400_000;

/** What a caller records: the trail adds the time and the node. */
export type AuditRecord = Pick<NewAuditEntry, 'action' | 'actor' | 'from' | 'subject' | 'detail'>;

/** The parts of shipkit.yml the trail is opened from. */
export interface AuditConfig {
  file: string;
  data: string;
  queue?: string | string[];
  audit?: { keepDays?: number };
}

export interface AuditTrailOptions {
  log: Logger;
  /** This hook-server's name: written into each entry with `queue:`. */
  node?: string;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
}

/** The trail's store for `config`: DATA/audit/audit.jsonl, or shipkit.audit with `queue:`; its head kept in DATA. */
export async function openAuditStore(
  config: AuditConfig,
  name: string,
  { log, env }: AuditTrailOptions,
): Promise<AuditStore> {
  // The head is kept where the trail is not: beside DATA/audit/, or in DATA for the database's trail.
  const head = new HeadFile(auditHeadFileOf(config.data), log);
  if (!config.queue) return new AuditFile(auditFileOf(config.data), head);
  const db = await resolveQueue(config.queue, {
    env: env ?? process.env,
    baseDir: path.dirname(config.file),
    where: `${config.file}: queue`,
    log,
  });
  return AuditTable.open(db, name, log, head);
}

export class AuditTrail {
  readonly store: AuditStore;
  private readonly options: AuditTrailOptions & { keepDays?: number };
  private timer: NodeJS.Timeout | undefined;

  constructor(store: AuditStore, options: AuditTrailOptions & { keepDays?: number; shared?: boolean }) {
    this.store = store;
    this.options = { ...options, node: options.shared ? options.node : undefined };
  }

  static async open(config: AuditConfig, name: string, options: AuditTrailOptions): Promise<AuditTrail> {
    const store = await openAuditStore(config, name, options);
    return new AuditTrail(store, { ...options, keepDays: config.audit?.keepDays, shared: Boolean(config.queue) });
  }

  private now(): Date {
    return (this.options.now ?? (() => new Date()))();
  }

  /** On disk (or committed) before this resolves; throws when it cannot be. */
  async record(record: AuditRecord): Promise<AuditEntry> {
    const [entry] = await this.store.append([this.stamped(record)]);
    return entry;
  }

  /** The entry as it will be appended: the time now, and the node with `queue:`. */
  stamped(record: AuditRecord): NewAuditEntry {
    const { node } = this.options;
    return { at: this.now().toISOString(), ...record, ...(node ? { node } : {}) };
  }

  read(query: AuditQuery): Promise<AuditRow[]> {
    return this.store.read(query);
  }

  /** With `keep_days`: entries older than that cut now, and then every hour. */
  keepPruned(): void {
    const { keepDays } = this.options;
    if (!keepDays) return;
    const run = () => void this.prune().catch(() => undefined);
    run();
    this.timer = setInterval(run, DAY_MS / 24);
    this.timer.unref?.();
  }

  /** Entries older than `keep_days` cut, the cut recorded; a trail that does not verify is left whole, and said. */
  async prune(): Promise<Pruned> {
    const { keepDays, log } = this.options;
    if (!keepDays) return { cut: 0 };
    const now = this.now();
    try {
      const before = new Date(now.getTime() - keepDays * DAY_MS);
      const pruned = await this.store.prune(before, keepDays, now, this.options.node);
      if (pruned.cut)
        log.info(`audit: cut ${pruned.cut} entries older than ${keepDays} days (through entry ${pruned.through})`);
      return pruned;
    } catch (error) {
      log.error(`audit: nothing was cut from ${this.store.where()}: ${messageOf(error)}`);
      throw error;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.store.close();
  }
}

/** The client's address: the socket's peer (hook-server trusts no X-Forwarded-For; lib/http/peer.ts). */
export function clientOf(req: IncomingMessage): string {
  return peerAddress(req);
}

/** A status-page session, by the first characters of its id (enough to tell sessions apart, not to forge one). */
export function sessionActor(id: string): string {
  return `session ${id.slice(0, 8)}`;
}

/** The user and machine a command runs as. */
export function commandActor(): string {
  let user: string;
  try {
    user = os.userInfo().username;
  } catch {
    user = `uid ${process.getuid?.() ?? '?'}`;
  }
  return `cli ${user}@${os.hostname()}`;
}

/**
 * One entry recorded by a command run on the machine (`cli USER@HOST`, from `local`), the trail
 * opened for it and closed again; throws when it cannot be written.
 */
export async function recordByCommand(
  config: AuditConfig,
  command: string,
  record: Omit<AuditRecord, 'actor' | 'from'>,
  log: Logger,
): Promise<AuditEntry> {
  const trail = await AuditTrail.open(config, command, { log, node: os.hostname() });
  try {
    return await trail.record({ ...record, actor: commandActor(), from: 'local' });
  } finally {
    await trail.close();
  }
}
