#!/bin/bash
# Baseline (a): the seed runbook (../shared/seeds/000_*.txt, "VM setup") as a script. One ssh/scp per
# runbook command, VM after VM, exactly the runbook's steps: put the five rendered files into the home
# directory, curl -LO the package on the VM, dpkg -i, mkdir/cp each file into Istio's paths, append
# the hosts file, mkdir + chown, systemctl start istio.
#
#   runbook.sh KEY KNOWN_HOSTS USER PACKAGE_URL FILES_ROOT VM_NAME=IP [VM_NAME=IP ...]
# FILES_ROOT/<vm name>/ holds cluster.env hosts istio-token mesh.yaml root-cert.pem (rendered by the
# action's CLI). Exits non-zero at the first failed command (like an operator stopping there).
# The quoted remote commands expand on the VM, not here:
# shellcheck disable=SC2016
set -euo pipefail
KEY=$1 KNOWN_HOSTS=$2 LOGIN=$3 URL=$4 FILES=$5
shift 5
OPTS=(-i "$KEY" -o "UserKnownHostsFile=$KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o BatchMode=yes
  -o ConnectTimeout=10 -o LogLevel=ERROR)

for pair in "$@"; do
  name=${pair%%=*} ip=${pair#*=}
  target="$LOGIN@$ip"
  on() { timeout 120 ssh "${OPTS[@]}" "$target" "$1"; }
  # sftp> put config/*
  timeout 120 scp -q "${OPTS[@]}" "$FILES/$name/cluster.env" "$FILES/$name/hosts" "$FILES/$name/istio-token" \
    "$FILES/$name/mesh.yaml" "$FILES/$name/root-cert.pem" "$target:"
  on "curl -sS -fLO '$URL'"
  on 'sudo dpkg -i istio-sidecar.deb >/dev/null'
  on 'sudo mkdir -p /etc/certs'
  on 'sudo cp "$HOME"/root-cert.pem /etc/certs/root-cert.pem'
  on 'sudo mkdir -p /var/run/secrets/tokens'
  on 'sudo cp "$HOME"/istio-token /var/run/secrets/tokens/istio-token'
  on 'sudo cp "$HOME"/cluster.env /var/lib/istio/envoy/cluster.env'
  on 'sudo cp "$HOME"/mesh.yaml /etc/istio/config/mesh'
  on "sudo sh -c 'cat \$(eval echo ~\$SUDO_USER)/hosts >> /etc/hosts'"
  on 'sudo mkdir -p /etc/istio/proxy'
  on 'sudo chown -R istio-proxy /var/lib/istio /etc/certs /etc/istio/proxy /etc/istio/config /var/run/secrets /etc/certs/root-cert.pem'
  on 'sudo systemctl start istio'
done
