// What hook-server's read side (lib/web/) needs of the rest: the jobs, a log reader and config
// bits, in a type web owns. hook-server builds one from its queue; the pages and the JSON API read
// only through it, so web knows nothing of how jobs are stored or run.
import type { FleetReleases, FleetReleasesOptions } from '../release/rollout/fleet-view.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Job } from '../jobs/job.ts';
import type { DeliveryOutcomes } from '../notify/outcomes.ts';
import type { Logger } from '../core/log.ts';
import type { EndedSessions } from './ended-sessions.ts';
import type { AuditQuery } from '../audit/query.ts';
import type { AuditRow } from '../audit/store.ts';
import type { AuditRecord } from '../audit/trail.ts';
import type { PreviewRecord } from '../previews/store.ts';
import type { UiUsers } from './ui-users.ts';

/** What the read side needs of hook-server: its jobs, a log reader, config bits. */
export interface ReadSources {
  ui: 'token' | 'public' | 'off';
  /** The read token (`token:`), resolved; without it the read API, /metrics and logins are off. */
  token?: string;
  /** `public_url:`: an https one makes the session cookie `Secure`; its path (a proxy's prefix) is the pages' base. */
  publicUrl?: string;
  /** The config file hook-server runs with: the status page of an empty instance says where to add repos. */
  configFile?: string;
  /** DATA: logged-out and ended status-page sessions are kept in a file there (lib/web/ended-sessions.ts); without it, in memory only. */
  dataDir?: string;
  /** hook-server's log: what goes wrong with that file is said there. */
  log?: Logger;
  /** Every job the journal holds. */
  jobs(): Iterable<Job>;
  /** Newest first (lib/jobs/job-queue.ts list). */
  list(options: { limit?: number; repo?: string; state?: string }): Job[];
  get(id: string): Job | undefined;
  /** A valid job id (lib/jobs/job-id.ts JOB_ID_PATTERN). */
  isJobId(id: string): boolean;
  /** The job's log: the build's own section as text, or the file its process printed to. */
  readLog(job: Job): Promise<LogSource | undefined>;
  /** Configured repos and their default branch (undefined: not configured). */
  branchOf(repo: string): string | undefined;
  /** A repo cloned with credentials (`token:` or `ssh_key:`): with `ui: token` its badge is for signed-in viewers only. */
  isPrivate?(repo: string): boolean;
  repos(): string[];
  /** `/metrics` text. */
  renderMetrics(): string;
  deliveries: DeliveryOutcomes;
  /**
   * `GET /jobs/ID/log?follow=1` (text/event-stream, lib/web/log-follow.ts), when present; called
   * once the request is known to be authorised for logs.
   */
  followLog?: (req: IncomingMessage, res: ServerResponse, job: Job) => Promise<void> | void;
  now?: () => Date;
  /**
   * With several hook-servers on one database: the ended sessions of this node (DATA's file)
   * joined with those every node ended (lib/web/ended-sessions-db.ts), so a logout on one ends
   * the session on all.
   */
  shareEnded?: (local: EndedSessions) => EndedSessions;
  /** The apps hosts report to (`fleet:`), for the status page's Fleet section. */
  fleet?(): FleetView[];
  /** The control plane's audit trail (lib/audit/): logins and logouts go in; GET /audit and the Audit page read it. */
  audit?: {
    record(entry: AuditRecord): Promise<unknown>;
    read(query: AuditQuery): Promise<AuditRow[]>;
  };
  /** One app of `fleet:`'s releases (its ledger joined with its hosts), for the Releases view; undefined for an app not there. */
  releases?(app: string, page: FleetReleasesOptions): Promise<FleetReleases> | undefined;
  /** The previews of pull requests (the runner's PreviewControl list), for the status page's Previews section; absent without `previews:`. */
  previews?(): PreviewRecord[];
  /** Each app of `apps:` with its environments (GET /environments, the Environments section); absent without apps. Never throws. */
  environments?(): Promise<EnvironmentsView>;
  /** Named status-page users (`ui_users:`), who log in with a password; absent without it. */
  users?: UiUsers;
  /** A named user's approval of the release waiting (POST /approve); absent without `ui_users:`. Never throws. */
  approve?(request: PageApprovalRequest): Promise<PageApprovalAnswer>;
}

/** What the Approve button's form names: the release as the page showed it, and who pressed it. */
export interface PageApprovalRequest {
  app: string;
  env: string;
  version: string;
  sha256: string;
  user: string;
}

export type PageApprovalAnswer =
  | {
      approved: {
        app: string;
        env: string;
        version: string;
        sha256: string;
        expires: string;
        given: number;
        required: number;
      };
    }
  | { refused: string; status: 403 | 409 | 503 };

/** Each app's environments as GET /environments answers and the status page shows them (hook-server reads their DESTs). */
export interface EnvironmentsView {
  /** When the DESTs were read (ISO). */
  read: string;
  apps: Array<{ app: string; environments: EnvironmentView[] }>;
}

export interface EnvironmentView {
  name: string;
  /** Its DEST, as the config gives it. */
  to: string;
  /** The environment its releases come from (`from:`, else the one above). */
  from: string | null;
  /** VERSION at DEST; null when none is there (or it could not be read: `error`). */
  current: { version: string; rollout: number; seq: number | null } | null;
  /** Why VERSION could not be read or parsed. */
  error: string | null;
  /** The deploy windows now; `until`: when that changes, if within 14 days (ISO). */
  window: { open: boolean; reason: string | null; until: string | null };
  /** Approvals it asks for (`approvals: required:`); null without `approvals:`. */
  approvals: number | null;
  /** The source's current release when it is not this one's and approvals are asked; else null. */
  waits: WaitingRelease | null;
}

/** A release waiting at the source environment for this one's approvals. */
export interface WaitingRelease {
  version: string;
  /** The tarball's sha256 as the source's VERSION names it: an approval is bound to it. */
  sha256: string | null;
  from: string;
  required: number;
  /** The approvers (uid) whose approval counts now. */
  approved: string[];
  /** The approvers (uid) without one that counts. */
  awaited: string[];
  /** One line per approval present that does not count, saying why. */
  refused: string[];
  /** Status-page users who may approve it (`ui:NAME` in `approvals: from:`). */
  users: string[];
  /** Why the approvals could not be counted (a key file, DEST, a VERSION without SHA256). */
  error: string | null;
}

/** One app's fleet as the status page shows it (hook-server builds it from its fleet registry). */
export interface FleetView {
  app: string;
  hosts: number;
  /** Hosts per version of their latest report and its result. */
  tally: Array<{ version: string; result: string; hosts: number }>;
  rollout: {
    version: string;
    step: number;
    steps: number[];
    percent: number;
    state: string;
    reason: string;
    at: string;
  } | null;
  /** The latest failed, rolled back or skipped reports, newest first. */
  failures: Array<{ host: string; version: string; result: string; reason: string; at: number }>;
  /** Hosts whose claimed bucket is not the one their id gives. */
  liars: number;
}

export type { FleetReleases };

export type LogSource = { text: string } | { file: string; size: number };

export type Refuse = (status: number, message: string, detail?: string, headers?: Record<string, string>) => void;
