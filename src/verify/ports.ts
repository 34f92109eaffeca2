// The two side-effect ports the verification needs. They are deliberately narrow so the orchestrator
// (src/rollout/) can adapt the real implementations — `VmSession` (src/vm/) and `ClusterClient`
// (src/cluster/) — in a few lines, and tests can use fakes.

/** Result of running one shell script on the VM. */
export interface VmScriptResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a POSIX `sh` script on the VM in ONE exec round trip, over the VM's existing SSH connection.
 * The script only reads (localhost admin ports 15000/15021/15090, `systemctl`, `/var/log/istio`,
 * `/etc/certs/root-cert.pem`) and makes the vm-to-mesh request; it needs `curl`, `base64`, `mktemp`.
 * Reading the logs may need root: run it the way the VM layer runs its other scripts (`sudo -n sh -s`).
 * Adapter: `{ runScript: (script, o) => vmSession.exec(script, { timeoutMs: o.timeoutMs }) }`.
 */
export interface VmProbe {
  runScript(script: string, options: { timeoutMs: number }): Promise<VmScriptResult>;
}

/** The parts of a WorkloadEntry (networking.istio.io/v1) the checks read. */
export interface WorkloadEntryView {
  metadata: {
    name: string;
    namespace?: string;
    annotations?: Record<string, string>;
  };
  spec: { address?: string; serviceAccount?: string; labels?: Record<string, string> };
  status?: {
    conditions?: { type: string; status: string; message?: string; reason?: string; lastProbeTime?: string }[];
  };
}

/** ADR 0002: one short-lived verification Job, and what it saw — the cluster layer's own types. */
import type { VerificationJobInput, VerificationJobResult } from '../cluster/verification-job.js';
export type VerificationJobSpec = VerificationJobInput;
export type { VerificationJobResult };

export type PeerAuthenticationMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE' | 'UNSET';

/** Cluster-side reads and the verification Job. Adapter: the `ClusterClient` of src/cluster/. */
export interface MeshProbe {
  /** The WorkloadEntry in `namespace` whose `spec.address` is `address` (auto-registered or static), if any. */
  workloadEntryFor(query: {
    namespace: string;
    address: string;
    group: string;
    /** The VM's name: a static entry is named after it. */
    vmName?: string;
    network?: string;
  }): Promise<WorkloadEntryView | undefined>;
  /** Runs an ADR-0002 Job to completion, returns its calls, and deletes it whatever the outcome. */
  runVerificationJob(spec: VerificationJobSpec): Promise<VerificationJobResult>;
  /**
   * Effective PeerAuthentication mode for workloads with these labels (optional: used when the input is
   * `unchanged`).
   */
  peerAuthenticationMode?(query: {
    namespace: string;
    labels: Record<string, string>;
  }): Promise<PeerAuthenticationMode>;
  /** Whether the WorkloadGroup exists (optional: sharpens the hint when no WorkloadEntry appears). */
  workloadGroupExists?(query: { namespace: string; name: string }): Promise<boolean>;
  /** istiod's `PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION` (optional; undefined = unknown). */
  autoRegistrationEnabled?(): Promise<boolean | undefined>;
}

/**
 * Issue 20: where a VM's verification Job goes when the VMs of its group share one Job (job-batcher.ts).
 * `group` is `<namespace>/<group name>` (verificationGroupKey).
 */
export interface VerificationJobQueue {
  /** Runs `spec` in its group's next Job of its kind, with the group's other VMs that reach the check meanwhile. */
  submit(group: string, vm: string, spec: VerificationJobSpec): Promise<VerificationJobResult>;
  /** The VM will not reach the check (this time): its group no longer waits for it. */
  withdraw(group: string, vm: string): void;
}
