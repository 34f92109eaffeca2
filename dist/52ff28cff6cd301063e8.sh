# shellcheck shell=sh
# Offboard, as root: stop and disable the sidecar, remove our files, the drop-in, the hosts block and
# the package, then whatever the package or we created that was not there before the first onboarding
# (recorded in the baseline file), and finally our state directory.
# Values: IVO_STATE_DIR, IVO_HOSTS, IVO_UNIT, IVO_BASELINE_PATHS (one a line), IVO_OWN_DIRS (one a line:
# removed when empty), and those of common.sh, hosts-block.sh and managed-files.sh.
umask 022
S=$IVO_STATE_DIR
trap 'rm -f "$S.hosts.offboard" "$IVO_HOSTS.ivo-new"; ivo_cleanup_err' EXIT
trap '' HUP PIPE
ivo_lock
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop "$IVO_UNIT" 9>&- >/dev/null 2>&1
  systemctl disable "$IVO_UNIT" 9>&- >/dev/null 2>&1
fi
# the sidecar's processes run as the proxy user: give them 10 s to end, then end the rest by pid
# Only this machine's own processes: those in our network namespace (on a VM, all of them; where
# several VMs share one kernel — containers, the lab — never another machine's sidecar).
ivo_netns=$(readlink /proc/$$/ns/net 2>/dev/null)
ivo_proxy_pids() {
  for ivo_p in $(ps -o pid= -u "$IVO_PROXY_USER" 2>/dev/null); do
    [ "$(readlink "/proc/$ivo_p/ns/net" 2>/dev/null)" = "$ivo_netns" ] && echo "$ivo_p"
  done
}
if getent passwd "$IVO_PROXY_USER" >/dev/null 2>&1; then
  ivo_i=0
  while [ -n "$(ivo_proxy_pids)" ] && [ "$ivo_i" -lt 20 ]; do sleep 0.5; ivo_i=$((ivo_i + 1)); done
  ivo_left=$(ivo_proxy_pids)
  if [ -n "$ivo_left" ]; then
    ivo_emit64 killed "$ivo_left"
    for ivo_pid in $ivo_left; do kill -TERM "$ivo_pid" 2>/dev/null; done
    sleep 1
    for ivo_pid in $(ivo_proxy_pids); do kill -KILL "$ivo_pid" 2>/dev/null; done
  fi
fi
ivo_remove_file() { if [ -e "$1" ]; then ivo_run remove rm -f "$1"; ivo_emit64 removed "$1"; fi; }
ivo_remove_managed() { ivo_remove_file "$3"; }
ivo_each_managed_file ivo_remove_managed
ivo_remove_file "$IVO_RUNTIME_TOKEN"
ivo_remove_own_dir() { rmdir "$1" 2>/dev/null && ivo_emit64 removed "$1"; }
ivo_each_line "$IVO_OWN_DIRS" ivo_remove_own_dir
command -v systemctl >/dev/null 2>&1 && systemctl daemon-reload 9>&- >/dev/null 2>&1
ivo_hosts_render "$IVO_HOSTS" /dev/null "$S.hosts.offboard" || ivo_fail hosts "cannot render $IVO_HOSTS without our block"
if [ -f "$IVO_HOSTS" ] && ! ivo_same "$S.hosts.offboard" "$IVO_HOSTS"; then
  ivo_run hosts ivo_hosts_write "$S.hosts.offboard" "$IVO_HOSTS"
  ivo_emit hosts removed
fi
CUR_VER=$(ivo_installed_version)
if [ -n "$CUR_VER" ]; then
  if command -v dpkg-query >/dev/null 2>&1; then
    ivo_run purge env DEBIAN_FRONTEND=noninteractive dpkg --purge "$IVO_PACKAGE_NAME"
  else
    ivo_run purge rpm -e "$IVO_PACKAGE_NAME"
  fi
  ivo_emit64 package.removed "$CUR_VER"
fi
ivo_remove_new_path() {
  if ! grep -q -x "path $1" "$S/baseline" && { [ -e "$1" ] || [ -L "$1" ]; }; then
    ivo_run remove rm -rf "$1"
    ivo_emit64 removed "$1"
  fi
}
if [ -f "$S/baseline" ]; then
  ivo_each_line "$IVO_BASELINE_PATHS" ivo_remove_new_path
  if ! grep -q -x "user $IVO_PROXY_USER" "$S/baseline" && getent passwd "$IVO_PROXY_USER" >/dev/null 2>&1; then
    if command -v userdel >/dev/null 2>&1; then ivo_run user userdel "$IVO_PROXY_USER"; else ivo_run user deluser --system "$IVO_PROXY_USER"; fi
    ivo_emit64 removed "user $IVO_PROXY_USER"
  fi
  if ! grep -q -x "group $IVO_PROXY_USER" "$S/baseline" && getent group "$IVO_PROXY_USER" >/dev/null 2>&1; then
    if command -v groupdel >/dev/null 2>&1; then ivo_run group groupdel "$IVO_PROXY_USER"; else ivo_run group delgroup --system "$IVO_PROXY_USER"; fi
    ivo_emit64 removed "group $IVO_PROXY_USER"
  fi
else
  ivo_emit baseline missing
fi
ivo_run state rm -rf "$S"
ivo_emit 'done' yes
