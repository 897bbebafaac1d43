#!/usr/bin/env bash
# Builds the AssemblyScript example plugins into ../as_<name>.wasm.
#
# Toolchain (exact versions, see package.json): @solo-io/proxy-runtime 0.1.8 (proxy-wasm ABI 0.2.0),
# assemblyscript 0.14.9 (which pins binaryen 95.0.0-nightly.20200813).
# Requires node + npm. No lock file is written (.npmrc: package-lock=false); node_modules/ is
# git-ignored. The output is deterministic: same sources + same versions => same bytes
# (no source maps, no debug names, no timestamps).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

npm install --no-package-lock --no-audit --no-fund

plugins=(as_headers as_deny as_httpcall as_body)
if [ "$#" -gt 0 ]; then
  plugins=("$@")
fi

for name in "${plugins[@]}"; do
  echo "asc assembly/${name}.ts -> ../${name}.wasm"
  # --use abort=abort_proc_exit: the SDK's abort handler (logs CRITICAL, then wasi_unstable.proc_exit(255)).
  # --runtime full: the SDK's malloc/free export uses the full (TLSF + ref-counting) runtime.
  # -O: default optimizations (-O3s), as the SDK's own "asbuild:optimized" script.
  ./node_modules/.bin/asc "assembly/${name}.ts" \
    --binaryFile "../${name}.wasm" \
    --use abort=abort_proc_exit \
    --runtime full \
    --optimize
done

if command -v sha256sum >/dev/null 2>&1; then
  (cd .. && sha256sum "${plugins[@]/%/.wasm}")
fi
