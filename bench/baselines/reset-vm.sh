# shellcheck shell=sh
# Runs as root inside a lab VM (through nsenter, not SSH) between benchmark runs: removes everything
# an onboarding (the action's or a baseline's) put there, so that the next run is a first install.
# /etc/hosts is restored from the copy taken right after the lab came up.
#   sh reset-vm.sh LOGIN_USER
set -u
login=$1
if [ -x /usr/local/bin/istio-start.sh ] || systemctl is-active istio >/dev/null 2>&1; then
  systemctl stop istio >/dev/null 2>&1
  systemctl disable istio >/dev/null 2>&1
fi
# VMs share the host's PID namespace (and istio-proxy's uid with other VMs and labs): only processes
# in this VM's network namespace are this VM's.
netns=$(readlink /proc/self/ns/net)
own_proxy_pids() {
  for pid in $(ps -o pid= -u istio-proxy 2>/dev/null); do
    [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$netns" ] && echo "$pid"
  done
}
i=0
while [ -n "$(own_proxy_pids)" ] && [ "$i" -lt 20 ]; do sleep 0.25; i=$((i + 1)); done
for pid in $(own_proxy_pids); do kill -KILL "$pid" 2>/dev/null; done
# the unit's ExecStopPost removes traffic capture; make sure, while the tool is still installed
if iptables -w 5 -t nat -S 2>/dev/null | grep -q ISTIO && [ -x /usr/local/bin/istio-start.sh ]; then
  (cd / && /usr/local/bin/istio-start.sh clean >/dev/null 2>&1)
fi
DEBIAN_FRONTEND=noninteractive dpkg --purge istio-sidecar >/dev/null 2>&1
rm -rf /etc/certs /etc/istio /var/lib/istio /var/log/istio /run/secrets/tokens \
  /etc/systemd/system/istio.service.d /var/lib/istio-vm-onboard /var/lock/istio-vm-onboard.lock
rmdir /run/secrets 2>/dev/null
systemctl daemon-reload >/dev/null 2>&1
# -f: userdel looks at every process with that uid, which includes other VMs' sidecars
getent passwd istio-proxy >/dev/null && userdel -f istio-proxy 2>/dev/null
getent group istio-proxy >/dev/null && groupdel istio-proxy
cp /var/tmp/ivo-bench-hosts.orig /etc/hosts
home=$(getent passwd "$login" | cut -d: -f6)
rm -f "$home/cluster.env" "$home/hosts" "$home/istio-token" "$home/mesh.yaml" "$home/root-cert.pem" "$home/istio-sidecar.deb"
rm -rf "$home/.ansible" /root/.ansible
# what is left must be nothing
problems=
dpkg -s istio-sidecar >/dev/null 2>&1 && problems="$problems package"
[ -e /etc/certs ] && problems="$problems /etc/certs"
[ -e /var/lib/istio ] && problems="$problems /var/lib/istio"
iptables -w 5 -t nat -S 2>/dev/null | grep -q ISTIO && problems="$problems iptables"
[ -n "$(own_proxy_pids)" ] && problems="$problems processes"
grep -q istiod /etc/hosts && problems="$problems hosts"
if [ -n "$problems" ]; then echo "reset left:$problems" >&2; exit 1; fi
exit 0
