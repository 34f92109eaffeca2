# shellcheck shell=sh
# Rollback, as root: put back the files, hosts block and package version kept by the last apply that
# changed something (but not the token that a re-bootstrap replaced), and restart. A first install (nothing to go back to) is stopped, disabled and
# marked with the FAILED file and the reason.
# Values: IVO_STATE_DIR, IVO_REASON, IVO_EXPECT_SNAPSHOT (empty: any), IVO_HOSTS, IVO_UNIT,
# IVO_FAILED_MARKER, and those of common.sh, hosts-block.sh and managed-files.sh.
umask 077
S=$IVO_STATE_DIR
P="$S/previous"
if command -v dpkg-query >/dev/null 2>&1; then FMT=deb; else FMT=rpm; fi
ivo_remove_temp() { rm -f "$3.ivo-new"; }
ivo_cleanup() {
  ivo_each_managed_file ivo_remove_temp
  rm -f "$IVO_RUNTIME_TOKEN.ivo-new" "$IVO_HOSTS.ivo-new" "$S/hosts.rollback"
  ivo_cleanup_err
}
trap ivo_cleanup EXIT
trap '' HUP PIPE
ivo_lock
FIRST=0
PREV_VER=
if [ ! -d "$P" ]; then
  FIRST=1
else
  if [ -n "$IVO_EXPECT_SNAPSHOT" ] && [ "$(head -n1 "$P/id" 2>/dev/null)" != "$IVO_EXPECT_SNAPSHOT" ]; then
    ivo_fail snapshot-mismatch "the kept previous state is from another run (expected snapshot $IVO_EXPECT_SNAPSHOT); nothing was changed"
  fi
  PREV_VER=$(head -n1 "$P/package-version" 2>/dev/null)
  [ -z "$PREV_VER" ] && FIRST=1
  [ -f "$P/cluster.env.absent" ] && FIRST=1
fi
if [ "$FIRST" = 1 ]; then
  systemctl stop "$IVO_UNIT" 9>&- >/dev/null 2>&1
  systemctl disable "$IVO_UNIT" 9>&- >/dev/null 2>&1
  install -d -m 0700 "$S" 2>/dev/null
  printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$IVO_REASON" > "$IVO_FAILED_MARKER" || ivo_fail mark "cannot write $IVO_FAILED_MARKER"
  ivo_emit result stopped-and-marked
  ivo_emit 'done' yes
  exit 0
fi
ivo_restore() {
  # ivo_restore KEY STAGED PATH OWNER MODE RESTARTS (a managed file's row). After a re-bootstrap the kept
  # token is the one the agent could no longer use (its certificate is gone): the fresh one stays.
  if [ "$1" = token ] && [ -f "$P/token.keep-fresh" ]; then
    ivo_emit token.kept fresh
    return 0
  fi
  if [ -f "$P/$2.absent" ]; then
    if [ -f "$3" ]; then ivo_run restore rm -f "$3"; ivo_emit restored "$1"; fi
  elif [ -f "$P/$2" ] && ! ivo_same "$P/$2" "$3"; then
    ivo_stage_file "$P/$2" "$3" "$4" "$5"
    ivo_commit_file "$3" "$4"
    ivo_emit restored "$1"
  fi
}
ivo_each_managed_file ivo_restore
ivo_hosts_render "$IVO_HOSTS" "$P/hosts-block" "$S/hosts.rollback" || ivo_fail hosts "cannot render $IVO_HOSTS from the kept block"
if ! ivo_same "$S/hosts.rollback" "$IVO_HOSTS"; then
  ivo_run hosts ivo_hosts_write "$S/hosts.rollback" "$IVO_HOSTS"
  ivo_emit restored hosts
fi
ivo_sync_runtime_token
CUR_VER=$(ivo_installed_version)
if [ "$CUR_VER" != "$PREV_VER" ]; then
  if [ -f "$P/package.$FMT" ]; then
    if [ "$FMT" = deb ]; then
      ivo_run package env DEBIAN_FRONTEND=noninteractive dpkg -i "$P/package.$FMT"
    else
      ivo_run package rpm -U --oldpackage --replacepkgs "$P/package.$FMT"
    fi
    ln -f "$P/package.$FMT" "$S/package/current.$FMT" 2>/dev/null || cp -p "$P/package.$FMT" "$S/package/current.$FMT"
    ivo_sha "$P/package.$FMT" > "$S/package/current.sha256"
    ivo_emit64 package.restored "$PREV_VER"
  else
    ivo_emit package.not-restorable yes
  fi
fi
ivo_run reload systemctl daemon-reload
ivo_run enable systemctl enable "$IVO_UNIT"
ivo_run restart systemctl restart "$IVO_UNIT"
rm -f "$IVO_FAILED_MARKER"
ivo_emit result rolled-back
ivo_emit 'done' yes
