#!/usr/bin/env bash
# Prints the per-kernel resource table of docs/kernels.md: registers, shared memory, stack and
# spills reported by `ptxas -v` for every GPU kernel, for sm_80 and sm_90 (or the archs given).
# Needs no GPU. Installs ptxas into .tools/ first if it is missing.
# Usage: tools/kernel-report.sh [sm_80 sm_90 ...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ptxas="${PTXAS:-$repo/.tools/ptxas}"
if [[ ! -x "$ptxas" ]]; then
    if command -v ptxas >/dev/null; then ptxas="$(command -v ptxas)"; else "$repo/.ci/install-ptxas.sh" >&2; ptxas="$repo/.tools/ptxas"; fi
fi
exec dotnet run --project "$repo/tools/KernelReport" -c Release -- --ptxas "$ptxas" "$@"
