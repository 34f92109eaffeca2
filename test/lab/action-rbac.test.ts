// The least-privilege RBAC of the README, end to end through the bundled action (dist/): the kubeconfig's
// `lab-restricted` user gets exactly what `istio-vm-onboard rbac` (dist/cli) prints, bound as the README says
// — the group role by a RoleBinding in the group namespace, the Istio role in istio-system, and the opt-in
// namespaces ClusterRole not at all. The lab's Kubernetes API authorizes as RBAC does for that: a rule bound
// in a namespace applies to requests in it, and GET of a namespace object is a request in that namespace
// (k8s.io/apiserver pkg/endpoints/request/requestinfo.go).
// The lab runs on real Istio: onboarding as that user has the real
// istiod sign the VM's certificate and inject the verification Job. The real istiod reads the API all along
// under its own identity (the lab kubeconfig's `lab` context, user `lab-admin`, which the restricted rules
// do not touch); the requests examined here are the action's own: from its log (`::debug::kube METHOD
// PATH`), and the API's record of lab-restricted's requests, which counts what the action's report counts.
//   - The group namespace exists (made by an admin, as the README asks): onboarding passes with no
//     cluster-scoped permission at all, and the action never writes the namespace.
//   - The group's namespace is missing: preflight fails naming the namespace and the permissions the
//     credentials lack to create it, and nothing is touched — no write to the API, no SSH connection.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { runAction, vmOf, type ActionRun } from './action-harness.js';
import { controlRequest } from './control.js';
import { run } from './exec.js';
import { GROUP } from './files.js';
import type { PolicyRule } from './kube/auth.js';
import { RESTRICTED_USER } from './kube/auth.js';
import type { LabState } from './state.js';
import { upRealLab } from './real-lab.js';
import { downLab, REPO_ROOT } from './testing.js';
import { vmPath } from './vm/exec.js';

let dir: string | undefined;
let state: LabState;
let entry: string;

interface RbacDoc {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
}

/** What `istio-vm-onboard rbac` prints, from the bundled CLI. */
async function rbacFromCli(): Promise<RbacDoc[]> {
  const result = await run([process.execPath, path.join(REPO_ROOT, 'dist', 'cli', 'index.js'), 'rbac'], {
    timeoutMs: 30_000,
  });
  return parseAllDocuments(result.stdout)
    .map((d) => d.toJS() as RbacDoc | null)
    .filter((d): d is RbacDoc => d !== null);
}

/** The README's bindings: the group role by a RoleBinding in each group namespace, the Istio role in its own. */
function boundAsTheReadmeSays(docs: RbacDoc[], groupNamespaces: string[]): PolicyRule[] {
  const groupRole = docs.find((d) => d.kind === 'ClusterRole' && d.metadata.name === 'istio-vm-onboard');
  const istioRoles = docs.filter((d) => d.kind === 'Role');
  if (!groupRole || istioRoles.length === 0) throw new Error('rbac printed no group role or no Istio role');
  return [
    ...groupRole.rules.map((r) => ({ ...r, namespaces: groupNamespaces })),
    ...istioRoles.flatMap((role) => role.rules.map((r) => ({ ...r, namespaces: [role.metadata.namespace!] }))),
  ];
}

async function kubectlAsAdmin(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const result = await run(
    ['kubectl', '--kubeconfig', state.files.kubeconfig ?? path.join(state.dir, 'kubeconfig'), ...args],
    {
      timeoutMs: 30_000,
      allowFailure: true,
    },
  );
  return { code: result.code ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** The action's Kubernetes requests, from its debug log (`kube METHOD PATH`). */
function kubeRequestsOf(r: ActionRun): string[] {
  return r.log
    .split('\n')
    .flatMap((line) =>
      line.startsWith('::debug::kube ') ? [line.slice('::debug::kube '.length).trim().split('?')[0]!] : [],
    );
}

/** How many requests the lab's Kubernetes API has recorded so far (from every user). */
async function requestMark(): Promise<number> {
  const reply = await controlRequest(state.files.controlSocket, {
    op: 'kube-requests',
    since: Number.MAX_SAFE_INTEGER,
  });
  if (!reply.ok) throw new Error(`kube-requests: ${reply.error}`);
  return (reply.result as { total: number }).total;
}

/** The requests the API recorded from the action's user (lab-restricted) since `since`. */
async function restrictedRequestsSince(since: number): Promise<{ verb: string; resource?: string }[]> {
  const reply = await controlRequest(state.files.controlSocket, { op: 'kube-requests', since });
  if (!reply.ok) throw new Error(`kube-requests: ${reply.error}`);
  return (reply.result as { requests: { verb: string; user: string; resource?: string }[] }).requests.filter(
    (q) => q.user === RESTRICTED_USER,
  );
}

function sshConnections(): number {
  const log = readFileSync(vmPath(state, state.vms[0]!, '/var/log/sshd-lab.log'), 'utf8');
  return log.split('\n').filter((line) => line.includes('Connection from ')).length;
}

beforeAll(async () => {
  ({ dir, state, entry } = await upRealLab('action-rbac', 1));
  const rules = boundAsTheReadmeSays(await rbacFromCli(), [GROUP.namespace]);
  const reply = await controlRequest(state.files.controlSocket, {
    op: 'kube-user-rules',
    user: RESTRICTED_USER,
    rules,
  });
  if (!reply.ok) throw new Error(`kube-user-rules: ${reply.error}`);
}, 600_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

describe('least-privilege RBAC (RoleBindings per group namespace, no namespace creation)', () => {
  it('the bindings give no cluster-scoped permission: the user may not create namespaces, nor read another namespace object', async () => {
    const canI = async (...args: string[]) =>
      (await kubectlAsAdmin(['auth', 'can-i', ...args, '--context', 'lab-restricted'])).stdout.trim();
    expect(await canI('create', 'namespaces')).toBe('no');
    expect(await canI('get', `namespaces/${GROUP.namespace}`, '-n', GROUP.namespace)).toBe('yes');
    expect(await canI('get', 'namespaces/default', '-n', 'default')).toBe('no');
  });

  it('the group namespace exists: onboard as that user passes, and the namespace is only read', async () => {
    expect((await kubectlAsAdmin(['create', 'namespace', GROUP.namespace])).code).toBe(0);
    const since = await requestMark();
    const r = await runAction(state, { context: 'lab-restricted', mode: 'onboard' }, { entry, timeoutMs: 280_000 });
    if (r.code !== 0)
      console.log(
        r.log
          .split('\n')
          .filter((l) => !l.startsWith('::debug::kube '))
          .slice(-40)
          .join('\n'),
      );
    expect(r.code).toBe(0);
    expect(r.report?.cluster?.objects).toContainEqual({
      kind: 'Namespace',
      name: GROUP.namespace,
      action: 'unchanged',
    });
    expect(vmOf(r.report, state.vms[0]!.name).checks.every((c) => c.status === 'pass')).toBe(true);
    const requests = kubeRequestsOf(r);
    expect(requests).toContain(`GET /api/v1/namespaces/${GROUP.namespace}`);
    // The API saw as many requests from the action's user as the action counted (istiod's are not among them).
    const recorded = await restrictedRequestsSince(since);
    expect(recorded.length).toBe(r.report?.cluster?.apiRequests);
    expect(recorded.filter((q) => q.resource === 'namespaces' && q.verb !== 'get')).toEqual([]);
    expect(requests.filter((line) => /^(POST|PATCH|PUT|DELETE) \/api\/v1\/namespaces(\/[^/]+)?$/.test(line))).toEqual(
      [],
    );
  }, 300_000);

  it('the group namespace is missing: preflight names it and the permissions to create it; nothing is touched', async () => {
    const missingNamespace = 'vm-not-there';
    const inventory = path.join(state.dir, 'inventory in a missing namespace.yaml');
    const text = readFileSync(state.files.inventory, 'utf8');
    expect(text).toContain(`namespace: ${GROUP.namespace}\n`);
    writeFileSync(inventory, text.replace(`namespace: ${GROUP.namespace}\n`, `namespace: ${missingNamespace}\n`));
    const sshBefore = sshConnections();
    const r = await runAction(
      state,
      { context: 'lab-restricted', mode: 'onboard', inventory },
      { entry, timeoutMs: 120_000 },
    );
    expect(r.code).toBe(1);
    if (!r.log.includes(`group namespace "${missingNamespace}"`)) console.log(r.log);
    expect(r.log).toContain(
      `group namespace "${missingNamespace}" was not found: reading it is forbidden (get namespaces in "${missingNamespace}"`,
    );
    expect(r.log).toContain('the credentials lack create namespaces (cluster-scoped) to create it');
    expect(r.log).toContain(`create serviceaccounts in namespace "${missingNamespace}"`);
    expect(r.report?.fatal?.stage).toBe('cluster');
    // Nothing touched: only reads and access reviews reached the API, no VM was connected to, and the
    // namespace is still not there.
    const writes = kubeRequestsOf(r).filter(
      (line) =>
        !/^GET /.test(line) &&
        !/^POST \/apis\/authorization\.k8s\.io\/v1\/selfsubject(access|rules)reviews$/.test(line),
    );
    expect(writes).toEqual([]);
    expect(sshConnections()).toBe(sshBefore);
    const ns = await kubectlAsAdmin(['get', 'namespace', missingNamespace]);
    expect(ns.stderr).toMatch(/NotFound|not found/);
  }, 180_000);
});
