import { describe, expect, it } from '@jest/globals';
import { parseInventory } from '../../src/inventory/index.js';
import { renderVmFilesForInventoryVm } from '../../src/render/index.js';

const inventory = parseInventory(
  `groups:
  - name: web
    namespace: vm
    labels: {app: web}
    vms:
      - {name: a, address: 10.0.0.1, user: u, internalIP: 10.0.0.1, labels: {zone: east}}
      - {name: b, address: 10.0.0.2, user: u, internalIP: 10.0.0.2}
`,
  'inv.yaml',
);

function filesOf(index: number) {
  const group = inventory.groups[0]!;
  return renderVmFilesForInventoryVm({
    mesh: inventory.mesh,
    group,
    vm: group.vms[index]!,
    meshConfigText: 'defaultConfig: {}\n',
    rootCert: 'ROOT',
    token: 'T',
    clusterID: 'Kubernetes',
    ingressIP: '10.0.0.100',
  });
}

describe('renderVmFilesForInventoryVm', () => {
  it("adds the VM's own labels to the group's, so its WorkloadEntry carries them", () => {
    expect(filesOf(0).clusterEnv).toContain(
      `ISTIO_METAJSON_LABELS='{"app":"web","service.istio.io/canonical-name":"web","service.istio.io/canonical-revision":"latest","zone":"east"}'`,
    );
    expect(filesOf(1).clusterEnv).toContain(
      `ISTIO_METAJSON_LABELS='{"app":"web","service.istio.io/canonical-name":"web","service.istio.io/canonical-revision":"latest"}'`,
    );
  });
});
