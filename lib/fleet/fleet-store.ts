// hook-server's fleet registry on disk (issue 23, DESIGN §8): DATA/fleet/fleet.log, an append-only
// file of host reports and rollout states, synced before a caller is told a write is done (the
// 202 of POST /fleet/reports). Writes that arrive while a flush is on disk go together in the next
// one (group commit: one fdatasync for a burst of reports from a fleet). Each line carries a
// checksum, so a line torn by a crash is cut off on replay; a write that failed (full disk) is cut
// back and changes nothing in memory. The file is rewritten (temp + rename) once it holds mostly
// superseded lines. One entry per host (its latest report, report-registry's `supersedes`) and
// one rollout per app are kept in memory for GET /fleet/APP, the status page and /metrics.
import { createHash } from 'node:crypto';
import { open, readFile, truncate, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, ensureDir, syncDir } from '../core/fs.ts';
import { supersedes, type HostEntry, type RolloutRecord } from './report-registry.ts';

type LogLine = { kind: 'report'; app: string; entry: HostEntry } | { kind: 'rollout'; app: string; rollout: RolloutRecord };

interface Pending {
  lines: LogLine[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

export interface FleetStoreOptions {
  /** Told how long each flush's fdatasync took, in seconds. */
  onSync?: (seconds: number) => void;
  /** Told of a rewrite that failed (the file stays long; appends go on). */
  onCompactError?: (error: Error) => void;
}

export function fleetLogFile(dataDir: string): string {
  return path.join(dataDir, 'fleet', 'fleet.log');
}

function checksum(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

function encode(line: LogLine): string {
  const json = JSON.stringify(line);
  return `${checksum(json)} ${json}\n`;
}

function decode(line: string): LogLine | undefined {
  if (line.indexOf(' ') !== 8 || checksum(line.slice(9)) !== line.slice(0, 8)) return undefined;
  try {
    const value = JSON.parse(line.slice(9)) as LogLine;
    return (value.kind === 'report' && typeof value.entry?.host === 'string') || (value.kind === 'rollout' && typeof value.rollout === 'object') ? value : undefined;
  } catch {
    return undefined;
  }
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return '';
  }
}

export class FleetStore {
  readonly file: string;
  /** Lines dropped on replay (checksum or JSON wrong, or a torn last line). */
  readonly damaged: number;
  private readonly hostsByApp = new Map<string, Map<string, HostEntry>>();
  private readonly rollouts = new Map<string, RolloutRecord>();
  private handle: FileHandle;
  private bytes = 0;
  private lines = 0;
  private tornTail = false;
  private pending: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  private flushes = 0;

  private readonly options: FleetStoreOptions;

  private constructor(file: string, handle: FileHandle, options: FleetStoreOptions, damaged: number) {
    this.file = file;
    this.options = options;
    this.handle = handle;
    this.damaged = damaged;
  }

  /** Replay DATA/fleet/fleet.log (cutting off a torn tail) and open it for appending. */
  static async open(dataDir: string, options: FleetStoreOptions = {}): Promise<FleetStore> {
    const file = fleetLogFile(dataDir);
    await ensureDir(path.dirname(file), 0o700);
    const text = await readText(file);
    const parsed: LogLine[] = [];
    let damaged = 0;
    let goodBytes = 0;
    let offset = 0;
    while (offset < text.length) {
      const end = text.indexOf('\n', offset);
      if (end === -1) { damaged++; break; } // never acknowledged: its write did not complete
      const line = decode(text.slice(offset, end));
      offset = end + 1;
      if (line) parsed.push(line);
      else damaged++;
      goodBytes = Buffer.byteLength(text.slice(0, offset));
    }
    if (goodBytes < Buffer.byteLength(text)) await truncate(file, goodBytes);
    const handle = await open(file, 'a', 0o600);
    await syncDir(path.dirname(file));
    const store = new FleetStore(file, handle, options, damaged);
    for (const line of parsed) store.apply(line);
    store.bytes = goodBytes;
    store.lines = parsed.length;
    if (damaged > 0 || store.shouldCompact()) await store.compact();
    return store;
  }

  /** Each host's latest report for `app`, in host order. */
  hosts(app: string): HostEntry[] {
    return [...(this.hostsByApp.get(app)?.values() ?? [])].sort((a, b) => (a.host < b.host ? -1 : 1));
  }

  /** Hosts per version and result, for /metrics and the status page. */
  tally(app: string): Array<{ version: string; result: string; hosts: number }> {
    const counts = new Map<string, { version: string; result: string; hosts: number }>();
    for (const entry of this.hostsByApp.get(app)?.values() ?? []) {
      const key = `${entry.version}\n${entry.result}`;
      const row = counts.get(key) ?? { version: entry.version, result: entry.result, hosts: 0 };
      row.hosts++;
      counts.set(key, row);
    }
    return [...counts.values()].sort((a, b) => (a.version === b.version ? a.result.localeCompare(b.result) : a.version.localeCompare(b.version)));
  }

  rollout(app: string): RolloutRecord | null {
    return this.rollouts.get(app) ?? null;
  }

  /** Durable once it resolves; `false` when the host already has a later report (nothing written). */
  async addReport(app: string, entry: HostEntry): Promise<boolean> {
    if (!supersedes(entry, this.hostsByApp.get(app)?.get(entry.host))) return false;
    await this.write({ kind: 'report', app, entry });
    return true;
  }

  setRollout(app: string, rollout: RolloutRecord): Promise<void> {
    return this.write({ kind: 'rollout', app, rollout });
  }

  stats(): { lines: number; bytes: number; flushes: number } {
    return { lines: this.lines, bytes: this.bytes, flushes: this.flushes };
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.handle.close();
  }

  private apply(line: LogLine): void {
    if (line.kind === 'rollout') return void this.rollouts.set(line.app, line.rollout);
    const hosts = this.hostsByApp.get(line.app) ?? new Map<string, HostEntry>();
    this.hostsByApp.set(line.app, hosts);
    // Two reports of one host in one flush: the rule decides, as it does on replay.
    if (supersedes(line.entry, hosts.get(line.entry.host))) hosts.set(line.entry.host, line.entry);
  }

  private write(line: LogLine): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the fleet store is closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ lines: [line], resolve, reject });
      this.flushing ??= this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length) {
      const batch = this.pending;
      this.pending = [];
      await this.flush(batch);
      if (this.shouldCompact() && !this.tornTail) await this.compact().catch((error) => this.options.onCompactError?.(error as Error));
    }
    this.flushing = undefined;
  }

  /** One group commit: written and synced, then applied in memory; or every write of it refused. */
  private async flush(batch: Pending[]): Promise<void> {
    const data = Buffer.from(batch.map((p) => p.lines.map(encode).join('')).join(''));
    try {
      // A failed write may have left part of a line: cut back first, or the next line would be
      // glued to it and dropped on replay although it was acknowledged.
      if (this.tornTail) await this.cutBack();
      let written = 0;
      while (written < data.length) written += (await this.handle.write(data, written)).bytesWritten;
      const started = performance.now();
      await this.handle.datasync();
      this.options.onSync?.((performance.now() - started) / 1000);
      this.bytes += data.length;
      this.flushes++;
      for (const p of batch) {
        for (const line of p.lines) this.apply(line);
        this.lines += p.lines.length;
        p.resolve();
      }
    } catch (error) {
      this.tornTail = true;
      await this.cutBack().catch(() => { /* tried again before the next write */ });
      for (const p of batch) p.reject(error);
    }
  }

  private async cutBack(): Promise<void> {
    await this.handle.truncate(this.bytes);
    await this.handle.datasync();
    this.tornTail = false;
  }

  private liveLines(): number {
    let n = this.rollouts.size;
    for (const hosts of this.hostsByApp.values()) n += hosts.size;
    return n;
  }

  private shouldCompact(): boolean {
    return this.lines > 2 * this.liveLines() + 1000;
  }

  /** The live state alone, through temp file + rename. */
  private async compact(): Promise<void> {
    const lines: LogLine[] = [];
    for (const [app, hosts] of this.hostsByApp) for (const entry of hosts.values()) lines.push({ kind: 'report', app, entry });
    for (const [app, rollout] of this.rollouts) lines.push({ kind: 'rollout', app, rollout });
    const content = lines.map(encode).join('');
    await atomicWriteFile(this.file, content, { mode: 0o600 });
    await this.handle.close();
    this.handle = await open(this.file, 'a', 0o600);
    this.bytes = Buffer.byteLength(content);
    this.lines = lines.length;
  }
}
