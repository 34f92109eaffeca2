// What the orchestrator asks of the outside world. Each port has a real implementation in its layer
// (src/cluster/port.ts, src/vm/port.ts; the verifier in runtime.ts) and small fakes in the unit tests.
import type { MeshContext as ClusterMeshContext } from '../cluster/index.js';
import type { GroupSpec, Inventory, VmSpec } from '../inventory/types.js';
import type { VmFiles } from '../render/index.js';
import type { CheckResult, ClusterObjectRecord } from '../report/model.js';
import type { Mode, PackageFormat, PeerAuthenticationPolicy } from '../settings.js';

/** The values istioctl reads from the cluster for one group, with the revision and namespace they are for. */
export interface MeshContext extends Omit<ClusterMeshContext, 'rootCertSource'> {
  revision: string;
  istioNamespace: string;
}

export interface PreflightOutcome {
  istioVersion: string;
  revision: string;
  warnings: string[];
}

export interface ClusterPort {
  /** API server URL, for messages (never credentials). */
  readonly server: string;
  /** The run is done with the cluster: what still follows it in the background stops. */
  close?(): void;
  preflight(input: { inventory: Inventory; groups: GroupSpec[]; mode: Mode }): Promise<PreflightOutcome>;
  /** Namespace, ServiceAccount, WorkloadGroup, Service, PeerAuthentication; dryRun reports without writing. */
  applyGroup(
    group: GroupSpec,
    options: { peerAuthentication: PeerAuthenticationPolicy; dryRun: boolean },
  ): Promise<ClusterObjectRecord[]>;
  /**
   * namespaceNotCreatedYet (plan on a namespace that does not exist): the root cert comes from istiod's
   * namespace, read once, instead of waiting for the group namespace's copy.
   */
  meshContext(group: GroupSpec, options?: { namespaceNotCreatedYet?: boolean }): Promise<MeshContext>;
  /** A token for the group's ServiceAccount (audience istio-ca); VMs of one ServiceAccount may share it. */
  bootstrapToken(group: GroupSpec): Promise<{ token: string; expiresAt: Date }>;
  /** For registration: static; dryRun (plan, verify) compares without writing. */
  applyStaticWorkloadEntry(
    group: GroupSpec,
    vm: VmSpec,
    address: string,
    options?: { dryRun: boolean },
  ): Promise<ClusterObjectRecord>;
  /** Whether a WorkloadEntry of the group has this address (auto registration: istiod made it). */
  hasWorkloadEntry(group: GroupSpec, address: string): Promise<boolean>;
  /** Offboard: the VM's static or auto-registered WorkloadEntry. */
  removeWorkloadEntries(group: GroupSpec, vm: VmSpec, address: string | undefined): Promise<ClusterObjectRecord[]>;
  requestCount(): number;
}

/** What the first look at a VM found (one round trip). */
export interface InspectedVm {
  arch: string;
  packageFormat: PackageFormat;
  installedVersion?: string;
  /** CA_ADDR of the VM's cluster.env (the istiod its sidecar dials); undefined: none set, or no cluster.env. */
  caAddress?: string;
  /** The VM's source address on its route to the east-west gateway. */
  routeSourceIP?: string;
  reachesDiscovery: boolean;
  /**
   * Current content of the managed, non-secret files by label (VM_FILES, src/vm/paths.ts), read in plan and
   * verify; undefined: absent (or not read).
   */
  currentFiles: Record<string, string | undefined>;
  /** /etc/certs/cert-chain.pem, the certificate pilot-agent renews with; undefined: absent or unreadable. */
  provisionedCertificate?: string;
  /** The VM's clock (epoch ms) when it was inspected, to judge that certificate by. */
  clockMs?: number;
  /** sha256 of every managed file placed whole (MANAGED_FILES) by label, the token's too; undefined: absent. */
  fileHashes: Record<string, string | undefined>;
}

/** istioctl's files for one VM, as src/render makes them. */
export type RenderedVmFiles = VmFiles;

export interface VmApplyRequest {
  files: RenderedVmFiles;
  package: { url?: string; sha256?: string; version: string; format: PackageFormat; upload?: Buffer };
  /** `always`: restart the sidecar even when nothing changed (it must register again). Default `if-changed`. */
  restart?: 'if-changed' | 'always';
  /** Remove the provisioned certificate and key after placing the fresh token, and restart (re-bootstrap). */
  reBootstrap?: boolean;
  /** How long the VM waits for the upload at most (the run's vm-timeout); see ApplyChange in src/vm. */
  uploadTimeoutSeconds?: number;
}

export interface VmApplyOutcome {
  /** Managed files (by label, VM_FILES) and whether each changed. The token never counts as a change. */
  files: { path: string; changed: boolean }[];
  packageAction: 'installed' | 'upgraded' | 'unchanged';
  restarted: boolean;
  /** The provisioned certificate and key were removed (re-bootstrap). */
  reBootstrapped?: boolean;
}

export interface VmCounters {
  sshConnections: number;
  execRoundTrips: number;
  bytesUploaded: number;
}

/** One connected VM. */
export interface VmPort {
  readonly learnedHostKey?: string;
  inspect(eastWestAddress: string): Promise<InspectedVm>;
  apply(request: VmApplyRequest): Promise<VmApplyOutcome>;
  /**
   * Restores the previous files/package and restarts; false when there was nothing to restore (first install:
   * stopped and marked).
   */
  rollback(reason: string): Promise<boolean>;
  /**
   * Whether this run's last apply kept the VM's previous state (also when it then failed): only then may a
   * failed apply be rolled back. Absent: never after a failed apply.
   */
  madeRollbackPoint?(): boolean;
  offboard(): Promise<void>;
  /** Runs a read-only script in one round trip (the verification checks use it). */
  runScript(script: string, options: { timeoutMs: number }): Promise<{ code: number; stdout: string; stderr: string }>;
  counters(): VmCounters;
  close(): Promise<void>;
}

export interface VmConnectorPort {
  connect(vm: VmSpec): Promise<VmPort>;
}

export interface VerifyRequest {
  vm: VmSpec;
  group: GroupSpec;
  port: VmPort;
  mesh: MeshContext;
  workloadIP: string;
  peerAuthentication: PeerAuthenticationPolicy;
}

export interface VerifierPort {
  verify(request: VerifyRequest): Promise<CheckResult[]>;
  /**
   * Issue 20 (one verification Job per group): `vm` is on its way to its checks (its pipeline started); the
   * group's VMs reaching the mesh→VM check together wait (bounded) for it, to share one Job.
   */
  expect?(group: GroupSpec, vm: VmSpec): void;
  /** `vm` will not reach its checks now (it failed earlier, waits for a canary, or its pipeline ended). */
  withdraw?(group: GroupSpec, vm: VmSpec): void;
}

/** Where the orchestrator writes what happens; the action and the CLI each provide one. */
export interface RunLogger {
  info(line: string): void;
  warning(line: string, where?: { file?: string; line?: number }): void;
  error(line: string, where?: { file?: string; line?: number }): void;
  debug(line: string): void;
  /** A folded block of lines (a `::group::` in the action). */
  group(title: string, lines: string[]): void;
}
