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

  it('CA_ADDR (deviation from istioctl): set for an Istio namespace other than istio-system, default revision', () => {
    const group = inventory.groups[0]!;
    const render = (mesh: typeof inventory.mesh) =>
      renderVmFilesForInventoryVm({
        mesh,
        group,
        vm: group.vms[0]!,
        meshConfigText: 'defaultConfig: {}\n',
        rootCert: 'ROOT',
        token: 'T',
        clusterID: 'Kubernetes',
        ingressIP: '10.0.0.100',
      }).clusterEnv;
    // istio-start.sh would export CA_ADDR=istiod.istio-system.svc:15012: no certificate from mesh-system.
    expect(render({ ...inventory.mesh, istioNamespace: 'mesh-system', revision: '' })).toContain(
      "CA_ADDR='istiod.mesh-system.svc:15012'\n",
    );
    expect(render({ ...inventory.mesh, istioNamespace: 'istio-system', revision: '' })).not.toContain('CA_ADDR');
    // A revision already sets it (as istioctl does).
    expect(render({ ...inventory.mesh, istioNamespace: 'mesh-system', revision: 'canary' })).toContain(
      "CA_ADDR='istiod-canary.mesh-system.svc:15012'\n",
    );
  });
});
