// Every metric tteok exports follows Prometheus' naming conventions
// (https://prometheus.io/docs/practices/naming/): a counter ends in _total and
// only a counter does; a point in time is a gauge named _timestamp_seconds;
// units are base units (seconds, bytes) spelt out at the end. The names are
// read from the code the same way the chart's monitoring test reads them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ROOT, exportedMetrics } from '../../harness/chart-tools.ts';

const metrics = exportedMetrics();
// Words that make a name a point in time rather than an amount or a duration.
const POINT_IN_TIME = /(expiry|expires|not_after|not_before|since|last_seen|started_at|_at_)/;

t.test('the metrics are found', async (t) => {
  t.ok(metrics.size >= 30, `${metrics.size} metrics in ingest/, gateway/, controller/, transcoder/`);
});

t.test('a counter ends in _total, and nothing else does', async (t) => {
  for (const [name, { type, file }] of metrics) {
    if (type === 'Counter') t.match(name, /_total$/, `${name} (${file}) is a Counter: its name must end in _total`);
    else t.notMatch(name, /_total$/, `${name} (${file}) is a ${type}: only a Counter's name ends in _total`);
  }
});

t.test('a cumulative count (its help says "since start") is a Counter, not a Gauge', async (t) => {
  for (const [name, { type, file }] of metrics) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const at = text.indexOf(`name: '${name}'`);
    const help = /help:\s*'([^']*)'/.exec(text.slice(at, text.indexOf('registers:', at)))?.[1] ?? '';
    if (/since (the )?start|so far|cumulative/i.test(help))
      t.equal(type, 'Counter', `${name} (${file}) counts since start ("${help}"): a Counter named …_total`);
  }
});

t.test('a point in time is a gauge named _timestamp_seconds', async (t) => {
  for (const [name, { type, file }] of metrics) {
    if (!POINT_IN_TIME.test(name) && !name.endsWith('_timestamp_seconds')) continue;
    t.match(name, /_timestamp_seconds$/, `${name} (${file}) is a point in time: name it …_timestamp_seconds (Unix seconds)`);
    t.equal(type, 'Gauge', `${name} (${file}) is a point in time: a Gauge`);
  }
});

t.test('names are snake_case with the tteok_<role>_ prefix and base units', async (t) => {
  for (const [name, { file }] of metrics) {
    t.match(name, /^tteok_(ingest|gateway|controller|transcoder)_[a-z0-9]+(_[a-z0-9]+)*$/, `${name} (${file})`);
    t.notMatch(name, /_(milliseconds|ms|microseconds|minutes|hours|kilobytes|megabytes|kib|mib)(_|$)/, `${name} (${file}) uses base units (seconds, bytes)`);
  }
});
