// @deno
// The incremental HTTP/1.x reader (lib/http/http1-response.ts) fed directly: status and body of
// Content-Length, chunked, to-the-end and interim answers; the cut at maxBody; each refusal with
// Node's error code; and the same outcome however the bytes are split across reads.
import { Buffer } from 'node:buffer';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Http1Response } from '../../../lib/http/http1-response.ts';

type Outcome = string; // `200 "body"` once done, `open "body"` when not done by the end, `CODE message` when refused

/**
 * Feeds `raw` (latin1 bytes) in the given pieces, every piece even after the reader is done (bytes
 * after a whole answer are refused in whatever read they come), then, unless done, tells it the
 * peer closed.
 */
function read(raw: string, cuts: number[] = [], maxBody = 1024, close = true): Outcome {
  const r = new Http1Response(maxBody);
  const bytes = Buffer.from(raw, 'latin1');
  let at = 0;
  let done = false;
  try {
    for (const end of [...cuts, bytes.length]) {
      done = r.push(bytes.subarray(at, end));
      at = end;
    }
    if (done) return `${r.status} ${JSON.stringify(r.body)}`;
    if (!close) return `open ${JSON.stringify(r.body)}`;
    r.end();
    return `${r.status} ${JSON.stringify(r.body)} at close`;
  } catch (error) {
    const e = error as Error & { code?: string };
    return `${e.code} ${e.message}`;
  }
}

const cases: Array<[string, string, Outcome]> = [
  ['Content-Length', 'HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\n\r\nhello', '202 "hello"'],
  ['Content-Length: 0', 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', '200 ""'],
  [
    'chunked with an extension and trailers',
    'HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-T: 1\r\n\r\n',
    '500 "hello, world!!!"',
  ],
  [
    'chunked after another coding',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n',
    '200 "hi"',
  ],
  [
    'to the end of the connection',
    'HTTP/1.0 503 Unavailable\r\n\r\n{"error":"x"}',
    '503 "{\\"error\\":\\"x\\"}" at close',
  ],
  [
    'Transfer-Encoding not chunked: to the end',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz',
    '200 "zz" at close',
  ],
  ['no reason phrase, a UTF-8 body', 'HTTP/1.1 500\r\nContent-Length: 7\r\n\r\n\xc3\xa9t\xc3\xa9!!', '500 "été!!"'],
  [
    '100 Continue, then the answer',
    'HTTP/1.1 100 Continue\r\nX: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi',
    '200 "hi"',
  ],
  ['204 has no body', 'HTTP/1.1 204 No Content\r\n\r\n', '204 ""'],
  [
    '304 has no body, whatever Content-Length says',
    'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n',
    '304 ""',
  ],
  ['101 ends the answer', 'HTTP/1.1 101 Switching Protocols\r\n\r\n', '101 ""'],
  ['nothing at all', '', 'ECONNRESET socket hang up'],
  ['closed inside the head', 'HTTP/1.1 200 OK\r\nContent-Le', 'ECONNRESET socket hang up'],
  ['closed inside a Content-Length body', 'HTTP/1.1 500 OK\r\nContent-Length: 100\r\n\r\n{"e', 'ECONNRESET aborted'],
  [
    'closed inside a chunked body',
    'HTTP/1.1 500 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n',
    'ECONNRESET aborted',
  ],
  [
    'bytes after the answer',
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiTHERE',
    'HPE_INVALID_CONSTANT Parse Error: Expected HTTP/, RTSP/ or ICE/',
  ],
  ['not HTTP', 'SSH-2.0-OpenSSH_9.2\r\n', 'HPE_INVALID_CONSTANT Parse Error: Expected HTTP/, RTSP/ or ICE/'],
  ['lower-case http', 'http/1.1 200 OK\r\n\r\n', 'HPE_INVALID_CONSTANT Parse Error: Expected HTTP/, RTSP/ or ICE/'],
  [
    'a bare LF',
    'HTTP/1.1 200 OK\nContent-Length: 2\n\nhi',
    'HPE_CR_EXPECTED Parse Error: Missing expected CR after response line',
  ],
  ['a letter in the status', 'HTTP/1.1 2x0 OK\r\n\r\n', 'HPE_INVALID_STATUS Parse Error: Invalid response status'],
  ['a four-digit status', 'HTTP/1.1 1000 OK\r\n\r\n', 'HPE_INVALID_STATUS Parse Error: Invalid response status'],
  [
    'a control character in the reason',
    'HTTP/1.1 200 O\x01K\r\n\r\n',
    'HPE_INVALID_STATUS Parse Error: Invalid response status',
  ],
  [
    'a bad Content-Length',
    'HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n',
    'HPE_INVALID_CONTENT_LENGTH Parse Error: Invalid character in Content-Length',
  ],
  [
    'two Content-Lengths',
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi',
    'HPE_UNEXPECTED_CONTENT_LENGTH Parse Error: Duplicate Content-Length',
  ],
  [
    'Content-Length with Transfer-Encoding',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2\r\nhi\r\n0\r\n\r\n',
    "HPE_INVALID_CONTENT_LENGTH Parse Error: Content-Length can't be present with Transfer-Encoding",
  ],
  [
    'a space in a header name',
    'HTTP/1.1 200 OK\r\nBad Header: 1\r\n\r\n',
    'HPE_INVALID_HEADER_TOKEN Parse Error: Invalid header token',
  ],
  [
    'a header without a colon',
    'HTTP/1.1 200 OK\r\nBadHeader\r\n\r\n',
    'HPE_INVALID_HEADER_TOKEN Parse Error: Invalid header token',
  ],
  [
    'a folded header line',
    'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n',
    'HPE_INVALID_HEADER_TOKEN Parse Error: Unexpected whitespace after header value',
  ],
  [
    'a control character in a value',
    'HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n',
    'HPE_INVALID_HEADER_TOKEN Parse Error: Invalid header value char',
  ],
  [
    'a bad chunk size',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n',
    'HPE_INVALID_CHUNK_SIZE Parse Error: Invalid character in chunk size',
  ],
  [
    'a chunk of 17 hex digits',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000002\r\nhi\r\n',
    'HPE_INVALID_CHUNK_SIZE Parse Error: Invalid character in chunk size',
  ],
  [
    'chunk data longer than its size',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX\r\n0\r\n\r\n',
    'HPE_STRICT Parse Error: Expected LF after chunk data',
  ],
  [
    'CR without LF after chunk data',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\rX0\r\n\r\n',
    'HPE_STRICT Parse Error: Expected LF after chunk data',
  ],
  [
    'a head over 16 KiB',
    `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(16_400)}\r\n\r\n`,
    'HPE_HEADER_OVERFLOW Parse Error: Header overflow',
  ],
  [
    'a trailer over 16 KiB',
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ${'a'.repeat(16_400)}\r\n\r\n`,
    'HPE_HEADER_OVERFLOW Parse Error: Header overflow',
  ],
  [
    'a chunk extension over 16 KiB',
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=${'a'.repeat(16_400)}\r\nhi\r\n0\r\n\r\n`,
    'HPE_CHUNK_EXTENSIONS_OVERFLOW Parse Error: Chunk extensions overflow',
  ],
];

test('each answer, in one read, ends as its row says', () => {
  for (const [label, raw, want] of cases) assert.is(read(raw), want, label);
});

test('the same outcome with the bytes cut in two at every place, and a byte at a time', () => {
  for (const [label, raw, want] of cases) {
    if (raw.length > 2000) {
      // Long lines: a few cuts, inside the line and right after it.
      for (const cut of [1, 20, 8000, raw.length - 3]) assert.is(read(raw, [cut]), want, `${label}, cut at ${cut}`);
      continue;
    }
    for (let cut = 1; cut < raw.length; cut++) assert.is(read(raw, [cut]), want, `${label}, cut at ${cut}`);
    assert.is(
      read(
        raw,
        Array.from({ length: Math.max(0, raw.length - 1) }, (_, i) => i + 1),
      ),
      want,
      `${label}, a byte at a time`,
    );
  }
});

test('maxBody: done once that many body bytes are in, the framing not counted, more bytes ignored', () => {
  const chunked = `HTTP/1.1 500 OK\r\nTransfer-Encoding: chunked\r\n\r\n${'a\r\n0123456789\r\n'.repeat(50)}0\r\n\r\n`;
  assert.is(read(chunked, [], 25), `500 "${'0123456789'.repeat(2)}01234"`);
  assert.is(read('HTTP/1.1 200 OK\r\n\r\nendless endless', [], 7), '200 "endless"');
  assert.is(read('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789', [], 10), '200 "0123456789"');
  // A head is not a body: a long head with a small maxBody is still read whole.
  assert.is(read(`HTTP/1.1 200 OK\r\nX: ${'h'.repeat(500)}\r\nContent-Length: 2\r\n\r\nhi`, [], 1), '200 "h"');
});

test('not done until the answer is whole; a body to the end is complete only at close', () => {
  assert.is(read('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel', [], 1024, false), 'open "hel"');
  assert.is(read('HTTP/1.1 200 OK\r\n\r\nso far', [], 1024, false), 'open "so far"');
  assert.is(
    read('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n', [], 1024, false),
    'open "hi"',
  );
  const r = new Http1Response(100);
  assert.is(r.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi')), true);
  assert.is(r.done, true);
  r.end(); // a close after a whole answer is no error
  assert.is(r.body, 'hi');
});

test('push reads only the first `length` bytes of a buffer the caller reuses', () => {
  const r = new Http1Response(100);
  const buffer = Buffer.alloc(64, 'Z');
  for (const piece of ['HTTP/1.1 200 OK\r\nContent-Len', 'gth: 4\r\n\r\nab', 'cd']) {
    buffer.fill('Z');
    const n = buffer.write(piece, 'latin1');
    r.push(buffer, n);
  }
  assert.is(r.done, true);
  assert.is(r.body, 'abcd');
});

test.run();
