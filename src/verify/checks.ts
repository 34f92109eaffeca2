// The checks' evaluations, for callers and tests that use one directly. Each check lives in
// checks/<name>.ts; registry.ts lists them.
export {
  describeFailure,
  failResult,
  parseUnitState,
  passResult,
  skippedResult,
  unitStartedMs,
  type CheckDefinition,
  type CheckInput,
  type ProbeOutcome,
  type UnitState,
  type VmSideProgress,
} from './check.js';
export { checkSidecarRunning, probeStartMs, windowDeferred } from './checks/sidecar-running.js';
export { checkSidecarReady } from './checks/sidecar-ready.js';
export { checkXdsConnected } from './checks/xds-connected.js';
export { checkWorkloadCertificate, expectedSpiffeId } from './checks/workload-certificate.js';
export { checkWorkloadEntry } from './checks/workload-entry.js';
export { checkVmToMesh } from './checks/vm-to-mesh.js';
export {
  answeredPlaintextCalls,
  defaultMtlsTarget,
  evaluateMeshToVmMtls,
  MTLS_COUNTERS,
  verificationJobName,
  type MtlsEvidence,
  type MtlsTarget,
} from './checks/mesh-to-vm-mtls.js';
