// Public surface of the cluster layer.
export { loadKubeConfig, decodeKubeconfigText, secretsOfKubeconfig } from './credentials.js';
export type { LoadKubeConfigOptions, LoadedKubeConfig } from './credentials.js';
export { createClusterClient } from './client.js';
export type { ClusterClient, ClusterClientOptions } from './client.js';
export type { AppliedObject, ApplyAction, ApplyGroupOptions, RenderedObjects } from './apply.js';
export { PreflightError, formatMissingPermissions } from './preflight.js';
export type { PreflightOptions, PreflightReport, CrdCheck } from './preflight.js';
export { REQUIRED_PERMISSIONS, permissionsForRun } from './permissions.js';
export type { RequiredPermission, ConcretePermission, RunMode, PeerAuthenticationSetting } from './permissions.js';
export { renderMinimalRbacYaml } from './rbac.js';
export type { MeshContext, MeshContextInput } from './mesh-context.js';
export type { EastWestAddress, EastWestSource } from './east-west.js';
export { describeEastWest } from './east-west.js';
export type { BootstrapToken, BootstrapTokenRequest } from './tokens.js';
export type { WorkloadEntryInfo, PeerAuthenticationModeInfo, MtlsMode, GroupRef } from './workload-entries.js';
export { autoRegisteredWorkloadEntryName } from './workload-entries.js';
export {
  verificationJobName,
  buildVerificationJob,
  parseVerificationLog,
  VERIFY_CONTAINER_NAME,
  DEFAULT_VERIFY_CLIENT_IMAGE,
} from './verification-job.js';
export type { VerificationJobInput, VerificationJobResult, VerificationCall } from './verification-job.js';
export { KubeRequestError, ClusterConfigError } from './errors.js';
export type { KubeFailureKind } from './errors.js';
export { FIELD_MANAGER } from './mesh-objects.js';
