# shellcheck shell=sh
# Round trip 2 of the verification: the "after" /stats/prometheus, the vm-to-mesh call, and the end of
# a restart window round trip 1 deferred.
# Values: IVO_READ_PROMETHEUS (1|0), IVO_PROMETHEUS_URL, IVO_MTLS_METRICS_LINES, IVO_VERIFY_URL and
# IVO_VERIFY_HOST (empty: no call), IVO_VM_TO_MESH_TIMEOUT (seconds), IVO_WINDOW_START_MS (empty: no
# window to finish), IVO_WINDOW_MS, IVO_WINDOW_POLLS.
if [ "$IVO_READ_PROMETHEUS" = 1 ]; then ivo_fetch_grep prometheus "$IVO_MTLS_METRICS_LINES" 3 "$IVO_PROMETHEUS_URL"; fi
if [ -n "$IVO_VERIFY_URL" ]; then
  ivo_cmd resolve getent hosts "$IVO_VERIFY_HOST"
  ivo_fetch vm-to-mesh "$IVO_VM_TO_MESH_TIMEOUT" "$IVO_VERIFY_URL"
fi
# Last: whatever the calls above took already counts toward the window.
if [ -n "$IVO_WINDOW_START_MS" ]; then ivo_restart_window "$IVO_WINDOW_START_MS" "$IVO_WINDOW_MS" "$IVO_WINDOW_POLLS"; fi
