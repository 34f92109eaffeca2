// sidecar-ready: `localhost:15021/healthz/ready` answers 200 (round trip 1 polls it), else the agent's
// logs say why.
import {
  agentLogLines,
  currentRunLines,
  failResult,
  passResult,
  probeOutput,
  readyFacts,
  scrubLines,
  unitStartedMs,
  type CheckDefinition,
} from '../check.js';
import { classifyAgentLog, type HintId } from '../hints.js';
import type { ScriptOutput } from '../vm-script.js';
import type { CheckName, CheckResult, VerifyContext } from '../types.js';

/** Why 15021 gave no HTTP answer, from curl's exit code: pilot-agent's readiness handler can hold a request. */
function noAnswerReason(curlExit: number | undefined): string {
  if (curlExit === 7) return 'nothing listening on 15021';
  if (curlExit === 28) return 'no answer within 2 s on 15021';
  return curlExit === undefined ? 'no HTTP answer on 15021' : `no HTTP answer on 15021, curl exit ${curlExit}`;
}

export function checkSidecarReady(ctx: VerifyContext, output: ScriptOutput): CheckResult {
  const name: CheckName = 'sidecar-ready';
  const ready = readyFacts(output);
  const evidence = [
    `GET localhost:15021/healthz/ready → ${ready.http} after ${ready.attempts} attempt(s), ${ready.elapsedMs} ms`,
  ];
  if (ready.http === '200') {
    return passResult({
      check: name,
      seen: `/healthz/ready answered 200 after ${ready.attempts} attempt(s) (${ready.elapsedMs} ms)`,
      evidence,
      durationMs: ready.elapsedMs,
    });
  }
  const notReady = currentRunLines(
    scrubLines(ctx, output.sections.get('not-ready-line')?.body ?? ''),
    unitStartedMs(output),
  ).pop();
  if (notReady) evidence.push(`istio.log: ${notReady}`);
  const logs = agentLogLines(ctx, output);
  const cause = classifyAgentLog([...logs.log, ...logs.err]);
  if (cause && !evidence.some((e) => e.endsWith(cause.line))) evidence.push(`agent log: ${cause.line}`);
  const over = `${(ready.elapsedMs / 1000).toFixed(1)} s`;
  const seen =
    ready.http === '000'
      ? `/healthz/ready did not answer (${noAnswerReason(ready.curlExit)}) over ${over}`
      : `/healthz/ready answered ${ready.http} for ${over}`;
  const reason = notReady ? notReady.replace(/^.*Envoy proxy is NOT ready:\s*/, '') : '';
  let hintId: HintId;
  let detail = reason || `last answer ${ready.http}`;
  if (/but was rejected/.test(reason)) hintId = 'config-rejected';
  else if (
    /server is not live|workers have not yet started|failed to get readiness stats|server is terminated/.test(reason)
  ) {
    hintId = 'envoy-not-live';
  } else if (cause) hintId = cause.id;
  else if (/config not (fully )?received/.test(reason)) hintId = 'config-not-received';
  else {
    hintId = 'ready-timeout';
    detail = reason || `last answer ${ready.http} after ${ready.attempts} attempt(s)`;
  }
  return failResult(ctx, {
    check: name,
    seen: seen + (reason ? ` — ${reason}` : ''),
    hint: hintId,
    vars: { detail },
    evidence,
    durationMs: ready.elapsedMs,
  });
}

export const sidecarReady: CheckDefinition = {
  name: 'sidecar-ready',
  short: 'ready',
  passesWhen: '`localhost:15021/healthz/ready` answers 200',
  dependsOn: ['sidecar-running'],
  blocksBecause: () => 'the sidecar is not ready',
  hints: {
    'istiod-refused': {
      cause:
        'istiod refused the connection on 15012 ' +
        '(istiod or the east-west gateway is down, or the discovery address is wrong)',
      fix:
        'check `kubectl -n istio-system get pods,svc` for istiod and istio-eastwestgateway and that the gateway ' +
        "exposes 15012; check the istiod address in the VM's /etc/hosts and cluster.env",
    },
    'port-15012-blocked': {
      cause:
        '15012 unreachable from VM (connection timed out): ' +
        'a firewall or security group drops traffic to the east-west gateway',
      fix:
        'open TCP 15012 (and 15017 for webhooks if used) from the VM to the east-west gateway / security group, ' +
        'then `sudo systemctl restart istio`',
    },
    'istiod-name-unresolved': {
      cause: 'the VM cannot resolve the istiod address (missing /etc/hosts entry for istiod.istio-system.svc)',
      fix:
        'rerun onboard so the managed /etc/hosts block is written ' +
        '(with a hostname load balancer, give the gateway address explicitly)',
    },
    'istiod-name-mismatch': {
      cause:
        'the istiod that answered on 15012 has a certificate for other names (x509: "certificate is valid for …, ' +
        'not …"): the east-west gateway sends the name the VM dials (CA_ADDR, istiod-REV for a revision) to ' +
        "another istiod — the revision's istiod is not exposed on the gateway",
      fix:
        "expose the revision's istiod on the east-west gateway (Istio's samples/multicluster/" +
        'expose-istiod-rev.yaml.tmpl with REVISION set: a TLS passthrough route for sniHosts istiod-REV.<istio ' +
        'namespace>.svc), or check the revision input; then rerun onboard',
    },
    'root-cert-rejected-by-agent': {
      cause:
        "the sidecar does not trust istiod's certificate (x509: signed by unknown authority): " +
        "/etc/certs/root-cert.pem is not this mesh's root — istio-ca-root-cert changed or the VM was onboarded " +
        'from a different cluster',
      fix: 'rerun onboard so the current istio-ca-root-cert is installed, then the sidecar restarts',
    },
    'token-rejected': {
      cause:
        'token rejected: istiod refused the bootstrap token ' +
        "(audience must be istio-ca, service account must be the group's, and it must not be expired)",
      fix:
        "rerun onboard: it requests a fresh token (TokenRequest, audience istio-ca) for the group's " +
        'ServiceAccount; raise the token lifetime if VMs start later than it lasts',
    },
    'config-not-received': {
      cause: 'no configuration from istiod (is istiod running? is 15012 reachable from the VM?)',
      fix:
        'check istiod and the east-west gateway, that TCP 15012 is open from the VM, ' +
        'and /var/log/istio/istio.log for the connection error',
    },
    'config-rejected': {
      cause:
        'Envoy rejected configuration pushed by istiod ' +
        '(version skew between the sidecar package and istiod, or an invalid Istio resource)',
      fix:
        "match `istio-version` to istiod's version; look for `gRPC config ... rejected` in " +
        '/var/log/istio/istio.log and fix the named resource',
    },
    'envoy-not-live': {
      cause: 'Envoy has config but is not live yet ({detail})',
      fix:
        'wait and rerun `mode: verify`; if it persists read /var/log/istio/istio.log ' +
        'for Envoy initialisation errors',
    },
    'ready-timeout': {
      cause: 'the sidecar did not report ready within the timeout ({detail})',
      fix: 'read /var/log/istio/istio.log on the VM for `Envoy proxy is NOT ready` and the errors before it',
    },
  },
  phase: 'probe',
  evaluate: ({ ctx, probe }) => checkSidecarReady(ctx, probeOutput(probe)),
};
