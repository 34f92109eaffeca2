// The two batched VM scripts of the verification and the parser of their output.
//
// Round trip 1 (`buildProbeScript`): unit state, readiness polling, Envoy admin reads (/stats,
// /config_dump secrets, /certs), the "before" /stats/prometheus, the installed root cert, the agent's log
// tail, when the sidecar's current run started (`unit-started`) and the restart window — unless the
// sidecar is ready and the window is deferred. Round trip 2 (`buildFollowUpScript`): the "after"
// /stats/prometheus, the vm-to-mesh call, and the end of a deferred restart window.
//
// Output framing: every section is
//   @@ivo-section <name> rc=<exit code> http=<3-digit code> err=<base64 stderr>@@
//   <base64 body on one line, possibly empty>
//   @@ivo-end <name>@@
// Bodies and stderr are base64, so nothing a sidecar prints can forge or break a marker; anything else on
// stdout (motd, sudo warnings) is ignored.

export const UNIT_NAME = 'istio';
/** How long readiness is polled at readyPollMs before slowing to once a second. */
const READY_FAST_MS = 5_000;
const STATS_FILTER =
  '^(cluster\\.xds-grpc|cluster_manager\\.cds|listener_manager\\.lds|server\\.state|listener_manager\\.workers_started)';

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
  'connected to (delta )?upstream XDS server|failed to connect to (delta )?upstream|upstream terminated with unexpected error';
export const AGENT_ERR_LOG = '/var/log/istio/istio.err.log';

/** POSIX single-quote quoting. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

const PRELUDE = String.raw`set +e
umask 077
ivo_tmp=$(mktemp -d 2>/dev/null) || { echo 'ivo: mktemp -d failed (is /tmp full or read-only?)' >&2; exit 97; }
trap 'rm -rf "$ivo_tmp"' EXIT
ivo_b64() { if [ -s "$1" ]; then base64 < "$1" | tr -d '\n'; fi; }
ivo_emit() {
  printf '\n@@ivo-section %s rc=%s http=%s err=%s@@\n' "$1" "$2" "$3" "$(ivo_b64 "$5")"
  ivo_b64 "$4"
  printf '\n@@ivo-end %s@@\n' "$1"
}
ivo_fetch() {
  : > "$ivo_tmp/b"; : > "$ivo_tmp/e"
  ivo_http=$(curl -sS --max-time "$2" -o "$ivo_tmp/b" -w '%{http_code}' "$3" 2>"$ivo_tmp/e"); ivo_rc=$?
  ivo_emit "$1" "$ivo_rc" "$(printf '%s' "$ivo_http" | tr -cd '0-9' | cut -c1-3 | sed 's/^$/000/')" "$ivo_tmp/b" "$ivo_tmp/e"
}
ivo_fetch_grep() {
  ivo_fetch_grep_name=$1; ivo_fetch_grep_re=$2; shift 2
  : > "$ivo_tmp/b"; : > "$ivo_tmp/e"
  ivo_http=$(curl -sS --max-time "$1" -o "$ivo_tmp/full" -w '%{http_code}' "$2" 2>"$ivo_tmp/e"); ivo_rc=$?
  grep -E "$ivo_fetch_grep_re" "$ivo_tmp/full" > "$ivo_tmp/b" 2>/dev/null; rm -f "$ivo_tmp/full"
  ivo_emit "$ivo_fetch_grep_name" "$ivo_rc" "$(printf '%s' "$ivo_http" | tr -cd '0-9' | cut -c1-3 | sed 's/^$/000/')" "$ivo_tmp/b" "$ivo_tmp/e"
}
ivo_cmd() {
  ivo_name=$1; shift
  : > "$ivo_tmp/b"; : > "$ivo_tmp/e"
  "$@" > "$ivo_tmp/b" 2> "$ivo_tmp/e"; ivo_rc=$?
  ivo_emit "$ivo_name" "$ivo_rc" 000 "$ivo_tmp/b" "$ivo_tmp/e"
}
ivo_now_ms() {
  ivo_t=$(date +%s%3N 2>/dev/null)
  case "$ivo_t" in ''|*[!0-9]*) echo $(( $(date +%s) * 1000 )) ;; *) echo "$ivo_t" ;; esac
}
ivo_tail() { if [ -r "$2" ]; then tail -n "$1" "$2"; elif [ -e "$2" ]; then sudo -n tail -n "$1" "$2"; fi; }
printf '@@ivo-tools curl=%s base64=%s systemctl=%s@@\n' \
  "$(command -v curl >/dev/null 2>&1 && echo yes || echo no)" \
  "$(command -v base64 >/dev/null 2>&1 && echo yes || echo no)" \
  "$(command -v systemctl >/dev/null 2>&1 && echo yes || echo no)"
`;

export interface ProbeScriptOptions {
  restartWindowMs: number;
  readyTimeoutMs: number;
  readyPollMs: number;
  logTailLines: number;
}

function seconds(ms: number): string {
  return (Math.max(0, ms) / 1000).toFixed(3).replace(/\.?0+$/, '') || '0';
}

function unitFunctions(unit: string): string {
  return String.raw`
# One systemctl show per look at the unit: every property the checks read, kept in $ivo_unit_raw for
# the reads that follow (is-active is its ActiveState). Each systemctl call is a D-Bus round trip.
ivo_unit_raw=
ivo_unit_read() { ivo_unit_raw=$(systemctl show -p LoadState -p ActiveState -p SubState -p NRestarts -p MainPID -p ExecMainStartTimestamp ${unit} 2>/dev/null); }
ivo_prop() { printf '%s\n' "$ivo_unit_raw" | sed -n "s/^$1=//p" | head -n 1; }
ivo_unit() { ivo_unit_read; printf '%s\nis-active=%s\n' "$ivo_unit_raw" "$(ivo_prop ActiveState)"; }
# The restart key (NRestarts and MainPID, in one format) fresh from systemd, or as of the last look.
ivo_restart_key() { grep -E '^(NRestarts|MainPID)=' | sort; }
ivo_restarts() { systemctl show -p NRestarts -p MainPID ${unit} 2>/dev/null | ivo_restart_key; }
ivo_restarts_seen() { printf '%s\n' "$ivo_unit_raw" | ivo_restart_key; }
# When the current (or last) run of the unit started, as of the last ivo_unit_read: its main process's
# start time from /proc (10 ms), else systemd's ExecMainStartTimestamp (whole seconds).
ivo_started() {
  ivo_pid=$(ivo_prop MainPID)
  if [ -n "$ivo_pid" ] && [ "$ivo_pid" != 0 ] && [ -r "/proc/$ivo_pid/stat" ] && [ -r /proc/uptime ]; then
    ivo_hz=$(getconf CLK_TCK 2>/dev/null); case "$ivo_hz" in ''|*[!0-9]*|0) ivo_hz=100 ;; esac
    ivo_ago=$(sed 's/^.*) //' "/proc/$ivo_pid/stat" | awk -v hz="$ivo_hz" -v up="$(cut -d' ' -f1 /proc/uptime)" '{ printf "%d", (up - $20 / hz) * 1000 }')
    case "$ivo_ago" in ''|*[!0-9]*) ;; *) echo "ms=$(( $(ivo_now_ms) - ivo_ago ))"; return 0 ;; esac
  fi
  ivo_t=$(ivo_prop ExecMainStartTimestamp)
  [ -n "$ivo_t" ] && echo "s=$(date -d "$ivo_t" +%s)"
}
`;
}

/**
 * The restart window (needs $ivo_start, when the observation began): the current run must have lasted
 * the window. A run that started long before (a rerun, a verify) needs no waiting; a fresh one is
 * watched until it is that old. Unknown start: the window is counted from $ivo_start. (Whole seconds
 * from systemd are rounded up: the window is never shortened by that rounding.) Emits `window`,
 * `unit-after` and `unit-started`.
 */
function windowBlock(unit: string, restartWindowMs: number): string {
  return String.raw`
ivo_unit_read
ivo_run_ms=$(ivo_started)
case "$ivo_run_ms" in ms=*) ivo_run_ms=$(echo "$ivo_run_ms" | cut -c4-) ;; s=*) ivo_run_ms=$(( $(echo "$ivo_run_ms" | cut -c3-) * 1000 + 999 )) ;; *) ivo_run_ms=$ivo_start ;; esac
case "$ivo_run_ms" in ''|*[!0-9]*) ivo_run_ms=$ivo_start ;; esac
[ "$ivo_run_ms" -gt "$ivo_start" ] && ivo_run_ms=$ivo_start
[ "$(ivo_prop ActiveState)" = active ] || ivo_run_ms=$ivo_start
ivo_w=0
while [ $(( $(ivo_now_ms) - ivo_run_ms )) -lt ${Math.round(restartWindowMs)} ] && [ "$ivo_w" -lt ${Math.ceil(restartWindowMs / 200) + 2} ]; do ivo_w=$((ivo_w + 1)); sleep 0.2; done
printf 'window_ms=%s up_ms=%s\n' "$(( $(ivo_now_ms) - ivo_start ))" "$(( $(ivo_now_ms) - ivo_run_ms ))" > "$ivo_tmp/r"
: > "$ivo_tmp/e"; ivo_emit window 0 000 "$ivo_tmp/r" "$ivo_tmp/e"
ivo_cmd unit-after ivo_unit
ivo_cmd unit-started ivo_started
`;
}

/**
 * Round trip 1: readiness (polled), the Envoy admin reads, the agent's logs, and the restart window.
 * With `deferWindowWhenReady`, a sidecar that is ready does not wait out the window here: round trip 2
 * (after the mesh client's Job) finishes it, so the wait overlaps the Job; the `window` section then says
 * `deferred=1` and `ready` carries `start_ms`, where the observation began (VM clock). A sidecar that is
 * not ready has been watched all through the polling, so the window is finished here.
 */
export function buildProbeScript(o: ProbeScriptOptions & { deferWindowWhenReady?: boolean }): string {
  const unit = shellQuote(UNIT_NAME);
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
  return (
    PRELUDE +
    unitFunctions(unit) +
    String.raw`
ivo_start=$(ivo_now_ms)
ivo_cmd unit-before ivo_unit
ivo_rs0=$(ivo_restarts_seen)
ivo_max=${readyAttempts}
case "$(ivo_prop ActiveState)" in active) ;; *) ivo_max=1 ;; esac
ivo_n=0; ivo_ready=000; ivo_why=timeout
while [ "$ivo_n" -lt "$ivo_max" ]; do
  ivo_n=$((ivo_n + 1))
  ivo_ready=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' ${shellQuote(PROBE_URLS.ready)} 2>/dev/null | tr -cd '0-9' | cut -c1-3)
  [ -n "$ivo_ready" ] || ivo_ready=000
  if [ "$ivo_ready" = 200 ]; then ivo_why=ready; break; fi
  if [ "$(ivo_restarts)" != "$ivo_rs0" ]; then ivo_why=restarted; break; fi
  if [ $(( $(ivo_now_ms) - ivo_start )) -ge ${Math.round(o.readyTimeoutMs)} ]; then ivo_why=timeout; break; fi
  if [ $(( $(ivo_now_ms) - ivo_start )) -lt ${Math.round(fastMs)} ]; then ivo_nap=${seconds(o.readyPollMs)}; else ivo_nap=${seconds(slowPollMs)}; fi
  [ "$ivo_n" -lt "$ivo_max" ] && sleep "$ivo_nap"
done
printf 'attempts=%s elapsed_ms=%s outcome=%s start_ms=%s\n' "$ivo_n" "$(( $(ivo_now_ms) - ivo_start ))" "$ivo_why" "$ivo_start" > "$ivo_tmp/r"
: > "$ivo_tmp/e"; ivo_emit ready 0 "$ivo_ready" "$ivo_tmp/r" "$ivo_tmp/e"
ivo_fetch stats 3 ${shellQuote(PROBE_URLS.stats)}
ivo_fetch secrets 3 ${shellQuote(PROBE_URLS.secrets)}
ivo_fetch certs 3 ${shellQuote(PROBE_URLS.certs)}
ivo_fetch_grep prometheus ${shellQuote(MTLS_METRICS_LINES)} 3 ${shellQuote(PROBE_URLS.prometheus)}
ivo_cmd root-cert ivo_tail 200 ${shellQuote(ROOT_CERT_PATH)}
# The agent writes a "NOT ready" line for every failed readiness probe: those would push the lines that
# say why out of the tail (the last one is kept as not-ready-line below).
ivo_agent_log() { ivo_tail 2000 ${shellQuote(AGENT_LOG)} | grep -v 'Envoy proxy is NOT ready' | tail -n ${o.logTailLines}; }
ivo_cmd agent-log ivo_agent_log
ivo_cmd agent-err-log ivo_tail ${o.logTailLines} ${shellQuote(AGENT_ERR_LOG)}
ivo_not_ready() { ivo_tail 2000 ${shellQuote(AGENT_LOG)} | grep 'Envoy proxy is NOT ready' | tail -n 1; }
ivo_cmd not-ready-line ivo_not_ready
# pilot-agent's own connection to istiod (Envoy's xds-grpc only reaches the agent): its last event.
ivo_xds_upstream() { ivo_tail 2000 ${shellQuote(AGENT_LOG)} | grep -E ${shellQuote(XDS_UPSTREAM_EVENTS)} | tail -n 1; }
ivo_cmd xds-upstream ivo_xds_upstream
` +
    (o.deferWindowWhenReady
      ? String.raw`if [ "$ivo_why" = ready ]; then
  printf 'window_ms=%s deferred=1\n' "$(( $(ivo_now_ms) - ivo_start ))" > "$ivo_tmp/r"
  : > "$ivo_tmp/e"; ivo_emit window 0 000 "$ivo_tmp/r" "$ivo_tmp/e"
  ivo_cmd unit-after ivo_unit
  ivo_cmd unit-started ivo_started
else
${windowBlock(unit, o.restartWindowMs)}
fi
`
      : windowBlock(unit, o.restartWindowMs))
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

/** Round trip 2. */
export function buildFollowUpScript(o: FollowUpScriptOptions): string {
  let script = PRELUDE;
  if (o.readPrometheus) {
    script += `ivo_fetch_grep prometheus ${shellQuote(MTLS_METRICS_LINES)} 3 ${shellQuote(PROBE_URLS.prometheus)}\n`;
  }
  if (o.verifyUrl !== undefined) {
    const host = new URL(o.verifyUrl).hostname.replace(/^\[|\]$/g, '');
    script += `ivo_cmd resolve getent hosts ${shellQuote(host)}\n`;
    script += `ivo_fetch vm-to-mesh ${seconds(o.vmToMeshTimeoutMs)} ${shellQuote(o.verifyUrl)}\n`;
  }
  if (o.restartWindow) {
    // Last: whatever the calls above took already counts toward the window.
    const unit = shellQuote(UNIT_NAME);
    script +=
      unitFunctions(unit) +
      `ivo_start=${Math.max(0, Math.floor(o.restartWindow.probeStartMs))}\n` +
      windowBlock(unit, o.restartWindow.windowMs);
  }
  return script;
}

export interface ScriptSection {
  name: string;
  /** Exit code of curl / the command. */
  rc: number;
  /** HTTP status for fetches (`000` = no response); `000` for commands. */
  http: string;
  body: string;
  stderr: string;
}

export interface ScriptOutput {
  sections: Map<string, ScriptSection>;
  tools: Record<string, boolean>;
}

const HEADER = /^@@ivo-section (\S+) rc=(-?\d+) http=(\d{3}) err=([A-Za-z0-9+/=]*)@@$/;

function decode(b64: string): string {
  return Buffer.from(b64, 'base64').toString('utf8');
}

export function parseScriptOutput(stdout: string): ScriptOutput {
  const sections = new Map<string, ScriptSection>();
  const tools: Record<string, boolean> = {};
  const lines = stdout.split('\n').map((l) => l.replace(/\r$/, ''));
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const toolsMatch = /^@@ivo-tools (.*)@@$/.exec(line);
    if (toolsMatch) {
      for (const pair of toolsMatch[1]!.split(' ')) {
        const [k, v] = pair.split('=');
        if (k) tools[k] = v === 'yes';
      }
      continue;
    }
    const m = HEADER.exec(line);
    if (!m) continue;
    const name = m[1]!;
    const end = `@@ivo-end ${name}@@`;
    let body = '';
    let j = i + 1;
    for (; j < lines.length && lines[j] !== end; j++) body += lines[j]!.trim();
    if (j >= lines.length) break; // truncated output: ignore the incomplete section
    sections.set(name, { name, rc: Number(m[2]), http: m[3]!, body: decode(body), stderr: decode(m[4]!) });
    i = j;
  }
  return { sections, tools };
}
