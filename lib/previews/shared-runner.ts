// Previews with `queue:` (docs/previews.md#with-several-hook-servers): every hook-server adds the
// pull request events it takes to the database (event-table.ts); the one that leads runs the only
// preview runner and takes them in order. A node that does not lead keeps no preview on its
// machine: it tears down what it ran, and a node that starts leading makes each open one again.
import { messageOf, WorkError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Queryable } from '../db/connect.ts';
import type { PreviewControl } from './control.ts';
import type { PullRequestEvent } from './event.ts';
import {
  addEvent,
  leadingNode,
  listRecords,
  markTaken,
  nextEvent,
  openPullRequests,
  putRecords,
  sameEffect,
  type OpenPullRequest,
  type QueuedEvent,
} from './event-table.ts';
import { previewName } from './name.ts';
import type { PreviewAnswer } from './runner.ts';
import { PreviewStore, recordKey, type PreviewRecord } from './store.ts';

/** What a delivery of a pull request event is answered with: also `queued`, on a node that does not lead. */
export interface IntakeAnswer {
  name: string;
  state: PreviewAnswer['state'] | 'queued';
  reason?: string;
}

/** What the shared previews need of a runner (lib/previews/runner.ts's PreviewRunner). */
export interface RunnerLike extends PreviewControl {
  start(): Promise<void>;
  close(): Promise<void>;
  handle(event: PullRequestEvent): Promise<PreviewAnswer>;
}

export interface SharedPreviewsOptions {
  /** The queue database's pool. */
  db: Queryable;
  /** This hook-server's name (shipkit.leader's). */
  node: string;
  /** Whether this node leads now (its own count), and asked of the database. */
  leads(): boolean;
  stillLeads(): Promise<boolean>;
  /** The data folder: DATA/previews/previews.json. */
  data: string;
  /** A runner of this machine's previews, not started. */
  newRunner(): RunnerLike;
  log: Logger;
  /** How often it looks at the lead and the events (default 1 s). */
  everyMs?: number;
  /** How long after start it first decides whether it leads: the lead's first round (default 2 s). */
  settleMs?: number;
}

export class SharedPreviews implements PreviewControl {
  private readonly options: SharedPreviewsOptions;
  private runner: RunnerLike | undefined;
  private role: 'leader' | 'follower' | undefined;
  /** Role changes and the taking of events, one at a time. */
  private turn: Promise<unknown> = Promise.resolve();
  private ticking = false;
  private failing = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** On a node that does not lead: the records the leader keeps, and its name. */
  private listed: PreviewRecord[] = [];
  private leader: string | undefined;
  /** Each record as last written to the database, by repo#pr. */
  private readonly published = new Map<string, string>();
  /** The answers awaited by deliveries this node took while it leads, by event id. */
  private readonly awaited = new Map<number, IntakeAnswer | undefined>();

  constructor(options: SharedPreviewsOptions) {
    this.options = options;
  }

  /** Decides whether it leads after `settleMs`, then looks again every `everyMs`. */
  start(): void {
    const every = this.options.everyMs ?? 1_000;
    const tick = () => {
      if (this.closed) return;
      void this.round().finally(() => {
        if (!this.closed) this.timer = setTimeout(tick, every);
      });
    };
    this.timer = setTimeout(tick, this.options.settleMs ?? 2_000);
  }

  /** The event added to the table; on the leader, taken at once (in order) and the runner's answer given. */
  async handle(event: PullRequestEvent): Promise<IntakeAnswer> {
    const { id, leader } = await addEvent(this.options.db, event, this.options.node);
    if (this.runner) {
      this.awaited.set(id, undefined);
      try {
        await this.serial(() => this.takeEvents());
        const answer = this.awaited.get(id);
        if (answer) return answer;
      } finally {
        this.awaited.delete(id);
      }
    }
    const by =
      leader && leader !== this.options.node ? `the leading hook-server, ${leader}` : 'the leading hook-server';
    return {
      name: previewName(event.pr),
      state: 'queued',
      reason: `previews are run by ${by}, which takes this event in within seconds`,
    };
  }

  list(): PreviewRecord[] {
    return this.runner ? this.runner.list() : this.listed;
  }

  approve(repo: string, pr: number, by: string): Promise<PreviewRecord> {
    return this.leading().approve(repo, pr, by);
  }

  rebuild(repo: string, pr: number): Promise<PreviewRecord> {
    return this.leading().rebuild(repo, pr);
  }

  remove(repo: string, pr: number, why: string): Promise<PreviewRecord> {
    return this.leading().remove(repo, pr, why);
  }

  /** The log is on the node that built the preview: the leader's. */
  log(repo: string, pr: number): Promise<string> {
    return this.leading().log(repo, pr);
  }

  /** Stops looking; a runner is closed, and when the lead went elsewhere (SIGTERM) its previews go too. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.serial(async () => {
      if (!this.runner) return;
      if (this.options.leads()) return this.runner.close();
      await this.follow();
    });
  }

  // ---------------------------------------------------------------------------------------------

  private leading(): RunnerLike {
    if (this.runner) return this.runner;
    throw new WorkError(
      `Previews are run by the leading hook-server${this.leader ? ` (${this.leader})` : ''}, not by ` +
        `${this.options.node}: ask it (shipkit previews --url URL).`,
    );
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.turn.then(work);
    this.turn = next.catch(() => undefined);
    return next;
  }

  /** One look: lead or follow as the lead says, then take the events (leader) or read the records (follower). */
  private async round(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.serial(async () => {
        if (this.closed) return;
        const leads = this.options.leads();
        if (leads && this.role !== 'leader') await this.lead();
        else if (!leads && this.role !== 'follower') await this.follow();
        if (this.runner) {
          await this.takeEvents();
          await this.publish();
        } else {
          this.listed = await listRecords(this.options.db);
          this.leader = await leadingNode(this.options.db);
        }
      });
      this.failing = false;
    } catch (error) {
      // Said once while it lasts (the database away): not every second.
      if (!this.failing) this.options.log.warn(`previews: ${messageOf(error)}; tried again every second`);
      this.failing = true;
    } finally {
      this.ticking = false;
    }
  }

  /**
   * This node starts leading: what the database keeps of each open pull request is carried into
   * DATA (its approval, its comment), the runner starts (and sweeps), previews of pull requests not
   * open any more go, and each open one not already serving its last head here is made again.
   */
  private async lead(): Promise<void> {
    const open = await openPullRequests(this.options.db);
    await adoptRecords(this.options.data, open);
    const runner = this.options.newRunner();
    await runner.start();
    this.runner = runner;
    this.role = 'leader';
    this.published.clear();
    const wanted = new Set(open.map((p) => recordKey(p.repo, p.pr)));
    for (const r of runner.list())
      if (r.state !== 'torn down' && !wanted.has(recordKey(r.repo, r.pr)))
        await runner.remove(r.repo, r.pr, 'its pull request is not open').catch((e) => this.warn(r, e));
    let made = 0;
    for (const p of open) {
      const here = runner.list().find((r) => r.repo === p.repo && r.pr === p.pr);
      if (!p.lastEvent || (here && here.state !== 'torn down' && here.head === p.lastEvent.head.sha)) continue;
      made++;
      await runner.handle(p.lastEvent).catch((e) => this.warn(p, e));
    }
    this.options.log.info(`${this.options.node} runs the previews`, { open: open.length, made });
  }

  /** This node does not lead (at start, or it lost the lead): no preview stays on its machine. */
  private async follow(): Promise<void> {
    const runner = this.runner;
    this.runner = undefined;
    this.role = 'follower';
    if (runner) {
      this.options.log.warn(
        `${this.options.node} no longer leads: its previews are torn down here and made again by the leading node`,
      );
      await runner.close();
    }
    await standDown(this.options.data, this.options.newRunner, 'another hook-server runs the previews');
  }

  /** The events not taken yet, oldest first, while this node still leads. */
  private async takeEvents(): Promise<void> {
    for (let next = await nextEvent(this.options.db); next && this.runner; next = await nextEvent(this.options.db)) {
      if (!(await this.options.stillLeads())) return;
      const answer = await this.take(next, this.runner);
      if (this.awaited.has(next.id)) this.awaited.set(next.id, answer);
    }
  }

  /** One event handed to the runner, unless it would do nothing its pull request's last event did not. */
  private async take({ id, event, last }: QueuedEvent, runner: RunnerLike): Promise<IntakeAnswer> {
    const name = previewName(event.pr);
    if (last && sameEffect(last, event)) {
      await markTaken(this.options.db, id);
      const record = runner.list().find((r) => r.repo === event.repo && r.pr === event.pr);
      return { name, state: record?.state ?? 'ignored', reason: 'this event was taken before' };
    }
    let answer: IntakeAnswer;
    try {
      answer = await runner.handle(event);
    } catch (error) {
      this.warn(event, error);
      answer = { name, state: 'failed', reason: messageOf(error) };
    }
    const closes = event.action === 'closed' || event.action === 'merged';
    const counted = closes || (answer.state !== 'ignored' && answer.state !== 'failed');
    await markTaken(this.options.db, id, counted ? { open: !closes } : undefined);
    return answer;
  }

  /** The runner's records that changed since the last look, written to the database (GET /previews elsewhere, a new leader). */
  private async publish(): Promise<void> {
    const changed = this.runner!.list().filter(
      (r) => this.published.get(recordKey(r.repo, r.pr)) !== JSON.stringify(r),
    );
    await putRecords(this.options.db, changed, this.options.node);
    for (const r of changed) this.published.set(recordKey(r.repo, r.pr), JSON.stringify(r));
  }

  private warn(where: { repo: string; pr: number }, error: unknown): void {
    this.options.log.warn(`previews: ${where.repo}#${where.pr}: ${messageOf(error)}`);
  }
}

/**
 * No preview left on this machine: each open record marked torn down in DATA/previews/previews.json,
 * then a runner's start-up sweep removes every route and folder (with its launchfit) no open one owns.
 */
export async function standDown(data: string, newRunner: () => RunnerLike, why: string): Promise<void> {
  const store = await new PreviewStore(data).load();
  const since = new Date().toISOString();
  for (const { live: _gone, ...record } of store.open())
    await store.put({ ...record, state: 'torn down', reason: why, since });
  const sweeper = newRunner();
  await sweeper.start();
  await sweeper.close();
}

/**
 * Before a runner starts on the new leader: each open pull request's record as the last leader kept
 * it, written into DATA where this machine has none open, torn down here (so its approval and its
 * comment's id carry over, and the runner makes it again).
 */
export async function adoptRecords(data: string, open: OpenPullRequest[]): Promise<void> {
  const store = await new PreviewStore(data).load();
  for (const { record } of open) {
    if (!record) continue;
    const here = store.get(record.repo, record.pr);
    if (here && here.state !== 'torn down') continue;
    const { live: _gone, ...rest } = record;
    await store.put({ ...rest, state: 'torn down', reason: 'run by another hook-server before' });
  }
}
