// The V8 heap growth tteok sets as it starts, unless node's command line
// already chose one. (What it saves is measured in bench/, not here.)
import t from 'tap';
import { HEAP_GROWING_PERCENT, tuneHeapGrowth } from '../../bin/heap-growth.ts';

t.test('sets a fixed growth factor when node was started without one', async (t) => {
  t.equal(tuneHeapGrowth(['--enable-source-maps']), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  t.equal(tuneHeapGrowth([]), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
});

t.test("leaves node's own command line alone", async (t) => {
  for (const argv of [['--heap-growing-percent=300'], ['--heap_growing_percent=50'], ['--enable-source-maps', '--heap-growing-percent', '20']]) {
    t.equal(tuneHeapGrowth(argv), undefined, argv.join(' '));
  }
  t.equal(tuneHeapGrowth(['--heap-growing-percentage=3']), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`, 'another flag that only starts the same');
});
