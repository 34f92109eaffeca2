// Glue from the inventory model to renderVmFiles: one VM's files from its group and the mesh.

import type { GroupSpec, MeshSpec, VmSpec } from '../inventory/types.js';
import { isRevisioned, istiodAddress } from './istiod.js';
import { renderVmFiles, type VmFiles } from './vm-files.js';
import { buildWorkloadGroup } from './workload-objects.js';

export interface InventoryVmRenderInput {
  mesh: MeshSpec;
  group: GroupSpec;
  vm: VmSpec;
  meshConfigText: string;
  rootCert: string;
  token: string;
  clusterID: string;
  /** East-west gateway IP; falls back to mesh.eastWestGateway.address when that is an IP. */
  ingressIP?: string;
  /** Workload address learned from the VM when the inventory has no internalIP. */
  learnedInternalIP?: string;
  captureDNS?: boolean;
}

/**
 * Files for one inventory VM: the group's WorkloadGroup, `--autoregister` when the group registers
 * automatically, the VM's internal (or else external) IP, and its SSH port excluded from capture
 * when it is not 22 (istio#36870). The VM's own labels join the group's in ISTIO_METAJSON_LABELS,
 * so the WorkloadEntry istiod registers for it carries them (a VM without labels renders exactly
 * as istioctl would).
 */
export function renderVmFilesForInventoryVm(input: InventoryVmRenderInput): VmFiles {
  const { mesh, group, vm } = input;
  const internalIP = vm.internalIP ?? input.learnedInternalIP;
  const ingressIP = input.ingressIP ?? mesh.eastWestGateway.address;
  const workloadGroup = buildWorkloadGroup(group);
  workloadGroup.spec.metadata.labels = { ...workloadGroup.spec.metadata.labels, ...vm.labels };
  return renderVmFiles({
    workloadGroup,
    meshConfigText: input.meshConfigText,
    rootCert: input.rootCert,
    token: input.token,
    clusterID: input.clusterID,
    ...(ingressIP !== undefined ? { ingressIP } : {}),
    ...(internalIP !== undefined ? { internalIP } : vm.externalIP !== undefined ? { externalIP: vm.externalIP } : {}),
    revision: mesh.revision,
    istioNamespace: mesh.istioNamespace,
    autoregister: group.registration === 'auto',
    // Deviation from istioctl (README): an Istio namespace other than istio-system needs CA_ADDR.
    ...(!isRevisioned(mesh.revision) && (mesh.istioNamespace || 'istio-system') !== 'istio-system'
      ? { caAddress: istiodAddress(mesh.istioNamespace) }
      : {}),
    ...(group.registration === 'static' && group.probe !== undefined ? { workloadEntry: vm.name } : {}),
    captureDNS: input.captureDNS ?? true,
    extraLocalExcludePorts: vm.ssh.port !== 22 ? [vm.ssh.port] : [],
  });
}
