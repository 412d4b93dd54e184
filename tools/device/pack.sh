#!/usr/bin/env bash
# Packs what tools/device/gpu-check.sh needs on a GPU machine that has no network and no .NET:
#   .devkit/dotnet.tar.xz   the .NET runtime (host + Microsoft.NETCore.App), from this machine's SDK
#   .devkit/app.tar.xz      Release build of Tests (holds vit.dll and every dependency, linux-x64
#                           natives only), the xunit 2 console runner, and the Benchmarks assembly
#                           for the GPU lab and kernel benchmarks (--lab, --kernels-bench; without
#                           its deps.json, and with only the BenchmarkDotNet assemblies its Main loads)
#   .devkit/fashion.tar.xz  Fashion-MNIST IDX files (Debian's dataset-fashion-mnist package)
# .devkit/ is git-ignored; name it in the device tool's `carry`. Total about 60 MB (limit 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .devkit
DOTNET_DIR=$(dirname "$(readlink -f "$(command -v dotnet)")")

if [[ ! -s .devkit/dotnet.tar.xz ]]; then
  echo "packing the .NET runtime from $DOTNET_DIR"
  tar -C "$DOTNET_DIR" -cf - dotnet host/fxr shared/Microsoft.NETCore.App | xz -9 -T0 > .devkit/dotnet.tar.xz
fi

if [[ ! -s .devkit/fashion.tar.xz ]]; then
  src=/usr/share/datasets/fashion-mnist
  [[ -f $src/train-images-idx3-ubyte.gz ]] || { echo "install dataset-fashion-mnist first (apt-get install dataset-fashion-mnist)"; exit 1; }
  tmp=$(mktemp -d)
  for f in "$src"/*.gz; do zcat "$f" > "$tmp/$(basename "${f%.gz}")"; done
  tar -C "$tmp" -cf - . | xz -9 -T0 > .devkit/fashion.tar.xz
  rm -rf "$tmp"
fi

dotnet build Tests -c Release -v q -nologo
dotnet build Benchmarks -c Release -v q -nologo
XUNIT=${XUNIT_CONSOLE:-$HOME/.nuget/packages/xunit.runner.console/2.4.1/tools/netcoreapp2.0}
if [[ ! -f $XUNIT/xunit.console.dll ]]; then
  tmp=$(mktemp -d)
  curl -fsSL -o "$tmp/r.nupkg" https://api.nuget.org/v3-flatcontainer/xunit.runner.console/2.4.1/xunit.runner.console.2.4.1.nupkg
  (cd "$tmp" && unzip -q r.nupkg 'tools/netcoreapp2.0/*')
  XUNIT=$tmp/tools/netcoreapp2.0
fi
stage=$(mktemp -d)
mkdir -p "$stage/app" "$stage/xunit"
cp -r Tests/bin/Release/net10.0/. "$stage/app/"
(cd Benchmarks/bin/Release/net10.0 && cp BenchmarkDotNet*.dll Perfolizer.dll Pragmastat.dll CommandLine.dll \
  ViTScratch.Benchmarks.dll ViTScratch.Benchmarks.runtimeconfig.json "$stage/app/")
find "$stage/app/runtimes" -mindepth 1 -maxdepth 1 ! -name linux-x64 -exec rm -rf {} +
cp -r "$XUNIT/." "$stage/xunit/"
tar -C "$stage" -cf - app xunit | xz -6 -T0 > .devkit/app.tar.xz
rm -rf "$stage"
du -ch .devkit/*
