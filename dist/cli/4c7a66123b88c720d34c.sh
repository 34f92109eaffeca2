# shellcheck shell=sh
# Round trip 2, as root: make the VM match the rendered files and package, under the VM lock. The files
# arrive as one tar stream on stdin (with a manifest of sha256s, so a cut upload changes nothing); the
# package is downloaded and verified here when there is a URL (or it is in the same tar stream). Files
# are staged, compared, the previous state is kept for rollback, then each file is renamed into place;
# the unit is (re)started only when something that matters changed.
# Values: IVO_STATE_DIR, IVO_STAGING, IVO_FORMAT (deb|rpm), IVO_WANT_VERSION, IVO_WANT_SHA, IVO_PACKAGE_URL,
# IVO_PACKAGE_UPLOADED (1|0), IVO_PACKAGE_SPACE_KIB, IVO_RESTART_POLICY (if-changed|always), IVO_UPLOAD_TIMEOUT (seconds, 0: unbounded),
# IVO_SNAPSHOT_ID, IVO_BASELINE_PATHS (one a line), IVO_HOSTS, IVO_UNIT, IVO_FAILED_MARKER,
# IVO_PLACEMENT_DIRS (one a line), IVO_DROP_IN_DIR, IVO_TOKEN_DIR, IVO_REBOOTSTRAP (1|0), IVO_PROV_DIR,
# IVO_PROV_CHAIN, IVO_PROV_KEY, and those of common.sh,
# hosts-block.sh and managed-files.sh.
umask 077
S=$IVO_STATE_DIR
STG=$IVO_STAGING
FMT=$IVO_FORMAT
ivo_remove_temp() { rm -f "$3.ivo-new"; }
ivo_cleanup() {
  rm -rf "$STG" "$S/previous.new"
  ivo_each_managed_file ivo_remove_temp
  rm -f "$IVO_RUNTIME_TOKEN.ivo-new" "$IVO_HOSTS.ivo-new"
  ivo_conntrack_unprime
  ivo_cleanup_err
}
# Before the sidecar (re)starts, connection tracking must follow this SSH session: the sidecar's nat
# REDIRECT rules spare only flows conntrack already tracks, so on a VM where nothing used conntrack
# before, a session older than the rules is redirected mid-stream and hangs (checked in the lab: a
# nat-only rule is not enough, a conntrack match is). A conntrack rule in a chain nothing jumps to (so
# no packet is ever judged by it) turns tracking on; the session's next packets are tracked; then chain
# and rule go, and the entries they made stay. Primed as soon as a start is known to come, so the
# package install and the file placement give the session's packets time to pass.
IVO_PRIMED_AT=
ivo_conntrack_prime() {
  [ -n "$IVO_PRIMED_AT" ] && return 0
  command -v iptables >/dev/null 2>&1 || return 0
  iptables -w -N IVO_CONNTRACK_PRIME 2>/dev/null || true
  if iptables -w -A IVO_CONNTRACK_PRIME -m conntrack --ctstate INVALID -j RETURN 2>/dev/null; then
    IVO_PRIMED_AT=$(date +%s%3N 2>/dev/null)
    case "$IVO_PRIMED_AT" in ''|*[!0-9]*) IVO_PRIMED_AT=0 ;; esac
    ivo_emit conntrack primed
  fi
  return 0
}
# Just before the start: at least 0.3 s since priming (packets of this session have passed), then clean up.
ivo_conntrack_settle() {
  [ -n "$IVO_PRIMED_AT" ] || return 0
  ivo_ps_now=$(date +%s%3N 2>/dev/null)
  case "$ivo_ps_now" in ''|*[!0-9]*) sleep 0.3 ;; *) [ $(( ivo_ps_now - IVO_PRIMED_AT )) -lt 300 ] && sleep 0.3 ;; esac
  ivo_conntrack_unprime
}
ivo_conntrack_unprime() {
  [ -n "$IVO_PRIMED_AT" ] || return 0
  iptables -w -F IVO_CONNTRACK_PRIME 2>/dev/null
  iptables -w -X IVO_CONNTRACK_PRIME 2>/dev/null
  IVO_PRIMED_AT=
  return 0
}
trap ivo_cleanup EXIT
# finish what was started even if the SSH connection goes away
trap '' HUP PIPE
ivo_lock
ivo_need_space 1024 "the staged files"
ivo_run state install -d -m 0700 "$S" "$S/package"
ivo_baseline_path() { if [ -e "$1" ] || [ -L "$1" ]; then echo "path $1"; fi; }
if [ ! -f "$S/baseline" ]; then
  if ! {
    ivo_each_line "$IVO_BASELINE_PATHS" ivo_baseline_path
    getent passwd "$IVO_PROXY_USER" >/dev/null 2>&1 && echo "user $IVO_PROXY_USER"
    getent group "$IVO_PROXY_USER" >/dev/null 2>&1 && echo "group $IVO_PROXY_USER"
    ivo_bv=$(ivo_installed_version)
    [ -n "$ivo_bv" ] && echo "package $ivo_bv"
    true
  } > "$S/baseline.new" 2>/dev/null || ! mv -f "$S/baseline.new" "$S/baseline"; then
    ivo_fail state "cannot record $S/baseline (disk full?)"
  fi
fi

# 1. receive the upload (one tar stream) and check it against its manifest
rm -rf "$STG"
ivo_run staging install -d -m 0700 "$STG"
# A runner gone mid-upload over a connection sshd still thinks open sends no EOF: bounded (IVO_UPLOAD_TIMEOUT,
# the run's vm-timeout, after which the runner has given up on this VM), the wait ends and the lock is freed.
if [ "$IVO_UPLOAD_TIMEOUT" -gt 0 ] 2>/dev/null && command -v timeout >/dev/null 2>&1; then
  timeout "$IVO_UPLOAD_TIMEOUT" tar -xf - -C "$STG" >"$IVO_ERR" 2>&1 || {
    ivo_rc=$?
    [ "$ivo_rc" = 124 ] && echo "no complete upload within ${IVO_UPLOAD_TIMEOUT}s (the runner went away?)" >>"$IVO_ERR"
    ivo_step_failed upload "$ivo_rc" "$(tail -c 1500 "$IVO_ERR")"
  }
else
  tar -xf - -C "$STG" >"$IVO_ERR" 2>&1 || ivo_step_failed upload $? "$(tail -c 1500 "$IVO_ERR")"
fi
[ -f "$STG/MANIFEST" ] || ivo_fail upload "the upload is incomplete (no manifest; connection cut?); nothing was changed"
(cd "$STG" && sha256sum -c MANIFEST) >"$IVO_ERR" 2>&1 || ivo_step_failed upload $? "$(tail -c 1500 "$IVO_ERR")"

# 2. the package: skip when that version is installed; else fetch (or take the upload) and verify
CUR_VER=$(ivo_installed_version)
CUR_SHA=$(head -n1 "$S/package/current.sha256" 2>/dev/null)
PKG_NEEDED=1
if [ -n "$CUR_VER" ]; then
  if [ -n "$IVO_WANT_VERSION" ]; then
    case "$CUR_VER" in "$IVO_WANT_VERSION"|"$IVO_WANT_VERSION"-*|"$IVO_WANT_VERSION"~*) PKG_NEEDED=0 ;; esac
  fi
  if [ -n "$IVO_WANT_SHA" ] && [ "$CUR_SHA" = "$IVO_WANT_SHA" ]; then PKG_NEEDED=0; fi
fi
PKG_FILE="$STG/package.$FMT"
GOT_SHA=
if [ "$PKG_NEEDED" = 1 ]; then
  ivo_need_space "$IVO_PACKAGE_SPACE_KIB" "the sidecar package"
  if [ "$IVO_PACKAGE_UPLOADED" = 1 ]; then
    [ -f "$PKG_FILE" ] || ivo_fail upload "the package is missing from the upload"
    PKG_SOURCE=upload
  else
    [ -n "$IVO_PACKAGE_URL" ] || ivo_fail package "$IVO_PACKAGE_NAME $IVO_WANT_VERSION is not installed and there is neither a package URL nor an upload"
    if command -v curl >/dev/null 2>&1; then
      ivo_run download curl -fsSL --retry 2 --connect-timeout 15 --max-time 900 -o "$PKG_FILE" "$IVO_PACKAGE_URL"
    elif command -v wget >/dev/null 2>&1; then
      ivo_run download wget -q -T 30 -t 2 -O "$PKG_FILE" "$IVO_PACKAGE_URL"
    else
      ivo_fail download "neither curl nor wget on the VM to download $IVO_PACKAGE_URL"
    fi
    PKG_SOURCE="download from $IVO_PACKAGE_URL"
  fi
  GOT_SHA=$(ivo_sha "$PKG_FILE")
  if [ -n "$IVO_WANT_SHA" ] && [ "$GOT_SHA" != "$IVO_WANT_SHA" ]; then
    ivo_fail checksum "sidecar package checksum mismatch: expected $IVO_WANT_SHA, got $GOT_SHA ($PKG_SOURCE); nothing was installed"
  fi
  case "$FMT" in
    deb)
      PKG_ARCH=$(dpkg-deb -f "$PKG_FILE" Architecture 2>/dev/null)
      SYS_ARCH=$(dpkg --print-architecture 2>/dev/null)
      ;;
    rpm)
      PKG_ARCH=$(rpm -qp --qf '%{ARCH}' "$PKG_FILE" 2>/dev/null)
      SYS_ARCH=$(uname -m)
      ;;
  esac
  case "$PKG_ARCH" in
    ""|all|noarch|"$SYS_ARCH") ;;
    *) ivo_fail package-arch "the sidecar package is built for $PKG_ARCH but this VM is $SYS_ARCH; nothing was installed" ;;
  esac
  ivo_emit package.source "${PKG_SOURCE%% *}"
fi

# 3. what changes
CHANGED=" "
RESTART=0
ivo_check() {
  # ivo_check KEY STAGED PATH OWNER MODE RESTARTS COMPARED-AS (a managed file's row)
  if ivo_same_as "$7" "$STG/$2" "$3"; then
    ivo_emit "file.$1" unchanged
  else
    ivo_emit "file.$1" changed
    CHANGED="$CHANGED$1 "
    [ "$6" = 1 ] && RESTART=1
  fi
  return 0
}
ivo_changed() { case "$CHANGED" in *" $1 "*) return 0 ;; esac; return 1; }
ivo_each_managed_file ivo_check
ivo_hosts_render "$IVO_HOSTS" "$STG/hosts-block" "$STG/hosts.new"
ivo_hr_rc=$?
[ "$ivo_hr_rc" = 3 ] && ivo_fail hosts-corrupt "$IVO_HOSTS has a '$IVO_HOSTS_BEGIN' line without its '$IVO_HOSTS_END'; nothing was changed"
[ "$ivo_hr_rc" = 0 ] || ivo_fail hosts "cannot render the new $IVO_HOSTS (exit $ivo_hr_rc)"
if [ -f "$IVO_HOSTS" ] && ivo_same "$STG/hosts.new" "$IVO_HOSTS"; then
  ivo_emit file.hosts unchanged
else
  ivo_emit file.hosts changed
  CHANGED="${CHANGED}hosts "
  RESTART=1
fi

# 4. keep the state before this run for rollback
ivo_snapshot_managed() {
  if [ -f "$3" ]; then ivo_snapshot_file "$3" "$4" "$SNAP/$2"; else : > "$SNAP/$2.absent"; fi
}
if [ "$CHANGED" != " " ] || [ "$PKG_NEEDED" = 1 ]; then
  SNAP="$S/previous.new"
  rm -rf "$SNAP"
  ivo_run snapshot install -d -m 0700 "$SNAP"
  ivo_each_managed_file ivo_snapshot_managed
  ivo_hosts_extract "$IVO_HOSTS" > "$SNAP/hosts-block" || ivo_fail snapshot "cannot save the current hosts block"
  printf '%s\n' "$CUR_VER" > "$SNAP/package-version"
  # A re-bootstrap replaces a token the agent can no longer use and removes the certificate it renewed
  # with: a rollback of this run keeps the fresh token, or the VM would be left with neither.
  if [ "$IVO_REBOOTSTRAP" = 1 ]; then : > "$SNAP/token.keep-fresh" || ivo_fail snapshot "cannot mark the snapshot"; fi
  if [ "$PKG_NEEDED" = 1 ] && [ -n "$CUR_VER" ] && [ -f "$S/package/current.$FMT" ]; then
    ln -f "$S/package/current.$FMT" "$SNAP/package.$FMT" 2>/dev/null || ivo_run snapshot cp -p "$S/package/current.$FMT" "$SNAP/package.$FMT"
  fi
  printf '%s\n' "$IVO_SNAPSHOT_ID" > "$SNAP/id" || ivo_fail snapshot "cannot write the snapshot (disk full?)"
  rm -rf "$S/previous"
  ivo_run snapshot mv -f "$SNAP" "$S/previous"
  ivo_emit snapshot "$IVO_SNAPSHOT_ID"
fi

# A (re)start will come (package or a restarting file changed, or a re-bootstrap): prime connection tracking now.
{ [ "$PKG_NEEDED" = 1 ] || [ "$RESTART" = 1 ] || [ "$IVO_RESTART_POLICY" = always ] || [ "$IVO_REBOOTSTRAP" = 1 ]; } && ivo_conntrack_prime

# 5. install the package
ivo_pkg_failed() {
  ivo_pf_rc=$1
  ivo_pf_out=$(tail -c 1500 "$IVO_ERR" 2>/dev/null)
  # leave no half-configured package behind
  if [ -z "$CUR_VER" ]; then
    if [ "$FMT" = deb ]; then dpkg --purge "$IVO_PACKAGE_NAME" 9>&- >/dev/null 2>&1; else rpm -e "$IVO_PACKAGE_NAME" 9>&- >/dev/null 2>&1; fi
  elif [ -f "$S/package/current.$FMT" ]; then
    if [ "$FMT" = deb ]; then dpkg -i "$S/package/current.$FMT" 9>&- >/dev/null 2>&1; else rpm -U --oldpackage --replacepkgs "$S/package/current.$FMT" 9>&- >/dev/null 2>&1; fi
  fi
  ivo_step_failed install "$ivo_pf_rc" "$ivo_pf_out"
}
if [ "$PKG_NEEDED" = 1 ]; then
  if [ "$FMT" = deb ]; then
    env DEBIAN_FRONTEND=noninteractive dpkg -i "$PKG_FILE" 9>&- >"$IVO_ERR" 2>&1 || ivo_pkg_failed $?
  else
    getent group "$IVO_PROXY_USER" >/dev/null 2>&1 || ivo_run install groupadd -r "$IVO_PROXY_USER"
    if [ -n "$CUR_VER" ]; then
      rpm -U --oldpackage --replacepkgs "$PKG_FILE" 9>&- >"$IVO_ERR" 2>&1 || ivo_pkg_failed $?
    else
      rpm -i "$PKG_FILE" 9>&- >"$IVO_ERR" 2>&1 || ivo_pkg_failed $?
    fi
  fi
  ivo_run keep-package mv -f "$PKG_FILE" "$S/package/current.$FMT"
  printf '%s\n' "$GOT_SHA" > "$S/package/current.sha256"
  if [ -n "$CUR_VER" ]; then ivo_emit package.action upgraded; else ivo_emit package.action installed; fi
  RESTART=1
else
  ivo_emit package.action unchanged
fi
ivo_emit64 package.version "$(ivo_installed_version)"
ivo_emit64 package.previous "$CUR_VER"
getent passwd "$IVO_PROXY_USER" >/dev/null 2>&1 || ivo_fail install "there is no $IVO_PROXY_USER user after installing $IVO_PACKAGE_NAME"

# 6. place the files: all new files next to their targets first, then one rename each
ivo_proxy_dir() { ivo_run dirs install -d -o "$IVO_PROXY_USER" -g "$IVO_PROXY_USER" -m 0755 "$1"; }
ivo_each_line "$IVO_PLACEMENT_DIRS" ivo_proxy_dir
ivo_run dirs install -d -o "$IVO_PROXY_USER" -g "$IVO_PROXY_USER" -m 0700 "$IVO_TOKEN_DIR"
ivo_run dirs install -d -m 0755 "$IVO_DROP_IN_DIR"
ivo_stage_changed() { if ivo_changed "$1"; then ivo_stage_file "$STG/$2" "$3" "$4" "$5"; fi; }
ivo_commit_changed() { if ivo_changed "$1"; then ivo_commit_file "$3" "$4"; fi; }
ivo_fix_managed() { ivo_fix_file "$3" "$4" "$5"; }
ivo_each_managed_file ivo_stage_changed
ivo_each_managed_file ivo_commit_changed
ivo_each_managed_file ivo_fix_managed
if ivo_changed hosts; then ivo_run hosts ivo_hosts_write "$STG/hosts.new" "$IVO_HOSTS"; fi
ivo_sync_runtime_token

# 6b. re-bootstrap (the runner found the certificate pilot-agent renews with expired): the agent presents
# cert-chain.pem and key.pem in /etc/certs once they exist (istio-start.sh points it there), so they go,
# and it starts over with the fresh token placed above. The proxy user owns that directory and removes
# them: an unlink never follows a symlink, and root opens nothing there. /etc/certs itself is a name in
# root's /etc.
if [ "$IVO_REBOOTSTRAP" = 1 ]; then
  [ -L "$IVO_PROV_DIR" ] && ivo_fail rebootstrap "$IVO_PROV_DIR is a symlink; not touched"
  ivo_run rebootstrap ivo_as_proxy rm -f -- "$IVO_PROV_CHAIN" "$IVO_PROV_KEY"
  { [ -e "$IVO_PROV_CHAIN" ] || [ -L "$IVO_PROV_CHAIN" ] || [ -e "$IVO_PROV_KEY" ] || [ -L "$IVO_PROV_KEY" ]; } &&
    ivo_fail rebootstrap "$IVO_PROV_CHAIN or $IVO_PROV_KEY is still there after removing it"
  ivo_emit rebootstrap removed
  RESTART=1
fi

# 7. the unit: (re)start only when something that matters changed, or it is not running.
if ivo_changed dropIn; then ivo_run reload systemctl daemon-reload; fi
[ "$IVO_RESTART_POLICY" = always ] && RESTART=1
if [ "$RESTART" = 1 ]; then
  ivo_run enable systemctl enable "$IVO_UNIT"
  ivo_conntrack_prime
  ivo_conntrack_settle
  ivo_run restart systemctl restart "$IVO_UNIT"
  ivo_emit service restarted
else
  case "$(systemctl is-active "$IVO_UNIT" 2>/dev/null | head -n1)" in
    active|activating|reloading) ivo_emit service unchanged ;;
    *)
      ivo_run enable systemctl enable "$IVO_UNIT"
      ivo_conntrack_prime
      ivo_conntrack_settle
      ivo_run restart systemctl start "$IVO_UNIT"
      ivo_emit service started
      ;;
  esac
fi
rm -f "$IVO_FAILED_MARKER"
ivo_emit lock.released "$(date +%s.%N)"
ivo_emit 'done' yes
