// The order of work in `launchfit run` (lib/launchfit/launcher.ts): one update or rollback at a
// time, in order. Check requests that arrive while a check is waiting to start join it; once it
// has started, they queue one more (coalescing), so a burst of requests costs at most two checks.
import type { CheckResult } from './update.ts';

export class UpdateQueue {
  private readonly runCheck: (force: boolean) => Promise<CheckResult>;
  private tail: Promise<unknown> = Promise.resolve();
  private waitingCheck: Promise<CheckResult> | undefined;
  private waitingForce = false;

  /** `runCheck` does one check; `force` fetches VERSION without the last ETag. */
  constructor(runCheck: (force: boolean) => Promise<CheckResult>) {
    this.runCheck = runCheck;
  }

  /** Run `work` once everything queued before it has ended, whether that failed or not. */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    const next = this.tail.then(work, work);
    this.tail = next.catch(() => {});
    return next;
  }

  /** A check, joined with the one waiting to start if there is one. */
  requestCheck({ force = false }: { force?: boolean } = {}): Promise<CheckResult> {
    // A forced check (asked by the fleet master) makes the waiting check a forced one.
    this.waitingForce ||= force;
    this.waitingCheck ??= this.exclusive(() => {
      const forced = this.waitingForce;
      this.waitingCheck = undefined;
      this.waitingForce = false;
      return this.runCheck(forced);
    });
    return this.waitingCheck;
  }

  /** Settles when the work queued so far has ended (never rejects). */
  idle(): Promise<unknown> {
    return this.tail;
  }
}
