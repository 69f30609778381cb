// What test/run.ts tells whoever watches a run: how many files are done of how many, and, when
// nothing has finished for a while (TEST_PROGRESS_S, 30 s), which files are running and for how
// long, the longest first; at the end, the slowest files, so that the next slow one is seen.
//   const progress = watchProgress({ total: 287 }); progress.start(name); progress.finish(name, 1, ok)

export interface ProgressOptions {
  /** How many test files the run has. */
  total: number;
  /** How long without a finished file before the running ones are listed. */
  quietMs?: number;
  write?: (text: string) => void;
  now?: () => number;
}

export interface Progress {
  start(name: string): void;
  /** Count `files` done (failed unless `ok`) and give `12/287` for the file's line. */
  finish(name: string, files: number, ok: boolean): string;
  /** The lines listing the running files, as printed when nothing finished for `quietMs`. */
  runningLines(): string;
  stop(): void;
}

export function watchProgress({
  total,
  quietMs = 30_000,
  write = (text) => process.stdout.write(text),
  now = Date.now,
}: ProgressOptions): Progress {
  const running = new Map<string, number>();
  const startedAt = now();
  let done = 0;
  let failed = 0;
  let lastLine = now();
  const progress: Progress = {
    start: (name) => void running.set(name, now()),
    finish(name, files, ok) {
      running.delete(name);
      done += files;
      if (!ok) failed += files;
      lastLine = now();
      return `${done}/${total}`;
    },
    runningLines() {
      const head = `--- ${done}/${total} files done${failed ? ` (${failed} failed)` : ''} after ${clock(now() - startedAt)}; running:`;
      const rows = [...running]
        .sort((a, b) => a[1] - b[1])
        .map(([name, since]) => `${clock(now() - since).padStart(9)}  ${name}`);
      return [head, ...rows].join('\n') + '\n';
    },
    stop: () => clearInterval(timer),
  };
  const timer = setInterval(
    () => {
      if (running.size === 0 || now() - lastLine < quietMs) return;
      lastLine = now();
      write(progress.runningLines());
    },
    Math.min(quietMs, 5_000),
  );
  timer.unref();
  return progress;
}

/** `42s`, `3m 05s`. */
export function clock(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
}

/** The `count` slowest runs with their seconds, one a line, for the end of a run. */
export function slowestLines(seconds: Record<string, number>, count = 10): string {
  const rows = Object.entries(seconds)
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, s]) => `${s.toFixed(1).padStart(7)}s  ${name}`);
  return rows.length ? `slowest ${rows.length} test files:\n${rows.join('\n')}\n` : '';
}
