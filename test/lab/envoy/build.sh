#!/usr/bin/env bash
# Builds the lab's Envoy stand-in into test/lab/envoy/.bin/envoy (ignored by git). Idempotent: when the binary is
# newer than every source file it is left alone. Needs Go >= 1.26; module downloads use Go's module proxy and cache.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/.bin/envoy"

if ! command -v go >/dev/null 2>&1; then
  echo "envoy stand-in: Go >= 1.26 is needed to build it, and 'go' is not on PATH" >&2
  exit 1
fi
export GOTOOLCHAIN=local # use the Go on PATH; never download another toolchain
ver="$(go env GOVERSION)"
minor="$(printf '%s' "$ver" | sed -E 's/^go1\.([0-9]+).*/\1/')"
if ! [[ "$minor" =~ ^[0-9]+$ ]] || [ "$minor" -lt 26 ]; then
  echo "envoy stand-in: Go >= 1.26 is needed to build it, found $ver" >&2
  exit 1
fi

if [ -x "$out" ]; then
  newer="$(find "$here" -maxdepth 1 \( -name '*.go' -o -name go.mod -o -name go.sum \) ! -name '*_test.go' -newer "$out" | head -n 1)"
  if [ -z "$newer" ]; then
    echo "envoy stand-in: up to date ($out)"
    exit 0
  fi
fi

echo "envoy stand-in: building with $ver into $out ..."
mkdir -p "$here/.bin"
tmp="$(mktemp "$here/.bin/envoy.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
(cd "$here" && go build -trimpath -o "$tmp" .)
mv -f "$tmp" "$out"
trap - EXIT
echo "envoy stand-in: built $out"
