// The workload identity the agent requests: a fresh key + CSR (URI SAN spiffe://TD/ns/NS/sa/SA),
// and facts read back from issued certificates (for /certs, /config_dump, stats).
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import { fastRsaSigner } from '../istiod/ca.js';

export interface KeyAndCsr {
  keyPem: string;
  csrPem: string;
}

export function createKeyAndCsr(spiffeId: string): KeyAndCsr {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const fk = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(fk.n, fk.e);
  csr.setAttributes([
    { name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: spiffeId }] }] },
  ]);
  csr.sign(fastRsaSigner(keyPem) as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { keyPem, csrPem: forge.pki.certificationRequestToPem(csr).replace(/\r\n/g, '\n') };
}

export interface CertFacts {
  serialNumber: string; // lowercase hex, no colons
  uriSans: string[];
  dnsSans: string[];
  ipSans: string[];
  validFrom: Date;
  expiration: Date;
}

export function certFacts(pem: string): CertFacts {
  const c = new X509Certificate(pem);
  const sans = (c.subjectAltName ?? '').split(', ').filter(Boolean);
  const pick = (prefix: string) => sans.filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
  return {
    serialNumber: c.serialNumber.toLowerCase(),
    uriSans: pick('URI:'),
    dnsSans: pick('DNS:'),
    ipSans: pick('IP Address:'),
    validFrom: new Date(c.validFrom),
    expiration: new Date(c.validTo),
  };
}

export function splitPemChain(pem: string): string[] {
  return (
    pem
      .match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)
      ?.map((s) => (s.endsWith('\n') ? s : s + '\n')) ?? []
  );
}

/** RFC3339 in UTC without fractional seconds (Envoy /certs valid_from / expiration_time). */
export function rfc3339Seconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
