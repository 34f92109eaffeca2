// Renders one VM's files exactly as `istioctl x workload entry configure` would for it, plus the one
// deliberate addition: a non-22 SSH port is excluded from traffic capture (istio#36870).
import type { GroupSpec, VmSpec } from '../inventory/types.js';
import { buildWorkloadGroup, renderVmFiles } from '../render/index.js';
import type { MeshContext, RenderedVmFiles } from './ports.js';

export function renderFilesForVm(input: {
  group: GroupSpec;
  vm: VmSpec;
  mesh: MeshContext;
  token: string;
  workloadIP: string;
}): RenderedVmFiles {
  const { group, vm, mesh } = input;
  const rendered = renderVmFiles({
    workloadGroup: buildWorkloadGroup(group),
    meshConfigText: mesh.meshConfig,
    rootCert: mesh.rootCert,
    token: input.token,
    clusterID: mesh.clusterID,
    ingressIP: mesh.eastWest.address,
    internalIP: input.workloadIP,
    ...(vm.externalIP ? { externalIP: vm.externalIP } : {}),
    ...(mesh.revision ? { revision: mesh.revision } : {}),
    istioNamespace: mesh.istioNamespace,
    autoregister: group.registration === 'auto',
    captureDNS: true,
    extraLocalExcludePorts: vm.ssh.port === 22 ? [] : [vm.ssh.port],
  });
  return {
    clusterEnv: rendered.clusterEnv,
    meshYaml: rendered.meshYaml,
    hosts: rendered.hosts,
    rootCert: rendered.rootCert,
    token: rendered.token,
  };
}
