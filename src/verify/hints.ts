// The remediation table: every way a check can fail, its likely cause and the fix. Used by the checks
// (CheckResult.hint / hintId) and by the README's troubleshooting section (`renderHintsMarkdown`).
import type { CheckName } from './types.js';

export interface HintEntry {
  check: CheckName;
  /** What is probably wrong; `{var}` placeholders are filled per VM. */
  cause: string;
  /** What to do about it. */
  fix: string;
}

export const HINTS = {
  'probe-failed': {
    check: 'sidecar-running',
    cause: 'the verification script could not run on the VM ({detail})',
    fix: 'check SSH access and passwordless sudo for the login user, then rerun `mode: verify`',
  },
  'tool-missing': {
    check: 'sidecar-running',
    cause: 'the VM lacks {tools}, which the checks use to read the sidecar admin ports',
    fix: 'install {tools} on the VM (Debian: `apt-get install curl coreutils`; RHEL: `dnf install curl coreutils`)',
  },
  'unit-missing': {
    check: 'sidecar-running',
    cause: 'the `istio` systemd unit does not exist: the istio-sidecar package is not installed',
    fix: 'run the action with `mode: onboard` for this VM (it installs the package)',
  },
  'unit-inactive': {
    check: 'sidecar-running',
    cause: 'the `istio` unit is {state}: the sidecar exited or was stopped',
    fix: 'read /var/log/istio/istio.err.log on the VM, fix the error, then `sudo systemctl restart istio` (or rerun onboard)',
  },
  'crash-loop': {
    check: 'sidecar-running',
    cause: 'the sidecar is crash-looping (systemd restarted it {restarts} time(s) in {windowSec} s){logCause}',
    fix: 'read the evidence lines from /var/log/istio/istio.err.log; fix cluster.env / mesh config / token / root cert as they say, then rerun onboard',
  },
  'istiod-refused': {
    check: 'sidecar-ready',
    cause:
      'istiod refused the connection on 15012 (istiod or the east-west gateway is down, or the discovery address is wrong)',
    fix: "check `kubectl -n istio-system get pods,svc` for istiod and istio-eastwestgateway and that the gateway exposes 15012; check the istiod address in the VM's /etc/hosts and cluster.env",
  },
  'port-15012-blocked': {
    check: 'sidecar-ready',
    cause:
      '15012 unreachable from VM (connection timed out): a firewall or security group drops traffic to the east-west gateway',
    fix: 'open TCP 15012 (and 15017 for webhooks if used) from the VM to the east-west gateway / security group, then `sudo systemctl restart istio`',
  },
  'istiod-name-unresolved': {
    check: 'sidecar-ready',
    cause: 'the VM cannot resolve the istiod address (missing /etc/hosts entry for istiod.istio-system.svc)',
    fix: 'rerun onboard so the managed /etc/hosts block is written (with a hostname load balancer, give the gateway address explicitly)',
  },
  'root-cert-rejected-by-agent': {
    check: 'sidecar-ready',
    cause:
      "the sidecar does not trust istiod's certificate (x509: signed by unknown authority): /etc/certs/root-cert.pem is not this mesh's root — istio-ca-root-cert changed or the VM was onboarded from a different cluster",
    fix: 'rerun onboard so the current istio-ca-root-cert is installed, then the sidecar restarts',
  },
  'token-rejected': {
    check: 'sidecar-ready',
    cause:
      "token rejected: istiod refused the bootstrap token (audience must be istio-ca, service account must be the group's, and it must not be expired)",
    fix: "rerun onboard: it requests a fresh token (TokenRequest, audience istio-ca) for the group's ServiceAccount; raise the token lifetime if VMs start later than it lasts",
  },
  'config-not-received': {
    check: 'sidecar-ready',
    cause: 'no configuration from istiod (is istiod running? is 15012 reachable from the VM?)',
    fix: 'check istiod and the east-west gateway, that TCP 15012 is open from the VM, and /var/log/istio/istio.log for the connection error',
  },
  'config-rejected': {
    check: 'sidecar-ready',
    cause:
      'Envoy rejected configuration pushed by istiod (version skew between the sidecar package and istiod, or an invalid Istio resource)',
    fix: "match `istio-version` to istiod's version; look for `gRPC config ... rejected` in /var/log/istio/istio.log and fix the named resource",
  },
  'envoy-not-live': {
    check: 'sidecar-ready',
    cause: 'Envoy has config but is not live yet ({detail})',
    fix: 'wait and rerun `mode: verify`; if it persists read /var/log/istio/istio.log for Envoy initialisation errors',
  },
  'ready-timeout': {
    check: 'sidecar-ready',
    cause: 'the sidecar did not report ready within the timeout ({detail})',
    fix: 'read /var/log/istio/istio.log on the VM for `Envoy proxy is NOT ready` and the errors before it',
  },
  'xds-not-connected': {
    check: 'xds-connected',
    cause: 'the sidecar holds no connection to istiod (cluster.xds-grpc upstream_cx_active = {active}){logCause}',
    fix: 'make istiod reachable on 15012 from the VM (east-west gateway, firewall, /etc/hosts), then `sudo systemctl restart istio`',
  },
  'xds-upstream-down': {
    check: 'xds-connected',
    cause:
      "Envoy's xds-grpc connection only reaches pilot-agent, which keeps it up; pilot-agent's own connection to istiod is down ({line})",
    fix: 'make istiod reachable on 15012 from the VM (east-west gateway, firewall, /etc/hosts, CA_ADDR / discoveryAddress), then check `/var/log/istio/istio.log` for "connected to upstream XDS server"',
  },
  'xds-config-rejected': {
    check: 'xds-connected',
    cause: 'Envoy rejected xDS updates from istiod (cds rejected {cdsRejected}, lds rejected {ldsRejected})',
    fix: 'match `istio-version` to istiod; look for `rejected` in /var/log/istio/istio.log',
  },
  'xds-no-config': {
    check: 'xds-connected',
    cause: 'connected to istiod but no cluster/listener update was accepted yet (cds {cdsSuccess}, lds {ldsSuccess})',
    fix: 'check istiod logs for this proxy (`kubectl -n istio-system logs deploy/istiod | grep {vm}`)',
  },
  'stats-unavailable': {
    check: 'xds-connected',
    cause: "Envoy's admin endpoint (localhost:15000) did not answer ({detail})",
    fix: 'check that Envoy runs (`systemctl status istio`, /var/log/istio/istio.err.log)',
  },
  'cert-missing': {
    check: 'workload-certificate',
    cause:
      'Envoy has no workload certificate (SDS secret `default` missing{warming}): the CA (istiod) has not signed one — token, root cert or connectivity to 15012',
    fix: 'fix the sidecar-ready / xds-connected failure first; the certificate follows once istiod accepts the token',
  },
  'cert-trust-domain': {
    check: 'workload-certificate',
    cause: 'cert SAN is {san} but mesh trust domain is {trustDomain}',
    fix: "the VM and the mesh disagree on the trust domain: set `trustDomain: {trustDomain}` in the mesh config the VM uses (/etc/istio/config/mesh) or fix istiod's trustDomain, then rerun onboard",
  },
  'cert-identity': {
    check: 'workload-certificate',
    cause: "cert SAN is {san} but this VM's group expects {expected}",
    fix: "the VM runs with another group's token or cluster.env: rerun onboard for this VM",
  },
  'cert-root-mismatch': {
    check: 'workload-certificate',
    cause:
      'the workload certificate does not chain to the root cert the action installed ({detail}): istio-ca-root-cert changed (CA rotation, plugged-in CA) or the VM belongs to another cluster',
    fix: 'compare istio-ca-root-cert in namespace {namespace} with /etc/certs/root-cert.pem on the VM; rerun onboard to install the current one',
  },
  'cert-expired': {
    check: 'workload-certificate',
    cause:
      'the workload certificate expired at {notAfter}: the sidecar cannot renew it (istiod unreachable or token rejected)',
    fix: 'restore connectivity to istiod on 15012 and a valid token (rerun onboard); then `sudo systemctl restart istio`',
  },
  'cert-expiring': {
    check: 'workload-certificate',
    cause: 'the workload certificate expires at {notAfter}, within {thresholdMin} min, and was not renewed',
    fix: 'check that the sidecar can reach istiod to rotate it (sidecar-ready / xds-connected), then rerun verify',
  },
  'cert-unreadable': {
    check: 'workload-certificate',
    cause: 'the certificate could not be read from Envoy ({detail})',
    fix: "check Envoy's admin port 15000 on the VM (`curl localhost:15000/certs`)",
  },
  'we-autoregistration-off': {
    check: 'workload-entry',
    cause: 'no WorkloadEntry was auto-registered: PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=false on istiod',
    fix: 'set PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=true (and PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS=true) on istiod, or use `registration: static` for this group',
  },
  'we-group-missing': {
    check: 'workload-entry',
    cause: 'WorkloadGroup {namespace}/{group} does not exist, so istiod cannot auto-register the VM',
    fix: 'rerun onboard (it applies the WorkloadGroup), and check that ISTIO_META_AUTO_REGISTER_GROUP in cluster.env is {group}',
  },
  'we-missing': {
    check: 'workload-entry',
    cause: 'no WorkloadEntry with address {address} in namespace {namespace}{detail}',
    fix: 'auto: the sidecar must be connected to istiod with ISTIO_META_AUTO_REGISTER_GROUP={group} and the address {address}; static: rerun onboard to apply the entry',
  },
  'we-unhealthy': {
    check: 'workload-entry',
    cause:
      'WorkloadEntry {entry} is not Healthy: the readiness probe fails ({detail}) — the application is down or the probe port/path is wrong',
    fix: "start the application on the VM (port {probePort}) or fix the group's probe in the inventory",
  },
  'we-health-unknown': {
    check: 'workload-entry',
    cause: 'WorkloadEntry {entry} has no Healthy condition although health checks are on (probe results not reported)',
    fix: 'check PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS=true on istiod and the probe in the WorkloadGroup',
  },
  'we-address-mismatch': {
    check: 'workload-entry',
    cause: 'the sidecar registered as {seen}, not {address}',
    fix: "set the VM's internalIP in the inventory (or fix the route to the gateway) and rerun onboard",
  },
  'we-read-failed': {
    check: 'workload-entry',
    cause: 'could not read WorkloadEntries from the cluster ({detail})',
    fix: 'check the kubeconfig and that the action may list networking.istio.io workloadentries in {namespace}',
  },
  'dns-capture-off': {
    check: 'vm-to-mesh',
    cause: 'the VM could not resolve {host}: DNS capture is off or broken (ISTIO_META_DNS_CAPTURE)',
    fix: 'onboard with `--capture-dns` (ISTIO_META_DNS_CAPTURE="true" in cluster.env), check the sidecar\'s DNS iptables rules, restart istio; or correct `verify-url`',
  },
  'mesh-service-unreachable': {
    check: 'vm-to-mesh',
    cause: '{host} resolved but the call failed ({detail}): the mesh service is down or has no ready endpoints',
    fix: 'check `kubectl get endpoints` for the service behind `verify-url`, and that the VM network reaches the pods (east-west gateway)',
  },
  'mesh-service-http-error': {
    check: 'vm-to-mesh',
    cause: '{host} answered HTTP {code} through the sidecar (503 = no healthy upstream / mesh service down)',
    fix: 'check the service behind `verify-url` and its endpoints; `curl -v` it from the VM',
  },
  'mtls-job-failed': {
    check: 'mesh-to-vm-mtls',
    cause: 'the in-mesh verification Job did not run ({detail})',
    fix: 'check that namespace {namespace} allows sidecar injection, that image {image} can be pulled (set `verify-client-image` for air-gapped clusters), and the Job RBAC in the README',
  },
  'mtls-calls-failed': {
    check: 'mesh-to-vm-mtls',
    cause:
      'the mesh client could not call {target} ({detail}): application down, port not in the WorkloadGroup, or the cluster cannot route to the VM',
    fix: "check the application on the VM, the group's ports, and that the mesh reaches {address} (network / east-west gateway)",
  },
  'mtls-service-unseen': {
    check: 'mesh-to-vm-mtls',
    cause:
      "the verification pod's sidecar never received the VM's ServiceEntry ({detail}): istiod did not push it (overloaded, or a Sidecar resource in {namespace} limits egress hosts)",
    fix: 'check istiod (`istioctl proxy-status`), that no Sidecar resource in {namespace} hides ServiceEntries exported to the namespace, and that networking.istio.io/v1 ServiceEntry exists (Istio ≥ 1.22)',
  },
  'mtls-not-mutual': {
    check: 'mesh-to-vm-mtls',
    cause:
      'the calls succeeded but the VM sidecar counted {delta} mutual-TLS request(s) for {succeeded} call(s): traffic bypassed the sidecar or arrived in plaintext (PERMISSIVE)',
    fix: "check inbound capture on the VM (ISTIO_INBOUND_PORTS / iptables) and that no DestinationRule disables ISTIO_MUTUAL for the VM's service; set `peer-authentication: strict`",
  },
  'plaintext-accepted': {
    check: 'mesh-to-vm-mtls',
    cause:
      'plaintext accepted: PeerAuthentication not STRICT for this workload ({accepted} of {total} plaintext calls answered)',
    fix: "apply a STRICT PeerAuthentication selecting the group's labels (`peer-authentication: strict`) and check no port-level override sets PERMISSIVE/DISABLE",
  },
  'metrics-unavailable': {
    check: 'mesh-to-vm-mtls',
    cause: "the VM sidecar's /stats/prometheus (15090) could not be read ({detail})",
    fix: 'check Envoy on the VM (`curl localhost:15090/stats/prometheus`)',
  },
} as const satisfies Record<string, HintEntry>;

export type HintId = keyof typeof HINTS;

function fill(template: string, vars: Record<string, string | number | undefined>): string {
  return template.replace(/\{(\w+)\}/g, (_, key: string) => {
    const v = vars[key];
    return v === undefined ? '' : String(v);
  });
}

/** `<cause>. Fix: <fix>` with the placeholders filled. */
export function renderHint(id: HintId, vars: Record<string, string | number | undefined> = {}): string {
  const entry: HintEntry = HINTS[id];
  return `${fill(entry.cause, vars)}. Fix: ${fill(entry.fix, vars)}`;
}

/** Causes found in pilot-agent's log (istio.log / istio.err.log), most specific first. */
const AGENT_LOG_CAUSES: { id: HintId; pattern: RegExp }[] = [
  {
    id: 'root-cert-rejected-by-agent',
    pattern: /x509|certificate signed by unknown authority|failed to verify certificate|certificate verify failed/i,
  },
  {
    id: 'token-rejected',
    pattern: /Unauthenticated|authenticat\w* fail|token (?:is )?(?:invalid|expired|rejected)|audience/i,
  },
  { id: 'istiod-refused', pattern: /connection refused/i },
  {
    id: 'port-15012-blocked',
    pattern: /i\/o timeout|deadline exceeded|no route to host|network is unreachable|connection timed out/i,
  },
  { id: 'istiod-name-unresolved', pattern: /no such host|server misbehaving|Temporary failure in name resolution/i },
];

/** The most specific cause the agent's log lines show, with the line that shows it (last such line wins). */
export function classifyAgentLog(lines: string[]): { id: HintId; line: string } | undefined {
  for (const { id, pattern } of AGENT_LOG_CAUSES) {
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i]!;
      if (pattern.test(line)) return { id, line };
    }
  }
  return undefined;
}

/** The troubleshooting table for the README: check, hint id, cause, fix. */
export function renderHintsMarkdown(): string {
  const rows = Object.entries(HINTS).map(
    ([id, h]) => `| \`${h.check}\` | \`${id}\` | ${h.cause.replace(/\|/g, '\\|')} | ${h.fix.replace(/\|/g, '\\|')} |`,
  );
  return ['| check | hint | likely cause | fix |', '| --- | --- | --- | --- |', ...rows].join('\n') + '\n';
}
