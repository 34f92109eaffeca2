// Typed results of the verification checks and the context they run in. The checks themselves are
// listed in registry.ts.
import type { GroupSpec, VmSpec } from '../inventory/types.js';
import type { MeshProbe, VerificationJobQueue, VmProbe } from './ports.js';
export { CHECK_NAMES } from './registry.js';

/** A check's name (registry.ts lists them). */
export type CheckName = string;
export type CheckStatus = 'pass' | 'fail' | 'skipped';

export interface CheckResult {
  name: CheckName;
  status: CheckStatus;
  /** One line: what was seen (the orchestrator prefixes VM and check; see describeFailure). */
  summary: string;
  /** Raw observations (stat lines, HTTP codes, log lines — secrets scrubbed), short. */
  evidence: string[];
  /** On failure: `<likely cause>. Fix: <what to do>` (from the hints table). */
  hint?: string;
  /** Id of the hints-table entry, for the README's troubleshooting section and the report. */
  hintId?: string;
  durationMs: number;
}

export interface VerifyOptions {
  /** Window over which the unit's restart count must not grow. */
  restartWindowMs: number;
  /** How long `/healthz/ready` may take to answer 200. */
  readyTimeoutMs: number;
  readyPollMs: number;
  /** A workload certificate expiring sooner than this fails. */
  certExpiryThresholdMs: number;
  /** How long to wait for the WorkloadEntry to appear and, with health checks, become Healthy. */
  workloadEntryTimeoutMs: number;
  workloadEntryPollMs: number;
  /** Calls made by each verification Job (ADR 0002 `IVO_REQUESTS`). */
  mtlsRequests: number;
  jobTimeoutMs: number;
  /** curl `--max-time` for the vm-to-mesh request. */
  vmToMeshTimeoutMs: number;
  /** Lines of /var/log/istio/istio.log and istio.err.log kept as evidence. */
  logTailLines: number;
  /**
   * Under STRICT, how long after the Jobs started plaintext accepted by the VM may still be a policy on
   * its way (istiod debounces and pushes a new PeerAuthentication within seconds): the plaintext Job is
   * repeated, backing off from 1 s, until refused or this is spent. Only then is it a failure.
   */
  policyPropagationMs: number;
  /**
   * ADR 0005: how many times (1 s apart) the mTLS Job looks in its own sidecar for the VM's endpoint
   * before it calls (istiod pushes a new ServiceEntry within seconds). Every look is evidence.
   */
  endpointWaitAttempts: number;
}

export const DEFAULT_VERIFY_OPTIONS: VerifyOptions = {
  restartWindowMs: 2_000,
  readyTimeoutMs: 30_000,
  readyPollMs: 250,
  certExpiryThresholdMs: 3_600_000,
  workloadEntryTimeoutMs: 20_000,
  workloadEntryPollMs: 500,
  mtlsRequests: 3,
  jobTimeoutMs: 90_000,
  vmToMeshTimeoutMs: 5_000,
  logTailLines: 15,
  policyPropagationMs: 10_000,
  endpointWaitAttempts: 20,
};

export interface VerifyContext {
  vm: VmSpec;
  group: GroupSpec;
  /** The address the VM's sidecar registers with (inventory internalIP, or learned by the VM layer). */
  workloadAddress: string;
  /** Mesh trust domain (mesh config `trustDomain`, default `cluster.local`). */
  trustDomain: string;
  /** Root cert PEM the action installed as /etc/certs/root-cert.pem; when absent the VM's copy is used. */
  rootCertPem?: string;
  /** vm-to-mesh target (input `verify-url`), e.g. `http://mesh-echo.lab.svc.cluster.local:8080/`. */
  verifyUrl: string;
  /** Image of the ADR-0002 Job (input `verify-client-image`). */
  verifyClientImage: string;
  /** Istio revision (`istio.io/rev` on the mTLS Job's pod); empty or `default`: `sidecar.istio.io/inject`. */
  revision?: string;
  /** Input `peer-authentication`; `unchanged` → ask the cluster (MeshProbe.peerAuthenticationMode). */
  peerAuthentication: 'strict' | 'permissive' | 'unchanged';
  /** Mesh→VM target; default `http://<workloadAddress>:<first http* port, else probe port, else first port>/`. */
  mtlsTarget?: { url: string; protocol: 'http' | 'tcp' };
  /** Whether the sidecar's health checks are on (group has a probe); default `!!group.probe`. */
  healthChecks?: boolean;
  vmProbe: VmProbe;
  meshProbe: MeshProbe;
  /**
   * Issue 20: the run's batcher (job-batcher.ts): the first mTLS and plaintext Jobs go there and share one Job
   * with the group's other VMs; without it each VM runs its own (meshProbe.runVerificationJob).
   */
  verificationJobs?: VerificationJobQueue;
  options?: Partial<VerifyOptions>;
  /** Known secret values (token, keys) to scrub from evidence in addition to pattern-based scrubbing. */
  secretValues?: string[];
  /** Injected for tests. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Suffix for Job names (ADR 0002 `ivo-verify-<vm>-<random>`); injected for tests. */
  randomSuffix?: () => string;
}
