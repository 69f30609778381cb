// The audit trail of a real hook-server in DATA (docs/audit.md): a failed login with a hostile
// name, a login, rollout steps, a halt with a hostile reason, a resume and a rollback, a logout
// and `hook-server --end-sessions`, each on disk before its answer; GET /audit only with the
// token; the Audit page and `shipkit audit` show hostile text escaped; `--verify` names the entry
// an edit or a removal broke, and a cut end or a re-made chain by the head kept in DATA (exit 2,
// also after more entries; the head in a backup); keep_days cuts old entries with a retention entry.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chainLines, sha256Hex, verifyAuditChain, type AuditEntry } from '../../../lib/audit/chain.ts';
import { writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { send, signed } from '../../fixtures/fleet-requests.ts';
import { runScript, startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const FLEET_SECRET = `fleet-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = { HOOK_SECRET: `s-${randomUUID()}`, HOOK_TOKEN: TOKEN, FLEET_WEB: FLEET_SECRET };
const HTML = 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8';
const HOSTILE = 'mallory/../../etc\n\u001b[31mFAKE LINE\u001b[0m';

function config(dir: string, extra = ''): string {
  const file = writeConfig(dir, { repos: { 'octo/site': {} } });
  writeFileSync(file, `${readFileSync(file, 'utf8')}fleet:\n  web:\n    secret: env:FLEET_WEB\n${extra}`);
  return file;
}

const trailOf = (dir: string) => path.join(dir, 'data', 'audit', 'audit.jsonl');
const keptHeadOf = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'data', 'audit-head.json'), 'utf8'));
const lines = (dir: string) => readFileSync(trailOf(dir), 'utf8').split('\n').filter(Boolean);
const start = (file: string) => startScript('hook-server', ['--config', file, '--listen', '127.0.0.1:0'], { env });
const audit = (file: string, ...args: string[]) => runScript('audit', ['--config', file, ...args], { env });

function login(server: Server, token: string, user: string) {
  return fetch(`${server.url}/login`, {
    method: 'POST',
    body: new URLSearchParams({ token, user }).toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    redirect: 'manual',
  });
}

const rollout = (step: number, state: string, reason = '') =>
  signed(
    '/fleet/rollouts',
    {
      app: 'web',
      version: '1.2.0',
      seq: 4,
      steps: [10, 50, 100],
      step,
      percent: [10, 50, 100][step - 1],
      state,
      reason,
    },
    FLEET_SECRET,
  );

test('actions are recorded before they are answered; read with the token only; hostile text shown escaped', async () => {
  const dir = tmpDir('shipkit-audit-');
  const file = config(dir);
  const server = await start(file);
  try {
    assert.is((await login(server, 'wrong', HOSTILE)).status, 401);
    assert.equal(JSON.parse(lines(dir)[0]).detail, { user: HOSTILE }, 'on disk when the 401 came');
    const ok = await login(server, TOKEN, 'alice');
    assert.is(ok.status, 303);
    const cookie = ok.headers.get('set-cookie')!.split(';')[0];
    for (const [step, state, reason] of [
      [1, 'running'],
      [1, 'waiting'],
      [2, 'running'],
      [2, 'halted', `probe failed\n\u001b[2J${HOSTILE}`],
      [2, 'running'],
      [2, 'rolled_back'],
    ] as const)
      assert.is((await send(server, rollout(step, state, reason))).status, 202);
    assert.is(
      (await fetch(`${server.url}/logout`, { method: 'POST', headers: { Cookie: cookie }, redirect: 'manual' })).status,
      303,
    );
    const ended = await runScript('hook-server', ['--end-sessions', '--config', file], { env });
    assert.is(ended.exitCode, 0, ended.stderr);

    const recorded = lines(dir).map((l) => JSON.parse(l));
    assert.equal(
      recorded.map((e) => e.action),
      [
        'login.failed',
        'login',
        'rollout.start',
        'rollout.step',
        'rollout.halt',
        'rollout.resume',
        'rollback',
        'logout',
        'sessions.end',
      ],
    );
    assert.match(recorded[1].actor, /^session [A-Za-z0-9_-]{8}$/);
    assert.ok(cookie.includes(recorded[1].actor.slice(8)), 'the session named by its id, not its MAC');
    assert.is(recorded[2].actor, 'fleet secret');
    assert.is(recorded[2].from, '127.0.0.1');
    assert.match(recorded[8].actor, /^cli /);
    assert.not.match(readFileSync(trailOf(dir), 'utf8'), TOKEN);

    // GET /audit: 401 without the token (and nothing written), JSON or the stored lines with it.
    const before = readFileSync(trailOf(dir));
    const anonymous = await fetch(`${server.url}/audit`);
    assert.is(anonymous.status, 401);
    assert.is((await fetch(`${server.url}/audit`, { headers: { Authorization: 'Bearer nope' } })).status, 401);
    assert.equal(readFileSync(trailOf(dir)), before);
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const json = (await (await fetch(`${server.url}/audit?since=7`, { headers: auth })).json()) as any;
    assert.equal(
      json.entries.map((e: any) => e.n),
      [8, 9],
    );
    const jsonl = await (await fetch(`${server.url}/audit?format=jsonl&limit=2`, { headers: auth })).text();
    assert.is(jsonl, `${lines(dir).slice(-2).join('\n')}\n`);
    assert.is((await fetch(`${server.url}/audit?since=x;DROP`, { headers: auth })).status, 400);

    // The page: behind login, linked from the header, hostile text escaped.
    assert.is((await fetch(`${server.url}/audit`, { headers: { Accept: HTML } })).status, 401);
    const fresh = (await login(server, TOKEN, '')).headers.get('set-cookie')!.split(';')[0];
    const page = await (await fetch(`${server.url}/audit`, { headers: { Accept: HTML, Cookie: fresh } })).text();
    assert.match(page, 'href="/audit">Audit</a>');
    assert.match(page, 'user=&quot;mallory/../../etc\\n\\u001b[31mFAKE LINE');
    assert.match(page, 'reason=&quot;probe failed\\n\\u001b[2Jmallory');
    assert.not.match(page, /[\u001b]/);
  } finally {
    assert.is(await server.stop(), 0, server.output());
  }

  // `shipkit audit`: control characters escaped, one entry a line; --json the stored lines.
  const shown = await audit(file);
  assert.is(shown.exitCode, 0, shown.stderr);
  assert.not.match(shown.stdout, /[\u001b]/);
  assert.match(shown.stdout, 'user="mallory/../../etc\\n\\u001b[31mFAKE LINE\\u001b[0m"');
  assert.is(shown.stdout.trim().split('\n').length, 10);
  assert.is((await audit(file, '--json', '--since', '8')).stdout, `${lines(dir).slice(8).join('\n')}\n`);
  assert.is((await audit(file, '--verify')).exitCode, 0);

  // An edited line, then a removed one: --verify exits 2 naming the entry the chain breaks at.
  const original = readFileSync(trailOf(dir), 'utf8');
  writeFileSync(trailOf(dir), original.replace('"alice"', '"bob"'));
  const edited = await audit(file, '--verify');
  assert.is(edited.exitCode, 2);
  assert.match(edited.stderr, 'audit entry 3: does not follow entry 2');
  writeFileSync(trailOf(dir), original.split('\n').toSpliced(4, 1).join('\n'));
  const removed = await audit(file, '--verify');
  assert.is(removed.exitCode, 2);
  assert.match(removed.stderr, 'audit entry 5: is numbered 6');
  assert.is((await audit(file, '--since', 'yesterday')).exitCode, 2);
});

/** The trail made again from entry `from` on: `change`d there, every later line chained anew (only a kept head tells). */
function remadeFrom(lines: string[], from: number, change: (e: AuditEntry) => AuditEntry): string {
  const entries = lines.map((l) => JSON.parse(l) as AuditEntry);
  const rest = entries.slice(from - 1).map((e, i) => {
    const { n: _n, prev: _prev, ...fields } = i === 0 ? change(e) : e;
    return fields;
  });
  const head = from > 1 ? { n: from - 1, hash: sha256Hex(lines[from - 2]) } : undefined;
  return [...lines.slice(0, from - 1), ...chainLines(rest, head).lines].map((l) => `${l}\n`).join('');
}

test('--verify holds the trail against its head kept in DATA: a cut end and a chain made again are found', async () => {
  const dir = tmpDir('shipkit-audit-');
  const file = config(dir);
  let server = await start(file);
  try {
    for (const user of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'])
      assert.is((await login(server, TOKEN, user)).status, 303);
  } finally {
    assert.is(await server.stop(), 0, server.output());
  }
  const original = readFileSync(trailOf(dir), 'utf8');
  assert.equal(keptHeadOf(dir).n, 6);
  assert.is(keptHeadOf(dir).hash, sha256Hex(lines(dir)[5]), "the head kept is the last line's sha256");
  const whole = await audit(file, '--verify');
  assert.is(whole.exitCode, 0, whole.stderr);
  assert.match(
    whole.stdout,
    /entries 1 to 6; head sha256 [0-9a-f]{64}; it holds the head kept in .*audit-head\.json \(entry 6\)/,
  );

  // The last two entries cut: a chain that still verifies on its own, but ends before the kept head.
  writeFileSync(trailOf(dir), `${original.split('\n').slice(0, 4).join('\n')}\n`);
  assert.ok(verifyAuditChain(readFileSync(trailOf(dir))).head, 'the cut trail verifies as a chain');
  const cut = await audit(file, '--verify');
  assert.is(cut.exitCode, 2, cut.stdout);
  assert.match(cut.stderr, 'the audit trail was cut: it ends at entry 4, but its head kept in');
  assert.match(cut.stderr, 'entries 5 to 6 were removed from its end');

  // Entry 3 edited and every line after it chained anew: only the kept head tells.
  const remade = remadeFrom(original.trim().split('\n'), 3, (e) => ({ ...e, detail: { user: 'mallory' } }));
  writeFileSync(trailOf(dir), remade);
  assert.is(verifyAuditChain(readFileSync(trailOf(dir))).head?.n, 6, 'the re-made chain verifies on its own');
  const rewritten = await audit(file, '--verify');
  assert.is(rewritten.exitCode, 2, rewritten.stdout);
  assert.match(rewritten.stderr, 'the audit trail was rewritten: entry 6 is not the one whose sha256');

  // hook-server appends to the re-made trail: the kept head is not raised over it (that would hide it).
  server = await start(file);
  try {
    assert.is((await login(server, TOKEN, 'grace')).status, 303);
  } finally {
    assert.is(await server.stop(), 0, server.output());
  }
  assert.match(server.output(), 'the trail does not hold its head kept in');
  assert.is(lines(dir).length, 7);
  assert.is(keptHeadOf(dir).n, 6);
  const still = await audit(file, '--verify');
  assert.is(still.exitCode, 2);
  assert.match(still.stderr, 'the audit trail was rewritten: entry 6');

  // Put back whole and appended to: the head follows; a backup holds it.
  writeFileSync(trailOf(dir), original);
  server = await start(file);
  try {
    assert.is((await login(server, TOKEN, 'heidi')).status, 303);
  } finally {
    assert.is(await server.stop(), 0, server.output());
  }
  assert.is(keptHeadOf(dir).n, 7);
  assert.is((await audit(file, '--verify')).exitCode, 0);
  const to = path.join(tmpDir('shipkit-audit-backup-'), 'b');
  const backup = await runScript('backup', ['--to', to, '--config', file], { env });
  assert.is(backup.exitCode, 0, backup.stderr);
  assert.equal(JSON.parse(readFileSync(path.join(to, 'data', 'audit-head.json'), 'utf8')), keptHeadOf(dir));
});

test('keep_days: entries older than that are cut at start, a retention entry says so, the chain verifies', async () => {
  const dir = tmpDir('shipkit-audit-');
  const file = config(dir, 'audit:\n  keep_days: 30\n');
  const day = 86_400_000;
  const old = [90, 60, 45, 1].map((daysAgo) => ({
    at: new Date(Date.now() - daysAgo * day).toISOString(),
    action: 'login' as const,
    actor: `session ${daysAgo}`,
    from: '10.0.0.1',
    subject: null,
    detail: null,
  }));
  mkdirSync(path.dirname(trailOf(dir)), { recursive: true });
  writeFileSync(
    trailOf(dir),
    chainLines(old, undefined)
      .lines.map((l) => `${l}\n`)
      .join(''),
  );
  const server = await start(file);
  assert.is(await server.stop(), 0, server.output());
  const kept = lines(dir).map((l) => JSON.parse(l));
  assert.equal(
    kept.map((e) => [e.n, e.action]),
    [
      [4, 'login'],
      [5, 'retention'],
    ],
  );
  assert.equal(kept[1].detail.cut, 3);
  assert.is(kept[1].detail.through, 3);
  const verified = await audit(file, '--verify');
  assert.is(verified.exitCode, 0, verified.stderr);
  assert.match(verified.stdout, 'entries 4 to 5 (1 to 3 cut, as a retention entry records)');
  // The cut front without its retention entry: refused.
  writeFileSync(trailOf(dir), `${lines(dir)[0]}\n`);
  const cut = await audit(file, '--verify');
  assert.is(cut.exitCode, 2);
  assert.match(cut.stderr, 'audit entry 4: entries 1 to 3 are missing and no retention entry records');
});

test.run();
