# shellcheck shell=sh
# workload-certificate's part of round trip 1: the certificate pilot-agent renews with (see
# src/verify/provisioned-certificate.ts), read as the proxy user, who writes it and owns its directory
# (root never opens a name that user can swap). Absent, or no proxy user: an empty section.
# Values: IVO_PROV_CHAIN, and those of probe-as-proxy.sh.
ivo_probe_as_choose >/dev/null
ivo_prov_cert() {
  if [ -n "$ivo_px_via" ] && [ -f "$IVO_PROV_CHAIN" ]; then ivo_probe_as head -c 65536 "$IVO_PROV_CHAIN" </dev/null; fi
}
ivo_cmd provisioned-cert ivo_prov_cert
