// The test control plane itself: a real etcd + kube-apiserver on loopback,
// driven through @kubernetes/client-node, with RBAC enforced.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import t from 'tap';
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { httpsGet, startKubeApiServer } from '../../../harness/kube.ts';

const kube = await startKubeApiServer();
t.teardown(() => kube.stop());

const kc = new KubeConfig();
kc.loadFromFile(kube.kubeconfigPath);
const core = kc.makeApiClient(CoreV1Api);

t.test('serves over TLS with its self-generated certificate', async (t) => {
  t.match(kube.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.ok(kube.caCert, 'the CA of the self-signed serving certificate is exposed');
  // Verified against the CA, not with verification off.
  const res = await httpsGet(`${kube.url}/readyz`, { token: kube.token, ca: kube.caCert! });
  t.equal(res.status, 200);
  t.equal(res.body.trim(), 'ok');
});

t.test('creates and reads back a Namespace and a ConfigMap', async (t) => {
  const ns = await core.createNamespace({ body: { metadata: { name: 'tteok-harness' } } });
  t.equal(ns.metadata?.name, 'tteok-harness');
  t.ok(ns.metadata?.uid, 'the server assigned a uid');

  await core.createNamespacedConfigMap({
    namespace: 'tteok-harness',
    body: { metadata: { name: 'settings', labels: { app: 'tteok' } }, data: { segmentSeconds: '2' } },
  });
  const cm = await core.readNamespacedConfigMap({ namespace: 'tteok-harness', name: 'settings' });
  t.same(cm.data, { segmentSeconds: '2' });
  t.equal(cm.metadata?.labels?.app, 'tteok');
  t.ok(cm.metadata?.resourceVersion, 'stored in etcd with a resourceVersion');

  const list = await core.listNamespacedConfigMap({ namespace: 'tteok-harness', labelSelector: 'app=tteok' });
  t.same(
    list.items.map((c) => c.metadata?.name),
    ['settings'],
  );

  // A duplicate create is a real 409 from the real server.
  const duplicate = await core.createNamespacedConfigMap({ namespace: 'tteok-harness', body: { metadata: { name: 'settings' } } }).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(duplicate instanceof ApiException, 'the duplicate is refused with an ApiException');
  t.equal((duplicate as ApiException<unknown>).code, 409);
});

t.test('RBAC refuses requests without credentials', async (t) => {
  const anonymous = await httpsGet(`${kube.url}/api/v1/namespaces/tteok-harness/configmaps/settings`, { ca: kube.caCert! });
  t.ok([401, 403].includes(anonymous.status), `anonymous GET answered ${anonymous.status}`);
  const badToken = await httpsGet(`${kube.url}/api/v1/namespaces`, { ca: kube.caCert!, token: 'not-a-token' });
  t.equal(badToken.status, 401, 'an unknown bearer token is unauthenticated');
});

t.test('kubectl accepts the kubeconfig', { skip: kubectlMissing() }, async (t) => {
  const { stdout } = await promisify(execFile)('kubectl', [
    '--kubeconfig',
    kube.kubeconfigPath,
    'get',
    'configmap',
    'settings',
    '-n',
    'tteok-harness',
    '-o',
    'jsonpath={.data.segmentSeconds}',
  ]);
  t.equal(stdout, '2');
});

t.test('stop() kills both processes and removes the temp dir', async (t) => {
  await kube.stop();
  t.not(kube.apiServer.child.exitCode ?? kube.apiServer.child.signalCode, null, 'kube-apiserver exited');
  t.not(kube.etcd.child.exitCode ?? kube.etcd.child.signalCode, null, 'etcd exited');
  t.notOk(existsSync(kube.dir), `${kube.dir} removed`);
  await kube.stop(); // idempotent
});

function kubectlMissing(): string | false {
  const found = (process.env.PATH ?? '').split(':').some((d) => d && existsSync(`${d}/kubectl`));
  return found ? false : 'kubectl is not installed';
}
