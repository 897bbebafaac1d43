#!/usr/bin/env bash
# Rebuild example/rust_tcp.wasm from src/lib.rs (no Cargo, no crates).
#
# Toolchain: Debian's rustc with the Debian wasm32 standard library:
#     apt-get install rustc libstd-rust-dev-wasm32
# (bookworm: rustc 1.63, targets wasm32-wasi and wasm32-unknown-unknown).
# A rustup toolchain usually lacks the wasm32 target, so /usr/bin/rustc is used
# unless RUSTC is set.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(cd "$here/.." && pwd)/rust_tcp.wasm"
RUSTC="${RUSTC:-/usr/bin/rustc}"
TARGET="${TARGET:-wasm32-wasi}"

if [[ ! -x "$RUSTC" ]]; then
  echo "build.sh: $RUSTC not found; apt-get install rustc libstd-rust-dev-wasm32" >&2
  exit 1
fi
libdir="$("$RUSTC" --print target-libdir --target "$TARGET")"
if ! compgen -G "$libdir/libstd-*.rlib" >/dev/null; then
  echo "build.sh: no $TARGET standard library in $libdir; apt-get install libstd-rust-dev-wasm32" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$here"
"$RUSTC" --edition 2021 --crate-name rust_tcp --crate-type cdylib --target "$TARGET" \
  -O -C codegen-units=1 -C strip=debuginfo --remap-path-prefix="$here=." \
  -o "$tmp/rust_tcp.wasm" src/lib.rs
cp "$tmp/rust_tcp.wasm" "$out"
echo "build.sh: $("$RUSTC" --version) $TARGET -> $out ($(wc -c <"$out") bytes, sha256 $(sha256sum "$out" | cut -d' ' -f1))"
