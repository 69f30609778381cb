// A small Prometheus registry (text exposition format 0.0.4) with no dependency: counters and
// histograms with labels, gauges read when scraped. Label values are escaped as the format says
// (backslash, double quote, line feed); a metric's label names are fixed when it is made.
export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string>;

export interface Metric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(): string[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatLabels(names: readonly string[], values: readonly string[], extra = ''): string {
  const parts = names.map((n, i) => `${n}="${escapeLabelValue(values[i])}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function keyOf(names: readonly string[], labels: Labels): string[] {
  const given = Object.keys(labels);
  if (given.length !== names.length || !names.every((n) => typeof labels[n] === 'string')) {
    throw new Error(`metric labels ${given.join(',')} do not match ${names.join(',')}`);
  }
  return names.map((n) => labels[n]);
}

/** A count that only goes up, per label values. */
export interface Counter extends Metric {
  inc(labels?: Labels, by?: number): void;
}

/** Observations counted into fixed buckets, with their sum, per label values. */
export interface Histogram extends Metric {
  observe(value: number, labels?: Labels): void;
}

/** The metrics of one process, and their exposition text. */
export interface Registry {
  counter(name: string, help: string, labelNames?: readonly string[]): Counter;
  /** A gauge without labels whose value is read at scrape time. */
  gauge(name: string, help: string, read: () => number): Metric;
  /** A gauge with labels whose series are all read at scrape time (a series not returned is gone). */
  gaugeSeries(
    name: string,
    help: string,
    labelNames: readonly string[],
    read: () => Array<{ labels: Labels; value: number }>,
  ): Metric;
  histogram(name: string, help: string, buckets: readonly number[], labelNames?: readonly string[]): Histogram;
  /** The exposition text: HELP and TYPE for every metric, then its samples. */
  render(): string;
}

function counterMetric(name: string, help: string, labelNames: readonly string[]): Counter {
  const values = new Map<string, { labels: string[]; value: number }>();
  return {
    name,
    help,
    type: 'counter',
    inc(labels: Labels = {}, by = 1) {
      if (!(by >= 0)) throw new Error('a counter only goes up');
      const key = keyOf(labelNames, labels);
      const id = JSON.stringify(key);
      const entry = values.get(id) ?? { labels: key, value: 0 };
      entry.value += by;
      values.set(id, entry);
    },
    render: () =>
      [...values.values()].map((e) => `${name}${formatLabels(labelNames, e.labels)} ${formatValue(e.value)}`),
  };
}

function histogramMetric(
  name: string,
  help: string,
  buckets: readonly number[],
  labelNames: readonly string[],
): Histogram {
  const bounds = [...buckets].sort((a, b) => a - b);
  const series = new Map<string, { labels: string[]; counts: number[]; sum: number; count: number }>();
  return {
    name,
    help,
    type: 'histogram',
    observe(value: number, labels: Labels = {}) {
      const key = keyOf(labelNames, labels);
      const id = JSON.stringify(key);
      const s = series.get(id) ?? { labels: key, counts: bounds.map(() => 0), sum: 0, count: 0 };
      bounds.forEach((b, i) => {
        if (value <= b) s.counts[i]++;
      });
      s.sum += value;
      s.count++;
      series.set(id, s);
    },
    render() {
      const lines: string[] = [];
      for (const s of series.values()) {
        bounds.forEach((b, i) =>
          lines.push(`${name}_bucket${formatLabels(labelNames, s.labels, `le="${formatValue(b)}"`)} ${s.counts[i]}`),
        );
        lines.push(`${name}_bucket${formatLabels(labelNames, s.labels, 'le="+Inf"')} ${s.count}`);
        lines.push(`${name}_sum${formatLabels(labelNames, s.labels)} ${formatValue(s.sum)}`);
        lines.push(`${name}_count${formatLabels(labelNames, s.labels)} ${s.count}`);
      }
      return lines;
    },
  };
}

export function createRegistry(): Registry {
  const metrics: Metric[] = [];

  function register<T extends Metric>(metric: T, labelNames: readonly string[]): T {
    if (!NAME.test(metric.name) || metrics.some((m) => m.name === metric.name))
      throw new Error(`bad or duplicate metric name ${metric.name}`);
    for (const l of labelNames)
      if (!LABEL.test(l) || l.startsWith('__') || l === 'le') throw new Error(`bad label name ${l}`);
    metrics.push(metric);
    return metric;
  }

  return {
    counter: (name, help, labelNames = []) => register(counterMetric(name, help, labelNames), labelNames),
    gauge: (name, help, read) =>
      register({ name, help, type: 'gauge', render: () => [`${name} ${formatValue(read())}`] }, []),
    gaugeSeries: (name, help, labelNames, read) =>
      register(
        {
          name,
          help,
          type: 'gauge',
          render: () =>
            read().map(
              ({ labels, value }) =>
                `${name}${formatLabels(labelNames, keyOf(labelNames, labels))} ${formatValue(value)}`,
            ),
        },
        labelNames,
      ),
    histogram: (name, help, buckets, labelNames = []) =>
      register(histogramMetric(name, help, buckets, labelNames), labelNames),
    render: () =>
      metrics
        .map((m) => [`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`, ...m.render()].join('\n'))
        .join('\n') + '\n',
  };
}
