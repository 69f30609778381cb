// The metrics registry (lib/web/metrics.ts) read back by a strict reader of the exposition format
// (test/fixtures/prometheus.ts) and, where installed, by promtool; escaping, histograms, refusals.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRegistry, escapeLabelValue } from '../../../lib/web/metrics.ts';
import { parseExposition, promtoolCheck, sampleValue } from '../../fixtures/prometheus.ts';

test('counters, gauges and histograms read back; label values with quotes, backslashes and line feeds survive', () => {
  const registry = createRegistry();
  const c = registry.counter('t_requests_total', 'Requests.\nSecond line \\ too.', ['repo', 'state']);
  registry.gauge('t_queue_length', 'Queue.', () => 3);
  const h = registry.histogram('t_duration_seconds', 'Durations.', [1, 0.1, 10], ['repo']);
  const hostile = 'a"b\\c\nd}{,=';
  c.inc({ repo: hostile, state: 'failed' });
  c.inc({ repo: hostile, state: 'failed' }, 2);
  c.inc({ state: 'ok', repo: 'octo/site' });
  for (const v of [0.05, 0.1, 0.5, 5, 50]) h.observe(v, { repo: 'octo/site' });
  const text = registry.render();
  const families = parseExposition(text);
  assert.is(families.get('t_requests_total')!.type, 'counter');
  assert.is(sampleValue(families, 't_requests_total', 't_requests_total', { repo: hostile, state: 'failed' }), 3);
  assert.is(sampleValue(families, 't_requests_total', 't_requests_total', { repo: 'octo/site', state: 'ok' }), 1);
  assert.is(sampleValue(families, 't_queue_length', 't_queue_length'), 3);
  const bucket = (le: string) =>
    sampleValue(families, 't_duration_seconds', 't_duration_seconds_bucket', { repo: 'octo/site', le });
  assert.equal([bucket('0.1'), bucket('1'), bucket('10'), bucket('+Inf')], [2, 3, 4, 5], 'cumulative, le ascending');
  assert.is(sampleValue(families, 't_duration_seconds', 't_duration_seconds_count', { repo: 'octo/site' }), 5);
  assert.is(sampleValue(families, 't_duration_seconds', 't_duration_seconds_sum', { repo: 'octo/site' }), 55.65);
  assert.match(text, '# HELP t_requests_total Requests.\\nSecond line \\\\ too.\n');
  const promtool = promtoolCheck(text);
  if (promtool) assert.is(promtool.code, 0, promtool.output);
  else
    console.log(
      '  (promtool is not installed: apt-get install prometheus; the strict reader alone checked the format)',
    );
});

test('the strict reader refuses what Prometheus would', () => {
  const bad = [
    'x 1',
    '# TYPE x counter\nx{a="1} 1\n',
    '# TYPE x counter\nx{a="1",a="2"} 1\n',
    '# TYPE x counter\nx 1\nx 2\n',
    '# TYPE x counter\nx one\n',
    '# TYPE x histogram\nx_bucket{le="1"} 2\nx_bucket{le="+Inf"} 1\nx_sum 1\nx_count 1\n',
    '# TYPE x histogram\nx_bucket{le="1"} 1\nx_sum 1\nx_count 1\n',
    '# TYPE x counter\ny 1\n',
  ];
  for (const text of bad) assert.throws(() => parseExposition(text), undefined, JSON.stringify(text));
});

test('bad metric and label names, mismatched labels and a counter going down are refused', () => {
  const registry = createRegistry();
  const c = registry.counter('ok_total', 'x', ['a']);
  assert.throws(() => registry.counter('ok_total', 'again'), /duplicate/);
  assert.throws(() => registry.counter('1bad', 'x'), /bad or duplicate/);
  assert.throws(() => registry.counter('x_total', 'x', ['le']), /bad label/);
  assert.throws(() => registry.counter('y_total', 'x', ['__a']), /bad label/);
  assert.throws(() => c.inc({ b: '1' }), /do not match/);
  assert.throws(() => c.inc({ a: '1' }, -1), /only goes up/);
  assert.is(escapeLabelValue('\\"\n'), '\\\\\\"\\n');
});

test.run();
