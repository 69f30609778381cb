// A build log's steps (lib/pipeline/job.ts writes them): each step's lines, outcome and time, read
// back from the log's step lines; output lines carry `| ` after their time, so a build's output
// cannot forge a step.
// The whole story: docs/internals.md.

export type StepOutcome = 'ok' | 'skipped' | 'failed' | 'running' | 'unfinished';

export interface LogStep {
  name: string;
  outcome: StepOutcome;
  /** How long it took, from its closing line. */
  seconds?: number;
  /** The note of an ok step, the reason of a skipped one, the error of a failed one. */
  detail?: string;
  lines: string[];
}

export interface ParsedLog {
  /** Lines before the first step (the job's header). */
  before: string[];
  steps: LogStep[];
  /** Lines after the last step closed (the job's trailer, a failure after the steps). */
  after: string[];
}

const TIME = String.raw`\d\d:\d\d:\d\d\.\d{3}`;
const STEP_START = new RegExp(`^${TIME} --- step (\\S+)$`);
const STEP_OK = new RegExp(`^${TIME} --- step (\\S+) ok \\((\\d+(?:\\.\\d+)?) s\\)(?:: (.*))?$`);
const STEP_SKIPPED = new RegExp(`^${TIME} --- step (\\S+) skipped: (.*)$`);
const STEP_FAILED = new RegExp(`^${TIME} !!! step (\\S+) failed after (\\d+(?:\\.\\d+)?) s: (.*)$`);

/** Split a job's log text into its steps; `running` says whether an open step is still going. */
export function parseLogSteps(text: string, { running = false } = {}): ParsedLog {
  const parsed: ParsedLog = { before: [], steps: [], after: [] };
  let open: LogStep | undefined;
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const line of lines) {
    let m: RegExpExecArray | null;
    if ((m = STEP_START.exec(line))) {
      if (open) open.outcome = 'unfinished';
      open = { name: m[1], outcome: 'running', lines: [line] };
      parsed.steps.push(open);
    } else if (open && (m = STEP_OK.exec(line)) && m[1] === open.name) {
      Object.assign(open, { outcome: 'ok', seconds: Number(m[2]), detail: m[3] });
      open.lines.push(line);
      open = undefined;
    } else if (open && (m = STEP_SKIPPED.exec(line)) && m[1] === open.name) {
      Object.assign(open, { outcome: 'skipped', detail: m[2] });
      open.lines.push(line);
      open = undefined;
    } else if (open && (m = STEP_FAILED.exec(line)) && m[1] === open.name) {
      Object.assign(open, { outcome: 'failed', seconds: Number(m[2]), detail: m[3] });
      open.lines.push(line);
      open = undefined;
    } else if (open) {
      open.lines.push(line);
    } else {
      (parsed.steps.length ? parsed.after : parsed.before).push(line);
    }
  }
  if (open && !running) open.outcome = 'unfinished';
  return parsed;
}

/** The steps to list: a failed (or unfinished) one first, then the others in their order. */
export function stepsFailingFirst(steps: LogStep[]): LogStep[] {
  const bad = steps.filter((s) => s.outcome === 'failed' || s.outcome === 'unfinished');
  return [...bad, ...steps.filter((s) => !bad.includes(s))];
}
