// Benchmark of the downloads and upload stages against simple peers, in the same run:
//   downloads: 200 small files + 5 × 20 MB from a loopback server, shipkit `downloads`
//              (--concurrency 4) vs `xargs -P4 curl` on the same list; first run and an
//              unchanged second run.
//   upload:    S3 sync of 500 files to s3rver on loopback, then again with one file changed;
//              requests and wall time against uploading everything (PutObject per file).
//   npm run bench:stages [-- --small 200 --large 5 --large-mb 20 --s3-files 500]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';

const args = minimist(process.argv.slice(2), { string: ['small', 'large', 'large-mb', 's3-files'] });
const SMALL = Number(args.small ?? 200);
const LARGE = Number(args.large ?? 5);
const LARGE_MB = Number(args['large-mb'] ?? 20);
const S3_FILES = Number(args['s3-files'] ?? 500);
const ROOT = path.resolve(import.meta.dirname, '..');
const TSX = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');
const work = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

function run(cmd: string, argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<{ ms: number; code: number | null; stdout: string; stderr: string }> {
  const t0 = performance.now();
  const child = spawn(cmd, argv, { cwd: options.cwd, env: { ...process.env, NO_COLOR: '1', ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(options.input ?? '');
  return new Promise((resolve) => child.on('close', (code) => resolve({ ms: performance.now() - t0, code, stdout, stderr })));
}
const script = (name: string, argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) => run(process.execPath, ['--import', TSX, path.join(ROOT, 'scripts', `${name}.ts`), ...argv], options);
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const rows: string[][] = [];
const check = (what: string, r: { code: number | null; stderr: string }) => { if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${r.stderr.slice(-2000)}`); };

// ---- downloads ----------------------------------------------------------------------------
const bodies = new Map<string, Buffer>();
for (let i = 0; i < SMALL; i++) bodies.set(`/small/${i}.txt`, randomBytes(2048));
for (let i = 0; i < LARGE; i++) bodies.set(`/large/${i}.bin`, randomBytes(LARGE_MB * 1024 * 1024));
let requests = 0;
let bytesSent = 0;
const server = http.createServer((req, res) => {
  requests++;
  const body = bodies.get(req.url!);
  if (!body) { res.writeHead(404); return res.end(); }
  const etag = `"${req.url!.length}-${body.length}"`;
  if (req.headers['if-none-match'] === etag) { res.writeHead(304, { etag }); return res.end(); }
  bytesSent += body.length;
  res.writeHead(200, { 'content-length': body.length, etag, 'last-modified': new Date(0).toUTCString() });
  res.end(body);
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const list = [...bodies.keys()].map((p) => `${base}${p} ${p.slice(1)}`).join('\n') + '\n';
const totalMB = ([...bodies.values()].reduce((n, b) => n + b.length, 0) / 1024 / 1024).toFixed(0);
console.log(`downloads: ${bodies.size} files (${SMALL} × 2 KB + ${LARGE} × ${LARGE_MB} MB = ${totalMB} MB) from ${base}`);

async function measure(label: string, fn: () => Promise<{ ms: number; code: number | null; stderr: string }>) {
  requests = 0;
  bytesSent = 0;
  const r = await fn();
  check(label, r);
  rows.push([label, secs(r.ms), String(requests), `${(bytesSent / 1024 / 1024).toFixed(1)} MB`]);
}

const dlDir = path.join(work, 'shipkit');
mkdirSync(dlDir);
writeFileSync(path.join(dlDir, 'manifest.txt'), list);
await measure('shipkit downloads, first run', () => script('downloads', ['--concurrency', '4'], { cwd: dlDir }));
await measure('shipkit downloads, unchanged run', () => script('downloads', ['--concurrency', '4'], { cwd: dlDir }));
await measure('shipkit downloads --refresh (304s)', () => script('downloads', ['--concurrency', '4', '--refresh'], { cwd: dlDir }));
const curlDir = path.join(work, 'curl');
mkdirSync(curlDir);
const curl = () => run('sh', ['-c', 'xargs -P4 -n2 sh -c \'curl -sSf --create-dirs -o "$2" "$1"\' _'], { cwd: curlDir, input: list });
await measure('xargs -P4 curl, first run', curl);
await measure('xargs -P4 curl, second run', curl);
server.close();
const count = (dir: string): number => readdirSync(dir, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? count(path.join(dir, e.name)) : e.isFile() ? 1 : 0), 0);
if (count(path.join(dlDir, 'downloads')) !== bodies.size + 1 || count(curlDir) !== bodies.size) throw new Error('file counts differ');
console.table(rows.map(([what, time, reqs, bytes]) => ({ what, 'wall time': time, requests: reqs, 'bytes served': bytes })));

// ---- S3 -----------------------------------------------------------------------------------
type S3rverClass = new (options: Record<string, unknown>) => { run(): Promise<{ port: number }>; close(): Promise<void> };
const S3rver = ((await import('s3rver' as string)) as { default: S3rverClass }).default;
const s3rver = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: path.join(work, 's3rver'), configureBuckets: [{ name: 'bench', configs: [] }, { name: 'naive', configs: [] }] });
const { port } = await s3rver.run();
const endpoint = `http://127.0.0.1:${port}`;
const site = path.join(work, 'site');
for (let i = 0; i < S3_FILES; i++) {
  const dir = path.join(site, `dir${i % 20}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `page-${i}.html`), `<p>${randomBytes(1024).toString('hex')}</p>\n`);
}
const awsEnv = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_CONFIG_FILE: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent' };
Object.assign(process.env, awsEnv);
const s3rows: Array<Record<string, string>> = [];
async function sync(label: string) {
  const r = await script('upload', ['--from', site, '--to', 's3://bench/site', '--endpoint', endpoint, '--json'], { env: awsEnv });
  check(label, r);
  const [result] = JSON.parse(r.stdout);
  s3rows.push({ what: label, 'wall time': secs(r.ms), requests: String(result.requests), uploaded: String(result.uploaded), unchanged: String(result.unchanged) });
}
console.log(`\nS3: ${S3_FILES} files (~2 KB each) to s3rver at ${endpoint}`);
await sync('shipkit upload, first sync');
await sync('shipkit upload, unchanged sync');
writeFileSync(path.join(site, 'dir0', 'page-0.html'), `<p>changed ${Date.now()}</p>\n`);
await sync('shipkit upload, one file changed');

// The peer: upload everything every time (PutObject per file, 8 at once), same SDK and server.
const s3 = await import('@aws-sdk/client-s3');
const { listLocalFiles } = await import('../lib/stages/upload/files.ts');
const { contentTypeFor } = await import('../lib/http/content-type.ts');
const { silentLogger } = await import('../lib/core/log.ts');
const { mapLimit } = await import('../lib/core/pool.ts');
const { readFile } = await import('node:fs/promises');
const client = new s3.S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
let naiveRequests = 0;
client.middlewareStack.add((next) => async (a) => { naiveRequests++; return next(a); }, { step: 'finalizeRequest', name: 'count' });
for (const label of ['upload everything, first', 'upload everything, one file changed']) {
  naiveRequests = 0;
  const t0 = performance.now();
  const files = await listLocalFiles(site, silentLogger);
  await mapLimit(files, 8, async (f) => {
    await client.send(new s3.PutObjectCommand({ Bucket: 'naive', Key: `site/${f.rel}`, Body: await readFile(f.abs), ContentType: contentTypeFor(f.rel) }));
  });
  s3rows.push({ what: label, 'wall time': secs(performance.now() - t0), requests: String(naiveRequests), uploaded: String(files.length), unchanged: '0' });
}
client.destroy();
await s3rver.close();
console.table(s3rows);
const startup = await script('downloads', ['--help']);
console.log(`shipkit times include starting the script under node + tsx (\`downloads --help\` takes ${secs(startup.ms)} here); ${os.cpus().length} CPUs, node ${process.version}.`);
