# shellcheck shell=sh
# Round trip 1 of the verification: the unit, readiness (polled), the Envoy admin reads, the agent's
# logs, and the restart window. With IVO_DEFER_WINDOW=1 a sidecar that is ready does not wait out the
# window here: round trip 2 (follow-up.sh, after the mesh client's Job) finishes it, so the wait overlaps
# the Job; the `window` section then says `deferred=1` and `ready` carries `start_ms`, where the
# observation began (VM clock). A sidecar that is not ready has been watched all through the polling,
# so the window is finished here.
# Values: IVO_READY_URL, IVO_READY_ATTEMPTS, IVO_READY_TIMEOUT_MS, IVO_READY_FAST_MS, IVO_READY_NAP,
# IVO_READY_SLOW_NAP (seconds), IVO_STATS_URL, IVO_SECRETS_URL, IVO_CERTS_URL, IVO_PROMETHEUS_URL,
# IVO_MTLS_METRICS_LINES (a regex), IVO_ROOT_CERT, IVO_AGENT_LOG, IVO_AGENT_ERR_LOG, IVO_LOG_TAIL_LINES,
# IVO_XDS_UPSTREAM_EVENTS (a regex), IVO_DEFER_WINDOW (1|0), IVO_WINDOW_MS, IVO_WINDOW_POLLS.
ivo_start=$(ivo_now_ms)
ivo_cmd unit-before ivo_unit
ivo_rs0=$(ivo_restarts_seen)
ivo_max=$IVO_READY_ATTEMPTS
case "$(ivo_prop ActiveState)" in active) ;; *) ivo_max=1 ;; esac
ivo_n=0; ivo_ready=000; ivo_why=timeout; ivo_curl_rc=0
while [ "$ivo_n" -lt "$ivo_max" ]; do
  ivo_n=$((ivo_n + 1))
  # curl's exit code tells a refused connection (7) from one that never answered (28).
  ivo_ready=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$IVO_READY_URL" 2>/dev/null) && ivo_curl_rc=0 || ivo_curl_rc=$?
  ivo_ready=$(printf '%s' "$ivo_ready" | tr -cd '0-9' | cut -c1-3)
  [ -n "$ivo_ready" ] || ivo_ready=000
  if [ "$ivo_ready" = 200 ]; then ivo_why=ready; break; fi
  if [ "$(ivo_restarts)" != "$ivo_rs0" ]; then ivo_why=restarted; break; fi
  if [ $(( $(ivo_now_ms) - ivo_start )) -ge "$IVO_READY_TIMEOUT_MS" ]; then ivo_why=timeout; break; fi
  if [ $(( $(ivo_now_ms) - ivo_start )) -lt "$IVO_READY_FAST_MS" ]; then ivo_nap=$IVO_READY_NAP; else ivo_nap=$IVO_READY_SLOW_NAP; fi
  [ "$ivo_n" -lt "$ivo_max" ] && sleep "$ivo_nap"
done
ivo_note ready "$ivo_ready" "attempts=$ivo_n elapsed_ms=$(( $(ivo_now_ms) - ivo_start )) outcome=$ivo_why start_ms=$ivo_start curl_rc=$ivo_curl_rc utc_offset=$(date +%z)"
ivo_fetch stats 3 "$IVO_STATS_URL"
ivo_fetch secrets 3 "$IVO_SECRETS_URL"
ivo_fetch certs 3 "$IVO_CERTS_URL"
ivo_fetch_grep prometheus "$IVO_MTLS_METRICS_LINES" 3 "$IVO_PROMETHEUS_URL"
ivo_cmd root-cert ivo_tail 200 "$IVO_ROOT_CERT"
# The agent writes a "NOT ready" line for every failed readiness probe: those would push the lines that
# say why out of the tail (the last one is kept as not-ready-line below).
ivo_agent_log() { ivo_tail 2000 "$IVO_AGENT_LOG" | grep -v 'Envoy proxy is NOT ready' | tail -n "$IVO_LOG_TAIL_LINES"; }
ivo_cmd agent-log ivo_agent_log
ivo_cmd agent-err-log ivo_tail "$IVO_LOG_TAIL_LINES" "$IVO_AGENT_ERR_LOG"
ivo_not_ready() { ivo_tail 2000 "$IVO_AGENT_LOG" | grep 'Envoy proxy is NOT ready' | tail -n 1; }
ivo_cmd not-ready-line ivo_not_ready
# pilot-agent's own connection to istiod (Envoy's xds-grpc only reaches the agent): its last event.
ivo_xds_upstream() { ivo_tail 2000 "$IVO_AGENT_LOG" | grep -E "$IVO_XDS_UPSTREAM_EVENTS" | tail -n 1; }
ivo_cmd xds-upstream ivo_xds_upstream
if [ "$IVO_DEFER_WINDOW" = 1 ] && [ "$ivo_why" = ready ]; then
  ivo_note window 000 "window_ms=$(( $(ivo_now_ms) - ivo_start )) deferred=1"
  ivo_cmd unit-after ivo_unit
  ivo_cmd unit-started ivo_started
else
  ivo_restart_window "$ivo_start" "$IVO_WINDOW_MS" "$IVO_WINDOW_POLLS"
fi
