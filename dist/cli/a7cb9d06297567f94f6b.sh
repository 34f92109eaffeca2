# shellcheck shell=sh
# Functions of the verification scripts (probe.sh, follow-up.sh): each observation becomes one section
# of the protocol (ivo_section). They only read: the unit, localhost admin URLs, the agent's logs.
# Values: IVO_UNIT.
set +e
umask 077
ivo_tmp=$(mktemp -d 2>/dev/null) || { echo 'ivo: mktemp -d failed (is /tmp full or read-only?)' >&2; exit 97; }
trap 'rm -rf "$ivo_tmp"' EXIT
ivo_http_code() { printf '%s' "$1" | tr -cd '0-9' | cut -c1-3 | sed 's/^$/000/'; }
ivo_fetch() {
  # ivo_fetch NAME TIMEOUT URL
  : > "$ivo_tmp/b"; : > "$ivo_tmp/e"
  ivo_http=$(curl -sS --max-time "$2" -o "$ivo_tmp/b" -w '%{http_code}' "$3" 2>"$ivo_tmp/e"); ivo_rc=$?
  ivo_section "$1" "$ivo_rc" "$(ivo_http_code "$ivo_http")" "$ivo_tmp/b" "$ivo_tmp/e"
}
ivo_fetch_grep() {
  # ivo_fetch_grep NAME REGEX TIMEOUT URL: only the body's lines that match REGEX travel back
  ivo_fetch_grep_name=$1; ivo_fetch_grep_re=$2; shift 2
  : > "$ivo_tmp/b"; : > "$ivo_tmp/e"
  ivo_http=$(curl -sS --max-time "$1" -o "$ivo_tmp/full" -w '%{http_code}' "$2" 2>"$ivo_tmp/e"); ivo_rc=$?
  grep -E "$ivo_fetch_grep_re" "$ivo_tmp/full" > "$ivo_tmp/b" 2>/dev/null; rm -f "$ivo_tmp/full"
  ivo_section "$ivo_fetch_grep_name" "$ivo_rc" "$(ivo_http_code "$ivo_http")" "$ivo_tmp/b" "$ivo_tmp/e"
}
ivo_cmd() {
  # ivo_cmd NAME COMMAND...: the command's output, stderr and exit code
  ivo_name=$1; shift
  : > "$ivo_tmp/b"; : > "$ivo_tmp/e"
  "$@" > "$ivo_tmp/b" 2> "$ivo_tmp/e"; ivo_rc=$?
  ivo_section "$ivo_name" "$ivo_rc" 000 "$ivo_tmp/b" "$ivo_tmp/e"
}
ivo_note() {
  # ivo_note NAME HTTP TEXT: a section made here (no command)
  printf '%s\n' "$3" > "$ivo_tmp/r"; : > "$ivo_tmp/e"
  ivo_section "$1" 0 "$2" "$ivo_tmp/r" "$ivo_tmp/e"
}
ivo_now_ms() {
  ivo_t=$(date +%s%3N 2>/dev/null)
  case "$ivo_t" in ''|*[!0-9]*) echo $(( $(date +%s) * 1000 )) ;; *) echo "$ivo_t" ;; esac
}
ivo_tail() { if [ -r "$2" ]; then tail -n "$1" "$2"; elif [ -e "$2" ]; then sudo -n tail -n "$1" "$2"; fi; }
ivo_has() { if command -v "$1" >/dev/null 2>&1; then echo yes; else echo no; fi; }
ivo_emit tools "curl=$(ivo_has curl) base64=$(ivo_has base64) systemctl=$(ivo_has systemctl)"

# One systemctl show per look at the unit: every property the checks read, kept in $ivo_unit_raw for
# the reads that follow (is-active is its ActiveState). Each systemctl call is a D-Bus round trip.
ivo_unit_raw=
ivo_unit_read() { ivo_unit_raw=$(systemctl show -p LoadState -p ActiveState -p SubState -p NRestarts -p MainPID -p ExecMainStartTimestamp "$IVO_UNIT" 2>/dev/null); }
ivo_prop() { printf '%s\n' "$ivo_unit_raw" | sed -n "s/^$1=//p" | head -n 1; }
ivo_unit() { ivo_unit_read; printf '%s\nis-active=%s\n' "$ivo_unit_raw" "$(ivo_prop ActiveState)"; }
# The restart key (NRestarts and MainPID, in one format) fresh from systemd, or as of the last look.
ivo_restart_key() { grep -E '^(NRestarts|MainPID)=' | sort; }
ivo_restarts() { systemctl show -p NRestarts -p MainPID "$IVO_UNIT" 2>/dev/null | ivo_restart_key; }
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
ivo_restart_window() {
  # ivo_restart_window START-MS WINDOW-MS MAX-POLLS (START-MS: when the observation began, VM clock):
  # the current run must have lasted the window. A run that started long before (a rerun, a verify)
  # needs no waiting; a fresh one is watched until it is that old. Unknown start: the window is counted
  # from START-MS. (Whole seconds from systemd are rounded up: the window is never shortened by that
  # rounding.) Emits `window`, `unit-after` and `unit-started`.
  ivo_rw_start=$1
  ivo_unit_read
  ivo_run_ms=$(ivo_started)
  case "$ivo_run_ms" in ms=*) ivo_run_ms=$(echo "$ivo_run_ms" | cut -c4-) ;; s=*) ivo_run_ms=$(( $(echo "$ivo_run_ms" | cut -c3-) * 1000 + 999 )) ;; *) ivo_run_ms=$ivo_rw_start ;; esac
  case "$ivo_run_ms" in ''|*[!0-9]*) ivo_run_ms=$ivo_rw_start ;; esac
  [ "$ivo_run_ms" -gt "$ivo_rw_start" ] && ivo_run_ms=$ivo_rw_start
  [ "$(ivo_prop ActiveState)" = active ] || ivo_run_ms=$ivo_rw_start
  ivo_w=0
  while [ $(( $(ivo_now_ms) - ivo_run_ms )) -lt "$2" ] && [ "$ivo_w" -lt "$3" ]; do ivo_w=$((ivo_w + 1)); sleep 0.2; done
  ivo_note window 000 "window_ms=$(( $(ivo_now_ms) - ivo_rw_start )) up_ms=$(( $(ivo_now_ms) - ivo_run_ms ))"
  ivo_cmd unit-after ivo_unit
  ivo_cmd unit-started ivo_started
}
