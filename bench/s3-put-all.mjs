// The peer of bench:stages' S3 first sync, in a process of its own like shipkit: what
// `aws s3 sync` does to an empty prefix, i.e. walk the folder and PutObject every file (with
// its Content-Type), 8 at once (shipkit's default concurrency), with the same SDK and the same
// client settings that decide what goes on the wire (path style, checksums only when required).
// No listing, no hashing, nothing skipped. The SDK client is set up as a plain SDK user would;
// `--tuned` gives it shipkit's two in-process settings as well (a middleware stack resolved once
// per command, a logger without info), to show how much of shipkit's lead they are.
//   node bench/s3-put-all.mjs FOLDER BUCKET PREFIX ENDPOINT [--tuned]
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

const [folder, bucket, prefix, endpoint, tuned] = process.argv.slice(2);
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};
const files = (await readdir(folder, { recursive: true, withFileTypes: true }))
  .filter((e) => e.isFile())
  .map((e) => path.relative(folder, path.join(e.parentPath ?? e.path, e.name)));
const tuning = tuned === '--tuned' ? { cacheMiddleware: true, logger: { debug() {}, warn() {}, error() {} } } : {};
const client = new S3Client({
  region: 'us-east-1',
  endpoint,
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  ...tuning,
});
let next = 0;
await Promise.all(
  Array.from({ length: 8 }, async () => {
    while (next < files.length) {
      const rel = files[next++];
      const body = await readFile(path.join(folder, rel));
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `${prefix}/${rel}`,
          Body: body,
          ContentType: TYPES[path.extname(rel)] ?? 'application/octet-stream',
        }),
      );
    }
  }),
);
client.destroy();
process.stdout.write(`${JSON.stringify({ uploaded: files.length })}\n`);
