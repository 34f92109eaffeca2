// The run report: what the action did to each VM and what the checks saw. It is written as JSON
// (schema: report.schema.json, versioned by REPORT_SCHEMA_VERSION), rendered as the job summary and
// as the CLI's table. Secrets never enter it: inputs are recorded redacted.

export const REPORT_SCHEMA_VERSION = 1;

// The checks' result type is the verify layer's own; the report carries it unchanged.
import { CHECK_NAMES, type CheckName, type CheckResult } from '../verify/types.js';
export { CHECK_NAMES, type CheckName, type CheckResult };

/** What happened to a VM, in Ansible's sense of "changed". */
export type VmOutcome =
  | 'installed'
  | 'updated'
  | 'unchanged'
  | 'rolled-back'
  | 'rolled-back-unhealthy'
  | 'failed'
  | 'offboarded'
  | 'verified'
  | 'planned'
  | 'skipped-shard'
  | 'skipped-budget'
  | 'skipped-preflight'
  | 'skipped-canary';

export type StepName =
  | 'connect'
  | 'inspect'
  | 'canary'
  | 'token'
  | 'render'
  | 'drift'
  | 'plan'
  | 'apply'
  | 'verify'
  | 'rollback'
  | 'verify-after-rollback'
  | 'offboard';

export interface StepRecord {
  name: StepName;
  status: 'ok' | 'failed' | 'skipped';
  durationMs: number;
  detail?: string;
}

export interface FileChange {
  /** Path on the VM. */
  path: string;
  changed: boolean;
  /** Unified diff (plan mode), never for secret files. */
  diff?: string;
}

/**
 * One way a VM (or a cluster object its group owns) differs from what onboard would make it: verify fails
 * on it, plan shows it, onboard repairs it (src/rollout/drift.ts). Never a secret's content.
 */
export interface DriftRecord {
  /** A managed file on the VM (VM_FILES), the sidecar package, or a cluster object of the group. */
  kind: 'file' | 'package' | 'cluster-object';
  /** The file's label, the package name, or `Kind namespace/name`. */
  subject: string;
  /** missing: gone; edited: a file's content differs; changed: another version, or managed fields differ. */
  change: 'missing' | 'edited' | 'changed';
  /** What differs, in one line. */
  detail: string;
  /** Unified diff of a non-secret file: the VM's content against what onboard writes. */
  diff?: string;
  /** A cluster object's managed fields that differ. */
  fields?: string[];
  /** The package version on the VM (absent: not installed) and the one onboard installs. */
  from?: string;
  to?: string;
}

export interface VmReport {
  name: string;
  group: string;
  namespace: string;
  /** SSH address as host:port. */
  address: string;
  /** The workload address given to Istio, and where it came from. */
  workloadIP?: string;
  workloadIPSource?: 'inventory' | 'route-to-gateway';
  /** 1-based line of the VM in the inventory file. */
  line?: number;
  outcome: VmOutcome;
  steps: StepRecord[];
  checks: CheckResult[];
  files: FileChange[];
  /** The sidecar package: the version installed (or planned), and the one on the VM before (`from`), when any. */
  package?: { version: string; action: 'installed' | 'upgraded' | 'unchanged' | 'removed'; from?: string };
  /**
   * An upgrade of the sidecar or a revision move: the group's canary VM (changed and checked before the group's
   * other upgrades and moves start), its name on every such VM of the group, and whether this VM is it.
   */
  canary?: { vm: string; self: boolean };
  /**
   * A revision move: the istiod address the VM's sidecar dials after this run (`istiod-REV.<ns>.svc:15012`, its
   * CA_ADDR) and the one before. Absent when the run does not change it.
   */
  controlPlane?: { address: string; from: string };
  /**
   * After a rollback the VM is checked again on its previous version: healthy (every check passes) or not
   * (outcome rolled-back-unhealthy).
   */
  afterRollback?: { healthy: boolean; version?: string; checks: CheckResult[] };
  /** verify and plan: what differs from what onboard would make (empty: nothing); absent in other modes. */
  drift?: DriftRecord[];
  restarted: boolean;
  /** When the bootstrap token given to this VM expires (ISO 8601). */
  tokenExpiresAt?: string;
  /**
   * The certificate pilot-agent renews with (/etc/certs/cert-chain.pem) was expired or about to be, or not
   * under a root of the installed bundle (`cause`): the VM is re-bootstrapped (`done`), or would be (plan).
   */
  reBootstrap?: { certificateNotAfter: string; cause: 'expired' | 'untrusted-root'; done: boolean };
  /** Host key learned on first use (only when ssh-trust-on-first-use is on). */
  learnedHostKey?: string;
  error?: { step: StepName; message: string; hint?: string };
  counters?: { sshConnections: number; execRoundTrips: number; bytesUploaded: number };
  durationMs: number;
}

export interface ClusterObjectRecord {
  kind: string;
  namespace?: string;
  name: string;
  action: 'created' | 'configured' | 'unchanged' | 'deleted' | 'would-create' | 'would-configure';
  /** For configured / would-configure: the managed fields that differed. */
  drift?: string[];
}

export interface RunReport {
  schemaVersion: typeof REPORT_SCHEMA_VERSION;
  tool: { name: 'istio-vm-onboard'; version: string; node: string };
  mode: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** Inputs as given, secrets replaced by '***'. */
  inputs: Record<string, string>;
  inventory: { source: string; groups: number; vms: number; selected: number; shard?: string };
  cluster?: {
    server?: string;
    istioVersion?: string;
    revision?: string;
    clusterID?: string;
    trustDomain?: string;
    eastWest?: { address: string; source: string; hostname?: string; candidates: string[] };
    objects: ClusterObjectRecord[];
    apiRequests?: number;
  };
  vms: VmReport[];
  warnings: string[];
  /** A failure before any VM was touched (bad input, preflight). */
  fatal?: { stage: string; message: string; hint?: string; hintId?: string; file?: string; line?: number };
  totals: {
    vms: number;
    succeeded: number;
    failed: number;
    changed: number;
    unchanged: number;
    skipped: number;
  };
}

const SUCCESS: readonly VmOutcome[] = ['installed', 'updated', 'unchanged', 'offboarded', 'verified', 'planned'];
const SKIPPED: readonly VmOutcome[] = ['skipped-shard', 'skipped-budget', 'skipped-preflight', 'skipped-canary'];

export function isSuccess(vm: VmReport): boolean {
  return SUCCESS.includes(vm.outcome);
}

export function computeTotals(vms: readonly VmReport[]): RunReport['totals'] {
  return {
    vms: vms.length,
    succeeded: vms.filter(isSuccess).length,
    failed: vms.filter((vm) => !isSuccess(vm) && !SKIPPED.includes(vm.outcome)).length,
    changed: vms.filter((vm) => vm.outcome === 'installed' || vm.outcome === 'updated' || vm.outcome === 'offboarded')
      .length,
    unchanged: vms.filter((vm) => vm.outcome === 'unchanged' || vm.outcome === 'verified').length,
    skipped: vms.filter((vm) => SKIPPED.includes(vm.outcome)).length,
  };
}

/** `1.24.0 → 1.24.1` for a change of version, else the version. */
export function describePackageChange(pkg: { version: string; from?: string }): string {
  return pkg.from && pkg.from !== pkg.version ? `${pkg.from} → ${pkg.version}` : pkg.version;
}

/** The VM's sidecar version for the tables: from → to, and where a rollback left it. */
export function sidecarVersionOf(vm: VmReport): string {
  if (!vm.package) return '';
  const back = vm.afterRollback?.version ? ` (rolled back to ${vm.afterRollback.version})` : '';
  return `${describePackageChange(vm.package)}${back}`;
}

/** Whether a run changed (or would change) the sidecar version of an installed VM: the tables then show it. */
export function changesSidecarVersion(vms: readonly VmReport[]): boolean {
  return vms.some((vm) => vm.package?.from !== undefined && vm.package.from !== vm.package.version);
}

/** The VM's istiod for the tables: from → to (`:15012` left out), where a revision move takes it. */
export function controlPlaneMoveOf(vm: VmReport): string {
  if (!vm.controlPlane) return '';
  const host = (address: string): string => address.replace(/:15012$/, '');
  return `${host(vm.controlPlane.from)} → ${host(vm.controlPlane.address)}`;
}

/** Whether a run moved (or would move) an installed VM to another istiod: the tables then show it. */
export function movesControlPlane(vms: readonly VmReport[]): boolean {
  return vms.some((vm) => vm.controlPlane !== undefined);
}

/** Whether the run as a whole failed (the job then fails). */
export function runFailed(report: RunReport): boolean {
  return report.fatal !== undefined || report.totals.failed > 0;
}
