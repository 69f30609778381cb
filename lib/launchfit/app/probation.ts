// A start on probation (lib/launchfit/app/supervisor.ts): the app passes when its timer runs out or
// its check says so, and fails if it exits first. Each start has its own, so a check that ends
// after a later start can never settle that later one.

/** Handed the exit of the process being checked; resolves whether the app is healthy. */
export type StartCheck = (exited: Promise<void>) => Promise<boolean>;

export class Probation {
  /** Whether the app passed; settled once. */
  readonly passed: Promise<boolean>;
  private settle: ((ok: boolean) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** No time and no check: passed at once. A check rejecting counts as a failure. */
  constructor(probationMs: number, check: StartCheck | undefined, exited: Promise<void>) {
    this.passed = new Promise<boolean>((resolve) => {
      if (probationMs <= 0 && !check) return resolve(true);
      this.settle = resolve;
    });
    if (!this.settle) return;
    if (check)
      queueMicrotask(
        () =>
          void check(exited).then(
            (ok) => this.end(ok),
            () => this.end(false),
          ),
      );
    else this.timer = setTimeout(() => this.end(true), probationMs);
  }

  /** Still waiting for its timer or its check. */
  pending(): boolean {
    return this.settle !== undefined;
  }

  /** The process exited while on probation. */
  fail(): void {
    clearTimeout(this.timer);
    this.end(false);
  }

  private end(ok: boolean): void {
    const settle = this.settle;
    this.settle = undefined;
    settle?.(ok);
  }
}
