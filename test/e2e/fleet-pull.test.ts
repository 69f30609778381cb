// Pull rollout on real launchfit hosts (issue 23, DESIGN §8): 20 deploy folders, each running the
// real `launchfit run` and polling Debian's nginx, which serves the folder the real
// `release publish` writes. Idle, a host's poll is one conditional GET of VERSION answered 304
// with headers only (launchfit sends the ETag it saw as If-None-Match; keys.asc and VERSION.sig
// are not fetched again); a new VERSION reaches every host, each downloading the tarball once.
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../helpers.ts';
import { askApp } from '../fixtures/launchfit/world.ts';
import { nginxMissing } from '../fixtures/fleet-sim/nginx.ts';
import { APP, deployRealFleet, makeRealFleet, type RealFleet } from '../fixtures/fleet-sim/real-fleet.ts';

const HOSTS = 20;
const skip = nginxMissing();
let fleet: RealFleet;

test.before(async () => {
  if (skip) return;
  fleet = await makeRealFleet(HOSTS);
  await fleet.publish('1.0');
  await deployRealFleet(fleet);
  await fleet.start();
});

test.after(async () => { await fleet?.stop(); });

const versions = () => Promise.all(fleet.hosts.map((h) => askApp(h.appPort)));

test('20 real launchfit hosts idle on nginx: every poll after a host\'s first is a conditional GET answered 304 under 1 KB; a new release reaches all of them', async () => {
  if (skip) { console.log(`skipped: ${skip}`); return; }
  await waitFor(async () => (await versions()).every((v) => v === '1.0'), { timeoutMs: 60_000, what: 'every app answering 1.0' });
  const mark = fleet.nginx.requests().length;
  await waitFor(() => fleet.nginx.requests().slice(mark).filter((r) => r.path === '/VERSION').length >= HOSTS * 4, { timeoutMs: 60_000, what: 'four polls per host' });
  const idle = fleet.nginx.requests().slice(mark);
  const polls = idle.filter((r) => r.path === '/VERSION');
  assert.ok(polls.every((r) => r.status === 304 && r.ifNoneMatch !== ''), `every idle poll is conditional and answered 304: ${JSON.stringify(polls.filter((r) => r.status !== 304 || !r.ifNoneMatch).slice(0, 3))}`);
  assert.equal([...new Set(idle.map((r) => r.path))], ['/VERSION'], 'an idle host asks for VERSION only (no keys.asc, no VERSION.sig)');
  const perPoll = polls.reduce((n, r) => n + r.sent + r.received, 0) / polls.length;
  console.log(`launchfit idle poll: ${(polls.reduce((n, r) => n + r.received, 0) / polls.length).toFixed(0)} B request + ${(polls.reduce((n, r) => n + r.sent, 0) / polls.length).toFixed(0)} B answer`);
  assert.ok(perPoll < 1024, `an idle poll costs ${perPoll.toFixed(0)} B both ways`);

  const before = fleet.nginx.requests().length;
  await fleet.publish('1.1');
  await waitFor(async () => (await versions()).every((v) => v === '1.1'), { timeoutMs: 90_000, what: 'every host on 1.1' });
  const tarballs = fleet.nginx.requests().slice(before).filter((r) => r.path === `/${APP}-gnu-linux-1.1.tar.gz` && r.status === 200);
  assert.is(tarballs.length, HOSTS, 'one download per host');
  assert.ok(fleet.hosts.every((h) => path.basename(h.deploy) === APP));
});

test.run();
