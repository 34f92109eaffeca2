// The lab's mesh CA: a real X.509 root for a trust domain, signing workload CSRs into SPIFFE
// certificates (URI SAN spiffe://TD/ns/NS/sa/SA), istiod's serving cert and mesh client certs.
// Keys come from Node's crypto (fast); certificates are built with node-forge (RSA 2048, SHA-256).
import { constants, generateKeyPairSync, privateEncrypt, randomBytes } from 'node:crypto';
import forge from 'node-forge';

const { pki } = forge;

export interface IssuedCert {
  certPem: string;
  keyPem: string;
}

export interface MeshCaOptions {
  trustDomain?: string;
  /** Default TTL of workload certificates in seconds (Istio: 24h). */
  workloadTtlSeconds?: number;
}

export class CsrRejectedError extends Error {}

/** A forge-compatible signer doing the RSA private operation with Node's crypto (forge's pure-JS RSA is slow). */
export function fastRsaSigner(keyPem: string): { sign(md: forge.md.MessageDigest): string } {
  const sha256DigestInfoPrefix = Buffer.from('3031300d060960864801650304020105000420', 'hex');
  return {
    sign(md: forge.md.MessageDigest): string {
      const digest = Buffer.from(md.digest().getBytes(), 'binary');
      const sig = privateEncrypt(
        { key: keyPem, padding: constants.RSA_PKCS1_PADDING },
        Buffer.concat([sha256DigestInfoPrefix, digest]),
      );
      return sig.toString('binary');
    },
  };
}

interface RootMaterial {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
  keyPem: string;
  certPem: string;
}

function newRsaKeyPem(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive INTEGER
  if (bytes[0] === 0) bytes[0] = 0x01; // keep 16 bytes (no leading zero stripped)
  return bytes.toString('hex');
}

function makeRoot(trustDomain: string): RootMaterial {
  const keyPem = newRsaKeyPem();
  const key = pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const publicKey = pki.setRsaPublicKey(key.n, key.e);
  const cert = pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 24 * 3600 * 1000);
  const subject = [{ name: 'organizationName', value: trustDomain }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(fastRsaSigner(keyPem) as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { cert, key, keyPem, certPem: pki.certificateToPem(cert).replace(/\r\n/g, '\n') };
}

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** The URI SANs of a CSR (from its extensionRequest attribute). */
export function csrUriSans(csrPem: string): string[] {
  const csr = pki.certificationRequestFromPem(csrPem);
  const ext = csr.getAttribute({ name: 'extensionRequest' }) as {
    extensions?: Array<{ name: string; altNames?: Array<{ type: number; value: string }> }>;
  } | null;
  const san = ext?.extensions?.find((e) => e.name === 'subjectAltName');
  return (san?.altNames ?? []).filter((n) => n.type === 6).map((n) => n.value);
}

export class MeshCa {
  trustDomain: string;
  readonly workloadTtlSeconds: number;
  private root: RootMaterial;

  constructor(options: MeshCaOptions = {}) {
    this.trustDomain = options.trustDomain ?? 'cluster.local';
    this.workloadTtlSeconds = options.workloadTtlSeconds ?? 24 * 3600;
    this.root = makeRoot(this.trustDomain);
  }

  get rootCertPem(): string {
    return this.root.certPem;
  }

  /** A different root (its own key), e.g. for the wrong-root-cert fault. It signs nothing we serve. */
  static makeUnrelatedRootPem(trustDomain = 'cluster.local'): string {
    return makeRoot(trustDomain).certPem;
  }

  private sign(
    publicKey: forge.pki.PublicKey,
    altNames: Array<{ type: number; value?: string; ip?: string }>,
    ttlSeconds: number,
    server: boolean,
  ): string {
    const cert = pki.createCertificate();
    cert.publicKey = publicKey;
    cert.serialNumber = randomSerialHex();
    const now = Date.now();
    cert.validity.notBefore = new Date(now - 2 * 60_000); // Istio back-dates by a little for clock skew
    cert.validity.notAfter = new Date(now + ttlSeconds * 1000);
    cert.setSubject([]);
    cert.setIssuer(this.root.cert.subject.attributes);
    cert.setExtensions([
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.root.cert.generateSubjectKeyIdentifier().getBytes() },
      { name: 'subjectAltName', altNames, critical: !server },
    ]);
    cert.sign(fastRsaSigner(this.root.keyPem) as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
    return pki.certificateToPem(cert).replace(/\r\n/g, '\n');
  }

  /**
   * Signs a workload CSR. The CSR must carry exactly the expected SPIFFE URI SAN (istiod checks the
   * CSR identity against the caller's authenticated identity). Returns leaf PEM + root PEM (chain).
   */
  signWorkloadCsr(csrPem: string, expectedSpiffeId: string, ttlSeconds?: number): string[] {
    let csr: ReturnType<typeof pki.certificationRequestFromPem>;
    try {
      csr = pki.certificationRequestFromPem(csrPem);
    } catch (e) {
      throw new CsrRejectedError(`failed to parse CSR: ${(e as Error).message}`);
    }
    if (!csr.verify()) throw new CsrRejectedError('CSR signature is invalid');
    const sans = csrUriSans(csrPem);
    if (sans.length === 0) throw new CsrRejectedError('CSR has no URI SAN');
    for (const san of sans) {
      if (san !== expectedSpiffeId) {
        throw new CsrRejectedError(`csr identity ${san} does not match the caller identity ${expectedSpiffeId}`);
      }
    }
    // The CA issues for ITS trust domain (the wrong-trust-domain fault changes this.trustDomain).
    const issuedId = expectedSpiffeId.replace(/^spiffe:\/\/[^/]+/, `spiffe://${this.trustDomain}`);
    const leaf = this.sign(
      csr.publicKey as forge.pki.PublicKey,
      [{ type: 6, value: issuedId }],
      ttlSeconds ?? this.workloadTtlSeconds,
      false,
    );
    return [leaf, this.root.certPem];
  }

  /** A key + certificate for a mesh client/server identity (the mesh service, the Job runner). */
  issueWorkloadCert(namespace: string, serviceAccount: string, ttlSeconds?: number): IssuedCert {
    const keyPem = newRsaKeyPem();
    const key = pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
    const certPem = this.sign(
      pki.setRsaPublicKey(key.n, key.e),
      [{ type: 6, value: spiffeId(this.trustDomain, namespace, serviceAccount) }],
      ttlSeconds ?? this.workloadTtlSeconds,
      false,
    );
    return { certPem, keyPem };
  }

  /** istiod's serving certificate: DNS SANs istiod.<ns>.svc (+ revision names), optional IP SANs. */
  issueServerCert(dnsNames: string[], ips: string[] = []): IssuedCert {
    const keyPem = newRsaKeyPem();
    const key = pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
    const altNames = [...dnsNames.map((value) => ({ type: 2, value })), ...ips.map((ip) => ({ type: 7, ip }))];
    const certPem = this.sign(pki.setRsaPublicKey(key.n, key.e), altNames, 365 * 24 * 3600, true);
    return { certPem, keyPem };
  }
}

/** istiod's DNS names for a revision, as the real istiod cert carries them. */
export function istiodDnsNames(revision = '', systemNamespace = 'istio-system'): string[] {
  const names = [`istiod.${systemNamespace}.svc`];
  if (revision && revision !== 'default') names.push(`istiod-${revision}.${systemNamespace}.svc`);
  return names;
}
