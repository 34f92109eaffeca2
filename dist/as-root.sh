# shellcheck shell=sh
# As the login user: prove `sudo -n` works (reporting sudo's own words when it does not), then replace
# this shell with the root script, so the caller's stdin reaches it untouched.
# Values: IVO_ROOT_SCRIPT (the root script), IVO_SUDO_FAILED_EXIT.
ivo_emit64 user "$(id -un 2>/dev/null)"
if ! ivo_sudo_out=$(sudo -n true 2>&1 </dev/null); then
  ivo_emit64 error:sudo "$ivo_sudo_out"
  exit "$IVO_SUDO_FAILED_EXIT"
fi
exec sudo -n /bin/sh -c "$IVO_ROOT_SCRIPT"
