// WorkloadGroup / WorkloadEntry objects built from the inventory model.
import { describe, expect, it } from '@jest/globals';
import type { GroupSpec, VmSpec } from '../../src/inventory/types.js';
import { buildWorkloadEntry, buildWorkloadGroup, renderVmFiles } from '../../src/render/index.js';

const group: GroupSpec = {
  name: 'pay',
  namespace: 'shop',
  serviceAccount: 'pay-sa',
  labels: { app: 'pay', version: 'v1' },
  annotations: { 'proxy.istio.io/config': 'holdApplicationUntilProxyStarts: true' },
  ports: { http: 8080 },
  network: 'vm-net',
  registration: 'static',
  probe: { httpGet: { port: 8080, path: '/ready' }, periodSeconds: 5 },
  vms: [],
};
const vm: VmSpec = {
  name: 'pay-1',
  group: 'pay',
  ssh: { host: '192.0.2.1', port: 22, user: 'ops' },
  labels: { version: 'v1-canary', zone: 'a' },
};

describe('buildWorkloadGroup', () => {
  it('maps the group to networking.istio.io/v1 WorkloadGroup', () => {
    expect(buildWorkloadGroup(group)).toEqual({
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadGroup',
      metadata: { name: 'pay', namespace: 'shop', labels: { 'app.kubernetes.io/managed-by': 'istio-vm-onboard' } },
      spec: {
        metadata: {
          labels: { app: 'pay', version: 'v1' },
          annotations: { 'proxy.istio.io/config': 'holdApplicationUntilProxyStarts: true' },
        },
        template: { serviceAccount: 'pay-sa', network: 'vm-net', ports: { http: 8080 } },
        probe: { httpGet: { port: 8080, path: '/ready' }, periodSeconds: 5 },
      },
    });
  });
  it('omits empty network, ports and probe', () => {
    const { probe: _p, ...rest } = group;
    const wg = buildWorkloadGroup({ ...rest, network: '', ports: {} });
    expect(wg.spec.template).toEqual({ serviceAccount: 'pay-sa' });
    expect(wg.spec).not.toHaveProperty('probe');
  });
  it('feeds renderVmFiles: annotation and probe reach mesh.yaml', () => {
    const files = renderVmFiles({
      workloadGroup: buildWorkloadGroup(group),
      meshConfigText: 'defaultConfig:\n  proxyMetadata:\n    DATE_LIKE: 2001-12-14\n',
      rootCert: '',
      token: '',
      clusterID: 'c',
      autoregister: false,
    });
    expect(files.meshYaml).toContain('  holdApplicationUntilProxyStarts: true\n');
    expect(files.meshYaml).toContain(
      '  readinessProbe:\n    httpGet:\n      path: /ready\n      port: 8080\n    periodSeconds: 5\n',
    );
    expect(files.meshYaml).toContain('    DATE_LIKE: "2001-12-14"\n');
    expect(files.clusterEnv).toContain("ISTIO_META_NETWORK='vm-net'\n");
  });
  it('no probe: no health-checks annotation', () => {
    const { probe: _probe, ...noProbe } = group;
    expect(buildWorkloadEntry(noProbe, vm, '10.1.0.1').metadata.annotations).toBeUndefined();
  });
});

describe('buildWorkloadEntry', () => {
  it('merges group and VM labels (VM wins) and carries identity, network and ports', () => {
    expect(buildWorkloadEntry(group, vm, '10.1.0.1')).toEqual({
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: {
        name: 'pay-1',
        namespace: 'shop',
        labels: { app: 'pay', version: 'v1-canary', zone: 'a', 'app.kubernetes.io/managed-by': 'istio-vm-onboard' },
        // The group has a probe: istiod writes health only into an entry annotated so.
        annotations: { 'proxy.istio.io/health-checks-enabled': 'true' },
      },
      spec: {
        address: '10.1.0.1',
        labels: { app: 'pay', version: 'v1-canary', zone: 'a' },
        serviceAccount: 'pay-sa',
        network: 'vm-net',
        ports: { http: 8080 },
      },
    });
  });
  it('no probe: no health-checks annotation', () => {
    const { probe: _probe, ...noProbe } = group;
    expect(buildWorkloadEntry(noProbe, vm, '10.1.0.1').metadata.annotations).toBeUndefined();
  });
});
