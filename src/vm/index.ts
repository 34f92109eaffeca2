// The VM layer's public surface (ADR 0001): a session, and the scripts run over it.
export type { ExecOptions, ExecResult, SessionCounters, VmSession } from './session.js';
export { VmConnectionError } from './session.js';
export { connectVm, type ConnectVmOptions } from './ssh-session.js';
export {
  ISTIO_PATHS,
  ONBOARD_PATHS,
  MANAGED_FILES,
  VM_FILES,
  vmFile,
  TOKEN_RESTORE_DROP_IN,
  HOSTS_BEGIN_MARKER,
  HOSTS_END_MARKER,
  type ManagedFile,
  type ManagedFileKey,
  type VmFile,
  type VmFileKey,
} from './paths.js';
export { createVmConnector } from './port.js';
export {
  inspectVm,
  assertPreflight,
  preflightProblems,
  VmPreflightError,
  type InspectOptions,
  type PreflightProblem,
  type VmFacts,
  type VmArch,
  type PackageFormat,
} from './scripts/inspect.js';
export { applyVmChanges, type VmChange, type VmApplyResult, type AppliedFileKey } from './scripts/apply.js';
export { rollbackVm, type RollbackOptions, type VmRollbackResult } from './scripts/rollback.js';
export { offboardVm, type OffboardOptions, type VmOffboardResult } from './scripts/offboard.js';
export { fetchLocalUrl, type FetchLocalOptions, type LocalUrlResult } from './scripts/fetch-local.js';
export { VmScriptError, asRoot, asUser, composeScript, shQuote } from './scripts/protocol.js';
