// The previews hook-server knows of, one record per (repo, pull request), kept in
// DATA/previews/previews.json (written whole through a temp file and a rename after each change).
// hook-server is its one writer; `shipkit previews list|show` read it. Torn-down records are kept
// (the newest TORN_DOWN_KEPT) so a reopened pull request and the list can say what happened.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, ensureDir } from '../core/fs.ts';
import { ValidationError, messageOf } from '../core/errors.ts';
import { repoNameProblem } from '../core/names.ts';
import { previewName } from './name.ts';

export const PREVIEW_STATES = ['building', 'live', 'waiting for approval', 'failed', 'torn down'] as const;
export type PreviewState = (typeof PREVIEW_STATES)[number];

export interface PreviewRecord {
  repo: string;
  pr: number;
  /** pr-N, from the number alone. */
  name: string;
  /** The newest head commit seen for the pull request (a full SHA). */
  head: string;
  /** The head's branch and repository, as the forge said (display only). */
  headRef: string;
  headRepo: string;
  cloneUrl: string;
  fromFork: boolean;
  author?: string;
  association?: string;
  title: string;
  /** The pull request's page on the forge. */
  prUrl: string;
  state: PreviewState;
  /** When the state last changed (ISO). */
  since: string;
  /** The last push (or opening): what `ttl` counts from (ISO). */
  pushed: string;
  /** The head SHA an approval was given for, and by whom. */
  approved?: { sha: string; by: string };
  /** What serves now: the commit, the port its launchfit listens on. */
  live?: { sha: string; port: number };
  /** The preview's stable URL. */
  url?: string;
  /** Why it failed, waits or was torn down; one sentence. */
  reason?: string;
  /** The build job of the head (its log). */
  job?: string;
  /** How many times the kernel has killed its app for its memory (limits.memory). */
  oomKills?: number;
  /** The port its launchfit was last given (kept across a restart before it is live). */
  port?: number;
  /** Its own uid (hook-server as root, no previews.user): kept while it is open (user.ts). */
  uid?: number;
  /** The forge's id of the one comment shipkit keeps on the pull request. */
  commentId?: string;
}

const TORN_DOWN_KEPT = 200;

export function previewsFolder(data: string): string {
  return path.join(data, 'previews');
}

export const recordKey = (repo: string, pr: number) => `${repo}#${pr}`;

/** `owner/name#42` → { repo, pr }; a ValidationError that says what a reference looks like. */
export function parsePreviewRef(text: string): { repo: string; pr: number } {
  const m = /^([^#]+)#([1-9][0-9]{0,8})$/.exec(text);
  if (!m || repoNameProblem(m[1]))
    throw new ValidationError(
      `Invalid preview ${JSON.stringify(text.slice(0, 80))}: give REPO#N, such as octo/site#42.`,
    );
  return { repo: m[1], pr: Number(m[2]) };
}

export class PreviewStore {
  readonly file: string;
  private readonly records = new Map<string, PreviewRecord>();
  private writing: Promise<void> = Promise.resolve();

  constructor(data: string) {
    this.file = path.join(previewsFolder(data), 'previews.json');
  }

  /** Reads the file; a missing one is an empty store, a damaged one an error naming it. */
  async load(): Promise<this> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return this;
      throw error;
    }
    let parsed: { previews?: PreviewRecord[] };
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new ValidationError(`${this.file} is not JSON (${messageOf(error)}); move it aside to start over.`);
    }
    this.records.clear();
    for (const r of parsed.previews ?? []) {
      if (typeof r?.repo !== 'string' || !Number.isSafeInteger(r.pr) || r.name !== previewName(r.pr)) continue;
      this.records.set(recordKey(r.repo, r.pr), r);
    }
    return this;
  }

  get(repo: string, pr: number): PreviewRecord | undefined {
    return this.records.get(recordKey(repo, pr));
  }

  /** Every record, newest change first. */
  list(): PreviewRecord[] {
    return [...this.records.values()].sort((a, b) => b.since.localeCompare(a.since));
  }

  /** The previews that hold (or are about to hold) a process, a route or a folder: all but torn down. */
  open(repo?: string): PreviewRecord[] {
    return this.list().filter((r) => r.state !== 'torn down' && (repo === undefined || r.repo === repo));
  }

  /** Stores `record` (replacing the one of its repo and number) and writes the file. */
  async put(record: PreviewRecord): Promise<void> {
    this.records.set(recordKey(record.repo, record.pr), { ...record });
    await this.save();
  }

  private save(): Promise<void> {
    const torn = this.list().filter((r) => r.state === 'torn down');
    for (const old of torn.slice(TORN_DOWN_KEPT)) this.records.delete(recordKey(old.repo, old.pr));
    const text = JSON.stringify({ version: 1, previews: this.list() }, null, 2) + '\n';
    // One write at a time, in order: the last one holds the last state.
    this.writing = this.writing.then(async () => {
      await ensureDir(path.dirname(this.file));
      await atomicWriteFile(this.file, text, { mode: 0o600 });
    });
    return this.writing;
  }
}
