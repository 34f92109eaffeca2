// Public API of the verification layer (see docs/adr/0002): verifyVm and the registry of checks.
export { verifyVm, verificationJobName } from './verify-vm.js';
export {
  describeFailure,
  defaultMtlsTarget,
  expectedSpiffeId,
  checkSidecarRunning,
  checkSidecarReady,
  checkXdsConnected,
  checkWorkloadCertificate,
  checkWorkloadEntry,
  checkVmToMesh,
  evaluateMeshToVmMtls,
  MTLS_COUNTERS,
} from './checks.js';
export { allHints, renderHint, renderHintsMarkdown, classifyAgentLog, type HintId, type HintEntry } from './hints.js';
export {
  CHECK_NAMES,
  checkDefinition,
  checkDefinitions,
  checkNames,
  registerCheck,
  renderChecksMarkdown,
} from './registry.js';
export type { CheckDefinition, CheckInput, HintText } from './check.js';
export { scrubSecrets } from './scrub.js';
export { buildProbeScript, buildFollowUpScript, parseScriptOutput, PROBE_URLS } from './vm-script.js';
export * from './types.js';
export type * from './ports.js';
export * as envoy from './envoy/index.js';
export {
  vmProbeFromSession,
  meshProbeFromCluster,
  workloadEntryViewOf,
  groupJobRunner,
  type MeshProbeExtras,
} from './adapters.js';
export {
  VerificationJobBatcher,
  verificationGroupKey,
  DEFAULT_JOB_BATCHER_OPTIONS,
  type BatchClock,
  type GroupJobRunner,
  type JobBatcherOptions,
} from './job-batcher.js';
