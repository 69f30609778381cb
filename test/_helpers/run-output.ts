// What test/run.ts reads in a test process's output: whether uvu ran every test it counted, and
// which files of a unit batch (test/_helpers/unit-batch.ts) failed.

/**
 * uvu exits 0 when a `before` hook throws: it prints the error and counts none of the file's
 * tests as passed. A file whose summary counts fewer passed and skipped tests than it has did
 * not run them all; say so instead of calling it ok.
 */
export function notRun(output: string): string | undefined {
  for (const m of output.matchAll(/Total:\s+(\d+)\s+Passed:\s+(\d+)\s+Skipped:\s+(\d+)/g)) {
    const [total, passed, skipped] = m.slice(1).map(Number);
    if (passed + skipped < total) return `${total - passed - skipped} of ${total} tests did not pass`;
  }
  return undefined;
}

/**
 * The files of a failed batch (`names`, as the batch prints each above its part of the output)
 * whose part shows a failure, or all of them when none does (a crash).
 */
export function failedInBatch(names: string[], output: string): string[] {
  const known = new Set(names);
  const parts = new Map<string, string>();
  let current = '';
  for (const line of output.split('\n')) {
    if (known.has(line.trim())) current = line.trim();
    else if (current) parts.set(current, (parts.get(current) ?? '') + line + '\n');
  }
  const failing = [...parts].filter(([, text]) => /\bFAIL\b|✘/.test(text)).map(([name]) => name);
  return failing.length ? failing : names;
}
