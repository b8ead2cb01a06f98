// The controller's informer re-lists are a Prometheus counter
// (tteok_controller_informer_relists_total) brought up to each informer's own
// cumulative count: read as /metrics shows it.
import t from 'tap';
import { ControllerMetrics } from '../../controller/metrics.ts';

const series = async (m: ControllerMetrics) => (await m.registry.metrics()).split('\n').filter((l) => l.startsWith('tteok_controller_informer_relists'));

t.test("a counter with _total that follows the informers' counts", async (t) => {
  const m = new ControllerMetrics();
  t.match(await m.registry.metrics(), /# TYPE tteok_controller_informer_relists_total counter/);
  m.countRelists('livestreams', 'gone', 0);
  m.countRelists('livestreams', 'idle', 0);
  t.same(
    await series(m),
    [
      'tteok_controller_informer_relists_total{resource="livestreams",cause="gone"} 0',
      'tteok_controller_informer_relists_total{resource="livestreams",cause="idle"} 0',
    ],
    'each series exists at 0 from the start',
  );
  m.countRelists('livestreams', 'gone', 2);
  m.countRelists('livestreams', 'gone', 2); // seen again: nothing new
  m.countRelists('livestreams', 'gone', 3);
  m.countRelists('leases', 'idle', 1);
  t.same(await series(m), [
    'tteok_controller_informer_relists_total{resource="livestreams",cause="gone"} 3',
    'tteok_controller_informer_relists_total{resource="livestreams",cause="idle"} 0',
    'tteok_controller_informer_relists_total{resource="leases",cause="idle"} 1',
  ]);
});
