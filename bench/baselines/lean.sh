#!/bin/bash
# Baseline (c), the lean reference: hand-optimised OpenSSH, one connection per VM carrying a tar
# stream (the five rendered files + lean-remote.sh) into one batched remote script, all VMs at once.
#
#   lean.sh KEY KNOWN_HOSTS USER PACKAGE_URL SHA256 FILES_ROOT VM_NAME=IP [VM_NAME=IP ...]
# Exits non-zero when any VM failed (after all of them finished).
set -uo pipefail
KEY=$1 KNOWN_HOSTS=$2 LOGIN=$3 URL=$4 SHA=$5 FILES=$6
shift 6
HERE=$(cd "$(dirname "$0")" && pwd)
OPTS=(-i "$KEY" -o "UserKnownHostsFile=$KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o BatchMode=yes
  -o ConnectTimeout=10 -o LogLevel=ERROR)
# shellcheck disable=SC2016 # the remote command expands on the VM
REMOTE='d=$(mktemp -d) && tar -xf - -C "$d" && cd "$d" && sh lean-remote.sh "$0" "$1"; rc=$?; cd / && rm -rf "$d"; exit $rc'

pids=()
for pair in "$@"; do
  name=${pair%%=*} ip=${pair#*=}
  (
    tar -cf - -C "$FILES/$name" cluster.env hosts istio-token mesh.yaml root-cert.pem -C "$HERE" lean-remote.sh |
      timeout 120 ssh "${OPTS[@]}" "$LOGIN@$ip" "sudo sh -c '$REMOTE' '$URL' '$SHA'"
  ) &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
if [ "$failed" -gt 0 ]; then echo "lean: $failed VM(s) failed" >&2; exit 1; fi
