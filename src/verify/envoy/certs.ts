// Workload certificate sources on an Istio sidecar and X.509 inspection with node:crypto:
// - `/config_dump` SecretsConfigDump: `dynamic_active_secrets[name=default].secret.tls_certificate.certificate_chain`
//   and `[name=ROOTCA].secret.validation_context.trusted_ca` (`inline_bytes` = base64 PEM, or `inline_string`).
//   Accepts the whole dump (`configs[].dynamic_active_secrets[]`) and the `?resource=dynamic_active_secrets`
//   form (`configs[]` are the DynamicSecret objects themselves). Private keys are never read.
// - `/certs`: `{certificates:[{ca_cert:[…], cert_chain:[…]}]}` — metadata only (no PEM).
// Pure; no I/O.
import { X509Certificate } from 'node:crypto';

export interface SecretCertificates {
  /** PEM blocks of the `default` secret's chain, leaf first. Empty when the secret is absent. */
  workloadChainPem: string[];
  /** PEM blocks of the `ROOTCA` secret's trusted_ca. */
  trustedCaPem: string[];
  /** `last_updated` of the `default` secret, when given. */
  workloadLastUpdated?: string;
  /** Names of secrets still warming (not yet delivered by SDS). */
  warmingSecrets: string[];
}

interface DataSource {
  inline_bytes?: string;
  inline_string?: string;
  filename?: string;
}

interface DynamicSecret {
  name?: string;
  last_updated?: string;
  secret?: {
    name?: string;
    tls_certificate?: { certificate_chain?: DataSource };
    validation_context?: { trusted_ca?: DataSource };
  };
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every `CERTIFICATE` PEM block in `text`, normalised to end with a newline. */
export function splitPemCertificates(text: string): string[] {
  return (text.match(PEM_CERT) ?? []).map((block) => block.replace(/\r/g, '') + '\n');
}

function dataSourceText(source: DataSource | undefined): string {
  if (!source) return '';
  if (typeof source.inline_string === 'string') return source.inline_string;
  if (typeof source.inline_bytes === 'string') return Buffer.from(source.inline_bytes, 'base64').toString('utf8');
  return '';
}

function asObject(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

export class EnvoyFormatError extends Error {}

/** Parses `/config_dump` (whole, or `?resource=dynamic_active_secrets`) and returns the workload and root certs. */
export function parseSecretsConfigDump(jsonText: string): SecretCertificates {
  let doc: unknown;
  try {
    doc = JSON.parse(jsonText);
  } catch (err) {
    throw new EnvoyFormatError(`config_dump is not JSON: ${(err as Error).message}`);
  }
  const configs = asObject(doc)?.configs;
  if (!Array.isArray(configs)) throw new EnvoyFormatError('config_dump has no "configs" array');
  const active: DynamicSecret[] = [];
  const warming: string[] = [];
  for (const entry of configs) {
    const obj = asObject(entry);
    if (!obj) continue;
    const type = typeof obj['@type'] === 'string' ? obj['@type'] : '';
    if (type.endsWith('.SecretsConfigDump')) {
      for (const s of (obj.dynamic_active_secrets as DynamicSecret[] | undefined) ?? []) active.push(s);
      for (const s of (obj.static_secrets as DynamicSecret[] | undefined) ?? []) active.push(s);
      for (const s of (obj.dynamic_warming_secrets as DynamicSecret[] | undefined) ?? []) {
        if (s?.name) warming.push(s.name);
      }
    } else if (type.endsWith('.SecretsConfigDump.DynamicSecret') || type.endsWith('.SecretsConfigDump.StaticSecret')) {
      active.push(obj as DynamicSecret);
    }
  }
  const byName = (name: string) => active.find((s) => (s.name ?? s.secret?.name) === name);
  const workload = byName('default');
  const root = byName('ROOTCA');
  const result: SecretCertificates = {
    workloadChainPem: splitPemCertificates(dataSourceText(workload?.secret?.tls_certificate?.certificate_chain)),
    trustedCaPem: splitPemCertificates(dataSourceText(root?.secret?.validation_context?.trusted_ca)),
    warmingSecrets: warming,
  };
  if (workload?.last_updated) result.workloadLastUpdated = workload.last_updated;
  return result;
}

/** One certificate entry of Envoy's `/certs` output. */
export interface CertsEntry {
  path: string;
  serialNumber: string;
  uriSans: string[];
  dnsSans: string[];
  daysUntilExpiration?: number;
  validFrom?: Date;
  expirationTime?: Date;
}

export interface CertsContext {
  caCert: CertsEntry[];
  certChain: CertsEntry[];
}

function toCertsEntry(raw: unknown): CertsEntry | undefined {
  const o = asObject(raw);
  if (!o) return undefined;
  const sans = Array.isArray(o.subject_alt_names) ? o.subject_alt_names.map(asObject) : [];
  const entry: CertsEntry = {
    path: typeof o.path === 'string' ? o.path : '',
    serialNumber: typeof o.serial_number === 'string' ? o.serial_number.toLowerCase() : '',
    uriSans: sans.flatMap((s) => (typeof s?.uri === 'string' ? [s.uri] : [])),
    dnsSans: sans.flatMap((s) => (typeof s?.dns === 'string' ? [s.dns] : [])),
  };
  // proto3 JSON renders uint64 as a string; accept a number too.
  const days = o.days_until_expiration;
  if (typeof days === 'string' || typeof days === 'number') entry.daysUntilExpiration = Number(days);
  if (typeof o.valid_from === 'string') entry.validFrom = new Date(o.valid_from);
  if (typeof o.expiration_time === 'string') entry.expirationTime = new Date(o.expiration_time);
  return entry;
}

/** Parses Envoy's `/certs` JSON: one element per TLS context (Istio repeats the same default/ROOTCA pair). */
export function parseCertsJson(jsonText: string): CertsContext[] {
  let doc: unknown;
  try {
    doc = JSON.parse(jsonText);
  } catch (err) {
    throw new EnvoyFormatError(`/certs is not JSON: ${(err as Error).message}`);
  }
  const certificates = asObject(doc)?.certificates;
  if (!Array.isArray(certificates)) throw new EnvoyFormatError('/certs has no "certificates" array');
  return certificates.map((c) => {
    const o = asObject(c) ?? {};
    const list = (v: unknown) => (Array.isArray(v) ? v.map(toCertsEntry).filter((e): e is CertsEntry => !!e) : []);
    return { caCert: list(o.ca_cert), certChain: list(o.cert_chain) };
  });
}

export interface CertificateInfo {
  subject: string;
  issuer: string;
  /** Lowercase hex without colons, like Envoy's `/certs`. */
  serialNumber: string;
  uriSans: string[];
  dnsSans: string[];
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  fingerprint256: string;
}

/**
 * Splits node's `subjectAltName` (`URI:a, DNS:b`; values with ambiguous characters are JSON-quoted:
 * `URI:"spiffe://x,y"`) into typed entries.
 */
export function parseSubjectAltName(text: string | undefined): { type: string; value: string }[] {
  if (!text) return [];
  const out: { type: string; value: string }[] = [];
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ' || text[i] === ',') i++;
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    i = colon + 1;
    let value: string;
    if (text[i] === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      value = JSON.parse(text.slice(i, j + 1)) as string;
      i = j + 1;
    } else {
      const end = text.indexOf(', ', i);
      value = end < 0 ? text.slice(i) : text.slice(i, end);
      i = end < 0 ? text.length : end;
    }
    out.push({ type, value });
  }
  return out;
}

export function inspectCertificate(pem: string): CertificateInfo {
  const cert = new X509Certificate(pem);
  const sans = parseSubjectAltName(cert.subjectAltName);
  return {
    subject: cert.subject ?? '',
    issuer: cert.issuer ?? '',
    serialNumber: cert.serialNumber.toLowerCase(),
    uriSans: sans.filter((s) => s.type === 'URI').map((s) => s.value),
    dnsSans: sans.filter((s) => s.type === 'DNS').map((s) => s.value),
    notBefore: cert.validFromDate,
    notAfter: cert.validToDate,
    isCa: cert.ca,
    fingerprint256: cert.fingerprint256,
  };
}

export type ChainVerification = { ok: true; anchoredBy: CertificateInfo } | { ok: false; reason: string };

/**
 * Verifies that `chainPem` (leaf first, optional intermediates, optionally ending with the root itself as
 * Istio sends it) chains to one of `trustedRootsPem`: each link's issuer name matches and its signature
 * verifies with the next certificate's key; the walk ends at a certificate signed by a trusted root
 * (or equal to one). Validity dates are checked separately by the caller.
 */
export function verifyChainToRoots(chainPem: string[], trustedRootsPem: string[]): ChainVerification {
  if (chainPem.length === 0) return { ok: false, reason: 'no certificate in the chain' };
  if (trustedRootsPem.length === 0) return { ok: false, reason: 'no trusted root certificate to verify against' };
  const chain = chainPem.map((p) => new X509Certificate(p));
  const roots = trustedRootsPem.map((p) => new X509Certificate(p));
  const signedByRoot = (cert: X509Certificate) =>
    roots.find(
      (root) => root.fingerprint256 === cert.fingerprint256 || (cert.checkIssued(root) && cert.verify(root.publicKey)),
    );
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]!;
    const anchor = signedByRoot(cert);
    if (anchor) return { ok: true, anchoredBy: inspectCertificate(anchor.toString()) };
    const issuer = chain[i + 1];
    if (!issuer) {
      const certName = cert.subject || cert.subjectAltName || cert.serialNumber;
      const trustedRoots = roots.map((r) => `"${r.subject}" ${r.fingerprint256.slice(0, 23)}…`).join(', ');
      return {
        ok: false,
        reason:
          `certificate "${certName}" issued by "${cert.issuer}" ` +
          `is not signed by the trusted root (${trustedRoots})`,
      };
    }
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      return { ok: false, reason: `chain is broken: certificate ${i} is not signed by certificate ${i + 1}` };
    }
  }
  return { ok: false, reason: 'chain does not end at the trusted root' };
}

export interface SpiffeId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

/** Parses Istio's `spiffe://<trust domain>/ns/<ns>/sa/<sa>`; undefined for anything else. */
export function parseSpiffeId(uri: string): SpiffeId | undefined {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(uri);
  return m ? { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! } : undefined;
}
