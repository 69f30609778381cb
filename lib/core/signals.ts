// Signals belong to scripts: no module in lib/ installs a handler as a side effect of a call.
// A script that wants its work stopped cleanly on SIGTERM/SIGINT/SIGHUP calls abortOnSignals
// itself and hands the AbortSignal to lib/, which stops what it runs and finishes its records.

export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

export interface AbortOnSignalsOptions {
  /** What is told to stop, in the abort reason (`the job received SIGTERM`). */
  what?: string;
  /** Where the signals come from (the process; a test may hand in an emitter). */
  source?: Pick<NodeJS.EventEmitter, 'on'>;
}

/**
 * An AbortController that aborts when the process receives one of `signals`. Each handler is
 * installed once and stays (a second Ctrl-C does not kill the process before it has cleaned up).
 */
export function abortOnSignals(
  signals: readonly NodeJS.Signals[] = STOP_SIGNALS,
  { what = 'the job', source = process }: AbortOnSignalsOptions = {},
): AbortController {
  const controller = new AbortController();
  // `on`, not `once`: with no listener left, a second signal would take Node's default action
  // and kill the process in the middle of its cleanup. A second abort() changes nothing.
  for (const signal of signals) source.on(signal, () => controller.abort(`${what} received ${signal}`));
  return controller;
}
