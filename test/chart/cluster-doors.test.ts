// The chart's side of issue 17 items 6 and 7, on its renders: the webhook
// address policy the controller runs with (what the default values give, and
// what allowedCidrs/blockedCidrs change), and the ValidatingAdmissionPolicy
// that narrows the ingest's Lease writes, bound for the ingest's service
// account in every render. test/chart/ingest-lease-policy.test.ts runs that policy
// on a real API server.
import t from 'tap';
import { loadControllerConfig } from '../../controller/config.ts';
import { WebhookAddressPolicy } from '../../controller/webhook-address-policy.ts';
import { CI_VALUES, NAMESPACE, get, parseDocs, render, type K8sObject } from '../../harness/chart-tools.ts';

const renders: Record<string, K8sObject[]> = {};
for (const [name, file] of Object.entries(CI_VALUES)) renders[name] = parseDocs(await render({ values: [file] }));

/** The controller container's environment: the settings ConfigMap, then its own env (plain values only). */
function controllerEnv(objs: K8sObject[]): Record<string, string> {
  const env: Record<string, string> = { ...((get(objs, 'ConfigMap', 't-tteok-config').data ?? {}) as Record<string, string>) };
  const spec = (
    get(objs, 'Deployment', 't-tteok-controller').spec as { template: { spec: { containers: Array<{ env?: Array<{ name: string; value?: string }> }> } } }
  ).template.spec;
  for (const e of spec.containers[0]!.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

t.test('the default values give the controller a webhook address policy that refuses the cluster', async (t) => {
  const config = loadControllerConfig({ ...controllerEnv(renders['default']!), TTEOK_WEBHOOK_SECRET: 'x'.repeat(16) }).webhooks;
  t.same(config.addressPolicy, { allowedCidrs: [], blockedCidrs: [] }, 'no range allowed by default');
  const policy = new WebhookAddressPolicy(config.addressPolicy);
  for (const ip of ['127.0.0.1', '10.96.0.1', '172.20.0.10', '192.168.0.1', '100.64.0.10', '169.254.169.254', 'fd00::1', '::1'])
    t.notOk(policy.allows(ip), `${ip}: refused`);
  t.ok(policy.allows('93.184.215.14'), 'a public address: allowed');
});

t.test('allowedCidrs and blockedCidrs reach the controller', async (t) => {
  const env = controllerEnv(renders['all-features']!);
  t.equal(env.TTEOK_WEBHOOK_ALLOWED_CIDRS, '10.20.0.0/16');
  t.equal(env.TTEOK_WEBHOOK_BLOCKED_CIDRS, '203.0.113.0/24');
  const policy = new WebhookAddressPolicy(loadControllerConfig({ ...env, TTEOK_WEBHOOK_SECRET: 'x'.repeat(16) }).webhooks.addressPolicy);
  t.ok(policy.allows('10.20.1.2'), 'the allowed range');
  t.notOk(policy.allows('10.21.1.2'), 'only that range');
  t.notOk(policy.allows('203.0.113.5'), 'the added range');
});

t.test("every render ships the Lease admission policy for the ingest's service account, denying", async (t) => {
  for (const [name, objs] of Object.entries(renders)) {
    const policy = get(objs, 'ValidatingAdmissionPolicy') as K8sObject & {
      spec: {
        failurePolicy: string;
        matchConditions: Array<{ expression: string }>;
        matchConstraints: { resourceRules: Array<{ resources: string[]; operations: string[] }> };
      };
    };
    const binding = get(objs, 'ValidatingAdmissionPolicyBinding') as K8sObject & { spec: { policyName: string; validationActions: string[] } };
    t.equal(policy.apiVersion, 'admissionregistration.k8s.io/v1', `${name}: the GA API`);
    t.equal(policy.spec.failurePolicy, 'Fail', `${name}: fails closed`);
    t.same(
      policy.spec.matchConstraints.resourceRules.map((r) => [r.resources, r.operations]),
      [[['leases'], ['CREATE', 'UPDATE', 'DELETE']]],
      `${name}: Lease writes`,
    );
    t.match(policy.spec.matchConditions[0]?.expression, `'system:serviceaccount:${NAMESPACE}:t-tteok-ingest'`, `${name}: for the ingest's service account`);
    t.equal(binding.spec.policyName, policy.metadata.name, `${name}: bound`);
    t.same(binding.spec.validationActions, ['Deny'], `${name}: denies (not only warns or audits)`);
  }
});

t.test("the controller's leader Lease is never one the policy lets the ingest write", async (t) => {
  for (const [name, objs] of Object.entries(renders))
    t.notMatch(controllerEnv(objs).TTEOK_LEADER_ELECTION_LEASE, /^claim\./, `${name}: the rendered leader Lease name`);
  t.throws(
    () => loadControllerConfig({ TTEOK_POD_NAME: 'c', TTEOK_POD_NAMESPACE: 'tteok', TTEOK_LEADER_ELECTION_LEASE: 'claim.tteok' }),
    /TTEOK_LEADER_ELECTION_LEASE must not start with "claim\."/,
    'a claim-like name is refused at start',
  );
});
