// bench:scale's hosts part, last: reports for every host of the fleet signed with one host's
// credential (issue 58's fault), through haproxy; each should be refused 401 and counted, the
// hosts' entries untouched and the nodes' memory not grown by what it would hold for them.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { signRequest } from '../lib/http/signing.ts';
import { hostCredential } from '../lib/release/format/fleet-report.ts';
import { rolloutBucket } from '../lib/release/format/bucket.ts';
import { TOKEN } from '../test/fixtures/workers.ts';
import type { HookNode } from './ha-load.ts';
import { loadAverage, reportResult } from './result.ts';

export interface ForgedOutcome {
  statuses: Record<string, number>;
  /** shipkit_fleet_reports_refused_total{reason="bad_signature"} summed over the nodes, before and after. */
  refused: [number, number];
  /** Before, after the first quarter (the heap grown to its working size under this load), after all. */
  rssMb: [number[], number[], number[]];
  ms: number;
}

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

async function refusedCount(nodes: HookNode[]): Promise<number> {
  let sum = 0;
  for (const n of nodes) {
    const text = await (
      await fetch(`http://127.0.0.1:${n.port}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })
    ).text();
    sum += Number(/shipkit_fleet_reports_refused_total\{reason="bad_signature"\} (\d+)/.exec(text)?.[1] ?? 0);
  }
  return sum;
}

/** One report for each of `ids` (running `version`), all signed with the credential of ids[0]; 64 at a time. */
export async function forgedReports(
  url: string,
  nodes: HookNode[],
  { app, ids, secret, version }: { app: string; ids: string[]; secret: string; version: string },
): Promise<ForgedOutcome> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const credential = hostCredential(secret, ids[0]);
  const statuses: Record<string, number> = {};
  const before = { refused: await refusedCount(nodes), rss: nodes.map((n) => rssMb(n.child.pid!)) };
  const send = (host: string) =>
    new Promise<void>((resolve) => {
      const body = JSON.stringify({
        app,
        host,
        version,
        previous: '',
        seq: 1,
        bucket: rolloutBucket(host, version),
        result: 'rolled_back',
        reason: 'forged',
        seconds: 0,
      });
      const headers = signRequest(credential, 'POST', '/fleet/reports', { body });
      const req = http.request(`${url}/fleet/reports`, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', ...headers },
      });
      const count = (key: string) => ((statuses[key] = (statuses[key] ?? 0) + 1), resolve());
      req.on('response', (res) => res.resume().on('end', () => count(String(res.statusCode))));
      req.on('error', () => count('error'));
      req.end(body);
    });
  const t0 = performance.now();
  let next = 1; // ids[0] signs for the others
  const quarter = Math.floor(ids.length / 4);
  let warm: number[] | undefined;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < ids.length) {
        if (next === quarter) warm = nodes.map((n) => rssMb(n.child.pid!));
        await send(ids[next++]);
      }
    }),
  );
  const ms = performance.now() - t0;
  agent.destroy();
  return {
    statuses,
    refused: [before.refused, await refusedCount(nodes)],
    rssMb: [before.rss, warm ?? before.rss, nodes.map((n) => rssMb(n.child.pid!))],
    ms,
  };
}

/** The forged reports' figures: every one refused and counted, the counts unchanged, RSS before → after. */
export function reportForged(
  f: ForgedOutcome,
  hosts: number,
  before: Record<string, number>,
  after: Record<string, number>,
) {
  const sent = hosts - 1;
  // Grown per forged report: over the last three quarters, once the first has grown the heap to
  // its working size under this load (as a burst of any requests does; the rollout's peak is above).
  const grown = Math.max(...f.rssMb[2].map((mb, i) => mb - f.rssMb[1][i]));
  const mbs = (xs: number[]) => xs.map((m) => m.toFixed(0)).join(' / ');
  console.log(
    `\n${sent} reports for the fleet's hosts signed with one host's credential in ${(f.ms / 1000).toFixed(1)} s: ` +
      `${JSON.stringify(f.statuses)}; counted refused (bad_signature) ${f.refused[1] - f.refused[0]}; updated ` +
      `${before.updated} → ${after.updated}; RSS per node ${mbs(f.rssMb[0])} → ${mbs(f.rssMb[1])} after the ` +
      `first quarter → ${mbs(f.rssMb[2])} MB after all (load ${loadAverage()})`,
  );
  reportResult({
    work: "reports for every host signed with one host's credential: refused 401 and counted",
    shipkit: f.statuses['401'] ?? 0,
    peer: null,
    unit: 'reports',
    goal: `= ${sent}, counted, counts unchanged`,
    met: f.statuses['401'] === sent && f.refused[1] - f.refused[0] === sent && before.updated === after.updated,
    note: `${hosts} hosts, 3 nodes`,
  });
  reportResult({
    work: "a node's RSS grown by the last three quarters of those forged reports",
    shipkit: Number(grown.toFixed(1)),
    peer: null,
    unit: 'MB',
    goal: '< 32 MB',
    met: grown < 32,
    note: `${hosts} hosts, 3 nodes`,
  });
}
