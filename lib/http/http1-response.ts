// An incremental reader of one HTTP/1.x response for the control client (lib/http/control-client.ts):
// the status and the first maxBody bytes of the body, chunked or not, refusing what Node's own
// parser refuses with the same error codes.
// The whole story: docs/internals.md.

/** Node's default --max-http-header-size. */
const MAX_HEAD_BYTES = 16_384;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/; // eslint-disable-line no-control-regex -- the point
const STATUS_LINE = /^HTTP\/\d\.\d (\d{3})(?: [^\x00-\x08\x0a-\x1f\x7f]*)?$/; // eslint-disable-line no-control-regex
const PREFIX = 'HTTP/';
/**
 * A whole head that the lines below would take as it is: the status line, then header lines of a
 * token, a colon and a value without control characters, each ending in CRLF (the blank line's
 * CRLF not included). The header lines are group 2.
 */
const WHOLE_HEAD =
  /^HTTP\/\d\.\d (\d{3})(?: [^\x00-\x08\x0a-\x1f\x7f]*)?\r\n((?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*\r\n)*)$/; // eslint-disable-line no-control-regex
/** The header lines that frame the body, in a whole head's header lines. */
const FRAMING = /^(content-length|transfer-encoding):(.*)$/gim;
const NOT_ASCII = /[^\x00-\x7f]/; // eslint-disable-line no-control-regex -- the point
const CR = 13;
const LF = 10;

function parseError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`Parse Error: ${message}`), { code });
}

function connectionReset(message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code: 'ECONNRESET' });
}

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'eof' | 'done';

export class Http1Response {
  status = 0;
  private state: State = 'head';
  private pending = ''; // an unfinished line of the head, a chunk-size line or trailers (latin1)
  private headBytes = 0;
  private statusSeen = false;
  private contentLength: number | undefined;
  private chunked = false;
  private transferEncoding = false;
  private remaining = 0; // of the Content-Length body or of the current chunk
  private readonly chunks: string[] = []; // the body's bytes as latin1
  private size = 0;

  private readonly maxBody: number;

  constructor(maxBody: number) {
    this.maxBody = maxBody;
  }

  get done(): boolean {
    return this.state === 'done';
  }

  /** The body read so far (all of it once `done`), as UTF-8. */
  get body(): string {
    const bytes = this.chunks.length === 1 ? this.chunks[0] : this.chunks.join('');
    // ASCII reads the same in latin1 and UTF-8; anything else is decoded from its bytes.
    return NOT_ASCII.test(bytes) ? Buffer.from(bytes, 'latin1').toString('utf8') : bytes;
  }

  /**
   * Feeds the first `length` bytes of `data` from the socket; true once the answer is complete (or
   * maxBody bytes are in). Throws a parse error. `data` may be reused by the caller afterwards.
   */
  push(data: Buffer, length = data.length): boolean {
    const text = data.toString('latin1', 0, length);
    let at = this.state === 'head' && !this.statusSeen && !this.pending ? this.wholeHead(text) : 0;
    while (at < text.length && this.state !== 'done') {
      switch (this.state) {
        case 'head':
        case 'chunk-size':
        case 'trailers':
          at = this.lines(text, at);
          break;
        case 'length':
        case 'chunk-data': {
          // The rest of a Content-Length body, or of one chunk (then its CRLF).
          const take = Math.min(this.remaining, text.length - at);
          this.keep(text.slice(at, at + take));
          at += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = this.state === 'length' ? 'done' : 'chunk-end';
          break;
        }
        case 'chunk-end':
          // CRLF after a chunk's data, possibly split across reads (this.remaining counts the bytes seen).
          if (text.charCodeAt(at) !== (this.remaining === 0 ? CR : LF))
            throw parseError('HPE_STRICT', 'Expected LF after chunk data');
          at++;
          if (++this.remaining === 2) {
            this.remaining = 0;
            this.state = 'chunk-size';
          }
          break;
        case 'eof':
          this.keep(at ? text.slice(at) : text);
          at = text.length;
          break;
      }
      if (this.size >= this.maxBody && this.state !== 'head') this.state = 'done';
    }
    // Bytes after a complete answer: Node's parser reads them as the next response and fails.
    if (this.state === 'done' && at < text.length && this.size < this.maxBody)
      throw parseError('HPE_INVALID_CONSTANT', 'Expected HTTP/, RTSP/ or ICE/');
    return this.state === 'done';
  }

  /**
   * A head that came whole in the first read, as a fan-out's answers of a few hundred bytes do,
   * taken with two expressions instead of line by line. What it does not take (an interim 1xx, a
   * line the lines would refuse, a head near the size limit) is left to the lines, which take or
   * refuse it as before; so it takes the same heads, in the same way. Returns where the body
   * starts, or 0.
   */
  private wholeHead(text: string): number {
    const end = text.indexOf('\r\n\r\n');
    if (end < 0 || end + 4 > MAX_HEAD_BYTES) return 0;
    const head = WHOLE_HEAD.exec(text.slice(0, end + 2));
    if (!head) return 0;
    const status = Number(head[1]);
    if (status >= 100 && status < 200 && status !== 101) return 0;
    this.status = status;
    this.statusSeen = true;
    this.headBytes = end + 4;
    FRAMING.lastIndex = 0;
    for (let found = FRAMING.exec(head[2]); found; found = FRAMING.exec(head[2]))
      this.framing(found[1].toLowerCase(), found[2].trim());
    this.endOfHead();
    if (this.size >= this.maxBody) this.state = 'done';
    return end + 4;
  }

  /** The peer closed the connection: complete if the body runs to the end, else an error. */
  end(): void {
    if (this.state === 'done') return;
    if (this.state === 'eof') return this.finish();
    throw this.state === 'head' ? connectionReset('socket hang up') : connectionReset('aborted');
  }

  /** Keeps body bytes (latin1) up to maxBody. */
  private keep(bytes: string): void {
    if (this.size < this.maxBody && bytes.length)
      this.chunks.push(bytes.length <= this.maxBody - this.size ? bytes : bytes.slice(0, this.maxBody - this.size));
    this.size += bytes.length;
  }

  private finish(): void {
    this.state = 'done';
  }

  /** Reads CRLF-terminated lines from text (a read as latin1, after any pending part); returns where it stopped. */
  private lines(text: string, from: number): number {
    let at = from;
    while (at < text.length && (this.state === 'head' || this.state === 'chunk-size' || this.state === 'trailers')) {
      const lf = text.indexOf('\n', at);
      if (lf < 0) {
        this.pending += text.slice(at);
        this.checkPartial();
        return text.length;
      }
      let line: string;
      if (!this.pending && lf > at && text.charCodeAt(lf - 1) === CR) {
        line = text.slice(at, lf - 1); // a whole line in this read: one slice
      } else {
        const whole = this.pending + text.slice(at, lf);
        this.pending = '';
        if (whole.charCodeAt(whole.length - 1) !== CR)
          throw parseError('HPE_CR_EXPECTED', 'Missing expected CR after response line');
        line = whole.slice(0, -1);
      }
      at = lf + 1;
      this.line(line);
    }
    return at;
  }

  private checkPartial(): void {
    const pending = this.pending;
    if (this.state === 'head') {
      if (this.headBytes + pending.length > MAX_HEAD_BYTES) throw parseError('HPE_HEADER_OVERFLOW', 'Header overflow');
      if (!this.statusSeen) {
        const start = pending.slice(0, PREFIX.length);
        if (!PREFIX.startsWith(start)) throw parseError('HPE_INVALID_CONSTANT', 'Expected HTTP/, RTSP/ or ICE/');
      }
    } else {
      this.checkLineLength(pending);
    }
  }

  /** A chunk-size or trailer line, whole or so far, longer than Node allows (16 KiB, whether or not it came in one read). */
  private checkLineLength(line: string): void {
    if (line.length <= MAX_HEAD_BYTES) return;
    throw this.state === 'chunk-size'
      ? parseError('HPE_CHUNK_EXTENSIONS_OVERFLOW', 'Chunk extensions overflow')
      : parseError('HPE_HEADER_OVERFLOW', 'Header overflow');
  }

  private line(text: string): void {
    if (this.state !== 'head') this.checkLineLength(text);
    if (this.state === 'chunk-size') return this.chunkSize(text);
    if (this.state === 'trailers') {
      if (text === '') this.finish();
      return;
    }
    this.headBytes += text.length + 2;
    if (this.headBytes > MAX_HEAD_BYTES) throw parseError('HPE_HEADER_OVERFLOW', 'Header overflow');
    if (!this.statusSeen) return this.statusLine(text);
    if (text === '') return this.endOfHead();
    if (text[0] === ' ' || text[0] === '\t')
      throw parseError('HPE_INVALID_HEADER_TOKEN', 'Unexpected whitespace after header value');
    const colon = text.indexOf(':');
    const name = colon > 0 ? text.slice(0, colon) : '';
    if (!TOKEN.test(name)) throw parseError('HPE_INVALID_HEADER_TOKEN', 'Invalid header token');
    const value = text.slice(colon + 1).trim();
    if (BAD_VALUE_CHAR.test(value)) throw parseError('HPE_INVALID_HEADER_TOKEN', 'Invalid header value char');
    this.framing(name.length === 14 || name.length === 17 ? name.toLowerCase() : '', value);
  }

  /** A header that frames the body (`lower`: its name in lower case), else nothing. */
  private framing(lower: string, value: string): void {
    if (lower === 'content-length') {
      if (this.contentLength !== undefined)
        throw parseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'Duplicate Content-Length');
      if (!/^\d{1,15}$/.test(value))
        throw parseError('HPE_INVALID_CONTENT_LENGTH', 'Invalid character in Content-Length');
      this.contentLength = Number(value);
    } else if (lower === 'transfer-encoding') {
      this.transferEncoding = true;
      this.chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
    }
  }

  private statusLine(text: string): void {
    if (!text.startsWith(PREFIX)) throw parseError('HPE_INVALID_CONSTANT', 'Expected HTTP/, RTSP/ or ICE/');
    const match = STATUS_LINE.exec(text);
    if (!match) throw parseError('HPE_INVALID_STATUS', 'Invalid response status');
    this.status = Number(match[1]);
    this.statusSeen = true;
  }

  private endOfHead(): void {
    if (this.transferEncoding && this.contentLength !== undefined)
      throw parseError('HPE_INVALID_CONTENT_LENGTH', "Content-Length can't be present with Transfer-Encoding");
    const status = this.status;
    if (status >= 100 && status < 200 && status !== 101) {
      // An interim answer (100 Continue): the real one follows.
      this.statusSeen = false;
      this.headBytes = 0;
      this.contentLength = undefined;
      this.chunked = false;
      this.transferEncoding = false;
      return;
    }
    if (status === 101 || status === 204 || status === 304) return this.finish();
    if (this.chunked) {
      this.state = 'chunk-size';
    } else if (this.contentLength !== undefined) {
      this.remaining = this.contentLength;
      if (this.remaining === 0) this.finish();
      else this.state = 'length';
    } else {
      this.state = 'eof';
    }
  }

  private chunkSize(text: string): void {
    const match = /^([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?$/.exec(text);
    if (!match) throw parseError('HPE_INVALID_CHUNK_SIZE', 'Invalid character in chunk size');
    this.remaining = parseInt(match[1], 16);
    this.state = this.remaining === 0 ? 'trailers' : 'chunk-data';
  }
}
