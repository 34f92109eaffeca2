# shellcheck shell=sh
# Runs on the VM as root, from the directory the lean reference's tar stream was unpacked into:
#   sh lean-remote.sh PACKAGE_URL SHA256
# The same steps as the runbook, batched: fetch + check + install the package, place the five files
# with their owners, append the hosts file, start the sidecar. Any failure ends the script non-zero.
set -eu
url=$1 sha=$2
curl -sS -f -o istio-sidecar.deb "$url"
echo "$sha  istio-sidecar.deb" | sha256sum -c --quiet -
DEBIAN_FRONTEND=noninteractive dpkg -i istio-sidecar.deb >/dev/null
install -d -o istio-proxy /etc/certs /var/run/secrets/tokens /etc/istio/proxy
install -o istio-proxy -m 0644 root-cert.pem /etc/certs/root-cert.pem
install -o istio-proxy -m 0600 istio-token /var/run/secrets/tokens/istio-token
install -o istio-proxy -m 0644 cluster.env /var/lib/istio/envoy/cluster.env
install -o istio-proxy -m 0644 mesh.yaml /etc/istio/config/mesh
cat hosts >> /etc/hosts
systemctl start istio
