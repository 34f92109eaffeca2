# shellcheck shell=sh
# As the login user: read localhost URLs (the sidecar's admin ports) in one round trip.
# Values: IVO_URLS (one a line), IVO_TIMEOUT (seconds per URL), IVO_MAX_BYTES (per body).
ivo_tmp=$(mktemp 2>/dev/null) || ivo_fail tmp "cannot create a temp file"
trap 'rm -f "$ivo_tmp"' EXIT
ivo_index=0
ivo_get() {
  # ivo_get URL: emits status.N, rc.N and body.N for the N-th URL
  : > "$ivo_tmp"
  if command -v curl >/dev/null 2>&1; then
    ivo_code=$(curl -s -o "$ivo_tmp" -w '%{http_code}' --max-time "$IVO_TIMEOUT" "$1" 2>/dev/null)
    ivo_rc=$?
  elif command -v wget >/dev/null 2>&1; then
    ivo_code=$(wget -S -q -T "$IVO_TIMEOUT" -t 1 --content-on-error -O "$ivo_tmp" "$1" 2>&1 | awk '$1 ~ /^HTTP\// {c=$2} END {print c}')
    ivo_rc=0
  else
    ivo_fail no-http-client "neither curl nor wget on the VM to read $1"
  fi
  ivo_emit "status.$ivo_index" "${ivo_code:-000}"
  ivo_emit "rc.$ivo_index" "$ivo_rc"
  printf '@@ivo64 body.%s ' "$ivo_index"
  head -c "$IVO_MAX_BYTES" "$ivo_tmp" | ivo_b64
  printf '\n'
  ivo_index=$((ivo_index + 1))
}
ivo_each_line "$IVO_URLS" ivo_get
ivo_emit 'done' yes
