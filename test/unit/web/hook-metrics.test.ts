// hook-server's /metrics (lib/web/hook-metrics.ts): each counter, gauge and histogram in the
// Prometheus text format, labels escaped, job durations bucketed, and the gauges read when
// rendered, not when counted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHookMetrics } from '../../../lib/web/hook-metrics.ts';

test('counters by their labels, with HELP and TYPE lines', () => {
  const m = createHookMetrics({ counts: () => ({ queued: 0, running: 0 }) });
  m.countDelivery('github', 202);
  m.countDelivery('github', 202);
  m.countDelivery('gitlab', 401);
  m.countOldSecret('octo/site');
  m.countNotification('slack', 'failed');
  m.countCommitStatus('gitea', 'delivered');
  m.countFleetReport('web', 'updated');
  m.countFleetRefusal('bad signature');
  const text = m.render();
  assert.match(text, '# TYPE shipkit_deliveries_total counter');
  assert.match(text, 'shipkit_deliveries_total{forge="github",answer="202"} 2\n');
  assert.match(text, 'shipkit_deliveries_total{forge="gitlab",answer="401"} 1\n');
  assert.match(text, 'shipkit_webhook_old_secret_total{repo="octo/site"} 1\n');
  assert.match(text, 'shipkit_notifications_total{channel="slack",outcome="failed"} 1\n');
  assert.match(text, 'shipkit_commit_statuses_total{forge="gitea",outcome="delivered"} 1\n');
  assert.match(text, 'shipkit_fleet_reports_total{app="web",result="updated"} 1\n');
  assert.match(text, 'shipkit_fleet_reports_refused_total{reason="bad signature"} 1\n');
});

test('a job end: its state, its worker, and its duration in the buckets', () => {
  const m = createHookMetrics({ counts: () => ({ queued: 0, running: 0 }) });
  const end = { repo: 'octo/site', kind: 'build', state: 'succeeded', started: '2026-11-24T10:00:00Z' };
  m.countJobEnd({ ...end, finished: '2026-11-24T10:00:12Z', worker: 'w1' });
  m.countJobEnd({ ...end, state: 'superseded', started: null, finished: null });
  const text = m.render();
  assert.match(text, 'shipkit_jobs_total{repo="octo/site",state="succeeded"} 1\n');
  assert.match(text, 'shipkit_jobs_total{repo="octo/site",state="superseded"} 1\n');
  assert.match(text, 'shipkit_worker_jobs_total{worker="w1",state="succeeded"} 1\n');
  assert.match(text, 'shipkit_job_duration_seconds_bucket{repo="octo/site",le="5"} 0\n');
  assert.match(text, 'shipkit_job_duration_seconds_bucket{repo="octo/site",le="15"} 1\n');
  assert.match(text, 'shipkit_job_duration_seconds_count{repo="octo/site"} 1\n');
  assert.match(text, 'shipkit_job_duration_seconds_sum{repo="octo/site"} 12\n');
});

test('gauges are read at render: the queue, running jobs and the fleet', () => {
  let queued = 3;
  const m = createHookMetrics({
    counts: () => ({ queued, running: 1 }),
    fleetHosts: () => [{ app: 'web', version: '1.2', result: 'updated', hosts: 40 }],
  });
  assert.match(m.render(), 'shipkit_queue_length 3\n');
  queued = 0;
  const text = m.render();
  assert.match(text, 'shipkit_queue_length 0\n');
  assert.match(text, 'shipkit_jobs_running 1\n');
  assert.match(text, 'shipkit_fleet_hosts{app="web",version="1.2",result="updated"} 40\n');
});

test('label values are escaped: a quote or newline in a repo cannot forge a series', () => {
  const m = createHookMetrics({ counts: () => ({ queued: 0, running: 0 }) });
  m.countOldSecret('octo/"x"\nshipkit_jobs_running 99');
  const text = m.render();
  assert.match(text, 'shipkit_webhook_old_secret_total{repo="octo/\\"x\\"\\nshipkit_jobs_running 99"} 1\n');
  assert.not.match(text, /^shipkit_jobs_running 99$/m);
});

test.run();
