// How many Kubernetes API requests `mode: onboard` makes, counted by the lab's Kubernetes API (not by the action), for
// N VMs in one group: the goal of issue 20 is ≤ 20 + 2N on a first install and ≤ 20 + N on a rerun with nothing
// changed. One lab of five VMs: group `app` (vm1, N = 1) and group `app4` (vm2..vm5, N = 4) in a namespace of its own,
// so both are first installs. The action runs through dist/ with the kubeconfig's `lab-restricted` user given an
// admin's rules — what the lab's `lab` context can do, under a name of its own, so the lab's Kubernetes API tells the
// action's requests from those of the real istiod (the lab runs on real Istio; istiod lists, watches, writes
// WorkloadEntries and reviews tokens all along, as `lab-admin`): only lab-restricted's are counted, and each count is
// held against the number the action's own report gives (apiRequests). Prints the requests grouped by verb and
// resource, and checks what the reductions guarantee and, at 4 VMs, the goal itself.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { runAction, type ActionRun } from './action-harness.js';
import { controlRequest } from './control.js';
import { ADMIN_RULES, RESTRICTED_USER } from './kube/auth.js';
import type { LabState } from './state.js';
import { upRealLab } from './real-lab.js';
import { downLab } from './testing.js';

let dir: string | undefined;
let state: LabState;
let entry: string;
const inventories: Record<number, string> = {};

interface KubeRequest {
  method: string;
  path: string;
  verb: string;
  user: string;
  status: number;
  resource?: string;
  subresource?: string;
  namespace?: string;
}

interface Counted {
  total: number;
  /** `verb resource[/subresource]` (or `METHOD path` for non-resource paths) → count. */
  byKind: Record<string, number>;
}

/** The mark to count from: how many requests the lab's Kubernetes API has seen so far. */
async function mark(): Promise<number> {
  const reply = await controlRequest(state.files.controlSocket, {
    op: 'kube-requests',
    since: Number.MAX_SAFE_INTEGER,
  });
  if (!reply.ok) throw new Error(`kube-requests: ${reply.error}`);
  return (reply.result as { total: number }).total;
}

/** The action's requests since `since`, grouped. */
async function countedSince(since: number): Promise<Counted> {
  const reply = await controlRequest(state.files.controlSocket, { op: 'kube-requests', since });
  if (!reply.ok) throw new Error(`kube-requests: ${reply.error}`);
  const requests = (reply.result as { requests: KubeRequest[] }).requests.filter((r) => r.user === RESTRICTED_USER);
  const byKind: Record<string, number> = {};
  for (const r of requests) {
    const kind = r.resource
      ? `${r.verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ''}`
      : `${r.method} ${r.path}`;
    byKind[kind] = (byKind[kind] ?? 0) + 1;
  }
  return { total: requests.length, byKind };
}

function breakdown(label: string, counted: Counted): string {
  const rows = Object.entries(counted.byKind).sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
  return [
    `${label}: ${counted.total} requests`,
    ...rows.map(([kind, n]) => `  ${String(n).padStart(4)}  ${kind}`),
  ].join('\n');
}

async function onboard(vms: number): Promise<{ run: ActionRun; counted: Counted }> {
  const since = await mark();
  const run = await runAction(
    state,
    { context: 'lab-restricted', mode: 'onboard', inventory: inventories[vms]! },
    { entry, timeoutMs: 400_000 },
  );
  if (run.code !== 0) console.log(run.log.slice(-4000));
  expect(run.code).toBe(0);
  expect(run.report?.vms.map((vm) => vm.outcome)).toEqual(
    Array(vms).fill(expect.stringMatching(/installed|unchanged/)),
  );
  return { run, counted: await countedSince(since) };
}

beforeAll(async () => {
  ({ dir, state, entry } = await upRealLab('action-requests', 5));
  const reply = await controlRequest(state.files.controlSocket, {
    op: 'kube-user-rules',
    user: RESTRICTED_USER,
    rules: ADMIN_RULES,
  });
  if (!reply.ok) throw new Error(`kube-user-rules: ${reply.error}`);
  type Group = { name: string; namespace: string; serviceAccount: string; vms: { name: string }[] };
  const doc = parse(readFileSync(state.files.inventory, 'utf8')) as { groups: Group[] };
  const [group] = doc.groups;
  if (!group || doc.groups.length !== 1 || group.vms.length !== 5) throw new Error('expected one group of 5 VMs');
  const variants: Record<number, Group> = {
    1: { ...group, vms: group.vms.slice(0, 1) },
    4: {
      ...group,
      name: `${group.name}4`,
      namespace: `${group.namespace}4`,
      serviceAccount: `${group.serviceAccount}4`,
      vms: group.vms.slice(1),
    },
  };
  for (const [n, variant] of Object.entries(variants)) {
    const file = path.join(state.dir, `inventory of ${n} VMs.yaml`);
    writeFileSync(file, stringify({ ...doc, groups: [variant] }));
    inventories[Number(n)] = file;
  }
}, 600_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

/**
 * What the reductions so far guarantee whatever the timing: per VM one ServiceEntry, created in a verification
 * Job shared by the group's VMs that reach the check together (issue 20: at most one Job per VM, at least one for
 * the group), waited for with a watch of its pods (no GET per poll), the entries removed with their Job (no DELETE
 * of their own); WorkloadEntries
 * followed by one list and one watch of the namespace (no GET by name, no list per poll round); one bootstrap
 * token for the group's ServiceAccount; PeerAuthentications read once per namespace (group + root); istiod's
 * ConfigMaps in one list.
 */
function expectReductions(counted: Counted, vms: number): void {
  const n = (kind: string): number => counted.byKind[kind] ?? 0;
  expect({
    getJobs: n('get jobs.batch'),
    deleteJobs: n('delete jobs.batch'),
    createServiceEntries: n('create serviceentries.networking.istio.io'),
    deleteServiceEntries: n('delete serviceentries.networking.istio.io'),
    getWorkloadEntries: n('get workloadentries.networking.istio.io'),
    listWorkloadEntries: n('list workloadentries.networking.istio.io'),
    watchWorkloadEntries: n('watch workloadentries.networking.istio.io'),
    tokenRequests: n('create serviceaccounts/token'),
    listPeerAuthentications: n('list peerauthentications.security.istio.io'),
    listConfigMaps: n('list configmaps'),
  }).toEqual({
    getJobs: 0,
    deleteJobs: n('create jobs.batch'),
    createServiceEntries: vms,
    deleteServiceEntries: 0,
    getWorkloadEntries: 0,
    listWorkloadEntries: 1,
    watchWorkloadEntries: 1,
    tokenRequests: 1,
    listPeerAuthentications: 2,
    // istiod's namespace's ConfigMaps (mesh config, injector config) in one list; GETs only in the group's
    // namespace (its istio-ca-root-cert).
    listConfigMaps: 1,
  });
  expect(n('create jobs.batch')).toBeGreaterThanOrEqual(1);
  expect(n('create jobs.batch')).toBeLessThanOrEqual(vms);
  // A Job is waited for with one watch of its pods (label job-name), which also names the pod whose log is read:
  // no watch of the Job, no list of pods. Opened again only when one ends before the pod (at most 10 per Job).
  expect({ watchJobs: n('watch jobs.batch'), listPods: n('list pods') }).toEqual({ watchJobs: 0, listPods: 0 });
  expect(n('watch pods')).toBeGreaterThanOrEqual(n('create jobs.batch'));
}

describe.each([1, 4])('Kubernetes requests of onboard for %i VM(s) in one group', (vms) => {
  let first: { run: ActionRun; counted: Counted } | undefined;
  let rerun: { run: ActionRun; counted: Counted } | undefined;

  it("first install: the lab's API counts what the action's report counts (what the bench reads)", async () => {
    first = await onboard(vms);
    console.log(breakdown(`first install, ${vms} VM(s) (issue 20's goal: ≤ ${20 + 2 * vms})`, first.counted));
    expect(first.run.report?.vms.map((vm) => vm.outcome)).toEqual(Array(vms).fill('installed'));
    expect(first.run.report?.cluster?.apiRequests).toBe(first.counted.total);
    expectReductions(first.counted, vms);
    // The group's namespace is new (each variant has its own): created with one plain create (no patch, one
    // access review), and nothing of the group's read in it before it is applied.
    const n = (kind: string): number => first!.counted.byKind[kind] ?? 0;
    expect({
      createNamespaces: n('create namespaces'),
      patchNamespaces: n('patch namespaces'),
      accessReviews: n('create selfsubjectaccessreviews.authorization.k8s.io'),
      getServiceAccounts: n('get serviceaccounts'),
      getWorkloadGroups: n('get workloadgroups.networking.istio.io'),
    }).toEqual({
      createNamespaces: 1,
      patchNamespaces: 0,
      accessReviews: 1,
      getServiceAccounts: 0,
      getWorkloadGroups: 0,
    });
  }, 420_000);

  it('rerun with nothing changed: the same, every VM unchanged', async () => {
    expect(first?.run.code).toBe(0);
    rerun = await onboard(vms);
    console.log(breakdown(`rerun, ${vms} VM(s) (issue 20's goal: ≤ ${20 + vms})`, rerun.counted));
    expect(rerun.run.report?.vms.map((vm) => vm.outcome)).toEqual(Array(vms).fill('unchanged'));
    expect(rerun.run.report?.cluster?.apiRequests).toBe(rerun.counted.total);
    expectReductions(rerun.counted, vms);
  }, 420_000);

  // Issue 20's goal, met (2026-12-07, 4 VMs: first install 25, rerun 23; 30 and 25 before this round, 45 and 40
  // before the group shared one verification Job). With max-unavailable 100% (the harness's, as in the bench) the
  // group's VMs are verified together and share one Job: create Job, one ServiceEntry per VM, one watch of its
  // pods, pod log, delete Job (4 + N). The rest is the run's fixed cost, 17 requests on a first install into a
  // new namespace and 15 on a rerun (istiod's ConfigMaps in one list, the group's root cert, access reviews,
  // PeerAuthentications, discovery, the group's objects, the token, the WorkloadEntry list and watch).
  // At 1 VM (22 and 20 then, goals 22 and 21) it is printed, not asserted: a watch may be opened again depending
  // on timing, and there the goal has no room for it. (Before WorkloadEntries were watched, a first install at
  // 1 VM listed them 22 times while the real istiod registered the VM: 47 requests in all.)
  if (vms === 4) {
    it(`issue 20's goal: first install ≤ 20 + 2·${vms}`, () => {
      expect(first).toBeDefined();
      expect(first!.counted.total).toBeLessThanOrEqual(20 + 2 * vms);
    });
    it(`issue 20's goal: rerun ≤ 20 + ${vms}`, () => {
      expect(rerun).toBeDefined();
      expect(rerun!.counted.total).toBeLessThanOrEqual(20 + vms);
    });
  }
});
