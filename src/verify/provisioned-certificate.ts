// The certificate a VM's pilot-agent renews with, and when the VM must be bootstrapped again.
//
// Istio's tools/packaging/common/istio-start.sh (the istio unit's script) sets PROV_CERT=./etc/certs and
// OUTPUT_CERTS=./etc/certs: the agent writes every workload certificate it gets to /etc/certs
// (cert-chain.pem, key.pem), and once that pair exists it presents it to istiod, for the CA and for xDS
// (pkg/istio-agent/agent.go GetKeyCertsForCA, GetKeyCertsForXDS; plugins.go). With that certificate
// expired the agent skips it and sends only the bootstrap token (pilot/pkg/grpc/tls.go,
// GetClientCertificate: "cert expired, using token instead") — and on a VM that was off longer than the
// certificate's lifetime, that token (one hour by default, against the certificate's 24) has expired as
// well: istiod refuses the agent and the VM stays without a certificate until it gets a fresh token.
// `onboard` then re-bootstraps it: removes the expired pair (the agent must not present a certificate that
// istiod's clock may already judge expired) and places a fresh token, then restarts the sidecar.
//
// The same holds when the mesh stops trusting the root that certificate chains to (the last step of a root
// rotation drops the old root): the agent still presents it — it has not expired — and istiod refuses the TLS
// handshake ("unknown certificate authority"), so the pair must go and a fresh token take its place.
import { inspectCertificate, splitPemCertificates, verifyChainToRoots } from './envoy/certs.js';

/** Where the agent keeps the certificate and key it renews with (PROV_CERT = OUTPUT_CERTS = ./etc/certs). */
export const PROVISIONED_CERT_PATHS = {
  dir: '/etc/certs',
  certChain: '/etc/certs/cert-chain.pem',
  key: '/etc/certs/key.pem',
} as const;

/**
 * How long before its expiry a provisioned certificate already counts as unusable for `onboard`: the apply
 * restarts the sidecar within seconds, and the agent's first request must not carry a certificate that is
 * expired by the time (or by the clock) istiod looks at it.
 */
export const REBOOTSTRAP_MARGIN_MS = 60_000;

export type ProvisionedCertificateState =
  | { state: 'absent' }
  | { state: 'unreadable'; detail: string }
  | { state: 'valid'; notAfter: Date; serialNumber: string }
  /** Expired, or expiring within the margin: the VM needs a fresh token and no certificate. */
  | { state: 'expired' | 'expiring'; notAfter: Date; serialNumber: string }
  /** Valid, but not under any root of the bundle the VM is given: istiod will refuse it. */
  | { state: 'untrusted'; notAfter: Date; serialNumber: string; reason: string };

/** A state that needs a re-bootstrap. */
export type ReBootstrapCause = Extract<ProvisionedCertificateState, { state: 'expired' | 'expiring' | 'untrusted' }>;

/**
 * What the provisioned certificate (the leaf of /etc/certs/cert-chain.pem, as read on the VM) means at `now`:
 * `expired` when its notAfter is not after `now`, `expiring` when it ends within `marginMs`, `untrusted` when
 * `trustedRootsPem` is given and the chain does not lead to one of its roots.
 */
export function provisionedCertificateState(
  pem: string | null | undefined,
  now: Date,
  marginMs = 0,
  trustedRootsPem?: string,
): ProvisionedCertificateState {
  if (pem === null || pem === undefined || pem.trim() === '') return { state: 'absent' };
  const leafPem = splitPemCertificates(pem)[0];
  if (!leafPem) return { state: 'unreadable', detail: 'no PEM certificate in it' };
  let notAfter: Date;
  let serialNumber: string;
  try {
    ({ notAfter, serialNumber } = inspectCertificate(leafPem));
  } catch (error) {
    return { state: 'unreadable', detail: (error as Error).message };
  }
  const remainingMs = notAfter.getTime() - now.getTime();
  if (remainingMs <= 0) return { state: 'expired', notAfter, serialNumber };
  if (remainingMs <= marginMs) return { state: 'expiring', notAfter, serialNumber };
  if (trustedRootsPem !== undefined) {
    const roots = splitPemCertificates(trustedRootsPem);
    let verdict: { ok: boolean; reason?: string };
    try {
      verdict = verifyChainToRoots(splitPemCertificates(pem), roots);
    } catch (error) {
      verdict = { ok: false, reason: (error as Error).message };
    }
    if (roots.length > 0 && !verdict.ok)
      return { state: 'untrusted', notAfter, serialNumber, reason: verdict.reason ?? 'not under a trusted root' };
  }
  return { state: 'valid', notAfter, serialNumber };
}

/** Whether `onboard` must re-bootstrap the VM: its provisioned certificate is expired, about to be, or untrusted. */
export function needsReBootstrap(state: ProvisionedCertificateState): state is ReBootstrapCause {
  return state.state === 'expired' || state.state === 'expiring' || state.state === 'untrusted';
}

/** The log and report line of a re-bootstrap. */
export function describeReBootstrap(state: ReBootstrapCause): string {
  if (state.state === 'untrusted')
    return (
      `certificate (valid until ${state.notAfter.toISOString()}) is not under a root the mesh trusts: ` + state.reason
    );
  return `certificate ${state.state === 'expired' ? 'expired' : 'expires'} at ${state.notAfter.toISOString()}`;
}
