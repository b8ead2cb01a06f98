// The V8 heap growth the ingest and the one-machine mode set as they start,
// unless node's command line already chose one. (What it saves is measured in bench/, not here.)
import t from 'tap';
import { HEAP_GROWING_PERCENT, tuneHeapGrowth } from '../../bin/heap-growth.ts';

t.test('sets a fixed growth factor for the roles that package media, when node was started without one', async (t) => {
  t.equal(tuneHeapGrowth('ingest', ['--enable-source-maps']), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  t.equal(tuneHeapGrowth('local', []), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
});

t.test("leaves the other roles to V8's own factor", async (t) => {
  for (const role of ['gateway', 'controller', 'transcoder'] as const) t.equal(tuneHeapGrowth(role, []), undefined, role);
});

t.test("leaves node's own command line alone", async (t) => {
  for (const argv of [['--heap-growing-percent=300'], ['--heap_growing_percent=50'], ['--enable-source-maps', '--heap-growing-percent', '20']]) {
    t.equal(tuneHeapGrowth('ingest', argv), undefined, argv.join(' '));
  }
  t.equal(
    tuneHeapGrowth('ingest', ['--heap-growing-percentage=3']),
    `--heap-growing-percent=${HEAP_GROWING_PERCENT}`,
    'another flag that only starts the same',
  );
});
