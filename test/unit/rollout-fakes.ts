// Fake ports for the orchestrator's unit tests: a world that records what the rollout asked of it.
import { createHash } from 'node:crypto';
import { parseInventory } from '../../src/inventory/index.js';
import type { CheckResult } from '../../src/report/model.js';
import type {
  ClusterPort,
  RunLogger,
  VerifierPort,
  VmApplyRequest,
  VmConnectorPort,
  VmPort,
} from '../../src/rollout/ports.js';
import { runRollout, type RolloutDependencies } from '../../src/rollout/run.js';
import { readSettings, type InputName } from '../../src/settings.js';
import { managedFileContent, MANAGED_FILES, VM_FILES, type ManagedFile } from '../../src/vm/paths.js';

const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n';

export function inventoryOf(vmsPerGroup: number[], registration = 'auto') {
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

export function settingsOf(inputs: Partial<Record<InputName, string>> = {}) {
  const all: Partial<Record<InputName, string>> = {
    inventory: 'inventory.yaml',
    'ssh-private-key': KEY,
    'ssh-known-hosts': 'x ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl',
    ...inputs,
  };
  return readSettings({ get: (name) => all[name] ?? '' }, {});
}

export const pass = (name: CheckResult['name']): CheckResult => ({
  name,
  status: 'pass',
  summary: 'ok',
  evidence: [],
  durationMs: 1,
});
export const fail = (name: CheckResult['name']): CheckResult => ({
  name,
  status: 'fail',
  summary: 'bad',
  evidence: ['seen'],
  hint: 'fix it',
  durationMs: 1,
});

export interface World {
  events: string[];
  inFlight: number;
  maxInFlight: number;
  maxInFlightByGroup: Map<string, number>;
  failingChecks: Set<string>;
  /** VMs whose checks fail until a rollback restores them (what this run changed broke them). */
  failingUntilRollback: Set<string>;
  failingConnect: Set<string>;
  applied: Map<string, VmApplyRequest>;
  installed: Set<string>;
  /** Addresses with a WorkloadEntry; undefined: every address has one. */
  workloadEntries?: Set<string>;
  /** Per VM: /etc/certs/cert-chain.pem and the VM's clock as inspect reads them. */
  provisioned?: Map<string, { certificate: string; clockMs: number }>;
  /** Per VM: the managed files on it by label (VM_FILES), as the last apply wrote them (tests edit them). */
  vmFiles: Map<string, Map<string, string>>;
  /** Per VM: the sidecar version installed (default 1.24.0 once installed). */
  versions: Map<string, string>;
  /** Per VM: a sidecar version whose checks fail on that VM. */
  failingVersion: Map<string, string>;
  /** Per VM: a sidecar version the VM's package manager refuses (the apply fails after keeping the state). */
  refusedVersion: Map<string, string>;
  /** istiod's version as the preflight finds it. */
  istiodVersion: string;
  /** The istiod revision the preflight and the mesh values are for ('' = default). */
  revision: string;
  /** `Kind ns/name` of the cluster objects applied (tests delete them). */
  clusterObjects: Set<string>;
  /** The labels each WorkloadGroup was applied with (JSON). */
  groupLabels: Map<string, string>;
}

export function makeWorld(): World {
  return {
    events: [],
    inFlight: 0,
    maxInFlight: 0,
    maxInFlightByGroup: new Map(),
    failingChecks: new Set(),
    failingUntilRollback: new Set(),
    failingConnect: new Set(),
    applied: new Map(),
    installed: new Set(),
    vmFiles: new Map(),
    versions: new Map(),
    failingVersion: new Map(),
    refusedVersion: new Map(),
    istiodVersion: '1.24.0',
    revision: '',
    clusterObjects: new Set(),
    groupLabels: new Map(),
  };
}

/** CA_ADDR of a cluster.env as inspect reads it (unquoted), when it sets one. */
function caAddressOf(clusterEnv: string | undefined): { caAddress?: string } {
  const value = /^CA_ADDR='([^']*)'$/m.exec(clusterEnv ?? '')?.[1];
  return value ? { caAddress: value } : {};
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

export function fakes(world: World) {
  const groupFlight = new Map<string, number>();
  /** The version each VM had before its last apply (rollback restores it). */
  const previous = new Map<string, string>();
  const cluster: ClusterPort = {
    server: 'https://127.0.0.1:6443',
    preflight: async () => ({ istioVersion: world.istiodVersion, revision: world.revision, warnings: [] }),
    applyGroup: async (group, options) => {
      world.events.push(`applyGroup ${group.name}${options.dryRun ? ' (dry-run)' : ''}`);
      // The group's object and its labels: other labels are a change of .spec.metadata.labels.
      const id = `WorkloadGroup ${group.namespace}/${group.name}`;
      const labels = JSON.stringify(group.labels);
      const live = world.groupLabels.get(id);
      const exists = world.clusterObjects.has(id);
      if (!options.dryRun) {
        world.clusterObjects.add(id);
        world.groupLabels.set(id, labels);
      }
      const base = { kind: 'WorkloadGroup', namespace: group.namespace, name: group.name };
      if (!exists) return [{ ...base, action: options.dryRun ? 'would-create' : 'created' }];
      if (live === labels) return [{ ...base, action: 'unchanged' }];
      return [
        {
          ...base,
          action: options.dryRun ? 'would-configure' : 'configured',
          drift: ['.spec.metadata.labels differs'],
        },
      ];
    },
    meshContext: async () => ({
      meshConfig: 'defaultConfig:\n  proxyMetadata: {}\n',
      rootCert: 'ROOT',
      clusterID: 'Kubernetes',
      trustDomain: 'cluster.local',
      revision: world.revision,
      istioNamespace: 'istio-system',
      eastWest: { address: '10.0.9.1', source: 'lb-ip', candidates: ['10.0.9.1'] },
    }),
    bootstrapToken: async () => ({ token: 'token-value-123', expiresAt: new Date('2030-01-01T00:00:00Z') }),
    hasWorkloadEntry: async (_group, address) => world.workloadEntries?.has(address) ?? true,
    applyStaticWorkloadEntry: async (group, vm, _address, options) => {
      const id = `WorkloadEntry ${group.namespace}/${vm.name}`;
      const exists = world.clusterObjects.has(id);
      if (!options?.dryRun) world.clusterObjects.add(id);
      return {
        kind: 'WorkloadEntry',
        namespace: group.namespace,
        name: vm.name,
        action: exists ? 'unchanged' : options?.dryRun ? 'would-create' : 'created',
      };
    },
    removeWorkloadEntries: async (group, vm) => [
      { kind: 'WorkloadEntry', namespace: group.namespace, name: vm.name, action: 'deleted' },
    ],
    requestCount: () => 7,
  };
  const connector: VmConnectorPort = {
    async connect(vm) {
      world.events.push(`connect ${vm.name}`);
      if (world.failingConnect.has(vm.name))
        throw Object.assign(new Error(`connection refused by ${vm.ssh.host}:22`), { hint: 'is sshd running?' });
      world.inFlight += 1;
      world.maxInFlight = Math.max(world.maxInFlight, world.inFlight);
      const group = vm.group;
      groupFlight.set(group, (groupFlight.get(group) ?? 0) + 1);
      world.maxInFlightByGroup.set(group, Math.max(world.maxInFlightByGroup.get(group) ?? 0, groupFlight.get(group)!));
      let keptState = false;
      const port: VmPort = {
        inspect: async () => ({
          arch: 'amd64',
          packageFormat: 'deb',
          ...(world.installed.has(vm.name) ? { installedVersion: world.versions.get(vm.name) ?? '1.24.0' } : {}),
          ...caAddressOf(world.vmFiles.get(vm.name)?.get('/var/lib/istio/envoy/cluster.env')),
          routeSourceIP: vm.internalIP,
          reachesDiscovery: true,
          ...(world.provisioned?.has(vm.name)
            ? {
                provisionedCertificate: world.provisioned.get(vm.name)!.certificate,
                clockMs: world.provisioned.get(vm.name)!.clockMs,
              }
            : {}),
          currentFiles: Object.fromEntries(
            VM_FILES.filter((file) => file.rendered !== undefined && !file.secret).map((file) => [
              file.label,
              world.vmFiles.get(vm.name)?.get(file.label),
            ]),
          ),
          fileHashes: Object.fromEntries(
            MANAGED_FILES.map((file) => {
              const content = world.vmFiles.get(vm.name)?.get(file.label);
              return [file.label, content === undefined ? undefined : sha256(content)];
            }),
          ),
        }),
        apply: async (request) => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          keptState = false;
          if (world.refusedVersion.get(vm.name) === request.package.version) {
            world.events.push(`apply ${vm.name} refused`);
            keptState = true;
            previous.set(vm.name, world.versions.get(vm.name) ?? '1.24.0');
            throw Object.assign(new Error(`dpkg: dependency problems prevent configuration of istio-sidecar`), {
              hint: 'install what the package depends on',
            });
          }
          const before = world.applied.get(vm.name);
          world.applied.set(vm.name, request);
          const firstInstall = !world.installed.has(vm.name);
          const previousVersion = world.versions.get(vm.name) ?? '1.24.0';
          world.installed.add(vm.name);
          world.versions.set(vm.name, request.package.version);
          if (firstInstall) previous.delete(vm.name);
          else previous.set(vm.name, previousVersion);
          const onVm = world.vmFiles.get(vm.name);
          world.vmFiles.set(
            vm.name,
            new Map(
              VM_FILES.map((file) => [
                file.label,
                file.key === 'hosts' ? request.files.hosts : managedFileContent(file as ManagedFile, request.files),
              ]),
            ),
          );
          // A change: a file on the VM (not the token, fresh every run) other than what this apply wrote.
          const changed =
            !before ||
            VM_FILES.some(
              (file) => !file.secret && onVm?.get(file.label) !== world.vmFiles.get(vm.name)?.get(file.label),
            );
          world.events.push(`apply ${vm.name}`);
          return {
            files: [{ path: '/var/lib/istio/envoy/cluster.env', changed }],
            packageAction: firstInstall
              ? 'installed'
              : previousVersion !== request.package.version
                ? 'upgraded'
                : 'unchanged',
            restarted: changed || !!request.reBootstrap,
            reBootstrapped: !!request.reBootstrap,
          };
        },
        madeRollbackPoint: () => keptState,
        rollback: async () => {
          world.events.push(`rollback ${vm.name}`);
          if (previous.has(vm.name)) world.versions.set(vm.name, previous.get(vm.name)!);
          world.failingUntilRollback.delete(vm.name);
          // Something to restore: the VM had the sidecar before the last apply (else: first install, stopped).
          return previous.has(vm.name);
        },
        offboard: async () => {
          world.events.push(`offboard ${vm.name}`);
        },
        runScript: async () => ({ code: 0, stdout: '', stderr: '' }),
        counters: () => ({ sshConnections: 1, execRoundTrips: 2, bytesUploaded: 100 }),
        close: async () => {
          world.events.push(`close ${vm.name}`);
          world.inFlight -= 1;
          groupFlight.set(group, groupFlight.get(group)! - 1);
        },
      };
      return port;
    },
  };
  const verifier: VerifierPort = {
    verify: async (request) => {
      const name = request.vm.name;
      world.events.push(`verify ${name}`);
      const failing =
        world.failingChecks.has(name) ||
        world.failingUntilRollback.has(name) ||
        (world.failingVersion.has(name) && world.failingVersion.get(name) === world.versions.get(name));
      return [pass('sidecar-running'), failing ? fail('sidecar-ready') : pass('sidecar-ready')];
    },
  };
  return { cluster, connector, verifier };
}

export const silent: RunLogger = {
  info: () => {},
  warning: () => {},
  error: () => {},
  debug: () => {},
  group: () => {},
};

export async function run(
  world: World,
  inventory: ReturnType<typeof inventoryOf>,
  inputs: Partial<Record<InputName, string>> = {},
  extra: Partial<RolloutDependencies> = {},
) {
  const ports = fakes(world);
  return runRollout(settingsOf(inputs), inventory, {
    cluster: async () => ports.cluster,
    connector: ports.connector,
    verifier: ports.verifier,
    logger: silent,
    toolVersion: 'test',
    redactedInputs: {},
    ...extra,
  });
}
