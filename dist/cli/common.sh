# shellcheck shell=sh
# Functions shared by the root scripts that change a VM: the VM lock, a step runner that turns a
# failing command into a named error (disk full recognised), the installed-version query, and placement
# of a staged file (temp name in the target's directory, then rename) without ever following a symlink
# the proxy user could have planted.
# Values: IVO_LOCK_FILE, IVO_LOCK_WAIT (seconds), IVO_PACKAGE_NAME, IVO_PROXY_USER,
# IVO_PERSISTENT_TOKEN, IVO_RUNTIME_TOKEN.
ivo_lock() {
  exec 9>>"$IVO_LOCK_FILE" || ivo_fail lock "cannot open $IVO_LOCK_FILE"
  if ! flock -w "$IVO_LOCK_WAIT" 9; then
    ivo_fail lock-busy "another istio-vm-onboard run holds $IVO_LOCK_FILE on this VM (waited ${IVO_LOCK_WAIT}s); nothing was changed"
  fi
  ivo_emit lock.acquired "$(date +%s.%N)"
}
IVO_ERR=$(mktemp /run/ivo-err.XXXXXX 2>/dev/null || echo /dev/null)
ivo_cleanup_err() { [ "$IVO_ERR" = /dev/null ] || rm -f "$IVO_ERR"; }
ivo_run() {
  # ivo_run STEP COMMAND...: run COMMAND quietly; on failure report STEP with the tail of its output
  ivo_step=$1
  shift
  # fd 9 holds the VM lock: never let a started daemon inherit it
  "$@" 9>&- >"$IVO_ERR" 2>&1
  ivo_rc=$?
  [ "$ivo_rc" -eq 0 ] && return 0
  ivo_step_failed "$ivo_step" "$ivo_rc" "$(tail -c 1500 "$IVO_ERR" 2>/dev/null)"
}
ivo_free_kib() { df -Pk "$1" 2>/dev/null | awk 'NR==2 {print $4}'; }
ivo_step_failed() {
  case "$3" in
    *"No space left"*|*"no space left"*|*"Disk quota exceeded"*) ivo_fail disk-full "$1: no space left on the VM's disk (exit $2): $3" ;;
  esac
  ivo_sf_free=$(ivo_free_kib /var/lib)
  if [ -n "$ivo_sf_free" ] && [ "$ivo_sf_free" -lt 1024 ]; then
    ivo_fail disk-full "$1 failed and /var/lib has no space left ($ivo_sf_free KiB free): $3"
  fi
  ivo_fail "$1" "$1 (exit $2): $3"
}
ivo_need_space() {
  # ivo_need_space KIB WHAT: fail clearly before writing when /var/lib has less than KIB free
  ivo_ns_free=$(ivo_free_kib /var/lib)
  if [ -n "$ivo_ns_free" ] && [ "$ivo_ns_free" -lt "$1" ]; then
    ivo_fail disk-full "no space left on the VM's disk for $2: /var/lib has $ivo_ns_free KiB free, needs $1 KiB; nothing was changed"
  fi
}
ivo_sha() { sha256sum < "$1" | cut -d' ' -f1; }
ivo_same() { [ -f "$1" ] && [ -f "$2" ] && [ "$(ivo_sha "$1")" = "$(ivo_sha "$2")" ]; }
ivo_certificate_set() {
  # ivo_certificate_set FILE: each certificate of a PEM bundle once (its base64 on one line), sorted
  awk '/-----BEGIN CERTIFICATE-----/ { body = ""; inside = 1; next }
       /-----END CERTIFICATE-----/ { if (inside && body != "") print body; inside = 0; next }
       inside { gsub(/[ \t\r]/, ""); body = body $0 }' "$1" | LC_ALL=C sort -u
}
ivo_same_as() {
  # ivo_same_as bytes|certificates A B: whether B on the VM holds what A does (certificates: the same set of
  # certificates, as pilot-agent rewrites root-cert.pem with its own order and layout)
  case "$1" in
    certificates)
      [ -f "$2" ] && [ -f "$3" ] || return 1
      ivo_sa_a=$(ivo_certificate_set "$2")
      [ -n "$ivo_sa_a" ] && [ "$ivo_sa_a" = "$(ivo_certificate_set "$3")" ]
      ;;
    *) ivo_same "$2" "$3" ;;
  esac
}
ivo_installed_version() {
  if command -v dpkg-query >/dev/null 2>&1; then
    ivo_iv=$(dpkg-query -W -f='${Status} ${Version}' "$IVO_PACKAGE_NAME" 2>/dev/null) || ivo_iv=
    case "$ivo_iv" in "install ok installed "*) printf '%s' "${ivo_iv#install ok installed }";; esac
  elif command -v rpm >/dev/null 2>&1; then
    rpm -q --qf '%{VERSION}-%{RELEASE}' "$IVO_PACKAGE_NAME" 2>/dev/null || true
  fi
}
ivo_as_proxy() (
  # ivo_as_proxy COMMAND...: run COMMAND as the proxy user. The directories it owns are written as
  # that user: it can swap any name in them for a symlink, and root must never follow one.
  cd / || exit 125
  if command -v setpriv >/dev/null 2>&1; then
    exec setpriv --reuid="$(id -u "$IVO_PROXY_USER")" --regid="$(id -g "$IVO_PROXY_USER")" --clear-groups "$@"
  fi
  exec runuser -u "$IVO_PROXY_USER" -- "$@"
)
ivo_stage_file() {
  # ivo_stage_file SRC DEST OWNER MODE: copy SRC next to DEST as DEST.ivo-new with owner and mode
  # (files of the proxy user are written by it; root only opens SRC, in its own directory)
  if [ "$3" = root ]; then
    ivo_run place install -o root -g root -m "$4" "$1" "$2.ivo-new"
  else
    # shellcheck disable=SC2016 # $1 and $2 belong to the inner sh
    ivo_run place ivo_as_proxy sh -c 'rm -f "$1" && umask 077 && cat > "$1" && chmod "$2" "$1"' ivo-stage "$2.ivo-new" "$4" < "$1"
  fi
}
ivo_commit_file() {
  # ivo_commit_file DEST OWNER: atomic rename of DEST.ivo-new over DEST (same directory, same filesystem)
  if [ "$2" = root ]; then
    ivo_run place mv -f "$1.ivo-new" "$1"
  else
    ivo_run place ivo_as_proxy mv -f "$1.ivo-new" "$1"
  fi
}
ivo_fix_file() {
  # ivo_fix_file PATH OWNER MODE: owner and mode of a placed file, never through a symlink
  # (chown -h changes a link itself; chmod runs as the owner, who can change only its own files)
  [ -f "$1" ] && [ ! -L "$1" ] || return 0
  chown -h "$2:" "$1" >/dev/null 2>&1
  if [ "$2" = root ]; then chmod "$3" "$1" >/dev/null 2>&1; else ivo_as_proxy chmod "$3" "$1" >/dev/null 2>&1; fi
  return 0
}
ivo_snapshot_file() {
  # ivo_snapshot_file PATH OWNER COPY: keep PATH's content as COPY (root's directory), read with the
  # owner's rights: a symlink the proxy user put there cannot make root copy a file it may not read
  if [ "$2" = root ]; then
    ivo_run snapshot cp -P -p "$1" "$3"
  else
    ivo_run snapshot ivo_copy_as_proxy "$1" "$3"
  fi
}
ivo_copy_as_proxy() { ivo_as_proxy cat "$1" > "$2"; }
ivo_sync_runtime_token() {
  # the token pilot-agent reads lives in tmpfs; keep it equal to the persistent copy. Both live in
  # directories the proxy user owns: it reads and writes them.
  if [ -f "$IVO_PERSISTENT_TOKEN" ] && ! ivo_same "$IVO_PERSISTENT_TOKEN" "$IVO_RUNTIME_TOKEN"; then
    ivo_run token install -d -o "$IVO_PROXY_USER" -g "$IVO_PROXY_USER" -m 0755 /var/run/secrets
    [ -L /var/run/secrets/tokens ] || chown -h "$IVO_PROXY_USER:$IVO_PROXY_USER" /var/run/secrets/tokens >/dev/null 2>&1
    # shellcheck disable=SC2016 # $1 and $2 belong to the inner sh
    ivo_run token ivo_as_proxy sh -c 'mkdir -p "${2%/*}" && rm -f "$2.ivo-new" && umask 077 && cat "$1" > "$2.ivo-new" && chmod 0400 "$2.ivo-new" && mv -f "$2.ivo-new" "$2"' ivo-token "$IVO_PERSISTENT_TOKEN" "$IVO_RUNTIME_TOKEN"
    ivo_emit runtime-token synced
  fi
}
