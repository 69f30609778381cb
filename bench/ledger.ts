// npm run bench:ledger [-- --runs 9 --entries 10000 --files 200 --mb 5 --hosts 10000 --part 1 --keep]: the release ledger
// (docs/release.md "The ledger") as shipped (the one file), on a DEST whose ledger.jsonl holds N
// entries (the first from a real `release publish`, the rest appended with ledgerLine and the
// whole file and its head line signed again, as publish does). Sides alternated, R runs each; medians.
// 1. `release history my-app --from DEST --json` against `jq -c 'select(.action=="publish" and
//    .app=="my-app")' DEST/ledger.jsonl` (output to /dev/null). Goal: ≤ 1.5× jq (p50).
// 2. `release publish` of a small app (F files, M MB random) onto a copy of that DEST against the
//    same publish onto a copy of the DEST with its 1-entry ledger. Goal: the ledger's cost ≤ 5 %
//    of the publish (it is read, checked, and signed again whole on each append).
// 3. The shipped hook-server with H hosts (default 10,000) reporting on the last five releases of
//    that ledger: GET /fleet/my-app/releases and the /releases/my-app page. Goal: < 200 ms (p99).
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import {
  LEDGER_FILE,
  LEDGER_HEAD_SIG_FILE,
  LEDGER_SIG_FILE,
  ledgerLine,
  readLedger,
  type LedgerHead,
} from '../lib/release/format/ledger.ts';
import { loadSigningKey, signDetached, signingFingerprintOf } from '../lib/release/format/signature.ts';
import { fleetLogFile } from '../lib/fleet/fleet-store.ts';
import { fleetLog } from './control-plane.ts';
import { quietPort } from './ports.ts';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv } from './shipped.ts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'entries', 'files', 'mb', 'hosts', 'part'] });
const RUNS = Number(args.runs ?? 9);
const ENTRIES = Number(args.entries ?? 10_000);
const FILES = Number(args.files ?? 200);
const MB = Number(args.mb ?? 5);
const HOSTS = Number(args.hosts ?? 10_000);
/** --part N: only that part (1, 2 or 3; repeatable); default all three. */
const PARTS = new Set([args.part ?? ['1', '2', '3']].flat().map(Number));
const PAGE_GOAL_MS = 200;
const HISTORY_GOAL = 1.5;
const PUBLISH_GOAL = 5; // percent
const APP = 'my-app';
const env: NodeJS.ProcessEnv = { ...process.env };
for (const name of ['SHIPKIT_REPO', 'SHIPKIT_TAG', 'SHIPKIT_REF', 'SHIPKIT_SHA', 'SHIPKIT_JOB_ID']) delete env[name];

const release = shippedArgv('release');
const hookServer = shippedArgv('hook-server');
const root = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-ledger-'));
const keyDir = path.join(root, 'key');
const appDir = path.join(root, 'app');
const smallDest = path.join(root, 'dest-1');
const bigDest = path.join(root, `dest-${ENTRIES}`);

/** Runs argv, stdout to /dev/null; its wall time in ms. Throws unless it exits 0. */
function timed(argv: string[]): number {
  const t0 = performance.now();
  const run = spawnSync(argv[0], argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - t0;
  if (run.status !== 0) throw new Error(`${argv.join(' ')} exited ${run.status}: ${run.stderr}`);
  return ms;
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const publishArgv = (to: string, version: string) => [
  ...release,
  ...['publish', appDir, '--name', APP, '--platform', 'gnu-linux', '--version', version],
  ...['--key', path.join(keyDir, 'signing.asc'), '--to', to],
];

/** A key (`release keys init`), the app folder, and DEST with VERSION 1.0 and a 1-entry ledger. */
function prepareSmallDest(): void {
  timed([...release, 'keys', 'init', '--out', keyDir]);
  mkdirSync(appDir);
  const size = Math.round((MB * 1e6) / FILES);
  for (let i = 0; i < FILES; i++) {
    const dir = path.join(appDir, `d${i % 10}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `f${i}.bin`), randomBytes(size));
  }
  timed(publishArgv(smallDest, '1.0'));
}

/** bigDest: smallDest with its ledger extended to ENTRIES entries (publish and rollout) and signed again. */
async function prepareBigDest(): Promise<void> {
  cpSync(smallDest, bigDest, { recursive: true });
  const key = await loadSigningKey(path.join(keyDir, 'signing.asc'));
  const signer = await signingFingerprintOf(key, new Date());
  const first = readLedger(readFileSync(path.join(bigDest, LEDGER_FILE)));
  let head: LedgerHead | undefined = first.head;
  const lines = [first.text.toString('utf8')];
  const t0 = Date.now();
  for (let i = 2; i <= ENTRIES; i++) {
    const publish = i % 2 === 0;
    const line = ledgerLine(
      {
        at: new Date(t0 + i * 1000).toISOString(),
        by: 'bench@build-1',
        action: publish ? 'publish' : 'rollout',
        app: APP,
        version: `1.${(publish ? i : i - 1).toString(16)}`,
        seq: i,
        rollout: publish ? 10 : 50 + (i % 50),
        sha256: hex(32),
        version_sha256: hex(32),
        manifest_sha256: null,
        provenance_sha256: publish ? hex(32) : null,
        signer,
        source: { repo: 'https://github.com/octo/my-app', commit: hex(20), ref: `refs/tags/v1.${i.toString(16)}` },
        note: publish ? `build ${i}` : null,
      },
      head,
    );
    lines.push(line);
    head = { n: i, hash: createHash('sha256').update(line.slice(0, -1)).digest('hex') };
  }
  const text = Buffer.from(lines.join(''));
  const checked = readLedger(text);
  if (checked.entries.length !== ENTRIES) throw new Error(`built ${checked.entries.length} entries, not ${ENTRIES}`);
  writeFileSync(path.join(bigDest, LEDGER_FILE), text);
  writeFileSync(path.join(bigDest, LEDGER_SIG_FILE), await signDetached(key, { data: text }));
  const headLine = Buffer.from(lines[lines.length - 1]); // with its newline, as publish signs it
  writeFileSync(path.join(bigDest, LEDGER_HEAD_SIG_FILE), await signDetached(key, { data: headLine }));
  const check = spawnSync(release[0], [...release.slice(1), 'history', APP, '--from', bigDest], { env });
  if (check.status !== 0)
    throw new Error(`release history on the prepared DEST exited ${check.status}: ${check.stderr}`);
  console.log(`DEST ready: ${check.stdout.toString().split('\n')[0]} (${(text.length / 1e6).toFixed(1)} MB)`);
}

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(0.99 * xs.length) - 1];
const ms = (x: number) => `${x.toFixed(0)} ms`;

/** Goal 1: history --json against jq over the same file; sides alternated. */
function benchHistory(): void {
  const ours = [...release, 'history', APP, '--from', bigDest, '--json'];
  const jq = ['jq', '-c', `select(.action=="publish" and .app=="${APP}")`, path.join(bigDest, LEDGER_FILE)];
  const times = { ours: [] as number[], jq: [] as number[] };
  timed(ours); // not counted: page cache, the bundle's first load
  timed(jq);
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 ? (['jq', 'ours'] as const) : (['ours', 'jq'] as const);
    for (const side of order) times[side].push(timed(side === 'ours' ? ours : jq));
  }
  const p50 = { ours: median(times.ours), jq: median(times.jq) };
  const ratio = p50.ours / p50.jq;
  console.log(`history (${ENTRIES} entries)  p50       p99`);
  console.log(`  shipkit --json        ${ms(p50.ours).padEnd(9)} ${ms(p99(times.ours))}`);
  console.log(`  jq -c select(...)     ${ms(p50.jq).padEnd(9)} ${ms(p99(times.jq))}`);
  console.log(
    `  ratio of p50: ${ratio.toFixed(2)}× (goal ≤ ${HISTORY_GOAL}×): ${ratio <= HISTORY_GOAL ? 'met' : 'NOT met'}`,
  );
  reportResult({
    work: `release history --json (${ENTRIES}-entry ledger)`,
    shipkit: Math.round(p50.ours),
    peer: Math.round(p50.jq),
    unit: 'ms',
    goal: `≤ ${HISTORY_GOAL}× jq`,
    met: ratio <= HISTORY_GOAL,
    note: `median of ${RUNS}, sides alternated; p99 shipkit ${ms(p99(times.ours))}, jq ${ms(p99(times.jq))}; jq -c select(publish, app) > /dev/null; shipkit checks the chain and the signature`,
  });
}

/** Goal 2: publish onto a copy of bigDest against onto a copy of smallDest; sides alternated. */
function benchPublish(): void {
  const times = { big: [] as number[], small: [] as number[] };
  const publishOnto = (side: 'big' | 'small', i: number) => {
    const to = path.join(root, `run-${side}`);
    rmSync(to, { recursive: true, force: true });
    cpSync(side === 'big' ? bigDest : smallDest, to, { recursive: true });
    const t = timed(publishArgv(to, `2.${(i + 1).toString(16)}`));
    if (i >= 0) times[side].push(t);
  };
  publishOnto('big', -1); // not counted: page cache
  publishOnto('small', -1);
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 ? (['small', 'big'] as const) : (['big', 'small'] as const);
    for (const side of order) publishOnto(side, i);
  }
  const big = median(times.big);
  const small = median(times.small);
  const percent = ((big - small) / small) * 100;
  console.log(`publish (${FILES} files, ${MB} MB)   p50`);
  console.log(`  onto ${ENTRIES}-entry ledger  ${ms(big)}`);
  console.log(`  onto 1-entry ledger      ${ms(small)}`);
  console.log(
    `  ledger's cost: ${ms(big - small)}, ${percent.toFixed(1)} % (goal ≤ ${PUBLISH_GOAL} %): ${percent <= PUBLISH_GOAL ? 'met' : 'NOT met'}`,
  );
  reportResult({
    work: `release publish onto a ${ENTRIES}-entry ledger (${FILES} files, ${MB} MB)`,
    shipkit: Math.round(big),
    peer: Math.round(small),
    unit: 'ms',
    goal: `≤ ${PUBLISH_GOAL} % over a 1-entry ledger`,
    met: percent <= PUBLISH_GOAL,
    note: `median of ${RUNS}, sides alternated, fresh DEST copy each run; peer: the same publish onto a 1-entry ledger; +${percent.toFixed(1)} %`,
  });
}

/** Goal 3: GET /fleet/APP/releases and the /releases/APP page of the shipped hook-server, HOSTS hosts. */
async function benchReleasesRoute(): Promise<void> {
  const entries = readLedger(readFileSync(path.join(bigDest, LEDGER_FILE))).entries;
  const published = entries.filter((e) => e.action === 'publish').slice(-5);
  const data = path.join(root, 'data');
  mkdirSync(path.dirname(fleetLogFile(data)), { recursive: true, mode: 0o700 });
  // Hosts spread over the last five releases; one in a hundred reports another digest.
  const seeded = fleetLog(HOSTS, {
    app: APP,
    host: (i) => {
      const at = published[i % published.length];
      const before = published[(i % published.length) - 1] ?? at;
      return { version: at.version!, previous: before.version!, sha256: i % 100 ? at.sha256! : hex(32) };
    },
  });
  writeFileSync(fleetLogFile(data), seeded, { mode: 0o600 });
  const token = hex(16);
  const config = path.join(root, 'shipkit.yml');
  writeFileSync(
    config,
    [
      `data: ${data}`,
      `secret: ${hex(16)}`,
      `token: ${token}`,
      'repos: {}',
      'fleet:',
      `  ${APP}:`,
      '    secret: env:BENCH_FLEET_SECRET',
      `    ledger: ${bigDest}`,
      `    keys: ${path.join(keyDir, 'keys.asc')}`,
      '',
    ].join('\n'),
  );
  const port = await quietPort();
  const child = spawn(hookServer[0], [...hookServer.slice(1), '--config', config, '--listen', `127.0.0.1:${port}`], {
    env: { ...env, BENCH_FLEET_SECRET: hex(16) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const get = async (route: string) => {
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}${route}`, { headers: { Authorization: `Bearer ${token}` } });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`GET ${route} answered ${res.status}: ${body.slice(0, 300)}`);
    return { ms: performance.now() - t0, body };
  };
  try {
    for (let i = 0; ; i++) {
      try {
        await fetch(`http://127.0.0.1:${port}/healthz`);
        break;
      } catch {
        if (i > 200 || child.exitCode !== null) throw new Error(`hook-server did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const cold = await get(`/fleet/${APP}/releases`); // the ledger read and verified once
    const view = JSON.parse(cold.body) as { hosts: number; releases: unknown[]; ledger: { error: string | null } };
    if (view.hosts !== HOSTS || view.ledger.error) throw new Error(`unexpected view: ${cold.body.slice(0, 300)}`);
    const times = { json: [] as number[], page: [] as number[] };
    for (let i = 0; i < RUNS * 3; i++) {
      times.json.push((await get(`/fleet/${APP}/releases`)).ms);
      times.page.push((await get(`/releases/${APP}`)).ms);
    }
    const result = (what: string, xs: number[]) => {
      const p50 = median(xs);
      console.log(
        `  ${what.padEnd(26)} ${ms(p50).padEnd(9)} ${ms(p99(xs)).padEnd(9)} ${p99(xs) < PAGE_GOAL_MS ? 'met' : 'NOT met'}`,
      );
      reportResult({
        work: `${what} (${HOSTS} hosts, ${ENTRIES}-entry ledger)`,
        shipkit: Math.round(p50),
        peer: null,
        unit: 'ms',
        goal: `< ${PAGE_GOAL_MS} ms`,
        met: p99(xs) < PAGE_GOAL_MS,
        note: `p50 of ${xs.length} requests, p99 ${ms(p99(xs))}; first request (ledger read and verified) ${ms(cold.ms)}`,
      });
    };
    console.log(
      `releases view (${HOSTS} hosts, ${view.releases.length} releases)  p50  p99  (goal p99 < ${PAGE_GOAL_MS} ms)`,
    );
    console.log(`  first request, ledger verified: ${ms(cold.ms)}`);
    result(`GET /fleet/${APP}/releases`, times.json);
    result(`GET /releases/${APP} (page)`, times.page);
  } finally {
    child.kill('SIGTERM');
  }
}

try {
  console.log(
    `ledger: shipkit (${path.basename(release[1] ?? release[0])}), node ${process.version}, load ${loadAverage()}`,
  );
  prepareSmallDest();
  await prepareBigDest();
  if (!PARTS.has(1)) console.log('part 1 (history against jq) not asked for');
  else if (spawnSync('jq', ['--version']).status !== 0)
    console.log('skipped: bench:ledger history needs jq (apt-get install jq)');
  else benchHistory();
  if (PARTS.has(2)) benchPublish();
  if (PARTS.has(3)) await benchReleasesRoute();
  console.log(`load ${loadAverage()}`);
} finally {
  if (args.keep) console.log(`kept ${root} (--keep)`);
  else rmSync(root, { recursive: true, force: true });
}
