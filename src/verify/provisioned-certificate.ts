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
import { inspectCertificate, splitPemCertificates } from './envoy/certs.js';

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
  | { state: 'expired' | 'expiring'; notAfter: Date; serialNumber: string };

/**
 * What the provisioned certificate (the leaf of /etc/certs/cert-chain.pem, as read on the VM) means at `now`:
 * `expired` when its notAfter is not after `now`, `expiring` when it ends within `marginMs`.
 */
export function provisionedCertificateState(
  pem: string | null | undefined,
  now: Date,
  marginMs = 0,
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
  return { state: 'valid', notAfter, serialNumber };
}

/** Whether `onboard` must re-bootstrap the VM: its provisioned certificate is expired or about to be. */
export function needsReBootstrap(
  state: ProvisionedCertificateState,
): state is Extract<ProvisionedCertificateState, { state: 'expired' | 'expiring' }> {
  return state.state === 'expired' || state.state === 'expiring';
}

/** The log and report line of a re-bootstrap. */
export function describeReBootstrap(state: { state: 'expired' | 'expiring'; notAfter: Date }): string {
  return `certificate ${state.state === 'expired' ? 'expired' : 'expires'} at ${state.notAfter.toISOString()}`;
}
