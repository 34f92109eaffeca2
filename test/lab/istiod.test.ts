// The mesh CA and the istiod double's CA service, against the real Kubernetes double's TokenReview.
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MeshCa, CsrRejectedError } from './istiod/ca.js';
import { autoRegisteredEntryName, resolveMtlsMode } from './istiod/server.js';
import { requestCertificate } from './sidecar/agent.js';
import { createKeyAndCsr, certFacts } from './sidecar/identity.js';
import { startLoopbackMesh, type LoopbackMesh } from './sidecar/testing.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'ivo-istiod-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function opensslVerify(rootPem: string, certPem: string): string {
  writeFileSync(path.join(tmp, 'root.pem'), rootPem);
  writeFileSync(path.join(tmp, 'leaf.pem'), certPem);
  try {
    return execFileSync('openssl', ['verify', '-CAfile', path.join(tmp, 'root.pem'), path.join(tmp, 'leaf.pem')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? '') + String((e as { stderr?: string }).stderr ?? '');
  }
}

describe('mesh CA', () => {
  const ca = new MeshCa();
  it('signs a CSR into a SPIFFE cert that openssl verify accepts, with the right URI SAN', () => {
    const id = 'spiffe://cluster.local/ns/vm-ns/sa/vm-sa';
    const { csrPem } = createKeyAndCsr(id);
    const [leaf, root] = ca.signWorkloadCsr(csrPem, id);
    expect(root).toBe(ca.rootCertPem);
    expect(opensslVerify(ca.rootCertPem, leaf!)).toMatch(/: OK$/);
    const f = certFacts(leaf!);
    expect(f.uriSans).toEqual([id]);
    const ttlH = (f.expiration.getTime() - Date.now()) / 3600_000;
    expect(ttlH).toBeGreaterThan(23.9);
    expect(ttlH).toBeLessThanOrEqual(24);
  });
  it('a cert is not accepted against an unrelated root', () => {
    const id = 'spiffe://cluster.local/ns/a/sa/b';
    const [leaf] = ca.signWorkloadCsr(createKeyAndCsr(id).csrPem, id);
    expect(opensslVerify(MeshCa.makeUnrelatedRootPem(), leaf!)).not.toMatch(/: OK$/);
  });
  it('rejects a CSR whose SAN is not the caller identity', () => {
    const { csrPem } = createKeyAndCsr('spiffe://cluster.local/ns/other/sa/x');
    expect(() => ca.signWorkloadCsr(csrPem, 'spiffe://cluster.local/ns/vm-ns/sa/vm-sa')).toThrow(CsrRejectedError);
  });
  it('issues istiod a cert with its DNS names, and wrong-trust-domain changes issued SANs', () => {
    const s = ca.issueServerCert(['istiod.istio-system.svc', 'istiod-rev-1.istio-system.svc'], ['10.233.0.1']);
    expect(certFacts(s.certPem).dnsSans).toEqual(['istiod.istio-system.svc', 'istiod-rev-1.istio-system.svc']);
    expect(opensslVerify(ca.rootCertPem, s.certPem)).toMatch(/: OK$/);
    const other = new MeshCa();
    other.trustDomain = 'corp.example';
    const id = 'spiffe://cluster.local/ns/a/sa/b';
    const [leaf] = other.signWorkloadCsr(createKeyAndCsr(id).csrPem, id);
    expect(certFacts(leaf!).uriSans).toEqual(['spiffe://corp.example/ns/a/sa/b']);
  });
});

describe('istiod helpers', () => {
  it('names auto-registered entries like istiod', () => {
    expect(autoRegisteredEntryName('vm-app', '10.128.0.27', '')).toBe('vm-app-10.128.0.27');
    expect(autoRegisteredEntryName('vm-app', 'fd00::1', 'net1')).toBe('vm-app-fd00--1-net1');
  });
  it('resolves PeerAuthentication: workload > namespace > mesh > PERMISSIVE', () => {
    expect(resolveMtlsMode([], 'ns', {})).toBe('PERMISSIVE');
    expect(resolveMtlsMode([{ namespace: 'istio-system', mode: 'STRICT' }], 'ns', {})).toBe('STRICT');
    expect(
      resolveMtlsMode(
        [
          { namespace: 'istio-system', mode: 'STRICT' },
          { namespace: 'ns', mode: 'PERMISSIVE' },
        ],
        'ns',
        {},
      ),
    ).toBe('PERMISSIVE');
    expect(
      resolveMtlsMode(
        [
          { namespace: 'ns', mode: 'PERMISSIVE' },
          { namespace: 'ns', selector: { app: 'a' }, mode: 'STRICT' },
        ],
        'ns',
        { app: 'a' },
      ),
    ).toBe('STRICT');
  });
});

describe('istiod CA service (gRPC CreateCertificate + TokenReview of the Kubernetes double)', () => {
  let mesh: LoopbackMesh;
  let addr: string;
  const id = 'spiffe://cluster.local/ns/vm-ns/sa/vm-sa';
  beforeAll(async () => {
    mesh = await startLoopbackMesh();
    addr = `127.0.0.1:${mesh.istiod.boundPort}`;
    mesh.kube.store.create('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'vm-ns' } });
    mesh.kube.store.create('serviceaccounts', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'vm-sa', namespace: 'vm-ns' },
    });
  });
  afterAll(async () => mesh?.stop());

  it('issues a cert for a valid istio-ca token', async () => {
    const token = mesh.kube.issueServiceAccountToken('vm-ns', 'vm-sa', ['istio-ca'], 3600).token;
    const chain = await requestCertificate(addr, mesh.ca.rootCertPem, token, createKeyAndCsr(id).csrPem, 3600);
    expect(certFacts(chain[0]!).uriSans).toEqual([id]);
    expect(opensslVerify(mesh.ca.rootCertPem, chain[0]!)).toMatch(/: OK$/);
  });
  it('rejects a token for another audience: audience mismatch', async () => {
    const token = mesh.kube.issueServiceAccountToken(
      'vm-ns',
      'vm-sa',
      ['https://kubernetes.default.svc.cluster.local'],
      3600,
    ).token;
    await expect(
      requestCertificate(addr, mesh.ca.rootCertPem, token, createKeyAndCsr(id).csrPem, 3600),
    ).rejects.toThrow(/code = Unauthenticated desc = authentication failure: .*audience mismatch/);
  });
  it('rejects a garbage token and a token whose ServiceAccount was deleted', async () => {
    await expect(
      requestCertificate(addr, mesh.ca.rootCertPem, 'not-a-jwt', createKeyAndCsr(id).csrPem, 3600),
    ).rejects.toThrow(/Unauthenticated/);
    mesh.kube.store.create('serviceaccounts', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'gone', namespace: 'vm-ns' },
    });
    const token = mesh.kube.issueServiceAccountToken('vm-ns', 'gone', ['istio-ca'], 3600).token;
    mesh.kube.store.delete('serviceaccounts', 'vm-ns', 'gone');
    await expect(
      requestCertificate(
        addr,
        mesh.ca.rootCertPem,
        token,
        createKeyAndCsr('spiffe://cluster.local/ns/vm-ns/sa/gone').csrPem,
        3600,
      ),
    ).rejects.toThrow(/Unauthenticated desc = authentication failure/);
  });
  it('rejects a CSR for another identity than the token', async () => {
    const token = mesh.kube.issueServiceAccountToken('vm-ns', 'vm-sa', ['istio-ca'], 3600).token;
    await expect(
      requestCertificate(
        addr,
        mesh.ca.rootCertPem,
        token,
        createKeyAndCsr('spiffe://cluster.local/ns/vm-ns/sa/admin').csrPem,
        3600,
      ),
    ).rejects.toThrow(/InvalidArgument desc = csr identity .* does not match/);
  });
  it('token-rejected switch: TokenReview answers not authenticated, and heals', async () => {
    const token = mesh.kube.issueServiceAccountToken('vm-ns', 'vm-sa', ['istio-ca'], 3600).token;
    mesh.istiod.tokenRejected = true;
    await expect(
      requestCertificate(addr, mesh.ca.rootCertPem, token, createKeyAndCsr(id).csrPem, 3600),
    ).rejects.toThrow(/not authenticated/);
    mesh.istiod.tokenRejected = false;
    await expect(
      requestCertificate(addr, mesh.ca.rootCertPem, token, createKeyAndCsr(id).csrPem, 3600),
    ).resolves.toHaveLength(2);
  });
  it('a client with the wrong root cannot talk to istiod (x509 unknown authority)', async () => {
    const token = mesh.kube.issueServiceAccountToken('vm-ns', 'vm-sa', ['istio-ca'], 3600).token;
    await expect(
      requestCertificate(addr, MeshCa.makeUnrelatedRootPem(), token, createKeyAndCsr(id).csrPem, 3600),
    ).rejects.toThrow(/certificate signed by unknown authority/);
  });
  it('istiod down: connection refused', async () => {
    await mesh.istiod.stop();
    const token = mesh.kube.issueServiceAccountToken('vm-ns', 'vm-sa', ['istio-ca'], 3600).token;
    await expect(
      requestCertificate(addr, mesh.ca.rootCertPem, token, createKeyAndCsr(id).csrPem, 3600),
    ).rejects.toThrow(/connection refused/);
    await mesh.istiod.start();
    await expect(
      requestCertificate(addr, mesh.ca.rootCertPem, token, createKeyAndCsr(id).csrPem, 3600),
    ).resolves.toHaveLength(2);
  });
});
