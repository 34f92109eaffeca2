#!/usr/bin/env bash
# Builds Istio's own programs (pilot-discovery = istiod, pilot-agent, istioctl) from the Go module pinned in
# scripts/istio/version.env, and copies Istio's VM packaging files (istio-start.sh, istio.service,
# sidecar.env, envoy_bootstrap.json) out of the module cache. Output (ignored by git):
#   .istio/<version>/bin/{pilot-discovery,pilot-agent,istioctl}
#   .istio/<version>/packaging/{istio-start.sh,istio.service,sidecar.env,envoy_bootstrap.json}
#   .istio/<version>/build.stamp   what was built, from what, with which Go
# Idempotent: when the stamp matches, nothing is done (safe from npm test, npm run demo and .ci/run).
# Needs Go >= ISTIO_GO_MIN and the Go module proxy; without them it stops with exit 1 — it never skips.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=version.env
. "$root/scripts/istio/version.env"

say() { printf 'istio build: %s\n' "$*" >&2; }
die() {
  printf 'istio build: error: %s\n' "$*" >&2
  exit 1
}

if ! command -v go >/dev/null 2>&1; then
  die "Go ${ISTIO_GO_MIN} or newer is needed to build Istio's programs (istiod, pilot-agent, istioctl) for the lab, and no 'go' is on PATH. Install Go >= ${ISTIO_GO_MIN} (https://go.dev/dl/) and run this again."
fi
# Never let the go command fetch another toolchain behind our back: the one on PATH must be new enough.
export GOTOOLCHAIN=local
go_version="$(go env GOVERSION)" # e.g. go1.26.8
go_mm="${go_version#go}"
go_major="${go_mm%%.*}"
go_rest="${go_mm#*.}"
go_minor="${go_rest%%[!0-9]*}"
need_major="${ISTIO_GO_MIN%%.*}"
need_minor="${ISTIO_GO_MIN#*.}"
if ! [[ "$go_major" =~ ^[0-9]+$ && "$go_minor" =~ ^[0-9]+$ ]] ||
  ((go_major < need_major || (go_major == need_major && go_minor < need_minor))); then
  die "Go ${ISTIO_GO_MIN} or newer is needed to build ${ISTIO_MODULE}@${ISTIO_MODULE_VERSION}; found ${go_version} ($(command -v go)). Install Go >= ${ISTIO_GO_MIN} and run this again."
fi

out="$root/.istio/$ISTIO_MODULE_VERSION"
bin="$out/bin"
packaging="$out/packaging"
stamp="$out/build.stamp"
programs=(pilot-discovery pilot-agent istioctl)
declare -A package_of=(
  [pilot-discovery]=pilot/cmd/pilot-discovery
  [pilot-agent]=pilot/cmd/pilot-agent
  [istioctl]=istioctl/cmd/istioctl
)
declare -A cold_minutes=([pilot-discovery]=5 [pilot-agent]=2 [istioctl]=1)
packaging_files=(istio-start.sh istio.service sidecar.env envoy_bootstrap.json)

# One build at a time per checkout (test files may call this at once): the second caller waits, then finds
# the outputs up to date.
mkdir -p "$root/.istio"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$root/.istio/build.lock"
  flock 9
fi

want_stamp="module=${ISTIO_MODULE}@${ISTIO_MODULE_VERSION} go=${go_version} programs=${programs[*]} packaging=${packaging_files[*]}"
complete=1
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] || complete=0
for p in "${programs[@]}"; do [ -x "$bin/$p" ] || complete=0; done
for f in "${packaging_files[@]}"; do [ -f "$packaging/$f" ] || complete=0; done
if [ "$complete" = 1 ]; then
  say "up to date: ${ISTIO_MODULE}@${ISTIO_MODULE_VERSION} in ${out#"$root"/}"
  exit 0
fi

mkdir -p "$bin" "$packaging"
rm -f "$stamp"

# The module source (downloaded once into Go's module cache; also gives us the version and packaging files).
say "fetching ${ISTIO_MODULE}@${ISTIO_MODULE_VERSION} from the Go module proxy (once; cached in Go's module cache)…"
moddir="$(cd "$root" && go mod download -json "${ISTIO_MODULE}@${ISTIO_MODULE_VERSION}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [ -z "$moddir" ] || [ ! -d "$moddir" ]; then die "could not download ${ISTIO_MODULE}@${ISTIO_MODULE_VERSION} (see the go command's output above)"; fi

# The human version, as Istio's own Makefile.core.mk derives it: "$(cat VERSION)-dev" for a build from master,
# plus the commit the pseudo-version names, so two builds of master are told apart.
[ -f "$moddir/VERSION" ] || die "$moddir/VERSION is missing; cannot derive the version string"
commit="${ISTIO_MODULE_VERSION##*-}"
build_version="$(tr -d '[:space:]' <"$moddir/VERSION")-dev-${commit:0:8}"
[[ "$build_version" =~ ^[0-9]+\.[0-9]+-dev-[0-9a-f]{8}$ ]] || die "unexpected version string '$build_version' from $moddir/VERSION"

for p in "${programs[@]}"; do
  say "building ${p} ${build_version} (cold build ~${cold_minutes[$p]} min on 2 cores; seconds when Go's build cache is warm)…"
  start=$SECONDS
  GOBIN="$bin" GOFLAGS=-buildvcs=false go install \
    -ldflags "-X istio.io/istio/pkg/version.buildVersion=${build_version}" \
    "${ISTIO_MODULE}/${package_of[$p]}@${ISTIO_MODULE_VERSION}" ||
    die "go install ${ISTIO_MODULE}/${package_of[$p]}@${ISTIO_MODULE_VERSION} failed (see above)"
  say "built ${p} in $((SECONDS - start))s"
done

for f in "${packaging_files[@]}"; do
  src="$moddir/tools/packaging/common/$f"
  [ -f "$src" ] || die "$src is missing from the module"
  install -m 0644 "$src" "$packaging/$f"
done
chmod 0755 "$packaging/istio-start.sh"
printf '%s\n' "$build_version" >"$out/version"
printf '%s\n' "$want_stamp" >"$stamp"
say "done: ${out#"$root"/} (version ${build_version})"
