// The two batched VM scripts of the verification (probe.sh, follow-up.sh, with verify-functions.sh)
// and their output, in the one remote-script protocol (src/vm/scripts/protocol.ts): every observation
// is a section, with its exit code, HTTP code, body and stderr.
//
// Round trip 1 (`buildProbeScript`): unit state, readiness polling, Envoy admin reads (/stats,
// /config_dump secrets, /certs), the "before" /stats/prometheus, the installed root cert, the agent's log
// tail, when the sidecar's current run started (`unit-started`) and the restart window — unless the
// sidecar is ready and the window is deferred. Round trip 2 (`buildFollowUpScript`): the "after"
// /stats/prometheus, the vm-to-mesh call, and the end of a deferred restart window.
import { readFileSync } from 'node:fs';
import { composeScript, ScriptOutput as ProtocolOutput, type ShellPart } from '../vm/scripts/protocol.js';
import type { ScriptSection } from '../vm/scripts/protocol.js';
export type { ScriptSection };

const VERIFY_FUNCTIONS = readFileSync(new URL('./verify-functions.sh', import.meta.url), 'utf8');
const PROBE = readFileSync(new URL('./probe.sh', import.meta.url), 'utf8');
const FOLLOW_UP = readFileSync(new URL('./follow-up.sh', import.meta.url), 'utf8');

export const UNIT_NAME = 'istio';
/** How long readiness is polled at readyPollMs before slowing to once a second. */
const READY_FAST_MS = 5_000;
const STATS_FILTER =
  '^(cluster\\.xds-grpc|cluster_manager\\.cds|listener_manager\\.lds|server\\.state|' +
  'listener_manager\\.workers_started)';

/** Envoy admin / agent URLs the probe reads (localhost on the VM). */
export const PROBE_URLS = {
  ready: 'http://localhost:15021/healthz/ready',
  stats: `http://localhost:15000/stats?usedonly&filter=${encodeURIComponent(STATS_FILTER)}`,
  secrets: 'http://localhost:15000/config_dump?resource=dynamic_active_secrets',
  certs: 'http://localhost:15000/certs',
  prometheus: 'http://localhost:15090/stats/prometheus',
} as const;

/**
 * Only the exposition lines of the two mTLS counters travel back (a busy sidecar's /stats/prometheus is
 * megabytes): their `# TYPE` lines and samples. The result is still exposition text for parsePrometheusText.
 */
export const MTLS_METRICS_LINES = '^(# TYPE )?istio_(requests_total|tcp_connections_opened_total)[{ ]';

export const ROOT_CERT_PATH = '/etc/certs/root-cert.pem';
export const AGENT_LOG = '/var/log/istio/istio.log';
/**
 * pilot-agent's log lines about its upstream (istiod) connection, pkg/istio-agent/xds_proxy.go:
 * `connected to upstream XDS server: <addr>`, `failed to connect to upstream <addr>: <err>`,
 * `upstream terminated with unexpected error <err>`.
 */
export const XDS_UPSTREAM_EVENTS =
  'connected to (delta )?upstream XDS server|failed to connect to (delta )?upstream|' +
  'upstream terminated with unexpected error';
export const AGENT_ERR_LOG = '/var/log/istio/istio.err.log';

export interface ProbeScriptOptions {
  restartWindowMs: number;
  readyTimeoutMs: number;
  readyPollMs: number;
  logTailLines: number;
}

function seconds(ms: number): string {
  return (Math.max(0, ms) / 1000).toFixed(3).replace(/\.?0+$/, '') || '0';
}

const functions: ShellPart = { values: { IVO_UNIT: UNIT_NAME }, text: VERIFY_FUNCTIONS };

/** The restart window's values: how long, and a bound on its polls (every 0.2 s). */
function windowValues(restartWindowMs: number): { IVO_WINDOW_MS: number; IVO_WINDOW_POLLS: number } {
  return { IVO_WINDOW_MS: Math.round(restartWindowMs), IVO_WINDOW_POLLS: Math.ceil(restartWindowMs / 200) + 2 };
}

/**
 * Round trip 1: readiness (polled), the Envoy admin reads, the agent's logs, and the restart window.
 * With `deferWindowWhenReady`, a sidecar that is ready does not wait out the window here: round trip 2
 * (after the mesh client's Job) finishes it, so the wait overlaps the Job; the `window` section then says
 * `deferred=1` and `ready` carries `start_ms`, where the observation began (VM clock). A sidecar that is
 * not ready has been watched all through the polling, so the window is finished here.
 */
export function buildProbeScript(
  o: ProbeScriptOptions & { deferWindowWhenReady?: boolean },
  /** Shell the checks add (after probe.sh). */
  extraParts: ShellPart[] = [],
): string {
  // Polled every readyPollMs for the first READY_FAST_MS (a restarted sidecar is usually ready within a
  // second or two), then every second: each failed probe writes a line to the agent's log.
  const fastMs = Math.min(READY_FAST_MS, o.readyTimeoutMs);
  const slowPollMs = Math.max(o.readyPollMs, 1000);
  const readyAttempts = Math.max(
    1,
    Math.ceil(fastMs / Math.max(100, o.readyPollMs)) +
      Math.ceil(Math.max(0, o.readyTimeoutMs - fastMs) / slowPollMs) +
      1,
  );
  return composeScript(
    functions,
    {
      values: {
        IVO_READY_URL: PROBE_URLS.ready,
        IVO_READY_ATTEMPTS: readyAttempts,
        IVO_READY_TIMEOUT_MS: Math.round(o.readyTimeoutMs),
        IVO_READY_FAST_MS: Math.round(fastMs),
        IVO_READY_NAP: seconds(o.readyPollMs),
        IVO_READY_SLOW_NAP: seconds(slowPollMs),
        IVO_STATS_URL: PROBE_URLS.stats,
        IVO_SECRETS_URL: PROBE_URLS.secrets,
        IVO_CERTS_URL: PROBE_URLS.certs,
        IVO_PROMETHEUS_URL: PROBE_URLS.prometheus,
        IVO_MTLS_METRICS_LINES: MTLS_METRICS_LINES,
        IVO_ROOT_CERT: ROOT_CERT_PATH,
        IVO_AGENT_LOG: AGENT_LOG,
        IVO_AGENT_ERR_LOG: AGENT_ERR_LOG,
        IVO_LOG_TAIL_LINES: o.logTailLines,
        IVO_XDS_UPSTREAM_EVENTS: XDS_UPSTREAM_EVENTS,
        IVO_DEFER_WINDOW: o.deferWindowWhenReady ? 1 : 0,
        ...windowValues(o.restartWindowMs),
      },
      text: PROBE,
    },
    ...extraParts,
  );
}

export interface FollowUpScriptOptions {
  /** Read /stats/prometheus again (mesh-to-vm-mtls "after"). */
  readPrometheus: boolean;
  /** Finish the restart window round trip 1 deferred: from `probeStartMs` (VM clock, epoch ms). */
  restartWindow?: { windowMs: number; probeStartMs: number };
  /** vm-to-mesh target, or undefined to skip. */
  verifyUrl?: string;
  vmToMeshTimeoutMs: number;
}

/** Round trip 2's pieces: the checks add the ones they need (values for follow-up.sh). */
export const followUpParts = {
  /** The "after" mTLS counters (mesh-to-vm-mtls). */
  mtlsCounters: (): ShellPart => ({
    values: {
      IVO_READ_PROMETHEUS: 1,
      IVO_PROMETHEUS_URL: PROBE_URLS.prometheus,
      IVO_MTLS_METRICS_LINES: MTLS_METRICS_LINES,
    },
    text: '',
  }),
  /** Resolve the host of `url` and call it (vm-to-mesh). */
  vmToMesh: (url: string, timeoutMs: number): ShellPart => ({
    values: {
      IVO_VERIFY_URL: url,
      IVO_VERIFY_HOST: new URL(url).hostname.replace(/^\[|\]$/g, ''),
      IVO_VM_TO_MESH_TIMEOUT: seconds(timeoutMs),
    },
    text: '',
  }),
  /**
   * The rest of a restart window round trip 1 deferred, from `probeStartMs` (VM clock, epoch ms),
   * sidecar-running's. Last in the script: whatever the calls take already counts toward the window.
   */
  restartWindow: (windowMs: number, probeStartMs: number): ShellPart => ({
    values: { IVO_WINDOW_START_MS: Math.max(0, Math.floor(probeStartMs)), ...windowValues(windowMs) },
    text: '',
  }),
};

/** Round trip 2 with the pieces the checks asked for (a piece with shell runs after follow-up.sh). */
export function composeFollowUpScript(parts: ShellPart[]): string {
  return composeScript(functions, { text: FOLLOW_UP }, ...parts);
}

/** Round trip 2. */
export function buildFollowUpScript(o: FollowUpScriptOptions): string {
  return composeFollowUpScript([
    ...(o.readPrometheus ? [followUpParts.mtlsCounters()] : []),
    ...(o.verifyUrl !== undefined ? [followUpParts.vmToMesh(o.verifyUrl, o.vmToMeshTimeoutMs)] : []),
    ...(o.restartWindow ? [followUpParts.restartWindow(o.restartWindow.windowMs, o.restartWindow.probeStartMs)] : []),
  ]);
}

/** What a verification script printed: its sections and which tools the VM has. */
export interface ScriptOutput {
  sections: Map<string, ScriptSection>;
  tools: Record<string, boolean>;
}

export function parseScriptOutput(stdout: string): ScriptOutput {
  const output = new ProtocolOutput(stdout);
  const tools: Record<string, boolean> = {};
  for (const pair of (output.get('tools') ?? '').split(' ')) {
    const [k, v] = pair.split('=');
    if (k) tools[k] = v === 'yes';
  }
  return { sections: output.sections, tools };
}
