// mode plan on a fresh cluster, through dist/index.js: the group's namespace does not exist yet, so
// neither does its istio-ca-root-cert. Plan creates nothing, so it must not wait for that copy: it reads
// the root istiod publishes in its own namespace (the same bundle istiod's namespace controller copies into
// every namespace), shows the Namespace, ServiceAccount and WorkloadGroup it would create, and succeeds.
// An onboard afterwards shows the namespace's copy is the root the plan used.
//
// On real Istio: the root in istio-system and the copy in the new
// namespace are the real istiod's (its namespace controller publishes istio-ca-root-cert in every namespace:
// pilot/pkg/serviceregistry/kube/controller/namespacecontroller.go in istio.io/istio).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { runAction, vmOf } from './action-harness.js';
import { run } from './exec.js';
import { GROUP } from './files.js';
import type { LabState } from './state.js';
import { upRealLab } from './real-lab.js';
import { downLab } from './testing.js';

let dir: string | undefined;
let state: LabState;
let entry: string;

/** `kubectl get` as the lab admin; undefined when the object does not exist. */
async function kubeGet(args: string[]): Promise<string | undefined> {
  const result = await run(
    ['kubectl', '--kubeconfig', state.files.kubeconfig ?? path.join(state.dir, 'kubeconfig'), ...args],
    {
      timeoutMs: 30_000,
      allowFailure: true,
    },
  );
  if (result.code === 0) return result.stdout;
  if (/NotFound|not found/.test(result.stderr)) return undefined;
  throw new Error(`kubectl ${args.join(' ')} failed: ${result.stderr}`);
}

const rootCertOf = (namespace: string) =>
  kubeGet(['-n', namespace, 'get', 'configmap', 'istio-ca-root-cert', '-o', 'jsonpath={.data.root-cert\\.pem}']);

beforeAll(async () => {
  ({ dir, state, entry } = await upRealLab('action-plan-fresh', 1));
}, 600_000);

afterAll(async () => {
  if (!dir) return;
  const result = await downLab(dir);
  expect(result.code).toBe(0);
}, 120_000);

describe('plan on a cluster where the group namespace does not exist yet', () => {
  it('succeeds, shows what it would create, takes the root cert from istiod’s namespace, and creates nothing', async () => {
    expect(await kubeGet(['get', 'namespace', GROUP.namespace])).toBeUndefined();
    const istioRoot = await rootCertOf('istio-system');
    expect(istioRoot).toContain('BEGIN CERTIFICATE');

    const plan = await runAction(state, { context: 'lab', mode: 'plan' }, { entry });
    expect({ code: plan.code, fatal: plan.report?.fatal }).toEqual({ code: 0, fatal: undefined });
    const objects = plan.report!.cluster!.objects.map((o) => `${o.kind} ${o.namespace ?? ''}/${o.name}: ${o.action}`);
    expect(objects).toEqual(
      expect.arrayContaining([
        `Namespace /${GROUP.namespace}: would-create`,
        `ServiceAccount ${GROUP.namespace}/${GROUP.serviceAccount}: would-create`,
        `WorkloadGroup ${GROUP.namespace}/${GROUP.name}: would-create`,
      ]),
    );
    expect(plan.log).toContain(`root cert: read from istio-system/istio-ca-root-cert`);
    const vm1 = vmOf(plan.report, 'vm1');
    expect(vm1.outcome).toBe('planned');
    expect(vm1.files.find((file) => file.path === '/etc/certs/root-cert.pem')).toMatchObject({ changed: true });

    // Touched nothing: none of the objects it showed exists.
    expect(await kubeGet(['get', 'namespace', GROUP.namespace])).toBeUndefined();
    expect(await kubeGet(['-n', GROUP.namespace, 'get', 'serviceaccount', GROUP.serviceAccount])).toBeUndefined();
  }, 120_000);

  it('the onboard that follows finds the same root in the new namespace (istiod copied it there)', async () => {
    const onboard = await runAction(state, { context: 'lab', 'verify-after-onboard': 'false' }, { entry });
    expect([onboard.code, onboard.report?.fatal]).toEqual([0, undefined]);
    expect(await rootCertOf(GROUP.namespace)).toBe(await rootCertOf('istio-system'));
  }, 300_000);
});
