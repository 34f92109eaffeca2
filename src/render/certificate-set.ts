// A PEM bundle as the set of certificates it holds. pilot-agent rewrites the VM's /etc/certs/root-cert.pem
// with the trust bundle it got from istiod — deduplicated, sorted and without a final newline (istio-start.sh
// sets OUTPUT_CERTS=./etc/certs; security/pkg/nodeagent/cache/secretcache.go mergeTrustAnchorBytes, written by
// security/pkg/nodeagent/util/util.go OutputKeyCertToDir) — so two bundles that trust the same roots count as
// the same file even when their bytes differ.

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle (their base64 without line breaks), each once, sorted. */
export function certificateSet(pem: string): string[] {
  const bodies = [...pem.matchAll(CERTIFICATE_BLOCK)].map((match) => (match[1] ?? '').replace(/\s+/g, ''));
  return [...new Set(bodies.filter((body) => body !== ''))].sort();
}

/** Whether two PEM bundles hold the same certificates (order, repeats and line breaks aside), at least one. */
export function sameCertificates(a: string, b: string): boolean {
  const left = certificateSet(a);
  return left.length > 0 && left.join('\n') === certificateSet(b).join('\n');
}
