#!/usr/bin/env bash
# Rebuild pwcli's C example plugins from source with the Debian toolchain:
#   apt-get install clang lld wasi-libc libclang-rt-dev-wasm32
# (Debian bookworm: clang/lld 14, wasi-libc 0.0~git20220510). Nothing is
# downloaded here. Outputs (next to this directory's parent):
#   example/myproject.wasm   ABI 0.2.1 example (myproject.c)
#   example/c_abi010.wasm    ABI 0.1.0 example (abi010.c)
# Flags: WASI reactor (exports _initialize), -O2, `malloc` exported for the
# host, DWARF stripped (--strip-debug) but the "name" section kept so
# backtraces show function names. Same sources + same toolchain => same bytes.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$(dirname "$HERE")"
CC="${CC:-clang}"

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "build.sh: $CC not found; install: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32" >&2
    exit 1
fi
if ! command -v wasm-ld >/dev/null 2>&1 && ! ls /usr/bin/wasm-ld-* >/dev/null 2>&1; then
    echo "build.sh: wasm-ld not found; install: apt-get install lld" >&2
    exit 1
fi

CFLAGS=(
    --target=wasm32-wasi
    -mexec-model=reactor
    -O2
    -std=c11
    -Wall -Wextra
    -fno-exceptions
)
LDFLAGS=(
    -Wl,--export=malloc
    -Wl,--strip-debug
    -Wl,-z,stack-size=65536
)

build() {
    local src="$1" out="$2" tmp
    tmp="$(mktemp "$OUT/.${out##*/}.XXXXXX")"
    # Compile from inside the source directory with relative paths so no
    # absolute path can leak into the output.
    (cd "$HERE" && "$CC" "${CFLAGS[@]}" "${LDFLAGS[@]}" "$src" -o "$tmp")
    mv -f "$tmp" "$out"
    chmod 0644 "$out"
    local size sum
    size="$(wc -c <"$out")"
    sum="$(sha256sum "$out" | cut -d' ' -f1)"
    echo "built ${out#"$(dirname "$OUT")/"} from example/c/$src ($size bytes, sha256 $sum)"
}

echo "toolchain: $("$CC" --version | head -n1)"
build myproject.c "$OUT/myproject.wasm"
build abi010.c "$OUT/c_abi010.wasm"
