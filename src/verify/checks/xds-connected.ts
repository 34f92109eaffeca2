// xds-connected: Envoy holds a live connection to istiod (through pilot-agent, whose own upstream
// connection its log tells) and accepted CDS and LDS. Reads round trip 1's /stats and agent log.
import {
  agentLogLines,
  currentRunLines,
  describeFetch,
  failResult,
  fetchOk,
  passResult,
  probeOutput,
  scrubLines,
  unitStartedMs,
  type CheckDefinition,
} from '../check.js';
import { parseEnvoyStatsText, statValue } from '../envoy/stats-text.js';
import { classifyAgentLog, renderHint } from '../hints.js';
import type { ScriptOutput } from '../vm-script.js';
import type { CheckName, CheckResult, VerifyContext } from '../types.js';

const XDS_STATS = {
  active: 'cluster.xds-grpc.upstream_cx_active',
  cdsSuccess: 'cluster_manager.cds.update_success',
  cdsRejected: 'cluster_manager.cds.update_rejected',
  ldsSuccess: 'listener_manager.lds.update_success',
  ldsRejected: 'listener_manager.lds.update_rejected',
} as const;

/** Envoy's open xDS streams (the ADS stream to pilot-agent); see checkXdsConnected. */
const XDS_STREAMS_ACTIVE = 'cluster.xds-grpc.upstream_rq_active';

/**
 * `; likely: <cause>` when the agent's line says istiod refused it or was not the one dialled (a token, a root
 * cert — "authentication failure" is gRPC code 16, Unauthenticated — or an istiod with a certificate for other
 * names) rather than that istiod could not be reached.
 */
function likelyCause(line: string | undefined): string {
  const cause = line === undefined ? undefined : classifyAgentLog([line]);
  const refusals = ['token-rejected', 'root-cert-rejected-by-agent', 'istiod-name-mismatch'];
  if (!cause || !refusals.includes(cause.id)) return '';
  return `; likely: ${renderHint(cause.id).split('. Fix:')[0]}`;
}

export function checkXdsConnected(ctx: VerifyContext, output: ScriptOutput): CheckResult {
  const name: CheckName = 'xds-connected';
  const started = Date.now();
  const section = output.sections.get('stats');
  if (!fetchOk(section)) {
    const detail = `GET localhost:15000/stats → ${describeFetch(section)}`;
    return failResult(ctx, {
      check: name,
      seen: `Envoy admin /stats unreadable: ${describeFetch(section)}`,
      hint: 'stats-unavailable',
      vars: { detail },
      evidence: [detail],
      durationMs: Date.now() - started,
    });
  }
  const stats = parseEnvoyStatsText(section.body);
  // `usedonly` omits stats that never changed: absent counts as 0.
  const v = Object.fromEntries(
    Object.entries(XDS_STATS).map(([k, stat]) => [k, statValue(stats, stat) ?? 0]),
  ) as Record<keyof typeof XDS_STATS, number>;
  const evidence = Object.values(XDS_STATS).map((stat) => `${stat}: ${statValue(stats, stat) ?? '(absent)'}`);
  const duration = () => Date.now() - started;
  // Envoy's ADS stream is one request on xds-grpc, and it ends at pilot-agent: the agent keeps it open only
  // while its own stream to istiod is up, and closes it as soon as that one fails ("We must propagate upstream
  // termination to Envoy", pkg/istio-agent/xds_proxy_delta.go and xds_proxy.go). So while istiod is cut off,
  // upstream_rq_active is 0 (between Envoy's retries), though the connection to the agent stays up.
  // (Absent: an Envoy that never opened a stream, or a stats build without it — the evidence below decides.)
  const streams = statValue(stats, XDS_STREAMS_ACTIVE);
  evidence.push(`${XDS_STREAMS_ACTIVE}: ${streams ?? '(absent)'}`);
  if (streams === 0 && v.active >= 1) {
    const upstreamLine = agentLogLines(ctx, output).err.findLast((line) => /xds-grpc closed/.test(line));
    if (upstreamLine) evidence.push(`envoy log: ${upstreamLine}`);
    return failResult(ctx, {
      check: name,
      seen:
        `pilot-agent is not connected to istiod: Envoy's xDS stream through it is closed ` +
        `(${XDS_STREAMS_ACTIVE} = 0, connection to the agent up)`,
      hint: 'xds-upstream-down',
      vars: { line: upstreamLine ?? `${XDS_STREAMS_ACTIVE} = 0`, logCause: likelyCause(upstreamLine) },
      evidence,
      durationMs: duration(),
    });
  }
  if (v.active < 1) {
    const logs = agentLogLines(ctx, output);
    const cause = classifyAgentLog([...logs.log, ...logs.err]);
    if (cause) evidence.push(`agent log: ${cause.line}`);
    return failResult(ctx, {
      check: name,
      seen: `no live connection to istiod (cluster.xds-grpc upstream_cx_active = ${v.active})`,
      hint: 'xds-not-connected',
      vars: { active: v.active, logCause: cause ? `; likely: ${renderHint(cause.id).split('. Fix:')[0]}` : '' },
      evidence,
      durationMs: duration(),
    });
  }
  // upstream_cx_active counts Envoy's pipe to pilot-agent, which stays up when istiod is unreachable
  // (pkg/istio-agent/xds_proxy.go): the agent's last upstream event in its log says whether istiod is.
  const upstream = currentRunLines(
    scrubLines(ctx, output.sections.get('xds-upstream')?.body ?? ''),
    unitStartedMs(output),
  ).at(-1);
  if (upstream && !/connected to (delta )?upstream XDS server/.test(upstream)) {
    evidence.push(`agent log: ${upstream}`);
    return failResult(ctx, {
      check: name,
      seen: `pilot-agent is not connected to istiod: its last upstream event is a failure`,
      hint: 'xds-upstream-down',
      vars: { line: upstream, logCause: likelyCause(upstream) },
      evidence,
      durationMs: duration(),
    });
  }
  // No upstream event in this run and no config: the agent's dial to istiod has not succeeded (with 15012
  // dropped, it hangs, logging nothing but its CA client's timeouts). Envoy's stream to the agent being open
  // says nothing about istiod; the agent's log names why, when it does.
  if (!upstream && (v.cdsSuccess < 1 || v.ldsSuccess < 1)) {
    const logs = agentLogLines(ctx, output);
    const cause = classifyAgentLog([...logs.log, ...logs.err]);
    if (cause) {
      evidence.push(`agent log: ${cause.line}`);
      return failResult(ctx, {
        check: name,
        seen:
          `pilot-agent has not connected to istiod: no config accepted (cds ${v.cdsSuccess}, lds ${v.ldsSuccess}) ` +
          'and no "connected to upstream XDS server" in this run',
        hint: 'xds-upstream-down',
        vars: { line: cause.line, logCause: likelyCause(cause.line) },
        evidence,
        durationMs: duration(),
      });
    }
  }
  evidence.push(
    upstream
      ? `istiod connection (agent log): ${upstream}`
      : 'istiod connection: no upstream event of this run in istio.log (only the pipe to pilot-agent is known)',
  );
  if (v.cdsRejected > 0 || v.ldsRejected > 0) {
    return failResult(ctx, {
      check: name,
      seen: `xDS updates rejected (cds ${v.cdsRejected}, lds ${v.ldsRejected})`,
      hint: 'xds-config-rejected',
      vars: { cdsRejected: v.cdsRejected, ldsRejected: v.ldsRejected },
      evidence,
      durationMs: duration(),
    });
  }
  if (v.cdsSuccess < 1 || v.ldsSuccess < 1) {
    return failResult(ctx, {
      check: name,
      seen: `connected but no accepted config (cds ${v.cdsSuccess}, lds ${v.ldsSuccess})`,
      hint: 'xds-no-config',
      vars: { cdsSuccess: v.cdsSuccess, ldsSuccess: v.ldsSuccess },
      evidence,
      durationMs: duration(),
    });
  }
  return passResult({
    check: name,
    seen:
      `connected to istiod (${v.active} xds-grpc connection(s)); cds ${v.cdsSuccess} / lds ${v.ldsSuccess} updates ` +
      'accepted, none rejected',
    evidence,
    durationMs: duration(),
  });
}

export const xdsConnected: CheckDefinition = {
  name: 'xds-connected',
  short: 'xDS',
  passesWhen:
    "Envoy's xDS stream through pilot-agent is open — the agent keeps it only while its own stream to istiod is up " +
    '(`cluster.xds-grpc` `upstream_rq_active`) — and CDS and LDS were accepted (stats a default sidecar really has)',
  dependsOn: ['sidecar-running'],
  hints: {
    'xds-not-connected': {
      cause: 'the sidecar holds no connection to istiod (cluster.xds-grpc upstream_cx_active = {active}){logCause}',
      fix:
        'make istiod reachable on 15012 from the VM (east-west gateway, firewall, /etc/hosts), ' +
        'then `sudo systemctl restart istio`',
    },
    'xds-upstream-down': {
      cause:
        "Envoy's xds-grpc connection only reaches pilot-agent, which keeps it up; pilot-agent's own connection " +
        'to istiod is down ({line}){logCause}',
      fix:
        'if istiod refused the agent (authentication failure), fix the token or root cert as sidecar-ready says; ' +
        'otherwise make istiod reachable on 15012 from the VM (east-west gateway, firewall, /etc/hosts, CA_ADDR / ' +
        'discoveryAddress), then check `/var/log/istio/istio.log` for "connected to upstream XDS server"',
    },
    'xds-config-rejected': {
      cause: 'Envoy rejected xDS updates from istiod (cds rejected {cdsRejected}, lds rejected {ldsRejected})',
      fix: 'match `istio-version` to istiod; look for `rejected` in /var/log/istio/istio.log',
    },
    'xds-no-config': {
      cause: 'connected to istiod but no cluster/listener update was accepted yet (cds {cdsSuccess}, lds {ldsSuccess})',
      fix: 'check istiod logs for this proxy (`kubectl -n istio-system logs deploy/istiod | grep {vm}`)',
    },
    'stats-unavailable': {
      cause: "Envoy's admin endpoint (localhost:15000) did not answer ({detail})",
      fix: 'check that Envoy runs (`systemctl status istio`, /var/log/istio/istio.err.log)',
    },
  },
  phase: 'probe',
  evaluate: ({ ctx, probe }) => checkXdsConnected(ctx, probeOutput(probe)),
};
