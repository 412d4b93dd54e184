#!/usr/bin/env bash
# Installs NVIDIA's PTX assembler (ptxas, plus cuobjdump and nvdisasm) into .tools/ so the PTX
# tests and tools/kernel-report.sh can assemble ILGPU's output without a GPU or a CUDA install.
#
# Source: Debian's non-free `nvidia-cuda-toolkit` package (CUDA 11.8: ptxas accepts PTX ISA 7.8
# at most, which is why the emitter targets ISA 7.8). The package is downloaded with apt using a
# private state directory whose source list is the machine's own Debian sources with the
# `non-free` component added; the system's apt configuration is not modified. Only the three
# static binaries are extracted from the .deb.
#
# Idempotent: returns at once when .tools/ptxas already runs.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$repo/.tools"
if [[ -x "$dest/ptxas" ]] && "$dest/ptxas" --version >/dev/null 2>&1; then
    echo "ptxas already installed: $dest/ptxas"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/etc/sources.list.d" "$work/etc/preferences.d"

# Rewrite the machine's Debian sources (deb822 or one-line form) with `non-free` added.
for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    grep -q "debian" "$f" || continue
    sed -E 's/^(Components:.*)$/\1 non-free/' "$f" > "$work/etc/sources.list.d/$(basename "$f")"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    grep -E '^deb .*debian' "$f" | sed -E 's/$/ non-free/' >> "$work/etc/sources.list" || true
done
touch "$work/etc/sources.list"

apt_opts=(
    -o "Dir::Etc::SourceList=$work/etc/sources.list"
    -o "Dir::Etc::SourceParts=$work/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$work/etc/preferences"
    -o "Dir::Etc::PreferencesParts=$work/etc/preferences.d"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" -qq update
(cd "$work" && apt-get "${apt_opts[@]}" -qq download nvidia-cuda-toolkit)

deb="$(ls "$work"/nvidia-cuda-toolkit_*.deb)"
mkdir -p "$work/x" "$dest"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/x" ./usr/bin/ptxas ./usr/bin/cuobjdump ./usr/bin/nvdisasm
install -m 0755 "$work/x/usr/bin/ptxas" "$work/x/usr/bin/cuobjdump" "$work/x/usr/bin/nvdisasm" "$dest/"
"$dest/ptxas" --version | tail -n 1
echo "installed: $dest/ptxas (+ cuobjdump, nvdisasm)"
