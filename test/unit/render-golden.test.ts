// Byte-for-byte reproduction of istioctl's `x workload entry configure` golden files, plus the
// flag combinations the goldens do not cover (derived from istioctl/pkg/workload/workload.go).
import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseWorkloadGroupText, renderVmFiles, type VmFilesInput } from '../../src/render/index.js';

const GOLDEN_ROOT = path.resolve(process.cwd(), '../shared/istio-golden/vmconfig');

/** How workload_test.go invokes each case (see the golden README). */
const GOLDEN_CASES = [
  { dir: 'ipv4', internalIP: '10.10.10.10', ingressIP: '10.10.10.11', revision: 'rev-1' },
  { dir: 'ipv6', internalIP: 'fd00:10:96::1', ingressIP: 'fd00:10:96::2', revision: 'rev-1' },
  { dir: 'vmconfig-nil-proxy-metadata', internalIP: '10.10.10.10' },
] as const;

const FILES = [
  ['clusterEnv', 'cluster.env'],
  ['meshYaml', 'mesh.yaml'],
  ['hosts', 'hosts'],
  ['rootCert', 'root-cert.pem'],
  ['token', 'istio-token'],
] as const;

function goldenInput(dir: string, extra: Partial<VmFilesInput> = {}): VmFilesInput {
  const caseDir = path.join(GOLDEN_ROOT, dir);
  const meshFile = path.join(caseDir, 'meshconfig.yaml');
  const c = GOLDEN_CASES.find((g) => g.dir === dir)!;
  return {
    workloadGroup: parseWorkloadGroupText(readFileSync(path.join(caseDir, 'workloadgroup.yaml'), 'utf8')),
    // nil-proxy-metadata: the fake istio configmap's mesh key is the inline `defaultConfig: {}`.
    meshConfigText: existsSync(meshFile) ? readFileSync(meshFile, 'utf8') : 'defaultConfig: {}',
    rootCert: 'fake-CA-cert',
    token: '',
    clusterID: 'Kubernetes',
    internalIP: c.internalIP,
    ...('ingressIP' in c ? { ingressIP: c.ingressIP } : {}),
    ...('revision' in c ? { revision: c.revision } : {}),
    autoregister: false,
    ...extra,
  };
}

describe('istioctl golden files', () => {
  it('finds the golden directory', () => {
    expect(existsSync(GOLDEN_ROOT)).toBe(true);
  });
  for (const c of GOLDEN_CASES) {
    describe(c.dir, () => {
      const out = renderVmFiles(goldenInput(c.dir));
      for (const [key, file] of FILES) {
        it(`${file} is byte-identical`, () => {
          const golden = readFileSync(path.join(GOLDEN_ROOT, c.dir, `${file}.golden`));
          expect(Buffer.from(out[key], 'utf8').equals(golden)).toBe(true);
          expect(out[key]).toBe(golden.toString('utf8'));
        });
      }
    });
  }
});

function envMap(clusterEnv: string): Map<string, string> {
  return new Map(
    clusterEnv
      .trimEnd()
      .split('\n')
      .map((line) => {
        const i = line.indexOf('=');
        return [line.slice(0, i), line.slice(i + 1)] as [string, string];
      }),
  );
}

const WG_BASE = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'WorkloadGroup',
  metadata: { name: 'pay', namespace: 'shop' },
  spec: {
    metadata: { labels: { app: 'pegasus-pay', version: 'v2' }, annotations: {} },
    template: { serviceAccount: 'pay-sa' },
  },
};

function baseInput(extra: Partial<VmFilesInput> = {}): VmFilesInput {
  return {
    workloadGroup: structuredClone(WG_BASE),
    meshConfigText: 'trustDomain: corp.example\ndefaultConfig:\n  meshId: mesh1\n',
    rootCert: 'ROOT',
    token: 'TOKEN',
    clusterID: 'c1',
    ingressIP: '192.0.2.10',
    internalIP: '10.0.0.5',
    autoregister: false,
    ...extra,
  };
}

describe('flag combinations beyond the goldens', () => {
  it('--autoregister adds ISTIO_META_AUTO_REGISTER_GROUP=<group name> to both files', () => {
    const off = renderVmFiles(baseInput());
    const on = renderVmFiles(baseInput({ autoregister: true }));
    expect(envMap(off.clusterEnv).has('ISTIO_META_AUTO_REGISTER_GROUP')).toBe(false);
    expect(envMap(on.clusterEnv).get('ISTIO_META_AUTO_REGISTER_GROUP')).toBe("'pay'");
    expect(on.meshYaml).toContain('    ISTIO_META_AUTO_REGISTER_GROUP: pay\n');
  });

  it('--capture-dns=false leaves ISTIO_META_DNS_CAPTURE to the mesh config (absent, or its value)', () => {
    const absent = renderVmFiles(baseInput({ captureDNS: false }));
    expect(envMap(absent.clusterEnv).has('ISTIO_META_DNS_CAPTURE')).toBe(false);
    expect(absent.meshYaml).not.toContain('ISTIO_META_DNS_CAPTURE');
    const fromMesh = renderVmFiles(goldenInput('ipv4', { captureDNS: false }));
    expect(envMap(fromMesh.clusterEnv).get('ISTIO_META_DNS_CAPTURE')).toBe("'false'");
    expect(fromMesh.meshYaml).toContain('    ISTIO_META_DNS_CAPTURE: "false"\n');
  });

  it('externalIP becomes ISTIO_SVC_IP and turns on REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION', () => {
    const { internalIP: _omit, ...rest } = baseInput();
    const out = renderVmFiles({ ...rest, externalIP: '203.0.113.7' });
    const env = envMap(out.clusterEnv);
    expect(env.get('ISTIO_SVC_IP')).toBe("'203.0.113.7'");
    expect(env.get('REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION')).toBe("'true'");
    expect(envMap(renderVmFiles(baseInput()).clusterEnv).has('REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION')).toBe(false);
  });

  it('given both internalIP and externalIP, internalIP wins (istioctl createClusterEnv order)', () => {
    const env = envMap(renderVmFiles(baseInput({ externalIP: '203.0.113.7' })).clusterEnv);
    expect(env.get('ISTIO_SVC_IP')).toBe("'10.0.0.5'");
    expect(env.has('REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION')).toBe(false);
  });

  it('no internal/external IP → no ISTIO_SVC_IP; no ingress IP → empty hosts', () => {
    const { internalIP: _i, ingressIP: _g, ...rest } = baseInput();
    const out = renderVmFiles(rest);
    expect(envMap(out.clusterEnv).has('ISTIO_SVC_IP')).toBe(false);
    expect(out.hosts).toBe('');
  });

  it('a hostname as ingress address writes no hosts line (istioctl only accepts IPs)', () => {
    expect(renderVmFiles(baseInput({ ingressIP: 'gw.example.com' })).hosts).toBe('');
  });

  it('default revision: no CA_ADDR, no discoveryAddress, hosts points at istiod.<ns>.svc', () => {
    const out = renderVmFiles(baseInput({ revision: 'default', istioNamespace: 'mesh-system' }));
    expect(envMap(out.clusterEnv).has('CA_ADDR')).toBe(false);
    expect(out.meshYaml).not.toContain('discoveryAddress');
    expect(out.hosts).toBe('192.0.2.10 istiod.mesh-system.svc\n');
  });

  it('ports: ISTIO_META_POD_PORTS sorted by name with protocol "", inbound ports listed', () => {
    const wg = structuredClone(WG_BASE) as typeof WG_BASE & { spec: { template: Record<string, unknown> } };
    wg.spec.template.ports = { http: 8080, grpc: 9090, admin: 9000 };
    const out = renderVmFiles(baseInput({ workloadGroup: wg }));
    const env = envMap(out.clusterEnv);
    const podPorts =
      '[{"name":"admin","containerPort":9000,"protocol":""},{"name":"grpc","containerPort":9090,"protocol":""},{"name":"http","containerPort":8080,"protocol":""}]';
    expect(env.get('ISTIO_META_POD_PORTS')).toBe(`'${podPorts}'`);
    expect(env.get('ISTIO_INBOUND_PORTS')).toBe("'9000,9090,8080'");
    expect(out.meshYaml).toContain(`    ISTIO_META_POD_PORTS: '${podPorts}'\n`);
  });

  it('labels: canonical name/revision from app/version, labels JSON sorted, template labels override', () => {
    const wg = structuredClone(WG_BASE) as typeof WG_BASE & { spec: { template: Record<string, unknown> } };
    wg.spec.template.labels = { version: 'v3', zone: 'a' };
    const env = envMap(renderVmFiles(baseInput({ workloadGroup: wg })).clusterEnv);
    expect(env.get('CANONICAL_SERVICE')).toBe("'pegasus-pay'");
    expect(env.get('CANONICAL_REVISION')).toBe("'v3'");
    expect(env.get('ISTIO_METAJSON_LABELS')).toBe(
      `'{"app":"pegasus-pay","service.istio.io/canonical-name":"pegasus-pay","service.istio.io/canonical-revision":"v3","version":"v3","zone":"a"}'`,
    );
    expect(env.get('TRUST_DOMAIN')).toBe("'corp.example'");
    expect(env.get('ISTIO_META_MESH_ID')).toBe("'mesh1'");
  });

  it('annotations: proxy.istio.io/config overrides mesh proxyMetadata and statusPort; istioctl values win last', () => {
    const wg = structuredClone(WG_BASE) as typeof WG_BASE & { metadata: Record<string, unknown> };
    wg.metadata.annotations = { 'proxy.istio.io/config': 'proxyMetadata:\n  A: from-metadata\n  B: from-metadata\n' };
    wg.spec.metadata.annotations = {
      'proxy.istio.io/config': 'statusPort: 15999\nproxyMetadata:\n  B: from-spec\n  POD_NAMESPACE: ignored\n',
    } as never;
    const mesh = 'defaultConfig:\n  drainDuration: 1m\n  proxyMetadata:\n    A: mesh\n    C: mesh\n';
    const out = renderVmFiles(baseInput({ workloadGroup: wg, meshConfigText: mesh }));
    const env = envMap(out.clusterEnv);
    expect(env.get('A')).toBe("'from-metadata'");
    expect(env.get('B')).toBe("'from-spec'");
    expect(env.get('C')).toBe("'mesh'");
    expect(env.get('POD_NAMESPACE')).toBe("'shop'");
    expect(env.get('ISTIO_LOCAL_EXCLUDE_PORTS')).toBe("'22,15090,15021,15999'");
    expect(out.meshYaml).toContain('  drainDuration: 60s\n');
    expect(out.meshYaml).toContain('  statusPort: 15999\n');
  });

  it('extraLocalExcludePorts appends the SSH port; empty list is byte-identical to istioctl', () => {
    const plain = renderVmFiles(goldenInput('ipv4'));
    expect(renderVmFiles(goldenInput('ipv4', { extraLocalExcludePorts: [] }))).toEqual(plain);
    const withSsh = renderVmFiles(goldenInput('ipv4', { extraLocalExcludePorts: [2222] }));
    expect(envMap(withSsh.clusterEnv).get('ISTIO_LOCAL_EXCLUDE_PORTS')).toBe("'22,15090,15021,15020,2222'");
    expect(withSsh.meshYaml).toBe(plain.meshYaml);
    expect(
      envMap(renderVmFiles(goldenInput('ipv4', { extraLocalExcludePorts: [22] })).clusterEnv).get(
        'ISTIO_LOCAL_EXCLUDE_PORTS',
      ),
    ).toBe("'22,15090,15021,15020'");
  });

  it('unknown mesh config fields are dropped; the whole known defaultConfig is written', () => {
    const mesh = [
      'enableTracing: true',
      'defaultConfig:',
      '  holdApplicationUntilProxyStarts: true',
      '  concurrency: 0',
      '  somethingNew: 1',
      '  tracing:',
      '    zipkin:',
      '      address: zipkin.istio-system:9411',
      '  interceptionMode: REDIRECT',
      '',
    ].join('\n');
    const out = renderVmFiles(baseInput({ meshConfigText: mesh }));
    expect(out.meshYaml).toContain('  concurrency: 0\n  holdApplicationUntilProxyStarts: true\n');
    expect(out.meshYaml).toContain('  tracing:\n    zipkin:\n      address: zipkin.istio-system:9411\n');
    expect(out.meshYaml).not.toContain('somethingNew');
    expect(out.meshYaml).not.toContain('interceptionMode');
    expect(out.meshYaml).not.toContain('enableTracing');
  });

  it('a bad mesh config value fails with the field named', () => {
    expect(() => renderVmFiles(baseInput({ meshConfigText: 'defaultConfig:\n  proxyMetadata:\n    X: 1\n' }))).toThrow(
      /proxyMetadata\.X: expected a string/,
    );
    expect(() => renderVmFiles(baseInput({ meshConfigText: 'defaultConfig:\n  drainDuration: soon\n' }))).toThrow(
      /bad Duration/,
    );
  });
});
