// The last step of a delivery's intake (lib/server/admit.ts) with a real config, push guard and
// local job queue in a temp DATA: a push or release queued (202) and the push kept in DATA/pushes;
// a redelivery answered as a duplicate; an older push superseded; unknown repos, missing clone URLs,
// a clone URL inside DATA or not pinned refused; a guard or queue failing answers 503 and forgets.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { loadShipkitConfig, type ShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import type { JobQueue } from '../../../lib/jobs/job-queue.ts';
import { openJournal } from '../../../lib/jobs/local/journal.ts';
import { createJobQueue } from '../../../lib/jobs/local/queue.ts';
import { createAdmitter, newJobOf, type AdmitRequest, type Answer, type JobEvent } from '../../../lib/server/admit.ts';
import { createPushGuard, pushStateFile } from '../../../lib/server/push-guard.ts';
import { tmpDir } from '../../_helpers/common.ts';

const A = 'a'.repeat(40);
/** The job id a queued or duplicate answer names. */
const jobOf = (answer: Answer): string => {
  assert.ok('json' in answer, JSON.stringify(answer));
  return String(answer.json.job);
};
const B = 'b'.repeat(40);

/** A config with a repo that has `url:` and one that takes the delivery's, DATA, a guard and a queue that does not run jobs. */
async function world() {
  const dir = tmpDir('shipkit-admit-');
  const data = path.join(dir, 'data');
  mkdirSync(data);
  const file = path.join(dir, 'shipkit.yml');
  writeFileSync(
    file,
    `data: ${data}\nrepos:\n  octo/site:\n    url: https://git.example.com/octo/site.git\n  octo/nourl:\n    branch: main\n`,
  );
  const config = await loadShipkitConfig(file);
  const queue = createJobQueue({
    journal: await openJournal(data),
    concurrency: 1,
    run: () => new Promise(() => {}),
    log: silentLogger,
    jobsDir: path.join(data, 'jobs'),
  });
  const guard = createPushGuard({ dataDir: data, workDir: (repo) => path.join(data, 'repos', repo.replace('/', '_')) });
  return { dir, data, config, queue, admit: createAdmitter({ config, queue, guard, log: silentLogger }) };
}

let deliveries = 0;
const push = (repo: string, sha: string, extra: Partial<Extract<JobEvent, { kind: 'push' }>> = {}): AdmitRequest => ({
  repo,
  meaning: {
    kind: 'push',
    repo,
    ref: 'refs/heads/main',
    branch: 'main',
    sha,
    order: {},
    meta: {},
    ...extra,
  } as JobEvent,
  origin: { forge: 'github', delivery: `d-${++deliveries}`, event: 'push' },
  requestId: `r-${deliveries}`,
});
const release = (repo: string, tag: string): AdmitRequest => ({
  repo,
  meaning: { kind: 'release', repo, ref: `refs/tags/${tag}`, tag, meta: {} } as JobEvent,
  origin: { forge: 'gitea', delivery: `d-${++deliveries}`, event: 'release' },
  requestId: `r-${deliveries}`,
});

test('a push is queued (202) as a build of its commit, and the push is kept in DATA/pushes', async () => {
  const { admit, queue, data } = await world();
  const answer = await admit(push('octo/site', A, { order: { pushedAt: 100 } }));
  assert.is(answer.status, 202);
  const id = jobOf(answer);
  const job = queue.get(id)!;
  assert.equal(
    [job.repo, job.kind, job.sha, job.branch, job.deliveryId, job.forge],
    ['octo/site', 'build', A, 'main', `d-${deliveries}`, 'github'],
  );
  const kept = JSON.parse(readFileSync(pushStateFile(data, 'octo/site'), 'utf8'));
  assert.is(kept.branches.main[0].sha, A);
  assert.is(kept.branches.main[0].pushedAt, 100);
});

test('the same delivery again: 200, the job it made, nothing queued twice', async () => {
  const { admit, queue } = await world();
  const first = push('octo/site', A);
  const made = await admit(first);
  const again = await admit({ ...first, requestId: 'r-again' });
  assert.equal(again, {
    status: 200,
    json: { job: jobOf(made), duplicate: true, state: 'queued' },
  });
  assert.is(queue.list({}).length, 1);
});

test("an older push (by the forge's signed push time) is superseded: 200, not built", async () => {
  const { admit, queue } = await world();
  assert.is((await admit(push('octo/site', B, { order: { pushedAt: 200 } }))).status, 202);
  assert.equal(await admit(push('octo/site', A, { order: { pushedAt: 100 } })), {
    status: 200,
    json: { ok: true, state: 'superseded' },
  });
  assert.is(queue.list({}).length, 1);
  // Pushed later, even of an older commit (a forced rollback): built.
  assert.is((await admit(push('octo/site', A, { order: { pushedAt: 300, forced: true } }))).status, 202);
});

test('a release is queued as a release of its tag; a forced push asks for a build even when nothing changed', async () => {
  const { admit, queue } = await world();
  const r = await admit(release('octo/site', 'v1.2.0'));
  const job = queue.get(jobOf(r))!;
  assert.equal([r.status, job.kind, job.tag, job.forge], [202, 'release', 'v1.2.0', 'gitea']);
  const site = { name: 'octo/site' } as Parameters<typeof newJobOf>[0];
  const forced = newJobOf(site, push('octo/site', A, { order: { forced: true } }).meaning, {
    forge: 'github',
    delivery: 'x',
  });
  assert.is(forced.force, true);
  assert.is('force' in newJobOf(site, push('octo/site', A).meaning, { forge: 'github', delivery: 'y' }), false);
});

test('refused: an unknown repo, no clone URL anywhere, a clone URL inside DATA or that is not a plain path', async () => {
  const { admit, data, config } = await world();
  assert.equal(await admit(push('octo/other', A)), {
    status: 404,
    refused: 'unknown repository',
    detail: `octo/other is not in ${(config as ShipkitConfig).file}`,
  });
  const none = await admit(push('octo/nourl', A));
  assert.is(none.status, 400);
  assert.match(
    (none as { refused: string }).refused,
    /^no clone URL: the delivery names none and shipkit\.yml has no url: for this repository/,
  );
  for (const [url, why] of [
    [pathToFileURL(path.join(data, 'repos', 'octo_site')).href, /inside hook-server's data folder/],
    [pathToFileURL(data).href, /inside hook-server's data folder/],
    [`${pathToFileURL(data).href}/..%2Fdata/repos`, /is not a plain local path/],
    [`file://evil.example.com${data}/repos`, /is not a plain local path/],
  ] as const) {
    const answer = await admit(push('octo/nourl', A, { cloneUrl: url }));
    assert.is(answer.status, 400, url);
    assert.is((answer as { refused: string }).refused, 'clone URL refused', url);
    assert.match((answer as { detail: string }).detail, why, url);
  }
  assert.is(existsSync(pushStateFile(data, 'octo/nourl')), false, 'nothing refused was remembered');
});

test('a repo without url: takes the first clone URL and pins it; another later is refused', async () => {
  const { admit, dir } = await world();
  const outside = pathToFileURL(path.join(dir, 'elsewhere.git')).href;
  assert.is((await admit(push('octo/nourl', A, { cloneUrl: outside }))).status, 202);
  const moved = await admit(push('octo/nourl', B, { cloneUrl: 'https://evil.example.com/octo/site.git' }));
  assert.is(moved.status, 400);
  assert.match((moved as { detail: string }).detail, /is not the remote pinned at the first clone/);
});

test('the push guard cannot read DATA/pushes: 503, retry later', async () => {
  const { admit, data } = await world();
  mkdirSync(path.join(data, 'pushes'), { recursive: true });
  writeFileSync(pushStateFile(data, 'octo/site'), '{ not json');
  const answer = await admit(push('octo/site', A));
  assert.is(answer.status, 503);
  assert.is((answer as { refused: string }).refused, 'not accepting jobs now, retry later');
  assert.match((answer as { detail: string }).detail, /^the push guard: /);
});

test('the queue refuses the job: 503, and the guard forgets the push so a retry is taken afresh', async () => {
  const { admit, queue } = await world();
  await (queue as JobQueue).stop({ graceMs: 0, killGroup: async () => {} });
  const first = push('octo/site', B, { order: { pushedAt: 200 } });
  const answer = await admit(first);
  assert.equal([answer.status, (answer as { refused: string }).refused], [503, 'not accepting jobs now, retry later']);
  // Had B stayed remembered, this older push would be superseded; forgotten, it is judged alone
  // (and refused again by the stopped queue, not answered "superseded").
  assert.is((await admit(push('octo/site', A, { order: { pushedAt: 100 } }))).status, 503);
});

test.run();
