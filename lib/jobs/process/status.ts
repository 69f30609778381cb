// The status file of a job's attempt, DATA/jobs/ID/status-N: the exit code the wrapper writes
// when the attempt's command ends (process/runner.ts starts the wrapper).
import { readFile, stat } from 'node:fs/promises';

/** The exit code an attempt's wrapper wrote to its status file, with the file's time; undefined without a whole line. */
export async function readStatus(file: string): Promise<{ code: number; time: string } | undefined> {
  try {
    const [text, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    // A whole line or nothing: the wrapper writes the code and its newline at once, so an empty
    // or unfinished file is a run whose end was not recorded (Number('') would read as 0).
    const line = /^(\d{1,3})\n$/.exec(text);
    if (!line) return undefined;
    return { code: Number(line[1]), time: info.mtime.toISOString() };
  } catch {
    return undefined;
  }
}
