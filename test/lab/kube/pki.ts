// Certificates and keys of the Kubernetes API double: its own serving CA, a serving certificate for
// the loopback address, and the RSA key that signs ServiceAccount tokens (like kube-apiserver's
// --service-account-signing-key-file). Keys are generated natively (fast); node-forge builds X.509.
import { generateKeyPairSync, createHash, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

export interface ServingPki {
  caCertPem: string;
  serverCertPem: string;
  serverKeyPem: string;
}

export function generateRsaKeyPair(bits = 2048): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

function serialHex(): string {
  // Positive serial number: clear the top bit.
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

function buildCert(opts: {
  subjectCN: string;
  subjectPublicKeyPem: string;
  issuerCN: string;
  issuerKeyPem: string;
  isCA: boolean;
  altNames?: Array<{ type: 2; value: string } | { type: 7; ip: string }>;
  days: number;
}): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(opts.subjectPublicKeyPem);
  cert.serialNumber = serialHex();
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60_000);
  cert.validity.notAfter = new Date(now + opts.days * 86_400_000);
  cert.setSubject([{ name: 'commonName', value: opts.subjectCN }]);
  cert.setIssuer([{ name: 'commonName', value: opts.issuerCN }]);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: opts.isCA, critical: true },
    opts.isCA
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (!opts.isCA) extensions.push({ name: 'extKeyUsage', serverAuth: true });
  if (opts.altNames) extensions.push({ name: 'subjectAltName', altNames: opts.altNames });
  cert.setExtensions(extensions);
  cert.sign(forge.pki.privateKeyFromPem(opts.issuerKeyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** A fresh CA ("lab-kube-ca") and a serving certificate for `host` (+ localhost, 127.0.0.1, ::1). */
export function createServingPki(host: string): ServingPki {
  const ca = generateRsaKeyPair();
  const server = generateRsaKeyPair();
  const caCertPem = buildCert({
    subjectCN: 'lab-kube-ca',
    subjectPublicKeyPem: ca.publicKeyPem,
    issuerCN: 'lab-kube-ca',
    issuerKeyPem: ca.privateKeyPem,
    isCA: true,
    days: 30,
  });
  const ipNames = new Set(['127.0.0.1', '::1']);
  const dnsNames = new Set([
    'localhost',
    'kubernetes',
    'kubernetes.default.svc',
    'kubernetes.default.svc.cluster.local',
  ]);
  if (/^[0-9.]+$/.test(host) || host.includes(':')) ipNames.add(host);
  else dnsNames.add(host);
  const serverCertPem = buildCert({
    subjectCN: 'kube-apiserver',
    subjectPublicKeyPem: server.publicKeyPem,
    issuerCN: 'lab-kube-ca',
    issuerKeyPem: ca.privateKeyPem,
    isCA: false,
    days: 30,
    altNames: [
      ...[...dnsNames].map((value) => ({ type: 2 as const, value })),
      ...[...ipNames].map((ip) => ({ type: 7 as const, ip })),
    ],
  });
  return { caCertPem, serverCertPem, serverKeyPem: server.privateKeyPem };
}

/** Key id as kube-apiserver computes it: base64url(sha256(DER SubjectPublicKeyInfo)). */
export function keyIdOf(publicKeyPem: string): string {
  const der = Buffer.from(publicKeyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return createHash('sha256').update(der).digest('base64url');
}
