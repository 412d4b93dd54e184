#!/usr/bin/env bash
# Where a .NET process spends its time, by function, with Linux `perf`:
#   tools/perf-top.sh [-t THREADS] COMMAND...
# e.g. DOTNET_PROCESSOR_COUNT=1 one thread, the CPU attention as a steady workload:
#   tools/perf-top.sh -t 1 dotnet Benchmarks/bin/Release/net10.0/ViTScratch.Benchmarks.dll --attention-loop 20
# The JIT's code is named through the perf map the runtime writes (DOTNET_PerfMapEnabled=1);
# W^X double mapping is turned off, or perf sees only anonymous memory. Tiered compilation is
# off so the samples land in fully optimised code from the start. Prints the 20 hottest symbols.
set -euo pipefail
threads=""
if [[ "${1:-}" == "-t" ]]; then threads="$2"; shift 2; fi
command -v perf >/dev/null || { echo "perf is not installed (Debian: apt-get install linux-perf)" >&2; exit 1; }
out="$(mktemp -d)/perf.data"
env DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 DOTNET_TieredCompilation=0 \
    ${threads:+DOTNET_PROCESSOR_COUNT=$threads} perf record -F 4000 -o "$out" -- "$@"
perf report -i "$out" --no-children --sort symbol 2>/dev/null | grep '%' | head -20 | cut -c1-160
