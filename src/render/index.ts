// Public surface of the pure rendering layer.
export { shellQuote, shellQuoteLossless, isIstioShellSafe } from './shell-quote.js';
export { buildWorkloadGroup, buildWorkloadEntry, MANAGED_BY_LABEL, MANAGED_BY_VALUE } from './workload-objects.js';
export type { WorkloadGroupObject, WorkloadEntryObject } from './workload-objects.js';
export {
  renderVmFiles,
  readWorkloadGroup,
  parseWorkloadGroupText,
  PROXY_CONFIG_ANNOTATION,
  RenderError,
} from './vm-files.js';
export type { VmFilesInput, VmFiles, WorkloadGroupView } from './vm-files.js';
export { istiodHost, istiodAddress, isRevisioned, meshConfigMapName } from './istiod.js';
export { marshalYamlV2, compareYamlV2Keys } from './yaml-v2.js';
export { renderVmFilesForInventoryVm } from './inventory-vm.js';
export type { InventoryVmRenderInput } from './inventory-vm.js';
