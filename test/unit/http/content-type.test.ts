// lib/http/content-type.ts: the one extension → Content-Type map (S3 uploads, slave --file).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contentTypeFor } from '../../../lib/http/content-type.ts';

// [file, type]
const cases: Array<[string, string]> = [
  ['index.html', 'text/html; charset=utf-8'],
  ['a/b/page.HTM', 'text/html; charset=utf-8'],
  ['notes.txt', 'text/plain; charset=utf-8'],
  ['app.js', 'text/javascript; charset=utf-8'],
  ['style.css', 'text/css; charset=utf-8'],
  ['data.json', 'application/json'],
  ['logo.svg', 'image/svg+xml'],
  ['photo.JPEG', 'image/jpeg'],
  ['anim.gif', 'image/gif'],
  ['font.woff2', 'font/woff2'],
  ['my-app-gnu-linux-1.2.3.tar.gz', 'application/gzip'],
  ['my-app-gnu-linux-1.2.3.tar.gz.sig', 'application/pgp-signature'],
  ['VERSION', 'application/octet-stream'],
  ['.hidden', 'application/octet-stream'],
  ['archive.unknownext', 'application/octet-stream'],
  ['dir.html/file', 'application/octet-stream'],
];

for (const [file, type] of cases) {
  test(`contentTypeFor ${file}`, () => assert.is(contentTypeFor(file), type));
}

test.run();
