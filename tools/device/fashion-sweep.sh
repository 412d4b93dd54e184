#!/usr/bin/env bash
# Recipe sweep for the CPU default (issue 5: >= 90% on Fashion-MNIST within 15 minutes on the
# 2-core CPU). A CPU run of one variant takes ~13 minutes, so the variants are compared on a GPU
# (about 25 s each), one after another: ten at once ran 10x slower each (the GPU time-slices
# between processes; docs/h100/fashion-sweep-partial.md). GPU and CPU runs differ in rounding
# only; the accuracies are comparable. VARIANTS="name ..." picks some.
#   bash tools/device/fashion-sweep.sh   (after tools/device/gpu-check.sh's setup, which it reuses)
set -uo pipefail
W=/tmp/vit-devkit
OUT=${OUT:-/tmp/gpu-check}
VIT="dotnet $W/app/vit.dll"
declare -A V=(
  [default]=""
  [ls0]="--label-smoothing 0"
  [lr3e-3]="--lr 3e-3"
  [mean]="--pool mean"
  [b64]="--batch 64"
  [ls0-mean-b64]="--label-smoothing 0 --pool mean --batch 64"
  [ls0-mean-lr3e-3]="--label-smoothing 0 --pool mean --lr 3e-3"
  [ls0-mean-b64-5ep]="--label-smoothing 0 --pool mean --batch 64 --epochs 5"
  [default-10ep]="--epochs 10"
  [ls0-mean-10ep]="--label-smoothing 0 --pool mean --epochs 10"
)
cd $W
for name in ${VARIANTS:-${!V[@]}}; do
  $VIT train --device cuda --data $W/fashion --out $W/runs/sweep-$name ${V[$name]} > $W/sweep-$name.log 2>&1
  echo "$name: $(tail -1 $W/sweep-$name.log)"
done
{
  echo "| variant | flags | test accuracy by epoch | best |"
  echo "|---|---|---|---|"
  for name in $(echo "${VARIANTS:-${!V[@]}}" | tr ' ' '\n' | sort); do
    accs=$(tail -n +2 $W/runs/sweep-$name/metrics.csv 2>/dev/null | cut -d, -f5 | awk '{printf "%.2f ", $1*100}')
    best=$(tail -n +2 $W/runs/sweep-$name/metrics.csv 2>/dev/null | cut -d, -f5 | sort -g | tail -1 | awk '{printf "%.2f", $1*100}')
    echo "| $name | ${V[$name]:-(defaults)} | $accs | $best |"
  done
} | tee "$OUT/fashion-sweep.md"
grep -h "error" $W/sweep-*.log | head -5
