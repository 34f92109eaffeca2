#!/bin/bash
# istio-start.sh of the lab's istio-sidecar package. Written for the lab after the documented
# behaviour of Istio's tools/packaging/common/istio-start.sh (no code copied):
#   istio-start.sh         remove old traffic capture, install it again, run pilot-agent proxy as istio-proxy
#   istio-start.sh clean   remove the traffic capture (ExecStopPost of the istio unit)
# Paths are relative (./var/lib/...), so they resolve against the working directory: / under systemd.
set -e

ISTIO_SIDECAR_CONFIG=${ISTIO_SIDECAR_CONFIG:-./var/lib/istio/envoy/sidecar.env}
ISTIO_CLUSTER_CONFIG=${ISTIO_CLUSTER_CONFIG:-./var/lib/istio/envoy/cluster.env}
set -a
if [ -r "${ISTIO_SIDECAR_CONFIG}" ]; then
  # shellcheck disable=SC1090
  . "${ISTIO_SIDECAR_CONFIG}"
fi
if [ -r "${ISTIO_CLUSTER_CONFIG}" ]; then
  # shellcheck disable=SC1090
  . "${ISTIO_CLUSTER_CONFIG}"
fi
set +a

ISTIO_BIN_BASE=${ISTIO_BIN_BASE:-/usr/local/bin}
ISTIO_LOG_DIR=${ISTIO_LOG_DIR:-./var/log/istio}
ISTIO_CFG=${ISTIO_CFG:-/var/lib/istio}
NS=${ISTIO_NAMESPACE:-default}
SVC=${ISTIO_SERVICE:-rawvm}
ISTIO_SYSTEM_NAMESPACE=${ISTIO_SYSTEM_NAMESPACE:-istio-system}
CONTROL_PLANE_AUTH_POLICY=${ISTIO_CP_AUTH:-MUTUAL_TLS}
if [ -z "${ISTIO_SVC_IP:-}" ]; then
  ISTIO_SVC_IP=$(hostname --all-ip-addresses | cut -d ' ' -f 1)
fi
if [ -z "${POD_NAME:-}" ]; then
  POD_NAME=$(hostname -s)
fi
if [ -z "${CA_ADDR:-}" ]; then
  if [ -n "${PILOT_ADDRESS:-}" ]; then
    CA_ADDR=${PILOT_ADDRESS}
  else
    CA_ADDR=istiod.${ISTIO_SYSTEM_NAMESPACE}.svc:${ISTIO_PILOT_PORT:-15012}
  fi
fi
PROV_CERT=${PROV_CERT:-./etc/certs}
OUTPUT_CERTS=${OUTPUT_CERTS:-./etc/certs}
export CA_ADDR PROV_CERT OUTPUT_CERTS ISTIO_SVC_IP POD_NAME

if [ "${1:-}" = "clean" ]; then
  if [ "${ISTIO_CUSTOM_IP_TABLES:-}" != "true" ]; then
    "${ISTIO_BIN_BASE}/pilot-agent" istio-iptables --cleanup-only
  fi
  exit 0
fi

if [ "${ISTIO_CUSTOM_IP_TABLES:-}" != "true" ]; then
  "${ISTIO_BIN_BASE}/pilot-agent" istio-iptables --cleanup-only
  "${ISTIO_BIN_BASE}/pilot-agent" istio-iptables
fi

EXEC_USER=${EXEC_USER:-istio-proxy}
if [ "${ISTIO_INBOUND_INTERCEPTION_MODE:-}" = "TPROXY" ]; then
  EXEC_USER=root
fi

if [ -z "${PROXY_CONFIG:-}" ]; then
  PROXY_CONFIG="serviceCluster: ${SVC}
controlPlaneAuthPolicy: ${CONTROL_PLANE_AUTH_POLICY}"
  if [ -n "${PILOT_ADDRESS:-}" ]; then
    PROXY_CONFIG="${PROXY_CONFIG}
discoveryAddress: ${PILOT_ADDRESS}"
  fi
  export PROXY_CONFIG
fi

exec sudo -E -u "${EXEC_USER}" -s /bin/bash -c "INSTANCE_IP=${ISTIO_SVC_IP} POD_NAME=${POD_NAME} POD_NAMESPACE=${NS} exec ${ISTIO_BIN_BASE}/pilot-agent proxy ${ISTIO_AGENT_FLAGS:-} 2>> ${ISTIO_LOG_DIR}/istio.err.log >> ${ISTIO_LOG_DIR}/istio.log"
