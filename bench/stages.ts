// Benchmark of the downloads and upload stages against simple peers; shipkit runs as shipped
// (the one file, bench/shipped.ts), each side in a process of its own.
//   downloads: 200 small files + 5 × 20 MB from a loopback server, shipkit `downloads`
//              (--concurrency 4) vs `xargs -P4 curl` on the same list; first run and an
//              unchanged second run.
//   sync:      S3 first sync of 500 files to s3rver on loopback (`shipkit upload`, a fresh bucket
//              each run) against the `aws s3 sync`-like peer bench/s3-put-all.mjs (PutObject of
//              every file, 8 at once, same SDK, its own process); sides alternated run for run;
//              a BENCH-RESULT row (goal ≤ 1.0×). Then an unchanged and a one-file-changed sync.
//              `--peer-tuned`: the peer's SDK client also gets shipkit's in-process tuning
//              (bench/s3-put-all.mjs --tuned); the row then says so.
//   npm run bench:stages [-- --only downloads|sync --runs 7 --small 200 --large 5 --large-mb 20 --s3-files 500 --peer-tuned]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv } from './shipped.ts';

const args = minimist(process.argv.slice(2), {
  string: ['small', 'large', 'large-mb', 's3-files', 'runs', 'only'],
  boolean: ['peer-tuned'],
});
const SMALL = Number(args.small ?? 200);
const LARGE = Number(args.large ?? 5);
const LARGE_MB = Number(args['large-mb'] ?? 20);
const S3_FILES = Number(args['s3-files'] ?? 500);
const RUNS = Number(args.runs ?? 7);
const work = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

// `cpu`: run the command under sh, whose `times` (to stderr, last line) gives the CPU its child
// used, user + system: a figure the machine's other load stretches far less than wall time.
function run(
  cmd: string,
  argv: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; cpu?: boolean } = {},
): Promise<{ ms: number; cpuMs: number; code: number | null; stdout: string; stderr: string }> {
  if (options.cpu) [cmd, argv] = ['sh', ['-c', '"$@"; s=$?; times >&2; exit $s', 'sh', cmd, ...argv]];
  const t0 = performance.now();
  const child = spawn(cmd, argv, {
    cwd: options.cwd,
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(options.input ?? '');
  return new Promise((resolve) =>
    child.on('close', (code) =>
      resolve({ ms: performance.now() - t0, cpuMs: options.cpu ? childCpuMs(stderr) : NaN, code, stdout, stderr }),
    ),
  );
}
/** The children's line of sh's `times` (`0m1.230000s 0m0.120000s`): user + system, in ms. */
function childCpuMs(stderr: string): number {
  const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(stderr);
  return m ? (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000 : NaN;
}
const script = (
  name: string,
  argv: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; cpu?: boolean } = {},
) => {
  const [cmd, ...pre] = shippedArgv(name);
  return run(cmd, [...pre, ...argv], options);
};
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const check = (what: string, r: { code: number | null; stderr: string }) => {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${r.stderr.slice(-2000)}`);
};

if (args.only !== 'sync') await benchDownloads();
if (args.only !== 'downloads') await benchSync();

async function benchDownloads(): Promise<void> {
  const rows: string[][] = [];
  const bodies = new Map<string, Buffer>();
  for (let i = 0; i < SMALL; i++) bodies.set(`/small/${i}.txt`, randomBytes(2048));
  for (let i = 0; i < LARGE; i++) bodies.set(`/large/${i}.bin`, randomBytes(LARGE_MB * 1024 * 1024));
  let requests = 0;
  let bytesSent = 0;
  const server = http.createServer((req, res) => {
    requests++;
    const body = bodies.get(req.url!);
    if (!body) {
      res.writeHead(404);
      return res.end();
    }
    const etag = `"${req.url!.length}-${body.length}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag });
      return res.end();
    }
    bytesSent += body.length;
    res.writeHead(200, { 'content-length': body.length, etag, 'last-modified': new Date(0).toUTCString() });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const list = [...bodies.keys()].map((p) => `${base}${p} ${p.slice(1)}`).join('\n') + '\n';
  const totalMB = ([...bodies.values()].reduce((n, b) => n + b.length, 0) / 1024 / 1024).toFixed(0);
  console.log(
    `downloads: ${bodies.size} files (${SMALL} × 2 KB + ${LARGE} × ${LARGE_MB} MB = ${totalMB} MB) from ${base}`,
  );
  const measure = async (label: string, fn: () => Promise<{ ms: number; code: number | null; stderr: string }>) => {
    requests = 0;
    bytesSent = 0;
    const r = await fn();
    check(label, r);
    rows.push([label, secs(r.ms), String(requests), `${(bytesSent / 1024 / 1024).toFixed(1)} MB`]);
  };
  const dlDir = path.join(work, 'shipkit');
  mkdirSync(dlDir);
  writeFileSync(path.join(dlDir, 'manifest.txt'), list);
  await measure('shipkit downloads, first run', () => script('downloads', ['--concurrency', '4'], { cwd: dlDir }));
  await measure('shipkit downloads, unchanged run', () => script('downloads', ['--concurrency', '4'], { cwd: dlDir }));
  await measure('shipkit downloads --refresh (304s)', () =>
    script('downloads', ['--concurrency', '4', '--refresh'], { cwd: dlDir }),
  );
  const curlDir = path.join(work, 'curl');
  mkdirSync(curlDir);
  const curl = () =>
    run('sh', ['-c', 'xargs -P4 -n2 sh -c \'curl -sSf --create-dirs -o "$2" "$1"\' _'], { cwd: curlDir, input: list });
  await measure('xargs -P4 curl, first run', curl);
  await measure('xargs -P4 curl, second run', curl);
  server.close();
  const count = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce(
      (n, e) => n + (e.isDirectory() ? count(path.join(dir, e.name)) : e.isFile() ? 1 : 0),
      0,
    );
  if (count(path.join(dlDir, 'downloads')) !== bodies.size + 1 || count(curlDir) !== bodies.size)
    throw new Error('file counts differ');
  console.table(
    rows.map(([what, time, reqs, bytes]) => ({ what, 'wall time': time, requests: reqs, 'bytes served': bytes })),
  );
}

async function benchSync(): Promise<void> {
  const buckets = Array.from({ length: RUNS + 1 }, (_, i) => [`shipkit${i}`, `peer${i}`]).flat();
  // s3rver in its own process: it is the busiest of the three, and must not share the bench's loop.
  const s3rver = spawn(
    process.execPath,
    [path.join(import.meta.dirname, 's3rver-serve.mjs'), path.join(work, 's3rver'), ...buckets],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    s3rver.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    s3rver.on('exit', (code) => reject(new Error(`s3rver exited ${code}`)));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const site = path.join(work, 'site');
  for (let i = 0; i < S3_FILES; i++) {
    const dir = path.join(site, `dir${i % 20}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `page-${i}.html`), `<p>${randomBytes(1024).toString('hex')}</p>\n`);
  }
  const awsEnv = {
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_CONFIG_FILE: '/nonexistent',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
  };
  const shipkitSync = async (bucket: string) => {
    const r = await script(
      'upload',
      ['--from', site, '--to', `s3://${bucket}/site`, '--endpoint', endpoint, '--json'],
      { env: awsEnv, cpu: true },
    );
    check(`shipkit upload to ${bucket}`, r);
    return {
      ms: r.ms,
      cpuMs: r.cpuMs,
      result: JSON.parse(r.stdout)[0] as { requests: number; uploaded: number; unchanged: number },
    };
  };
  const peerSync = async (bucket: string) => {
    const r = await run(
      process.execPath,
      [
        path.join(import.meta.dirname, 's3-put-all.mjs'),
        site,
        bucket,
        'site',
        endpoint,
        ...(args['peer-tuned'] ? ['--tuned'] : []),
      ],
      { env: awsEnv, cpu: true },
    );
    check(`peer upload to ${bucket}`, r);
    return { ms: r.ms, cpuMs: r.cpuMs };
  };
  console.log(
    `\nS3 first sync: ${S3_FILES} files (~2 KB each) to s3rver at ${endpoint}; ${RUNS} alternated runs, a fresh bucket each`,
  );
  // Warm-up (page cache, s3rver's first requests), not counted.
  await shipkitSync(`shipkit${RUNS}`);
  await peerSync(`peer${RUNS}`);
  const shipkit: number[] = [];
  const peer: number[] = [];
  const shipkitCpu: number[] = [];
  const peerCpu: number[] = [];
  const shipkitSide = (i: number) => () =>
    shipkitSync(`shipkit${i}`).then((r) => {
      if (r.result.uploaded !== S3_FILES) throw new Error(`shipkit uploaded ${r.result.uploaded}`);
      shipkit.push(r.ms);
      shipkitCpu.push(r.cpuMs);
    });
  const peerSide = (i: number) => () =>
    peerSync(`peer${i}`).then((r) => {
      peer.push(r.ms);
      peerCpu.push(r.cpuMs);
    });
  for (let i = 0; i < RUNS; i++) {
    const sides = i % 2 ? [peerSide(i), shipkitSide(i)] : [shipkitSide(i), peerSide(i)];
    for (const side of sides) await side();
    console.log(
      `  run ${i + 1}: shipkit ${secs(shipkit.at(-1)!)} (CPU ${secs(shipkitCpu.at(-1)!)}), peer ${secs(peer.at(-1)!)} (CPU ${secs(peerCpu.at(-1)!)})`,
    );
  }
  const again = await shipkitSync('shipkit0');
  writeFileSync(path.join(site, 'dir0', 'page-0.html'), `<p>changed ${Date.now()}</p>\n`);
  const changed = await shipkitSync('shipkit0');
  s3rver.kill();
  const [s, p] = [median(shipkit), median(peer)];
  const [sCpu, pCpu] = [median(shipkitCpu), median(peerCpu)];
  console.log(
    `first sync: shipkit ${secs(s)}, peer ${secs(p)} (${(s / p).toFixed(2)}×); CPU (user + system) shipkit ${secs(sCpu)}, peer ${secs(pCpu)} (${(sCpu / pCpu).toFixed(2)}×); unchanged sync ${secs(again.ms)} (${again.result.requests} requests); one file changed ${secs(changed.ms)} (${changed.result.requests} requests, ${changed.result.uploaded} uploaded); load ${loadAverage()}`,
  );
  reportResult({
    work: `S3 first sync, ${S3_FILES} files${args['peer-tuned'] ? " (peer with shipkit's SDK tuning)" : ''}`,
    shipkit: Math.round(s),
    peer: Math.round(p),
    unit: 'ms',
    goal: '≤ 1.0×',
    met: s / p <= 1.0,
    note: `median of ${RUNS} alternated runs to s3rver on loopback; peer bench/s3-put-all.mjs${args['peer-tuned'] ? ' --tuned' : ''} (PutObject of every file, 8 at once, same SDK, own process); CPU per side ${Math.round(sCpu)} vs ${Math.round(pCpu)} ms (${(sCpu / pCpu).toFixed(2)}×); shipkit's unchanged sync ${Math.round(again.ms)} ms in ${again.result.requests} requests`,
  });
}
