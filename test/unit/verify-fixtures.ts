// Test-only X.509 fixtures for the verification tests: a mesh CA and SPIFFE workload certs, made with
// node-forge (keys from node:crypto for speed). Not a test file itself.
import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';

export interface TestCa {
  certPem: string;
  keyPem: string;
}

function keyPair(): { publicKeyPem: string; privateKeyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
  };
}

/**
 * The verification tests' clock starts here (their fake `now()`); every certificate's validity is derived from
 * it, never from the machine's date, so the suite gives the same answers on any day.
 */
export const TEST_EPOCH_MS = Date.parse('2026-11-26T12:00:00Z');

let serial = 1;
function nextSerial(): string {
  serial += 1;
  return (0x10 + serial).toString(16).padStart(4, '0');
}

export function makeCa(organization: string, nowMs: number = TEST_EPOCH_MS): TestCa {
  const keys = keyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = nextSerial();
  cert.validity.notBefore = new Date(nowMs - 86_400_000);
  cert.validity.notAfter = new Date(nowMs + 10 * 365 * 86_400_000);
  const subject = [{ name: 'organizationName', value: organization }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keys.privateKeyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privateKeyPem };
}

/** A workload cert like istiod's CA issues: empty subject, URI SAN, signed by `ca`. */
export function makeWorkloadCert(
  ca: TestCa,
  spiffeUri: string,
  validity: { notBefore?: Date; notAfter?: Date } = {},
  nowMs: number = TEST_EPOCH_MS,
): string {
  const keys = keyPair();
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = nextSerial();
  cert.validity.notBefore = validity.notBefore ?? new Date(nowMs - 60_000);
  cert.validity.notAfter = validity.notAfter ?? new Date(nowMs + 24 * 3_600_000);
  cert.setSubject([]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', critical: true, altNames: [{ type: 6, value: spiffeUri }] },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** `/config_dump?resource=dynamic_active_secrets` as Envoy renders it (private key redacted). */
export function secretsDumpJson(chainPem: string, rootPem: string): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return JSON.stringify({
    configs: [
      {
        '@type': 'type.googleapis.com/envoy.admin.v3.SecretsConfigDump.DynamicSecret',
        name: 'default',
        last_updated: '2026-11-26T10:00:00.000Z',
        secret: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
          name: 'default',
          tls_certificate: {
            certificate_chain: { inline_bytes: b64(chainPem) },
            private_key: { inline_bytes: 'W3JlZGFjdGVkXQ==' },
          },
        },
      },
      {
        '@type': 'type.googleapis.com/envoy.admin.v3.SecretsConfigDump.DynamicSecret',
        name: 'ROOTCA',
        last_updated: '2026-11-26T10:00:00.000Z',
        secret: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
          name: 'ROOTCA',
          validation_context: { trusted_ca: { inline_bytes: b64(rootPem) } },
        },
      },
    ],
  });
}
