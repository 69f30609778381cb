// E-mail notifications through the system's sendmail (`notify: - email: ops@example.com`): the
// message is built here with its headers and handed to `sendmail -t -oi` on stdin (-t: recipients
// from the To: header, -oi: a line with a lone dot does not end the message). Nothing from a
// payload reaches a header unencoded: a header value never holds CR or LF, and any text that is not
// plain printable ASCII is RFC 2047-encoded, so a hostile commit message cannot add a Bcc:.
import { $ } from '../core/shell.ts';
import type { NotifyEvent } from '../config/notify.ts';
import type { PostResult } from './deliver.ts';
import { showBidiControls } from '../core/escape.ts';
import { jobLink, outcomeWords, type NotifyJob } from './message.ts';

/** A header value: one line, printable ASCII as is, anything else as RFC 2047 UTF-8 base64 words. */
export function headerText(text: string): string {
  // No control characters at all (CR and LF included), nor Unicode line or paragraph separators.
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/[\x00-\x1f\x7f\u0080-\u009f\u2028\u2029]+/g, ' ').trim();
  if (/^[\x20-\x7e]*$/.test(line) && !line.includes('=?')) return line;
  // Encoded words of at most 75 characters: 45 bytes of UTF-8 each, split between characters.
  const words: string[] = [];
  let chunk = '';
  for (const ch of line) {
    if (Buffer.byteLength(chunk + ch) > 45) {
      words.push(chunk);
      chunk = '';
    }
    chunk += ch;
  }
  if (chunk) words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w).toString('base64')}?=`).join('\n ');
}

export interface EmailOptions {
  to: string;
  from?: string;
  event: NotifyEvent;
  job: NotifyJob;
  publicUrl?: string;
  now?: Date;
}

/** The whole message, headers and body, as sendmail -t reads it. */
export function emailMessage({ to, from, event, job, publicUrl, now = new Date() }: EmailOptions): string {
  const what = job.kind === 'release' ? `release ${job.tag ?? ''}`.trim() : `build of ${job.branch ?? job.ref ?? '?'}`;
  const title = job.message?.split('\n')[0]?.trim();
  const subject = `[shipkit] ${job.repo} ${what} ${outcomeWords(event, job)}${title ? `: ${title.slice(0, 120)}` : ''}`;
  const link = jobLink(publicUrl, job);
  const headers = [
    `To: ${to}`,
    ...(from ? [`From: ${from}`] : []),
    `Subject: ${headerText(showBidiControls(subject))}`,
    `Date: ${now.toUTCString().replace('GMT', '+0000')}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    // RFC 3834: machine-made, so vacation responders stay quiet.
    'Auto-Submitted: auto-generated',
    `X-Shipkit-Job: ${headerText(job.id)}`,
  ];
  const body = [
    `${job.repo} ${what} ${outcomeWords(event, job)}.`,
    '',
    `job:     ${job.id}`,
    `state:   ${job.state}${job.exit !== null ? ` (exit ${job.exit})` : ''}${job.reason ? `: ${job.reason}` : ''}`,
    ...(job.sha ? [`commit:  ${job.sha}`] : []),
    ...(job.author ? [`author:  ${job.author.split('\n')[0]}`] : []),
    ...(link ? [`log:     ${link}`] : []),
    ...(job.message ? ['', job.message] : []),
  ];
  // Bidi controls in the commit text are shown as <U+202E>, not obeyed by the mail reader.
  return `${headers.join('\n')}\n\n${showBidiControls(body.join('\n'))}\n`;
}

/** Hand `message` to `sendmail -t -oi`. A temporary failure (EX_TEMPFAIL, a timeout) may be retried. */
export async function sendEmail(
  sendmail: string,
  message: string,
  { timeoutMs, signal }: { timeoutMs: number; signal?: AbortSignal },
): Promise<PostResult> {
  if (signal?.aborted) return { ok: false, retry: false, detail: 'cancelled: hook-server is stopping', read: 0 };
  const running = $({ quiet: true, nothrow: true, timeout: timeoutMs, signal })`${sendmail} -t -oi`;
  // A sendmail that exits without reading (or cannot be run) closes the pipe: not a crash.
  running.stdin.on('error', () => {});
  running.stdin.end(message);
  const result = await running;
  if (result.exitCode === 0) return { ok: true, retry: false, detail: 'handed to sendmail', read: 0 };
  if (signal?.aborted) return { ok: false, retry: false, detail: 'cancelled: hook-server is stopping', read: 0 };
  if (result.exitCode === null)
    return { ok: false, retry: true, detail: `sendmail did not finish within ${timeoutMs / 1000} s`, read: 0 };
  if (result.exitCode === 127 || result.exitCode === 126)
    return {
      ok: false,
      retry: false,
      detail: `${sendmail} cannot be run (exit ${result.exitCode}); install an MTA (msmtp-mta, postfix, ...) or set sendmail:`,
      read: 0,
    };
  // sysexits.h: 75 EX_TEMPFAIL is the MTA asking to be tried later.
  const said = result.stderr.trim().split('\n')[0]?.slice(0, 200) ?? '';
  return {
    ok: false,
    retry: result.exitCode === 75,
    detail: `sendmail exited with ${result.exitCode}${said ? `: ${said}` : ''}`,
    read: 0,
  };
}
