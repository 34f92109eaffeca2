// Renders one VM's files exactly as `istioctl x workload entry configure` would for it (see
// renderVmFilesForInventoryVm for the deliberate additions), with the values read from the cluster.
import type { GroupSpec, VmSpec } from '../inventory/types.js';
import { renderVmFilesForInventoryVm } from '../render/index.js';
import type { MeshContext, RenderedVmFiles } from './ports.js';

export function renderFilesForVm(input: {
  group: GroupSpec;
  vm: VmSpec;
  mesh: MeshContext;
  token: string;
  workloadIP: string;
}): RenderedVmFiles {
  const { group, vm, mesh } = input;
  return renderVmFilesForInventoryVm({
    mesh: {
      revision: mesh.revision,
      istioNamespace: mesh.istioNamespace,
      ...(mesh.clusterID ? { clusterID: mesh.clusterID } : {}),
      eastWestGateway: { service: '', namespace: mesh.istioNamespace, address: mesh.eastWest.address },
    },
    group,
    vm,
    meshConfigText: mesh.meshConfig,
    rootCert: mesh.rootCert,
    token: input.token,
    clusterID: mesh.clusterID,
    ingressIP: mesh.eastWest.address,
    learnedInternalIP: input.workloadIP,
    captureDNS: true,
  });
}
