// The orchestrator against fake ports: what it does with each VM, in which order, and when it stops.
import { describe, expect, it } from '@jest/globals';
import { parseInventory } from '../../src/inventory/index.js';
import type { CheckResult } from '../../src/report/model.js';
import type { ClusterPort, RunLogger, VerifierPort, VmApplyRequest, VmConnectorPort, VmPort } from '../../src/rollout/ports.js';
import { runRollout } from '../../src/rollout/run.js';
import { readSettings, type InputName } from '../../src/settings.js';

const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n';

function inventoryOf(vmsPerGroup: number[], registration = 'auto') {
  const groups = vmsPerGroup
    .map(
      (count, g) => `  - name: g${g}
    namespace: ns${g}
    registration: ${registration}
    ports: {http: 8080}
    vms:
${Array.from({ length: count }, (_, i) => `      - {name: vm-${g}-${i}, address: 10.0.${g}.${i + 10}, user: lab, internalIP: 10.0.${g}.${i + 10}}`).join('\n')}`,
    )
    .join('\n');
  return parseInventory(`groups:\n${groups}\n`, 'inventory.yaml');
}

function settingsOf(inputs: Partial<Record<InputName, string>> = {}) {
  const all: Partial<Record<InputName, string>> = {
    inventory: 'inventory.yaml',
    'ssh-private-key': KEY,
    'ssh-known-hosts': 'x ssh-ed25519 AAAA',
    ...inputs,
  };
  return readSettings({ get: (name) => all[name] ?? '' }, {});
}

const pass = (name: CheckResult['name']): CheckResult => ({ name, status: 'pass', summary: 'ok', evidence: [], durationMs: 1 });
const fail = (name: CheckResult['name']): CheckResult => ({ name, status: 'fail', summary: 'bad', evidence: ['seen'], hint: 'fix it', durationMs: 1 });

interface World {
  events: string[];
  inFlight: number;
  maxInFlight: number;
  maxInFlightByGroup: Map<string, number>;
  failingChecks: Set<string>;
  failingConnect: Set<string>;
  applied: Map<string, VmApplyRequest>;
  installed: Set<string>;
}

function makeWorld(): World {
  return {
    events: [],
    inFlight: 0,
    maxInFlight: 0,
    maxInFlightByGroup: new Map(),
    failingChecks: new Set(),
    failingConnect: new Set(),
    applied: new Map(),
    installed: new Set(),
  };
}

function fakes(world: World) {
  const groupFlight = new Map<string, number>();
  const cluster: ClusterPort = {
    server: 'https://127.0.0.1:6443',
    preflight: async () => ({ istioVersion: '1.24.0', revision: '', warnings: [] }),
    applyGroup: async (group, options) => {
      world.events.push(`applyGroup ${group.name}${options.dryRun ? ' (dry-run)' : ''}`);
      return [{ kind: 'WorkloadGroup', namespace: group.namespace, name: group.name, action: options.dryRun ? 'would-create' : 'created' }];
    },
    meshContext: async () => ({
      meshConfig: 'defaultConfig:\n  proxyMetadata: {}\n',
      rootCert: 'ROOT',
      clusterID: 'Kubernetes',
      trustDomain: 'cluster.local',
      revision: '',
      istioNamespace: 'istio-system',
      eastWest: { address: '10.0.9.1', source: 'lb-ip', candidates: ['10.0.9.1'] },
    }),
    bootstrapToken: async () => ({ token: 'token-value-123', expiresAt: new Date('2030-01-01T00:00:00Z') }),
    applyStaticWorkloadEntry: async (group, vm) => ({ kind: 'WorkloadEntry', namespace: group.namespace, name: vm.name, action: 'created' }),
    removeWorkloadEntries: async (group, vm) => [{ kind: 'WorkloadEntry', namespace: group.namespace, name: vm.name, action: 'deleted' }],
    requestCount: () => 7,
  };
  const connector: VmConnectorPort = {
    async connect(vm) {
      if (world.failingConnect.has(vm.name)) throw Object.assign(new Error(`connection refused by ${vm.ssh.host}:22`), { hint: 'is sshd running?' });
      world.inFlight += 1;
      world.maxInFlight = Math.max(world.maxInFlight, world.inFlight);
      const group = vm.group;
      groupFlight.set(group, (groupFlight.get(group) ?? 0) + 1);
      world.maxInFlightByGroup.set(group, Math.max(world.maxInFlightByGroup.get(group) ?? 0, groupFlight.get(group)!));
      const port: VmPort = {
        inspect: async () => ({
          arch: 'amd64',
          packageFormat: 'deb',
          ...(world.installed.has(vm.name) ? { installedVersion: '1.24.0' } : {}),
          routeSourceIP: vm.internalIP,
          reachesDiscovery: true,
          currentFiles: {},
        }),
        apply: async (request) => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          const before = world.applied.get(vm.name);
          world.applied.set(vm.name, request);
          const firstInstall = !world.installed.has(vm.name);
          world.installed.add(vm.name);
          const changed = !before || before.files.clusterEnv !== request.files.clusterEnv;
          world.events.push(`apply ${vm.name}`);
          return {
            files: [{ path: '/var/lib/istio/envoy/cluster.env', changed }],
            packageAction: firstInstall ? 'installed' : 'unchanged',
            restarted: changed,
          };
        },
        rollback: async () => {
          world.events.push(`rollback ${vm.name}`);
          return world.applied.size > 0 && world.events.filter((e) => e === `apply ${vm.name}`).length > 1;
        },
        offboard: async () => {
          world.events.push(`offboard ${vm.name}`);
        },
        runScript: async () => ({ code: 0, stdout: '', stderr: '' }),
        counters: () => ({ sshConnections: 1, execRoundTrips: 2, bytesUploaded: 100 }),
        close: async () => {
          world.inFlight -= 1;
          groupFlight.set(group, groupFlight.get(group)! - 1);
        },
      };
      return port;
    },
  };
  const verifier: VerifierPort = {
    verify: async (request) => {
      const failing = world.failingChecks.has(request.vm.name);
      return [pass('sidecar-running'), failing ? fail('sidecar-ready') : pass('sidecar-ready')];
    },
  };
  return { cluster, connector, verifier };
}

const silent: RunLogger = { info: () => {}, warning: () => {}, error: () => {}, debug: () => {}, group: () => {} };

async function run(world: World, inventory: ReturnType<typeof inventoryOf>, inputs: Partial<Record<InputName, string>> = {}) {
  const ports = fakes(world);
  return runRollout(settingsOf(inputs), inventory, {
    cluster: async () => ports.cluster,
    connector: ports.connector,
    verifier: ports.verifier,
    logger: silent,
    toolVersion: 'test',
    redactedInputs: {},
  });
}

describe('runRollout', () => {
  it('onboards every VM, applies the group objects first, and renders files istioctl-style', async () => {
    const world = makeWorld();
    const report = await run(world, inventoryOf([3]));
    expect(report.totals).toMatchObject({ vms: 3, succeeded: 3, failed: 0 });
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['installed', 'installed', 'installed']);
    expect(world.events[0]).toBe('applyGroup g0');
    const files = world.applied.get('vm-0-1')!.files;
    expect(files.clusterEnv).toContain("ISTIO_SVC_IP='10.0.0.11'");
    expect(files.clusterEnv).toContain("ISTIO_META_AUTO_REGISTER_GROUP='g0'");
    expect(files.hosts).toBe('10.0.9.1 istiod.istio-system.svc\n');
    expect(files.token).toBe('token-value-123');
    expect(report.vms[0]?.tokenExpiresAt).toBe('2030-01-01T00:00:00.000Z');
    expect(report.cluster?.apiRequests).toBe(7);
  });

  it('reports unchanged on a rerun with nothing new', async () => {
    const world = makeWorld();
    await run(world, inventoryOf([2]));
    const second = await run(world, inventoryOf([2]));
    expect(second.vms.map((vm) => vm.outcome)).toEqual(['unchanged', 'unchanged']);
    expect(second.vms.every((vm) => !vm.restarted)).toBe(true);
  });

  it('keeps concurrency and max-unavailable per group', async () => {
    const world = makeWorld();
    await run(world, inventoryOf([6, 6]), { concurrency: '3', 'max-unavailable': '1' });
    expect(world.maxInFlight).toBeLessThanOrEqual(2);
    expect(Math.max(...world.maxInFlightByGroup.values())).toBe(1);
    const wide = makeWorld();
    await run(wide, inventoryOf([6, 6]), { concurrency: '3', 'max-unavailable': '100%' });
    expect(wide.maxInFlight).toBe(3);
  });

  it('fails one VM and finishes the others; a failed first install is not called rolled back', async () => {
    const world = makeWorld();
    world.failingChecks.add('vm-0-1');
    const report = await run(world, inventoryOf([3]));
    const failed = report.vms.find((vm) => vm.name === 'vm-0-1')!;
    expect(failed.outcome).toBe('failed');
    expect(failed.error).toMatchObject({ step: 'verify', message: 'checks failed: sidecar-ready', hint: 'fix it' });
    expect(world.events).toContain('rollback vm-0-1');
    expect(report.totals).toMatchObject({ succeeded: 2, failed: 1 });
  });

  it('rolls back a VM whose checks fail after a change', async () => {
    const world = makeWorld();
    await run(world, inventoryOf([1]));
    world.failingChecks.add('vm-0-0');
    const changed = inventoryOf([1]);
    changed.groups[0]!.labels = { tier: 'new' };
    const report = await run(world, changed);
    expect(report.vms[0]?.outcome).toBe('rolled-back');
    expect(report.totals.failed).toBe(1);
  });

  it('stops starting VMs once the failure budget is spent', async () => {
    const world = makeWorld();
    for (let i = 0; i < 3; i += 1) world.failingConnect.add(`vm-0-${i}`);
    const report = await run(world, inventoryOf([8]), { concurrency: '1', 'max-unavailable': '100%', 'failure-budget': '2' });
    expect(report.vms.filter((vm) => vm.outcome === 'failed')).toHaveLength(3);
    expect(report.vms.filter((vm) => vm.outcome === 'skipped-budget')).toHaveLength(5);
    expect(report.vms[0]?.error).toMatchObject({ step: 'connect', hint: 'is sshd running?' });
  });

  it('plans without writing: dry-run objects, no token, no apply', async () => {
    const world = makeWorld();
    const report = await run(world, inventoryOf([2]), { mode: 'plan' });
    expect(world.events).toEqual(['applyGroup g0 (dry-run)']);
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['planned', 'planned']);
    expect(report.vms[0]?.files.find((file) => file.path.endsWith('cluster.env'))?.diff).toContain("+ISTIO_SVC_IP='10.0.0.10'");
    expect(report.vms[0]?.tokenExpiresAt).toBeUndefined();
  });

  it('takes only its shard, and the shards cover every VM exactly once', async () => {
    const inventory = inventoryOf([10]);
    const seen: string[] = [];
    for (const shard of ['1/3', '2/3', '3/3']) {
      const report = await run(makeWorld(), inventory, { shard });
      seen.push(...report.vms.filter((vm) => vm.outcome !== 'skipped-shard').map((vm) => vm.name));
      expect(report.vms).toHaveLength(10);
    }
    expect(seen.sort()).toEqual(inventory.groups[0]!.vms.map((vm) => vm.name).sort());
  });

  it('offboards VMs and removes their WorkloadEntries', async () => {
    const world = makeWorld();
    const report = await run(world, inventoryOf([2]), { mode: 'offboard' });
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['offboarded', 'offboarded']);
    expect(report.cluster?.objects.filter((object) => object.action === 'deleted')).toHaveLength(2);
  });

  it('touches no VM when the cluster preflight fails', async () => {
    const world = makeWorld();
    const ports = fakes(world);
    const report = await runRollout(settingsOf(), inventoryOf([2]), {
      cluster: async () => ({ ...ports.cluster, preflight: async () => Promise.reject(new Error('Cluster preflight failed: CRD missing')) }),
      connector: ports.connector,
      verifier: ports.verifier,
      logger: silent,
      toolVersion: 'test',
      redactedInputs: {},
    });
    expect(report.fatal).toMatchObject({ stage: 'cluster', message: 'Cluster preflight failed: CRD missing' });
    expect(world.applied.size).toBe(0);
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['skipped-preflight', 'skipped-preflight']);
  });

  it('rejects an unknown group filter', async () => {
    await expect(run(makeWorld(), inventoryOf([1]), { groups: 'nope' })).rejects.toThrow(/no group named 'nope'/);
  });
});
