#!/usr/bin/env bash
# The GPU checks of issue 7, as one script for a lent CUDA machine (no network, no .NET):
#   info, the whole test matrix with cuda (plus cpu), the kernel benchmarks (Benchmarks
#   --kernels-bench: matmul vs cuBLAS, fused vs unfused attention, GB/s vs copy), the lab (every
#   numbered matmul version validated against float64 and timed: Benchmarks --lab matmul), compute-sanitizer memcheck and racecheck over the
#   kernel-matrix tests, a PyTorch cross-check, `vit bench` for vit-tiny and vit-small at several
#   batches next to PyTorch eager on the same model, `vit train` on Fashion-MNIST, a profiled
#   step, Nsight Compute on the matmuls, and the CPU backend against PyTorch's CPU build on this
#   host's AVX-512 cores, each step under the time left. Issue 18 item 4, CUDA graphs (--cuda-graph;
#   not yet run on a GPU when written): `graph` benches vit-micro and vit-tiny at batch 128 with
#   and without the graph, alternated, printing img/s and launches per step; `graphtests` runs
#   the graph tests on cuda (real capture and replay against the ordinary step, bit for bit).
#   That check alone, well under 5 minutes: bash tools/device/gpu-check.sh 280 info,graphtests,graph
# Prepare here with tools/device/pack.sh, then run there with .devkit carried:
#   bash tools/device/gpu-check.sh [seconds] [steps]      steps: comma list, default all but sweep
#   (sweep: tools/device/fashion-sweep.sh, the Fashion-MNIST recipe comparison)
# Results go to $OUT (the device tool's folder) or /tmp/gpu-check.
set -uo pipefail
T0=$(date +%s)
BUDGET=${1:-450}
STEPS=${2:-info,tests,graphtests,graph,kernels,lab,torch,bench,train,profile,memcheck,racecheck,ncu,cpu512}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
exec > >(tee -a "$OUT/gpu-check.log") 2>&1

left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
want() { [[ ",$STEPS," == *",$1,"* ]]; }
# step NAME MAX_SECONDS CMD...: runs CMD under min(MAX, time left); skipped when under 20 s are left.
step() {
  local name=$1 max=$2; shift 2
  want "$name" || return 0
  local l; l=$(left); local t=$(( l < max ? l : max ))
  if (( t < 20 )); then echo "=== $name: SKIPPED, $l s left"; return 0; fi
  echo "=== $name (limit ${t}s, at $(( $(date +%s) - T0 ))s)"
  timeout -k 10 "$t" "$@"
  echo "=== $name: exit $? after $(( $(date +%s) - T0 ))s"
}

# ---- setup: .NET runtime, the build, the data, cuBLAS ------------------------------------------
W=/tmp/vit-devkit
mkdir -p $W
if ! command -v dotnet >/dev/null; then
  mkdir -p $W/dotnet && tar -xJf "$ROOT/.devkit/dotnet.tar.xz" -C $W/dotnet
  export DOTNET_ROOT=$W/dotnet PATH=$W/dotnet:$PATH
fi
tar -xJf "$ROOT/.devkit/app.tar.xz" -C $W
# xunit's console runner resolves assemblies from the app folder but not native libraries from
# runtimes/<rid>/native (dotnet vit.dll does, through vit.deps.json): put SkiaSharp's beside them.
cp $W/app/runtimes/linux-x64/native/* $W/app/
mkdir -p $W/fashion && tar -xJf "$ROOT/.devkit/fashion.tar.xz" -C $W/fashion
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# ILGPU.Algorithms 1.5.3 knows libcublas.so.10-12; a CUDA 13 machine has .so.13 with the same
# v2 entry points, so offer it under the name ILGPU asks for.
CUBLAS=$(find /usr/local/cuda*/lib64 /usr/local/cuda*/targets /usr/lib/x86_64-linux-gnu /opt /usr/local/lib -name 'libcublas.so.1[23]*' 2>/dev/null | sort | head -1)
if [[ -n $CUBLAS ]]; then
  mkdir -p $W/cublas && ln -sf "$CUBLAS" $W/cublas/libcublas.so.12
  export LD_LIBRARY_PATH=$W/cublas:$(dirname "$CUBLAS")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
echo "setup done in $(( $(date +%s) - T0 ))s; dotnet $(dotnet --list-runtimes | head -1); cuBLAS: ${CUBLAS:-not found}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | sed 's/Flags:.*avx512f.*/Flags: ... avx512f .../' | cut -c1-120

VIT="dotnet $W/app/vit.dll"
BENCH="dotnet $W/app/ViTScratch.Benchmarks.dll"
XUNIT="env DOTNET_ROLL_FORWARD=Major dotnet $W/xunit/xunit.console.dll $W/app/ViTScratch.Tests.dll -nocolor"
# Rehearsal on a machine without a GPU: DEV=cpu KDEV="ilgpu-cpu --quick" TRAIN_EXTRA="--train-limit 2000 --epochs 1"
DEV=${DEV:-cuda}; KDEV=${KDEV:-cuda}

step info 30 $VIT info
step tests 170 env VIT_TEST_BACKENDS=cpu,$DEV VIT_REQUIRE_CUDA=${REQUIRE_CUDA:-1} $XUNIT -parallel all -xml "$OUT/tests.xml"
# CUDA graphs: the graph tests on cuda (capture, replay, bit-identical to the ordinary step), then
# each model with and without --cuda-graph, alternated twice so drift shows, same call, same card.
step graphtests 90 env VIT_TEST_BACKENDS=cpu,$DEV VIT_REQUIRE_CUDA=${REQUIRE_CUDA:-1} $XUNIT -class ViTScratch.Tests.Gpu.CudaGraphStepTests -xml "$OUT/graph-tests.xml"
graph() {
  for m in vit-micro vit-tiny; do
    for round in 1 2; do
      for g in "" --cuda-graph; do
        echo "--- $m batch 128 ${g:-ordinary} (round $round)"
        $VIT bench --device $DEV --model $m --batch 128 --steps 20 $g 2>&1 | grep -E "^(launches/step|training|error)"
      done
    done
  done
}
want graph && { export -f graph; export VIT DEV; }
step graph ${GRAPH_LIMIT:-150} bash -c graph
step kernels 100 $BENCH --kernels-bench --device $KDEV --out "$OUT/kernels.md"
step lab 60 $BENCH --lab matmul --device $KDEV
SAN_TESTS="-namespace ViTScratch.Tests.Kernels -parallel none"
step memcheck 150 env VIT_TEST_BACKENDS=cuda compute-sanitizer --tool memcheck --print-limit 20 $XUNIT $SAN_TESTS
step racecheck 150 env VIT_TEST_BACKENDS=cuda compute-sanitizer --tool racecheck --print-limit 20 $XUNIT $SAN_TESTS
step torch 40 python3 "$ROOT/tools/device/torch_reference.py"
export BENCH_SET=${BENCH_SET:-"vit-tiny:128 vit-tiny:256 vit-tiny:512 vit-small:128 vit-small:256 vit-small:512 vit-micro:128"}
# Ours, then PyTorch eager on the same model and shapes (tools/device/torch_vit.py), per size.
bench() {
  for mb in $BENCH_SET; do
    $VIT bench --device $DEV --model ${mb%:*} --batch ${mb#*:} --steps 10
    [[ $DEV == cuda ]] && python3 "$ROOT/tools/device/torch_vit.py" --device cuda --model ${mb%:*} --batch ${mb#*:} --steps 10
  done
}
want bench && { export -f bench; export VIT DEV ROOT; }
step bench ${BENCH_LIMIT:-110} bash -c bench
train() {
  cd $W && time $VIT train --device $DEV --data $W/fashion --out $W/runs/h100-fashion ${TRAIN_EXTRA:-}
  cp $W/runs/h100-fashion/metrics.csv "$OUT/train-metrics.csv"; cp $W/runs/h100-fashion/curves.png "$OUT/train-curves.png"
}
want train && { export -f train; export W OUT VIT DEV; }
step train 150 bash -c train
profile() { for b in ${PROFILE_BATCHES:-128}; do $VIT bench --device $DEV --model vit-tiny --batch $b --steps 5 --profile; done; }
want profile && { export -f profile; export VIT DEV; }
step profile 60 bash -c profile
# Nsight Compute on the matmul launches of a vit-tiny training step (after the first step's):
# throughput against peak, occupancy and why warps stall, to steer the matmul kernels.
NCU_SECTIONS="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis"
step ncu 75 ncu $NCU_SECTIONS -k "regex:(?i)matmul" --launch-skip 40 --launch-count 8 $VIT bench --device $DEV --model vit-tiny --batch 128 --steps 1
# The CPU backend on this machine's AVX-512 cores, on 2 cores like the CI machine (whose Zen 3
# has no AVX-512): what the Vector512 kernels do where the hardware has them, each model
# alternated with PyTorch's CPU build (2 threads, the same 2 cores) in the same call.
cpu512() {
  export DOTNET_PROCESSOR_COUNT=2
  local pin=""; command -v taskset >/dev/null && pin="taskset -c 0,1"
  for m in vit-micro vit-tiny; do
    $pin $VIT bench --device cpu --model $m --batch 128 --steps 5
    $pin python3 "$ROOT/tools/device/torch_vit.py" --device cpu --threads 2 --model $m --batch 128 --steps 5
  done
}
want cpu512 && { export -f cpu512; export VIT ROOT; }
step cpu512 160 bash -c cpu512
step sweep 200 bash "$ROOT/tools/device/fashion-sweep.sh"
echo "=== done after $(( $(date +%s) - T0 ))s"
