// Error categories shared by every script. One top-level handler (lib/core/cli.ts) maps them to
// exit codes: usage and configuration errors exit 2, everything else exits 1.

/** Bad command line: unknown flag, missing argument, invalid value. Exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Bad or missing configuration (file, key, secret). Exit 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A name, path or payload that failed validation. Exit 2 when it came from the command line. */
export class ValidationError extends Error {
  override name = 'ValidationError';
}

/** A signature, checksum or trust check that failed. Exit 1. */
export class VerificationError extends Error {
  override name = 'VerificationError';
}

/** A remote party (HTTP server, git remote, ssh host) failed or refused. Exit 1. */
export class RemoteError extends Error {
  override name = 'RemoteError';
}

/** The work itself failed (a build step, a clone, a hook). Exit 1. */
export class WorkError extends Error {
  override name = 'WorkError';
}

export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError || error instanceof ConfigError || error instanceof ValidationError) return 2;
  return 1;
}

/** The message of anything thrown, without a stack. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
