// Types shared by the upload back ends (rsync, S3, git) and the target parser in index.ts.
import type { Logger } from '../../core/log.ts';

/** The part of lib/core/log.ts's Logger the upload code uses. */
export type UploadLog = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

export interface RsyncTarget {
  kind: 'rsync';
  user?: string;
  host: string;
  /** From `rsync://host:PORT/…`; the `port` option wins. */
  port?: number;
  path: string;
}

export interface S3Target {
  kind: 's3';
  bucket: string;
  /** '' or ending with '/'. */
  prefix: string;
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
}

export interface GitTarget {
  kind: 'git';
  remote: string;
  branch: string;
}

export type Target = RsyncTarget | S3Target | GitTarget;

/** How an upload is done; which fields matter depends on the target. */
export interface UploadOptions {
  /** The folder whose contents are uploaded (absolute, already checked to exist). */
  from: string;
  log: UploadLog;
  /** Remove remote files that are not in `from` (rsync, S3; git always mirrors the folder). */
  delete?: boolean;
  dryRun?: boolean;
  /** ssh (rsync, git over ssh): private key file, port, known_hosts file. */
  sshKey?: string;
  port?: number;
  knownHosts?: string;
  /** S3: Cache-Control for every object. */
  cacheControl?: string;
  /** S3: objects transferred at once (default 8). */
  concurrency?: number;
  /** S3: files at least this big use multipart upload (default 16 MiB); parts are `partSize` (default 8 MiB). */
  multipartThreshold?: number;
  partSize?: number;
  /** git: the commit the folder was built from, named in the deploy commit's message. */
  sourceSha?: string;
  /** git: the commit message (default names the source commit). */
  message?: string;
  /**
   * Upload only these files (paths below `from`), in this order, and nothing else: no delete,
   * no other files. Used by `release publish` (payload first, VERSION last).
   */
  only?: string[];
  /** Environment for child processes and the AWS SDK's credential lookup (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface UploadResult {
  target: string;
  /** Files (objects) written, or for git 1 when a commit was pushed. */
  uploaded: number;
  unchanged: number;
  deleted: number;
  /** S3 only: HTTP requests made. */
  requests?: number;
  /** git only: the pushed commit, or undefined when nothing changed. */
  commit?: string;
  dryRun: boolean;
}
