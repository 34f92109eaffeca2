# shellcheck shell=sh
# Inspect, as root: disk, the installed sidecar, hashes of the managed files (never the token's
# content), the managed hosts block, the lock and a FAILED marker, 15012 reachability from the VM (as
# the proxy user: see probe-as-proxy.sh), the VM's source address towards the gateway and the CA_ADDR
# line of cluster.env (the istiod its sidecar dials).
# Values: IVO_PACKAGE_NAME, IVO_PACKAGE_DIR, IVO_UNIT, IVO_RUNTIME_TOKEN, IVO_HOSTS, IVO_FAILED_MARKER,
# IVO_LOCK_FILE, IVO_EW_HOST, IVO_EW_PORT, IVO_EW_IS_IP (1|0), IVO_REACH_TIMEOUT (seconds),
# IVO_CONTENT_FILES (lines of: KEY PATH, files whose content to return), IVO_PROV_CHAIN (the certificate
# pilot-agent renews with: src/verify/provisioned-certificate.ts), and those of hosts-block.sh,
# managed-files.sh and probe-as-proxy.sh.
ivo_emit root yes
ivo_emit df.root "$(df -Pk / 2>/dev/null | awk 'NR==2 {print $4}')"
ivo_emit df.varlib "$(df -Pk /var/lib 2>/dev/null | awk 'NR==2 {print $4}')"
if command -v dpkg-query >/dev/null 2>&1; then
  ivo_v=$(dpkg-query -W -f='${Status} ${Version}' "$IVO_PACKAGE_NAME" 2>/dev/null) || ivo_v=
  case "$ivo_v" in "install ok installed "*) ivo_emit64 pkg.version "${ivo_v#install ok installed }";; esac
elif command -v rpm >/dev/null 2>&1; then
  ivo_v=$(rpm -q --qf '%{VERSION}-%{RELEASE}' "$IVO_PACKAGE_NAME" 2>/dev/null) && ivo_emit64 pkg.version "$ivo_v"
fi
[ -f "$IVO_PACKAGE_DIR/current.sha256" ] && ivo_emit pkg.sha256 "$(head -n1 "$IVO_PACKAGE_DIR/current.sha256")"
command -v systemctl >/dev/null 2>&1 && ivo_emit unit.state "$(systemctl is-active "$IVO_UNIT" 2>/dev/null | head -n1)"
ivo_file_hash() {
  # ivo_file_hash KEY PATH: the file's sha256, or - when it is absent
  if [ -f "$2" ]; then ivo_emit "file.$1" "$(sha256sum < "$2" | cut -d' ' -f1)"; else ivo_emit "file.$1" -; fi
}
ivo_hash_managed() {
  ivo_file_hash "$1" "$3"
  # The istiod address the running sidecar dials (a revision move changes it): CA_ADDR of cluster.env.
  if [ "$1" = clusterEnv ] && [ -f "$3" ]; then
    ivo_emit64 ca.addr "$(sed -n 's/^CA_ADDR=//p' "$3" | head -n1)"
  fi
}
ivo_each_managed_file ivo_hash_managed
ivo_file_hash runtimeToken "$IVO_RUNTIME_TOKEN"
if grep -q -x -e "$IVO_HOSTS_BEGIN" "$IVO_HOSTS" 2>/dev/null; then
  ivo_emit64 hosts.block "$(ivo_hosts_extract "$IVO_HOSTS")"
fi
[ -f "$IVO_FAILED_MARKER" ] && ivo_emit_file failed "$IVO_FAILED_MARKER"
if [ -e "$IVO_LOCK_FILE" ] && command -v flock >/dev/null 2>&1; then
  if flock -n "$IVO_LOCK_FILE" true; then ivo_emit lock free; else ivo_emit lock held; fi
elif command -v flock >/dev/null 2>&1; then
  ivo_emit lock free
fi
ivo_probe_as_choose
if command -v timeout >/dev/null 2>&1 && command -v bash >/dev/null 2>&1; then
  # shellcheck disable=SC2016 # $1 and $2 belong to bash -c
  ivo_ew_out=$(ivo_probe_as timeout "$IVO_REACH_TIMEOUT" bash -c 'exec 3<>"/dev/tcp/$1/$2"' ivo "$IVO_EW_HOST" "$IVO_EW_PORT" 2>&1 </dev/null)
  ivo_emit ew.rc "$?"
  ivo_emit64 ew.detail "$ivo_ew_out"
elif command -v nc >/dev/null 2>&1; then
  ivo_ew_out=$(ivo_probe_as nc -z -w "$IVO_REACH_TIMEOUT" "$IVO_EW_HOST" "$IVO_EW_PORT" 2>&1 </dev/null)
  ivo_emit ew.rc "$?"
  ivo_emit64 ew.detail "$ivo_ew_out"
fi
if [ "$IVO_EW_IS_IP" = 1 ]; then
  ivo_gw=$IVO_EW_HOST
else
  ivo_gw=$(getent ahosts "$IVO_EW_HOST" 2>/dev/null | awk 'NR==1 {print $1}')
fi
if [ -n "$ivo_gw" ] && command -v ip >/dev/null 2>&1; then
  ivo_emit64 route "$(ip -o route get "$ivo_gw" 2>&1 | head -n1)"
else
  ivo_emit64 route "cannot resolve $IVO_EW_HOST or no ip command"
fi
ivo_emit_content() {
  # ivo_emit_content "KEY PATH"
  ivo_ec_path=${1#* }
  if [ -f "$ivo_ec_path" ]; then ivo_emit_file "content.${1%% *}" "$ivo_ec_path"; fi
}
ivo_each_line "$IVO_CONTENT_FILES" ivo_emit_content
# The certificate pilot-agent renews with (/etc/certs/cert-chain.pem): read as the proxy user, who writes it and owns its
# directory (root never opens a name that user can swap), and the VM's clock to judge it by.
if [ -n "$ivo_px_via" ] && [ -f "$IVO_PROV_CHAIN" ]; then
  ivo_emit64 prov.cert "$(ivo_probe_as head -c 65536 "$IVO_PROV_CHAIN" 2>/dev/null </dev/null)"
fi
ivo_emit clock "$(date +%s)"
ivo_emit 'done' yes
