import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import {
  chooseFromService,
  describeEastWest,
  orderResolvedAddresses,
  resolveHostnameChoice,
} from '../../src/cluster/east-west.js';
import {
  featureFlag,
  imageTag,
  parseIstioVersion,
  selectIstiod,
  type DeploymentLike,
} from '../../src/cluster/istiod.js';
import { clusterNameFromInjectorValues, trustDomainOf } from '../../src/cluster/mesh-context.js';
import {
  driftOf,
  fieldsV1Paths,
  peerAuthenticationManifest,
  serviceManifest,
  subsetDifferences,
} from '../../src/cluster/mesh-objects.js';
import { ruleGrants } from '../../src/cluster/access-rules.js';
import { REQUIRED_PERMISSIONS, permissionsForRun } from '../../src/cluster/permissions.js';
import {
  formatMissingPermissions,
  missingNamespaceProblems,
  multiNetworkVerifyUrlProblem,
} from '../../src/cluster/preflight.js';
import { renderMinimalRbacYaml } from '../../src/cluster/rbac.js';
import {
  buildGroupVerificationJob,
  buildVerificationJob,
  buildVerificationServiceEntry,
  envoyEndpointLine,
  VERIFY_CLIENT_SCRIPT,
  DEFAULT_VERIFY_CLIENT_IMAGE,
  podPhase,
  parseVerificationLog,
  verificationJobName,
} from '../../src/cluster/verification-job.js';
import {
  autoRegisteredWorkloadEntryName,
  effectivePeerAuthenticationMode,
  toWorkloadEntryInfo,
} from '../../src/cluster/workload-entries.js';
import type { GroupSpec, Inventory } from '../../src/inventory/types.js';

const group = (o: Partial<GroupSpec> = {}): GroupSpec => ({
  name: 'app',
  namespace: 'vm-ns',
  serviceAccount: 'sa',
  labels: { app: 'app' },
  annotations: {},
  ports: { http: 8080 },
  network: '',
  registration: 'auto',
  vms: [],
  ...o,
});

/**
 * A curl stand-in in `bin` for the verification client script: `clusters` (shell lines, `$n` = how many times
 * /clusters was read) answers Envoy's /clusters; any other URL is logged to `calls` and answered by `answer`.
 */
function writeCurlStandIn(bin: string, clusters: string, answer: string): void {
  writeFileSync(
    join(bin, 'curl'),
    [
      '#!/bin/sh',
      'for a in "$@"; do last="$a"; done',
      'if [ "$last" = http://localhost:15000/clusters ]; then',
      '  n=$(cat "$IVO_STUB_DIR/looks" 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > "$IVO_STUB_DIR/looks"',
      clusters,
      '  exit 0',
      'fi',
      'echo "$*" >> "$IVO_STUB_DIR/calls"',
      answer,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
}

/** The environment that puts the curl stand-in first on PATH. */
function curlStandInEnv(bin: string): Record<string, string> {
  return { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, IVO_STUB_DIR: bin };
}

describe('Istio version and istiod', () => {
  it.each([
    ['docker.io/istio/pilot:1.24.2', '1.24.2'],
    ['gcr.io/istio-release/pilot:1.22.0-distroless', '1.22.0'],
    ['localhost:5000/istio/pilot:1.25.0-beta.1', '1.25.0-beta.1'],
    ['istio/pilot:v1.20.3', '1.20.3'],
    ['istio/pilot:1.31-dev-eed52ebb', '1.31-dev-eed52ebb'],
    ['istio/pilot:1.31-dev-eed52ebb-distroless', '1.31-dev-eed52ebb'],
    ['gcr.io/istio-testing/pilot:1.28-alpha.5b8ed1c2a', '1.28-alpha.5b8ed1c2a'],
    ['istio/pilot:1.24.2-debug', '1.24.2'],
    ['istio/pilot:1.24.2-custom', undefined],
    ['istio/pilot:latest', undefined],
    ['istio/pilot@sha256:abcd', undefined],
    ['localhost:5000/pilot', undefined],
  ])('%s → %s', (image, version) => {
    expect(parseIstioVersion(image)).toBe(version);
  });
  it('imageTag ignores registry ports', () => {
    expect(imageTag('reg:5000/istio/pilot:1.2.3')).toBe('1.2.3');
  });
  const dep = (name: string, rev?: string, env: Array<{ name: string; value?: string }> = []): DeploymentLike => ({
    metadata: { name, labels: { app: 'istiod', ...(rev ? { 'istio.io/rev': rev } : {}) } },
    spec: { template: { spec: { containers: [{ name: 'discovery', image: 'istio/pilot:1.24.0', env }] } } },
  });
  it('selects istiod by revision; default matches no label or "default"', () => {
    const ds = [dep('istiod-canary', 'canary'), dep('istiod', 'default')];
    expect(selectIstiod(ds, '')?.metadata?.name).toBe('istiod');
    expect(selectIstiod(ds, 'default')?.metadata?.name).toBe('istiod');
    expect(selectIstiod(ds, 'canary')?.metadata?.name).toBe('istiod-canary');
    expect(selectIstiod(ds, 'stable')).toBeUndefined();
    expect(selectIstiod([dep('istiod')], '')?.metadata?.name).toBe('istiod');
  });
  it('feature flags: env (Go ParseBool), default true, unknown for valueFrom', () => {
    expect(
      featureFlag(
        dep('i', undefined, [{ name: 'PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION', value: 'false' }]),
        'PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION',
      ),
    ).toEqual({
      name: 'PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION',
      enabled: false,
      source: 'env',
      raw: 'false',
    });
    expect(
      featureFlag(
        dep('i', undefined, [{ name: 'PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS', value: '1' }]),
        'PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS',
      ).enabled,
    ).toBe(true);
    expect(featureFlag(dep('i'), 'PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION')).toMatchObject({
      enabled: true,
      source: 'default',
    });
    expect(
      featureFlag(
        dep('i', undefined, [{ name: 'PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION' }]),
        'PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION',
      ).source,
    ).toBe('unknown');
  });
});

describe('east-west selection', () => {
  it('LB ip first, then externalIPs, then LB hostname, else none', () => {
    expect(
      chooseFromService({
        status: { loadBalancer: { ingress: [{ hostname: 'h' }, { ip: '1.2.3.4' }, { ip: '5.6.7.8' }] } },
        spec: { externalIPs: ['9.9.9.9'] },
      }),
    ).toEqual({
      kind: 'address',
      address: '1.2.3.4',
      source: 'lb-ip',
      candidates: ['1.2.3.4', '5.6.7.8'],
    });
    expect(
      chooseFromService({
        spec: { externalIPs: ['9.9.9.9'] },
        status: { loadBalancer: { ingress: [{ hostname: 'elb.aws' }] } },
      }),
    ).toMatchObject({ source: 'external-ip', address: '9.9.9.9' });
    expect(
      chooseFromService({ status: { loadBalancer: { ingress: [{ hostname: 'elb.aws' }, { hostname: 'b' }] } } }),
    ).toEqual({
      kind: 'hostname',
      hostname: 'elb.aws',
      source: 'lb-hostname',
      otherHostnames: ['b'],
    });
    expect(chooseFromService({})).toEqual({ kind: 'none' });
    expect(chooseFromService(undefined)).toEqual({ kind: 'none' });
  });
  it('orders DNS answers stably: IPv4 numerically, then IPv6', () => {
    expect(orderResolvedAddresses(['10.0.0.10', '2001:db8::1', '10.0.0.9', '9.255.0.1', '10.0.0.9', '::1'])).toEqual([
      '9.255.0.1',
      '10.0.0.9',
      '10.0.0.10',
      '::1',
      '2001:db8::1',
    ]);
  });
  it('resolves a hostname to the first ordered address and says which', async () => {
    const e = await resolveHostnameChoice('elb.aws', 'lb-hostname', {
      resolve: async () => ['3.3.3.3', '1.1.1.1', '2001:db8::2'],
    });
    expect(e).toEqual({
      address: '1.1.1.1',
      source: 'lb-hostname',
      hostname: 'elb.aws',
      candidates: ['1.1.1.1', '3.3.3.3', '2001:db8::2'],
    });
    expect(describeEastWest(e)).toBe(
      'east-west gateway 1.1.1.1 from the gateway Service load-balancer hostname; elb.aws resolved; other candidates: 3.3.3.3, 2001:db8::2',
    );
    const v6 = await resolveHostnameChoice('x', 'input', { resolve: async () => ['2001:db8::2'] });
    expect(v6.address).toBe('2001:db8::2');
  });
});

describe('mesh values', () => {
  it('trust domain defaults to cluster.local', () => {
    expect(trustDomainOf('trustDomain: corp.example\n')).toBe('corp.example');
    expect(trustDomainOf('defaultConfig: {}\n')).toBe('cluster.local');
    expect(trustDomainOf(': bad : yaml : [')).toBe('cluster.local');
  });
  it('cluster ID from the injector values JSON, like istioctl', () => {
    expect(clusterNameFromInjectorValues('{"global":{"multiCluster":{"clusterName":"east"}}}')).toBe('east');
    expect(clusterNameFromInjectorValues('{"global":{}}')).toBe('');
    expect(clusterNameFromInjectorValues(undefined)).toBe('');
    expect(() => clusterNameFromInjectorValues('{nope')).toThrow(/give the clusterID input/);
  });
});

describe('mesh objects and drift', () => {
  it('Service and PeerAuthentication manifests', () => {
    expect(serviceManifest(group())).toBeUndefined();
    expect(serviceManifest(group({ service: { name: 'svc', ports: { web: 80, grpc: 9090 } } }))?.spec).toEqual({
      selector: { app: 'app' },
      ports: [
        { name: 'grpc', port: 9090, targetPort: 9090, protocol: 'TCP' },
        { name: 'web', port: 80, targetPort: 80, protocol: 'TCP' },
      ],
    });
    expect(peerAuthenticationManifest(group(), 'unchanged')).toBeUndefined();
    expect(peerAuthenticationManifest(group(), 'permissive')).toMatchObject({
      metadata: { name: 'app-vm-mtls', namespace: 'vm-ns' },
      spec: { selector: { matchLabels: { app: 'app' } }, mtls: { mode: 'PERMISSIVE' } },
    });
  });
  it('subset comparison: extra live keys are fine, changed values and list lengths are not', () => {
    expect(subsetDifferences({ a: { b: 1 } }, { a: { b: 1, c: 2 }, d: 3 })).toEqual([]);
    expect(subsetDifferences({ a: { b: 1 } }, { a: { b: 2 } })).toEqual(['.a.b']);
    expect(subsetDifferences({ l: [{ x: 1 }] }, { l: [{ x: 1, y: 2 }] })).toEqual([]);
    expect(subsetDifferences({ l: [{ x: 1 }] }, { l: [{ x: 1 }, { x: 2 }] })).toEqual(['.l']);
    expect(subsetDifferences({ a: 1 }, {})).toEqual(['.a']);
  });
  it('fieldsV1 paths stop at list entries', () => {
    expect([...fieldsV1Paths({ 'f:spec': { 'f:ports': { 'k:{"port":80}': { 'f:name': {} } }, '.': {} } })]).toEqual([
      'spec',
      'spec.ports',
    ]);
  });
  it('driftOf: unchanged, differing, and owned-but-no-longer-wanted fields', () => {
    const desired = {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'sa', namespace: 'ns', labels: { a: '1' } },
    };
    const managed = (fields: object) => [{ manager: 'istio-vm-onboard', operation: 'Apply', fieldsV1: fields }];
    const live = {
      metadata: {
        name: 'sa',
        namespace: 'ns',
        labels: { a: '1', other: 'x' },
        managedFields: managed({ 'f:metadata': { 'f:labels': { 'f:a': {} } } }),
      },
    };
    expect(driftOf(desired, live)).toEqual([]);
    expect(driftOf(desired, { metadata: { labels: { a: '2' } } })).toEqual(['.metadata.labels.a differs']);
    const owningMore = {
      metadata: {
        labels: { a: '1', b: '2' },
        managedFields: managed({ 'f:metadata': { 'f:labels': { 'f:a': {}, 'f:b': {} } } }),
      },
    };
    expect(driftOf(desired, owningMore)).toEqual(['.metadata.labels.b no longer wanted']);
    // Another manager's fields are not ours to remove.
    expect(
      driftOf(desired, {
        ...owningMore,
        metadata: {
          ...owningMore.metadata,
          managedFields: [{ manager: 'kubectl', operation: 'Update', fieldsV1: {} }],
        },
      }),
    ).toEqual([]);
  });
});

describe('permissions and RBAC', () => {
  const inv = (groups: GroupSpec[]): Inventory => ({
    source: 't',
    mesh: { revision: '', istioNamespace: 'istio-system', eastWestGateway: { service: 'gw', namespace: 'gw-ns' } },
    groups,
  });
  it('the generated RBAC covers every required permission in the right object', () => {
    const docs = parseAllDocuments(
      renderMinimalRbacYaml({ istioNamespace: 'istio-system', gatewayNamespace: 'gw-ns' }),
    ).map((d) => d.toJS());
    const grants = (
      doc: { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> },
      p: (typeof REQUIRED_PERMISSIONS)[number],
    ) =>
      doc.rules.some(
        (r) =>
          r.apiGroups.includes(p.group) &&
          r.resources.includes(p.subresource ? `${p.resource}/${p.subresource}` : p.resource) &&
          r.verbs.includes(p.verb),
      );
    const groupRole = docs.find((d) => d.kind === 'ClusterRole' && d.metadata.name === 'istio-vm-onboard');
    const namespacesRole = docs.find(
      (d) => d.kind === 'ClusterRole' && d.metadata.name === 'istio-vm-onboard-namespaces',
    );
    const istioRole = docs.find((d) => d.kind === 'Role' && d.metadata.namespace === 'istio-system');
    const gwRole = docs.find((d) => d.kind === 'Role' && d.metadata.namespace === 'gw-ns');
    for (const p of REQUIRED_PERMISSIONS) {
      const doc =
        p.scope === 'cluster'
          ? namespacesRole
          : p.scope === 'group-namespace'
            ? groupRole
            : p.scope === 'istio-namespace'
              ? istioRole
              : gwRole;
      expect({ perm: `${p.verb} ${p.resource}`, granted: grants(doc, p) }).toEqual({
        perm: `${p.verb} ${p.resource}`,
        granted: true,
      });
    }
    // And nothing beyond: every granted (group, resource, verb) is required.
    const required = new Set(
      REQUIRED_PERMISSIONS.map(
        (p) => `${p.group}|${p.subresource ? `${p.resource}/${p.subresource}` : p.resource}|${p.verb}`,
      ),
    );
    for (const d of docs)
      for (const r of d.rules)
        for (const res of r.resources)
          for (const v of r.verbs) expect(required.has(`${r.apiGroups[0]}|${res}|${v}`)).toBe(true);
  });
  it('leads with least privilege: the group role is bound per namespace, namespaces are a role of their own, every rule says why', () => {
    const text = renderMinimalRbacYaml();
    const docs = parseAllDocuments(text);
    const groupRole = docs.find(
      (d) => d.get('kind') === 'ClusterRole' && d.getIn(['metadata', 'name']) === 'istio-vm-onboard',
    )!;
    expect(text).toMatch(
      /# What the action does in a VM group's namespace\. Bind it with a RoleBinding in each group namespace[\s\S]*never with a ClusterRoleBinding[^-]*\nkind: ClusterRole\nmetadata:\n {2}name: istio-vm-onboard\n/,
    );
    // The group role reads its own namespace object (a RoleBinding grants that); creating one is the opt-in role's.
    const groupRules = (groupRole.toJS() as { rules: Array<{ resources: string[]; verbs: string[] }> }).rules;
    expect(groupRules.filter((r) => r.resources.includes('namespaces')).map((r) => r.verbs)).toEqual([['get']]);
    const namespacesRole = docs.find(
      (d) => d.get('kind') === 'ClusterRole' && d.getIn(['metadata', 'name']) === 'istio-vm-onboard-namespaces',
    )!;
    expect((namespacesRole.toJS() as { rules: unknown[] }).rules).toEqual([
      { apiGroups: [''], resources: ['namespaces'], verbs: ['create'] },
    ]);
    expect(text).toMatch(/# Optional: creating a group namespace that does not exist yet/);
    const lines = text.split('\n');
    const ruleStarts = lines.flatMap((line, i) => (line === '  - apiGroups:' ? [i] : []));
    expect(ruleStarts.length).toBeGreaterThan(5);
    for (const i of ruleStarts) expect(lines[i - 1]).toMatch(/^ {2}# \w+ \S+: ./);
    expect(docs.length).toBe(3);
  });
  it('permissions depend on mode and on what the inventory uses', () => {
    const auto = inv([group()]);
    const keys = (ps: ReturnType<typeof permissionsForRun>) =>
      ps.map(
        (p) =>
          `${p.verb} ${p.resource}${p.subresource ? `/${p.subresource}` : ''}${p.namespace ? ` ${p.namespace}` : ''}`,
      );
    const onboard = keys(permissionsForRun(auto, { mode: 'onboard', peerAuthentication: 'unchanged' }));
    expect(onboard).toContain('create serviceaccounts/token vm-ns');
    expect(onboard).not.toContain('create workloadentries vm-ns');
    expect(onboard).not.toContain('patch services vm-ns');
    expect(onboard).not.toContain('patch peerauthentications vm-ns');
    expect(onboard).toContain('get services gw-ns');
    const full = keys(
      permissionsForRun(inv([group({ registration: 'static', service: { name: 's', ports: {} } })]), {
        mode: 'onboard',
        peerAuthentication: 'strict',
      }),
    );
    expect(full).toEqual(
      expect.arrayContaining([
        'create workloadentries vm-ns',
        'patch services vm-ns',
        'patch peerauthentications vm-ns',
      ]),
    );
    const plan = keys(permissionsForRun(auto, { mode: 'plan' }));
    expect(plan.some((k) => /^(create|patch|delete) /.test(k))).toBe(false);
    expect(keys(permissionsForRun(auto, { mode: 'offboard' }))).toContain('delete workloadentries vm-ns');
  });
  it('namespace permissions: reading the group namespace is per namespace; creating one only when it is missing, and only to onboard', () => {
    const two = inv([group(), group({ name: 'other', namespace: 'new-ns' })]);
    const keys = (ps: ReturnType<typeof permissionsForRun>) =>
      ps.map((p) => `${p.verb} ${p.resource}${p.namespace ? ` ${p.namespace}` : ''}`);
    const namespacePerms = (ps: ReturnType<typeof permissionsForRun>) =>
      keys(ps.filter((p) => p.resource === 'namespaces'));
    // Every namespace exists: nothing cluster-scoped at all.
    const existing = permissionsForRun(two, { mode: 'onboard', peerAuthentication: 'unchanged' });
    expect(namespacePerms(existing)).toEqual(['get namespaces vm-ns', 'get namespaces new-ns']);
    expect(existing.filter((p) => p.namespace === undefined)).toEqual([]);
    // new-ns is missing: create (cluster-scoped; a plain create, so no patch) naming it; its object is not read
    // again; the group role is still needed in it (the run creates the group's objects there).
    const creating = permissionsForRun(two, {
      mode: 'onboard',
      peerAuthentication: 'unchanged',
      missingNamespaces: ['new-ns'],
    });
    expect(namespacePerms(creating)).toEqual(['get namespaces vm-ns', 'create namespaces']);
    expect(creating.find((p) => p.verb === 'create' && p.resource === 'namespaces')?.why).toBe(
      'create a missing group namespace: namespace "new-ns" does not exist',
    );
    expect(keys(creating)).toContain('create serviceaccounts new-ns');
    // Plan and verify create nothing; plan reads nothing in a namespace that is not there.
    const plan = permissionsForRun(two, { mode: 'plan', missingNamespaces: ['new-ns'] });
    expect(namespacePerms(plan)).toEqual(['get namespaces vm-ns']);
    expect(plan.some((p) => p.namespace === 'new-ns')).toBe(false);
    expect(namespacePerms(permissionsForRun(two, { mode: 'verify', missingNamespaces: ['new-ns'] }))).toEqual([]);
  });
  it('a missing namespace the credentials may not create: one problem naming the namespace and each missing permission', () => {
    const missing = [
      { verb: 'create', group: '', resource: 'namespaces', why: 'c' },
      { verb: 'patch', group: '', resource: 'namespaces', why: 'p' },
      { verb: 'create', group: '', resource: 'serviceaccounts', namespace: 'new-ns', why: 's' },
    ];
    const forbidden = { namespace: 'new-ns', exists: false as const, seenBy: 'forbidden' as const };
    expect(missingNamespaceProblems([forbidden], missing, 'onboard')).toEqual([
      'group namespace "new-ns" was not found: reading it is forbidden (get namespaces in "new-ns", which a RoleBinding ' +
        'of the group role there grants) and neither kube-root-ca.crt nor istio-ca-root-cert is there, and the ' +
        "credentials lack create namespaces and patch namespaces (cluster-scoped) to create it (the README's " +
        'istio-vm-onboard-namespaces ClusterRole, an opt-in), and 1 permission of the group role in it (create ' +
        'serviceaccounts in namespace "new-ns"), which a RoleBinding can only grant once the namespace exists. ' +
        'Create namespace "new-ns" and bind the group role in it (RoleBinding), then run again; nothing was changed',
    ]);
    const absent = { namespace: 'new-ns', exists: false as const, seenBy: 'read' as const };
    expect(missingNamespaceProblems([absent], missing.slice(0, 1), 'onboard')[0]).toMatch(
      /^group namespace "new-ns" does not exist, and the credentials lack create namespaces \(cluster-scoped\) to create it/,
    );
    // Allowed to create it, and the group role applies there (bound cluster-wide): no problem.
    expect(missingNamespaceProblems([absent], [], 'onboard')).toEqual([]);
    // Plan creates nothing.
    expect(missingNamespaceProblems([absent], missing, 'plan')).toEqual([]);
  });
  it('missing permissions message lists each with its purpose', () => {
    const m = formatMissingPermissions([
      { verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token', namespace: 'ns', why: 'tokens' },
    ]);
    expect(m).toBe(
      'the credentials lack 1 permission this run needs:\n  - create serviceaccounts/token in namespace "ns" — tokens\n  (the README\'s minimal RBAC grants exactly these; generated by renderMinimalRbacYaml)',
    );
  });
});

describe('WorkloadEntries and PeerAuthentication', () => {
  it('auto-registered names follow istiod (":" → "-", network suffix, 253 chars from the end)', () => {
    expect(autoRegisteredWorkloadEntryName('vm-app', '10.128.0.27')).toBe('vm-app-10.128.0.27');
    expect(autoRegisteredWorkloadEntryName('vm-app', '2001:db8::5', 'net1')).toBe('vm-app-2001-db8--5-net1');
    const long = autoRegisteredWorkloadEntryName('g'.repeat(300), '10.0.0.1');
    expect(long).toHaveLength(253);
    expect(long.endsWith('-10.0.0.1')).toBe(true);
  });
  it('reads the entry fields checks need', () => {
    const wle = parseYaml(`
metadata: {name: vm-app-10.128.0.27, namespace: vm-ns, annotations: {istio.io/autoRegistrationGroup: vm-app, istio.io/connectedAt: "2024-05-02T10:15:30Z", istio.io/workloadController: istiod-canary-7d9f-x2x}}
spec: {address: 10.128.0.27, serviceAccount: vm-sa, network: n1, labels: {app: vm-app}}
status: {conditions: [{type: Healthy, status: "True"}]}`);
    expect(toWorkloadEntryInfo(wle)).toEqual({
      name: 'vm-app-10.128.0.27',
      namespace: 'vm-ns',
      address: '10.128.0.27',
      network: 'n1',
      serviceAccount: 'vm-sa',
      labels: { app: 'vm-app' },
      autoRegistered: true,
      group: 'vm-app',
      healthy: 'True',
      connectedAt: '2024-05-02T10:15:30Z',
      controller: 'istiod-canary-7d9f-x2x',
    });
  });
  it('effective mTLS mode: workload > namespace > mesh > PERMISSIVE; UNSET inherits; oldest wins', () => {
    const pa = (
      name: string,
      ns: string,
      mode: string,
      labels?: Record<string, string>,
      ts = '2024-01-01T00:00:00Z',
    ) => ({
      metadata: { name, namespace: ns, creationTimestamp: ts },
      spec: { ...(labels ? { selector: { matchLabels: labels } } : {}), mtls: { mode } },
    });
    const labels = { app: 'a', v: '1' };
    expect(effectivePeerAuthenticationMode([], [], labels)).toEqual({
      mode: 'PERMISSIVE',
      source: 'default',
      scope: 'default',
    });
    expect(effectivePeerAuthenticationMode([], [pa('mesh', 'istio-system', 'STRICT')], labels)).toMatchObject({
      mode: 'STRICT',
      scope: 'mesh',
    });
    expect(
      effectivePeerAuthenticationMode([pa('ns', 'n', 'PERMISSIVE')], [pa('mesh', 'istio-system', 'STRICT')], labels),
    ).toMatchObject({ mode: 'PERMISSIVE', scope: 'namespace' });
    expect(
      effectivePeerAuthenticationMode(
        [
          pa('new', 'n', 'DISABLE', { app: 'a' }, '2024-02-01T00:00:00Z'),
          pa('old', 'n', 'STRICT', { app: 'a' }, '2024-01-01T00:00:00Z'),
          pa('other', 'n', 'DISABLE', { app: 'b' }),
        ],
        [],
        labels,
      ),
    ).toEqual({ mode: 'STRICT', source: 'n/old', scope: 'workload' });
    expect(
      effectivePeerAuthenticationMode([pa('unset', 'n', 'UNSET', { app: 'a' }), pa('ns', 'n', 'STRICT')], [], labels),
    ).toMatchObject({ mode: 'STRICT', scope: 'namespace' });
  });
});

describe('verification Job (ADR 0002)', () => {
  it('names: ivo-verify-<vm>-<random>, DNS-safe, at most 63 chars', () => {
    expect(verificationJobName('VM_1.example', 'a1b2c3')).toBe('ivo-verify-vm-1-example-a1b2c3');
    const long = verificationJobName('x'.repeat(100), 'a1b2c3');
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^ivo-verify-x+-a1b2c3$/);
    expect(verificationJobName('vm')).toMatch(/^ivo-verify-vm-[0-9a-f]{6}$/);
  });
  it('the Job spec is the ADR one', () => {
    const job = buildVerificationJob({
      namespace: 'ns',
      name: 'j',
      image: 'img',
      targetUrl: 'http://10.0.0.1:8080/',
      requests: 3,
      injectSidecar: true,
    });
    expect(job.spec).toMatchObject({ ttlSecondsAfterFinished: 300, backoffLimit: 0, activeDeadlineSeconds: 60 });
    expect(job.metadata?.labels).toEqual({ 'app.kubernetes.io/managed-by': 'istio-vm-onboard' });
    const pod = job.spec!.template;
    expect(pod.metadata?.labels?.['sidecar.istio.io/inject']).toBe('true');
    expect(pod.spec?.serviceAccountName).toBe('default');
    expect(pod.spec?.restartPolicy).toBe('Never');
    const c = pod.spec!.containers[0]!;
    expect(c.name).toBe('ivo-client');
    expect(c.command).toEqual(['sh', '-c', VERIFY_CLIENT_SCRIPT]);
    // Issue 17: a restrictive securityContext on the client container.
    expect(c.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 100,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.image).toBe('img');
    expect(DEFAULT_VERIFY_CLIENT_IMAGE).toMatch(/^curlimages\/curl:8\.11\.1@sha256:[0-9a-f]{64}$/);
    expect(c.env).toEqual([
      { name: 'IVO_VMS', value: '1' },
      { name: 'IVO_REQUESTS', value: '3' },
      { name: 'IVO_TARGET_URL_1', value: 'http://10.0.0.1:8080/' },
    ]);
    expect(
      buildVerificationJob({
        namespace: 'ns',
        name: 'j',
        image: 'img',
        targetUrl: 'u',
        requests: 1,
        injectSidecar: false,
      }).spec!.template.metadata?.labels?.['sidecar.istio.io/inject'],
    ).toBe('false');
  });
  const service = {
    host: 'j.ns.ivo-verify.internal',
    address: '10.0.0.1',
    port: 8080,
    protocol: 'http' as const,
    serviceAccount: 'vm-sa',
    labels: { app: 'vm' },
    vmName: 'VM_1',
    waitAttempts: 5,
  };
  it('ADR 0005: the mTLS Job calls the ServiceEntry host, resolved to the VM, after waiting for its endpoint', () => {
    const job = buildVerificationJob({
      namespace: 'ns',
      name: 'j',
      image: 'img',
      targetUrl: 'http://10.0.0.1:8080/healthz?x=1',
      requests: 3,
      injectSidecar: true,
      service,
      revision: 'canary',
    });
    const pod = job.spec!.template;
    expect(pod.metadata?.labels).toEqual({
      'app.kubernetes.io/managed-by': 'istio-vm-onboard',
      'istio.io/rev': 'canary',
    });
    expect(pod.spec!.containers[0]!.env).toEqual([
      { name: 'IVO_VMS', value: '1' },
      { name: 'IVO_REQUESTS', value: '3' },
      { name: 'IVO_TARGET_URL_1', value: 'http://j.ns.ivo-verify.internal:8080/healthz?x=1' },
      { name: 'IVO_RESOLVE_1', value: 'j.ns.ivo-verify.internal:8080:10.0.0.1' },
      { name: 'IVO_WAIT_FOR_1', value: 'outbound|8080||j.ns.ivo-verify.internal::10.0.0.1:8080::' },
      { name: 'IVO_WAIT_ATTEMPTS', value: '5' },
    ]);
    expect(envoyEndpointLine({ ...service, address: 'fd00::1' })).toBe(
      'outbound|8080||j.ns.ivo-verify.internal::[fd00::1]:8080::',
    );
  });
  it('ADR 0005: the ServiceEntry: MESH_INTERNAL, the VM as its one endpoint with the group SA; a VIP only for TCP', () => {
    expect(buildVerificationServiceEntry({ namespace: 'ns', name: 'j', service })).toEqual({
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: {
        name: 'j',
        namespace: 'ns',
        labels: { 'app.kubernetes.io/managed-by': 'istio-vm-onboard', 'istio-vm-onboard/verifies-vm': 'vm-1' },
      },
      spec: {
        hosts: ['j.ns.ivo-verify.internal'],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        exportTo: ['.'],
        ports: [{ number: 8080, targetPort: 8080, name: 'http-verify', protocol: 'HTTP' }],
        endpoints: [{ address: '10.0.0.1', serviceAccount: 'vm-sa', labels: { app: 'vm' } }],
      },
    });
    const tcp = buildVerificationServiceEntry({ namespace: 'ns', name: 'j', service: { ...service, protocol: 'tcp' } });
    expect(tcp.spec).toMatchObject({ addresses: ['10.0.0.1'], ports: [{ name: 'tcp-verify', protocol: 'TCP' }] });
    // Owned by its Job (issue 20): deleting the Job garbage-collects it; without a uid, no owner.
    expect(buildVerificationServiceEntry({ namespace: 'ns', name: 'j', service, ownerJobUid: 'u-1' }).metadata).toEqual(
      expect.objectContaining({ ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'j', uid: 'u-1' }] }),
    );
    expect(buildVerificationServiceEntry({ namespace: 'ns', name: 'j', service }).metadata).not.toHaveProperty(
      'ownerReferences',
    );
  });
  it('the client script: waits (bounded, 1 s apart) until Envoy has the endpoint, then calls with --resolve', () => {
    const bin = mkdtempSync(join(tmpdir(), 'ivo verify script '));
    try {
      // /clusters shows the endpoint from the 2nd look on; other URLs answer 200 and log argv.
      writeCurlStandIn(
        bin,
        '[ "$n" -ge 2 ] && echo "outbound|8080||j.ns.ivo-verify.internal::10.0.0.1:8080::cx_active::0"',
        'printf 200',
      );
      const env = {
        ...curlStandInEnv(bin),
        IVO_VMS: '1',
        IVO_TARGET_URL_1: 'http://j.ns.ivo-verify.internal:8080/',
        IVO_REQUESTS: '2',
        IVO_RESOLVE_1: 'j.ns.ivo-verify.internal:8080:10.0.0.1',
        IVO_WAIT_FOR_1: 'outbound|8080||j.ns.ivo-verify.internal::10.0.0.1:8080::',
        IVO_WAIT_ATTEMPTS: '3',
      };
      const out = execFileSync('sh', ['-c', VERIFY_CLIENT_SCRIPT], { env, encoding: 'utf8' });
      expect(out).toBe('ivo-wait 1 1 unseen\nivo-wait 1 2 seen\nivo-call 1 1 200\nivo-call 1 2 200\nivo-done\n');
      expect(readFileSync(join(bin, 'calls'), 'utf8')).toBe(
        '-s -o /dev/null -w %{http_code} --max-time 5 --resolve j.ns.ivo-verify.internal:8080:10.0.0.1 http://j.ns.ivo-verify.internal:8080/\n'.repeat(
          2,
        ),
      );
      // Without the wait/resolve variables (the plaintext Job) the script calls the URL as before.
      rmSync(join(bin, 'calls'));
      const plain = execFileSync('sh', ['-c', VERIFY_CLIENT_SCRIPT], {
        env: {
          ...curlStandInEnv(bin),
          IVO_VMS: '1',
          IVO_TARGET_URL_1: 'http://10.0.0.1:8080/',
          IVO_REQUESTS: '1',
        },
        encoding: 'utf8',
      });
      expect(plain).toBe('ivo-call 1 1 200\nivo-done\n');
      expect(readFileSync(join(bin, 'calls'), 'utf8')).toBe(
        '-s -o /dev/null -w %{http_code} --max-time 5 http://10.0.0.1:8080/\n',
      );
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
  it('issue 20: one Job for two VMs of a group, each with its own variables; its entries owned by that Job', () => {
    const second = {
      ...service,
      host: 'k.ns.ivo-verify.internal',
      address: '10.0.0.2',
      vmName: 'vm2',
      waitAttempts: 7,
    };
    const base = { namespace: 'ns', image: 'img', requests: 2, injectSidecar: true };
    const job = buildGroupVerificationJob({
      namespace: 'ns',
      name: 'ivo-verify-app-a1b2c3',
      targets: [
        { ...base, name: 'j', targetUrl: 'http://10.0.0.1:8080/', service },
        { ...base, name: 'k', targetUrl: 'http://10.0.0.2:8080/', service: second },
      ],
    });
    expect(job.metadata?.name).toBe('ivo-verify-app-a1b2c3');
    expect(job.spec?.activeDeadlineSeconds).toBe(80);
    expect(job.spec!.template.spec!.containers[0]!.env).toEqual([
      { name: 'IVO_VMS', value: '2' },
      { name: 'IVO_REQUESTS', value: '2' },
      { name: 'IVO_TARGET_URL_1', value: 'http://j.ns.ivo-verify.internal:8080/' },
      { name: 'IVO_RESOLVE_1', value: 'j.ns.ivo-verify.internal:8080:10.0.0.1' },
      { name: 'IVO_WAIT_FOR_1', value: 'outbound|8080||j.ns.ivo-verify.internal::10.0.0.1:8080::' },
      { name: 'IVO_TARGET_URL_2', value: 'http://k.ns.ivo-verify.internal:8080/' },
      { name: 'IVO_RESOLVE_2', value: 'k.ns.ivo-verify.internal:8080:10.0.0.2' },
      { name: 'IVO_WAIT_FOR_2', value: 'outbound|8080||k.ns.ivo-verify.internal::10.0.0.2:8080::' },
      { name: 'IVO_WAIT_ATTEMPTS', value: '7' },
    ]);
    expect(
      buildVerificationServiceEntry({
        namespace: 'ns',
        name: 'k',
        service: second,
        ownerJobUid: 'u-2',
        ownerJobName: 'ivo-verify-app-a1b2c3',
      }).metadata,
    ).toEqual(
      expect.objectContaining({
        name: 'k',
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'ivo-verify-app-a1b2c3', uid: 'u-2' }],
      }),
    );
    expect(() => buildGroupVerificationJob({ namespace: 'ns', name: 'x', targets: [] })).toThrow(/at least one VM/);
  });
  it('issue 20: the client script waits for each VM until seen, then calls each; a refusing VM fails alone', () => {
    const bin = mkdtempSync(join(tmpdir(), 'ivo group script '));
    try {
      // /clusters shows VM 1's endpoint at once and VM 2's from the 3rd look; VM 2 refuses (000).
      writeCurlStandIn(
        bin,
        [
          'echo "outbound|8080||j.ns.ivo-verify.internal::10.0.0.1:8080::cx_active::0"',
          '[ "$n" -ge 4 ] && echo "outbound|8080||k.ns.ivo-verify.internal::10.0.0.2:8080::cx_active::0"',
        ].join('\n'),
        'case "$last" in *k.ns*) printf 000; exit 7 ;; esac\nprintf 200',
      );
      const env = {
        ...curlStandInEnv(bin),
        IVO_VMS: '2',
        IVO_REQUESTS: '2',
        IVO_TARGET_URL_1: 'http://j.ns.ivo-verify.internal:8080/',
        IVO_RESOLVE_1: 'j.ns.ivo-verify.internal:8080:10.0.0.1',
        IVO_WAIT_FOR_1: 'outbound|8080||j.ns.ivo-verify.internal::10.0.0.1:8080::',
        IVO_TARGET_URL_2: 'http://k.ns.ivo-verify.internal:8080/$(touch injected)',
        IVO_RESOLVE_2: 'k.ns.ivo-verify.internal:8080:10.0.0.2',
        IVO_WAIT_FOR_2: 'outbound|8080||k.ns.ivo-verify.internal::10.0.0.2:8080::',
        IVO_WAIT_ATTEMPTS: '5',
      };
      const out = execFileSync('sh', ['-c', VERIFY_CLIENT_SCRIPT], { env, encoding: 'utf8', cwd: bin });
      expect(out).toBe(
        [
          'ivo-wait 1 1 seen',
          'ivo-wait 2 1 unseen',
          'ivo-wait 2 2 unseen',
          'ivo-wait 2 3 seen',
          'ivo-call 1 1 200',
          'ivo-call 1 2 200',
          'ivo-call 2 1 000',
          'ivo-call 2 2 000',
          'ivo-done',
          '',
        ].join('\n'),
      );
      // A value is never evaluated by the shell.
      expect(readFileSync(join(bin, 'calls'), 'utf8')).toContain(
        'http://k.ns.ivo-verify.internal:8080/$(touch injected)',
      );
      expect(() => readFileSync(join(bin, 'injected'))).toThrow();
      expect(parseVerificationLog(out, 2).calls.map((c) => c.code)).toEqual(['000', '000']);
      expect(parseVerificationLog(out, 1).calls.map((c) => c.code)).toEqual(['200', '200']);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
  it('parses the log lines and the Job phase', () => {
    expect(parseVerificationLog('noise\nivo-call 1 1 200\nivo-call 1 2 000\r\nivo-call 1 x 1\nivo-done\n')).toEqual({
      calls: [
        { n: 1, code: '200' },
        { n: 2, code: '000' },
      ],
      done: true,
      waits: [],
      own: 'noise\nivo-call 1 1 200\nivo-call 1 2 000\r\nivo-call 1 x 1\nivo-done\n',
    });
    expect(parseVerificationLog('ivo-wait 1 1 unseen\nivo-wait 1 2 seen\nivo-call 1 1 200\n').waits).toEqual([
      { n: 1, seen: false },
      { n: 2, seen: true },
    ]);
    expect(parseVerificationLog('ivo-call 1 1 503\n').done).toBe(false);
    // Issue 20: one Job's log for two VMs; each VM reads its own lines (and the shared ones).
    const two =
      'ivo-wait 1 1 seen\nivo-wait 2 1 unseen\nivo-wait 2 2 seen\nivo-call 1 1 200\nivo-call 2 1 503\nivo-done\n';
    expect(parseVerificationLog(two, 2)).toEqual({
      calls: [{ n: 1, code: '503' }],
      done: true,
      waits: [
        { n: 1, seen: false },
        { n: 2, seen: true },
      ],
      own: 'ivo-wait 2 1 unseen\nivo-wait 2 2 seen\nivo-call 2 1 503\nivo-done\n',
    });
    expect(parseVerificationLog(two, 1).calls).toEqual([{ n: 1, code: '200' }]);
    // Issue 20: the Job's end is read from its one pod (backoffLimit 0), followed by one watch of pods.
    expect(podPhase(undefined)).toEqual({ state: 'running' });
    expect(podPhase({ status: { phase: 'Running' } })).toEqual({ state: 'running' });
    expect(podPhase({ status: { phase: 'Succeeded' } })).toEqual({ state: 'complete' });
    expect(
      podPhase({
        metadata: { name: 'ivo-verify-vm1-abc123-x1y2z' },
        status: {
          phase: 'Failed',
          reason: 'DeadlineExceeded',
          message: 'Pod was active on the node longer than the specified deadline',
          containerStatuses: [
            {
              name: 'ivo-client',
              image: 'curl',
              imageID: '',
              ready: false,
              restartCount: 0,
              state: { terminated: { exitCode: 137, reason: 'Error' } },
            },
            {
              name: 'istio-proxy',
              image: 'proxyv2',
              imageID: '',
              ready: false,
              restartCount: 0,
              state: { terminated: { exitCode: 0, reason: 'Completed' } },
            },
          ],
        },
      }),
    ).toEqual({
      state: 'failed',
      reason:
        'its pod ivo-verify-vm1-abc123-x1y2z failed: DeadlineExceeded: Pod was active on the node longer than the ' +
        'specified deadline; container ivo-client exited 137 (Error)',
    });
    expect(podPhase({ metadata: { name: 'p' }, status: { phase: 'Failed' } })).toEqual({
      state: 'failed',
      reason: 'its pod p failed: Failed',
    });
  });
});

describe('ruleGrants (a SelfSubjectRulesReview rule, matched as RBAC matches it)', () => {
  const perm = (verb: string, group: string, resource: string, subresource?: string) => ({
    verb,
    group,
    resource,
    why: '',
    namespace: 'ns',
    ...(subresource ? { subresource } : {}),
  });
  it('verbs, API groups and resources, with * for all', () => {
    expect(
      ruleGrants(
        { verbs: ['*'], apiGroups: ['*'], resources: ['*'] },
        perm('patch', 'networking.istio.io', 'workloadgroups'),
      ),
    ).toBe(true);
    expect(
      ruleGrants({ verbs: ['get', 'list'], apiGroups: [''], resources: ['configmaps'] }, perm('get', '', 'configmaps')),
    ).toBe(true);
    expect(
      ruleGrants(
        { verbs: ['get', 'list'], apiGroups: [''], resources: ['configmaps'] },
        perm('create', '', 'configmaps'),
      ),
    ).toBe(false);
    expect(
      ruleGrants({ verbs: ['get'], apiGroups: ['apps'], resources: ['configmaps'] }, perm('get', '', 'configmaps')),
    ).toBe(false);
    expect(ruleGrants({ verbs: ['get'], resources: ['configmaps'] }, perm('get', '', 'configmaps'))).toBe(false);
  });
  it('subresources: named exactly, */sub, or *; the parent resource alone does not grant them', () => {
    expect(
      ruleGrants(
        { verbs: ['create'], apiGroups: [''], resources: ['serviceaccounts/token'] },
        perm('create', '', 'serviceaccounts', 'token'),
      ),
    ).toBe(true);
    expect(ruleGrants({ verbs: ['get'], apiGroups: [''], resources: ['*/log'] }, perm('get', '', 'pods', 'log'))).toBe(
      true,
    );
    expect(ruleGrants({ verbs: ['get'], apiGroups: [''], resources: ['*'] }, perm('get', '', 'pods', 'log'))).toBe(
      true,
    );
    expect(
      ruleGrants(
        { verbs: ['create'], apiGroups: [''], resources: ['serviceaccounts'] },
        perm('create', '', 'serviceaccounts', 'token'),
      ),
    ).toBe(false);
    expect(ruleGrants({ verbs: ['get'], apiGroups: [''], resources: ['pods/*'] }, perm('get', '', 'pods', 'log'))).toBe(
      false,
    );
  });
  it('a rule limited to resourceNames proves nothing about other objects', () => {
    expect(
      ruleGrants(
        { verbs: ['get'], apiGroups: [''], resources: ['configmaps'], resourceNames: ['istio-ca-root-cert'] },
        perm('get', '', 'configmaps'),
      ),
    ).toBe(false);
    expect(
      ruleGrants(
        { verbs: ['get'], apiGroups: [''], resources: ['configmaps'], resourceNames: [] },
        perm('get', '', 'configmaps'),
      ),
    ).toBe(true);
  });
});

describe('multi-network and the default verify-url (issue 15, item 5)', () => {
  it('no group on a network: no problem; a group on a network: the problem names verify-url and the groups', () => {
    expect(multiNetworkVerifyUrlProblem([{ name: 'a', network: '' }])).toBeUndefined();
    const problem = multiNetworkVerifyUrlProblem([
      { name: 'a', network: '' },
      { name: 'b', network: 'vm-net' },
    ]);
    expect(problem).toMatch(
      /^the default verify-url \(istiod's :15014\) has no endpoint a VM on another network can reach/,
    );
    expect(problem).toContain('Groups: b (network vm-net). Set the verify-url input');
  });
});
