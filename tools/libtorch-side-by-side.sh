#!/usr/bin/env bash
# Our CPU step against libtorch's, alternated in one run (issue 20 item 4).
#
#   tools/libtorch-side-by-side.sh [--rounds 3] [--steps 20] [--models "vit-micro vit-tiny"] [--avx2] [--out FILE]
#
# For each round and model it runs `vit bench --device cpu` and tools/torchsharp-baseline on the
# same shapes (batch 128, CIFAR-shaped input, 4x4 patches), both on two threads, the order of the
# two swapped every round so that neither always runs first after the other has warmed the caches
# or the host has quietened. Short runs on a shared host move by 3x, so only ratios taken within
# a round are compared, and the median ratio over the rounds is what performance.md records.
#
# --avx2 sets DOTNET_EnableAVX512=0 for our side: the Vector256 kernels on an AVX-512 host (.NET 10
# reads that name; DOTNET_EnableAVX512F, the .NET 8 one, is ignored).
# On a host with more than two CPUs both sides are pinned to CPUs 0 and 1 (taskset).
# The first run restores TorchSharp-cpu (about 1.2 GB into the NuGet cache; see its README).
# Prints one line per run and a summary table; --out also writes the runs as TSV.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 steps=20 models="vit-micro vit-tiny" avx2=0 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    --avx2) avx2=1; shift ;;
    --out) out="$2"; shift 2 ;;
    *) echo "libtorch-side-by-side.sh: unknown argument '$1' (use --rounds N, --steps N, --models \"M ...\", --avx2, --out FILE)" >&2; exit 2 ;;
  esac
done

dotnet build -c Release Runner/ViTScratch.Runner.csproj -v q -nologo >/dev/null
dotnet build -c Release tools/torchsharp-baseline -v q -nologo >/dev/null

pin=()
if [ "$(nproc)" -gt 2 ] && command -v taskset >/dev/null; then pin=(taskset -c 0,1); fi
ours_env=(env DOTNET_PROCESSOR_COUNT=2)
if [ "$avx2" = 1 ]; then ours_env+=(DOTNET_EnableAVX512=0); fi

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
isa=$(grep -qw avx512f /proc/cpuinfo && echo "AVX-512" || echo "AVX2")
path=$([ "$isa" = "AVX-512" ] && [ "$avx2" = 0 ] && echo "Vector512" || echo "Vector256")
echo "host: $cpu, $(nproc) CPUs, $isa; our kernels on the $path path; commit $(git rev-parse --short HEAD); $(date -u +%FT%TZ)"

tsv=$(mktemp)
printf 'round\tmodel\tside\ttrain\tinfer\n' > "$tsv"

# One run of one side; appends "round model side train infer" to the TSV.
run_side() {
  local round=$1 model=$2 side=$3 text train infer
  if [ "$side" = ours ]; then
    text=$("${pin[@]}" "${ours_env[@]}" dotnet Runner/bin/Release/net10.0/vit.dll bench --device cpu --model "$model" --batch 128 --steps "$steps")
    train=$(awk '$1 == "training" { print $2; exit }' <<<"$text")
    infer=$(awk '$1 == "inference" { print $2; exit }' <<<"$text")
  else
    text=$("${pin[@]}" dotnet run -c Release --project tools/torchsharp-baseline --no-build -- --model "$model" --batch 128 --threads 2 --steps "$steps")
    train=$(awk '$1 == "training" { print $2; exit }' <<<"$text")
    infer=$(awk '$1 == "inference" { print $2; exit }' <<<"$text")
  fi
  if [ -z "$train" ] || [ -z "$infer" ]; then echo "libtorch-side-by-side.sh: no img/s in the output of $side:" >&2; echo "$text" >&2; exit 1; fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$model" "$side" "$train" "$infer" >> "$tsv"
  printf 'round %s  %-9s  %-8s training %8s img/s  inference %8s img/s\n' "$round" "$model" "$side" "$train" "$infer"
  if [ "$side" = ours ]; then grep -E '^(training|inference|warning)' <<<"$text" | sed 's/^/    /'; fi
}

for round in $(seq 1 "$rounds"); do
  for model in $models; do
    if [ $((round % 2)) = 1 ]; then order="ours libtorch"; else order="libtorch ours"; fi
    for side in $order; do run_side "$round" "$model" "$side"; done
  done
done

# Ratios within each round, then their median over the rounds.
python3 - "$tsv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
runs = {(r["round"], r["model"], r["side"]): r for r in rows}
print("\nmodel      what       ours / libtorch per round                ratio per round       median ratio")
for model in dict.fromkeys(r["model"] for r in rows):
    for what in ("train", "infer"):
        pairs = [(float(runs[(k, model, "ours")][what]), float(runs[(k, model, "libtorch")][what]))
                 for k in sorted({r["round"] for r in rows}, key=int)]
        ratios = [a / b for a, b in pairs]
        print(f"{model:<10} {what:<10} {', '.join(f'{a:.1f} / {b:.1f}' for a, b in pairs):<40} "
              f"{', '.join(f'{x:.2f}' for x in ratios):<21} {statistics.median(ratios):.2f}")
EOF
if [ -n "$out" ]; then cp "$tsv" "$out"; echo "runs written to $out"; fi
rm -f "$tsv"
