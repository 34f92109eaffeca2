# shellcheck shell=sh
# As root: run the 15012 probe outside the sidecar's traffic capture, as the proxy user (its uid and
# primary gid) when that user exists, else as root (no sidecar installed, so no capture). setpriv first
# (util-linux, no PAM, no sudoers), then runuser (util-linux, PAM), then `sudo -n -u`; each is proven by
# running `id -u` through it. Values: IVO_PROXY_USER.
ivo_probe_as_choose() {
  # ivo_probe_as_choose: decides how ivo_probe_as switches user, and emits ew.as
  ivo_px_user=$IVO_PROXY_USER
  ivo_px_via=
  if ivo_px_uid=$(id -u "$ivo_px_user" 2>/dev/null) && ivo_px_gid=$(id -g "$ivo_px_user" 2>/dev/null); then
    if command -v setpriv >/dev/null 2>&1 && [ "$(cd / && setpriv --reuid="$ivo_px_uid" --regid="$ivo_px_gid" --clear-groups id -u 2>/dev/null </dev/null)" = "$ivo_px_uid" ]; then
      ivo_px_via=setpriv
    elif command -v runuser >/dev/null 2>&1 && [ "$(cd / && runuser -u "$ivo_px_user" -- id -u 2>/dev/null </dev/null)" = "$ivo_px_uid" ]; then
      ivo_px_via=runuser
    elif command -v sudo >/dev/null 2>&1 && [ "$(cd / && sudo -n -u "$ivo_px_user" id -u 2>/dev/null </dev/null)" = "$ivo_px_uid" ]; then
      ivo_px_via=sudo
    fi
    if [ -n "$ivo_px_via" ]; then ivo_emit64 ew.as "$ivo_px_user ($ivo_px_via)"; else ivo_emit64 ew.as "root: cannot switch to $ivo_px_user"; fi
  else
    ivo_emit ew.as root
  fi
}
ivo_probe_as() (
  # ivo_probe_as COMMAND...: run COMMAND from / as the user ivo_probe_as_choose picked (in a subshell)
  cd / || exit 125
  case "$ivo_px_via" in
    setpriv) exec setpriv --reuid="$ivo_px_uid" --regid="$ivo_px_gid" --clear-groups "$@" ;;
    runuser) exec runuser -u "$ivo_px_user" -- "$@" ;;
    sudo) exec sudo -n -u "$ivo_px_user" "$@" ;;
    *) exec "$@" ;;
  esac
)
