#!/usr/bin/env bash
# SASS report of the GPU kernels, without a GPU: compiles every [GpuKernel] to PTX (the `vit
# kernels ptx` runner command), assembles each with ptxas into a cubin, disassembles it with
# cuobjdump -sass and prints one markdown row per kernel:
#
#   block        threads per group the kernel is launched with (table BLOCK below)
#   regs, smem   registers per thread and static shared bytes, from `ptxas -v`
#   FFMA         fused multiply-adds in the whole kernel (all code paths, counted once each)
#   HMMA         tensor-core mma instructions in the whole kernel (MatMulTensorCoreKernels, ...);
#                a tensor-core kernel with 0 here does not use tensor cores
#   inner loop   the innermost loop with the most FFMA: FFMA / LDS (any width) / instructions in
#                its body. A loop is a backward branch (BRA whose target address is lower than
#                its own); it is innermost when no other loop lies inside its address range.
#                "-" when the kernel has no loop (no backward branch) at all.
#   loops        number of backward branches (loops that survived ptxas; unrolled ones vanish)
#   LDS, LDG     shared / global loads by width: 32-bit / 64-bit / 128-bit instructions
#   LD/ST        generic-address (non-shared, non-global) loads / stores, which cost an extra
#                address-space check; LDL/STL local-memory loads / stores (spills, local arrays)
#   occupancy    theoretical: resident warps per SM / 64, and the resource that bounds it
#
# Occupancy model (CUDA occupancy calculator rules): registers are allocated per warp in units
# of 256 (ceil(regs x 32 / 256) x 256), 64K registers per SM; shared memory per group is the
# static size rounded up to 128 B plus the 1 KB the runtime reserves per group (sm_80+); at
# most 2048 threads and 32 groups per SM. Per SM: sm_90 (H100) 228 KB shared (227 KB usable by
# one group), sm_80 (A100) 164 KB (163 KB). Dynamic shared memory is not used by any kernel.
#
# Needs ptxas and cuobjdump (CUDA 11.8 from .ci/install-ptxas.sh, found in $PTXAS/$CUOBJDUMP,
# .tools/ or PATH) and the .NET SDK unless --ptx is given. No GPU.
#
# Usage: tools/sass-report.sh [--arch sm_90|sm_80] [--ptx DIR] [--keep DIR] [--loops]
#   --ptx DIR   use the .ptx files already in DIR instead of building and running the runner
#   --keep DIR  write NAME.ptx, NAME.cubin and NAME.sass of every kernel into DIR for reading
#   --loops     after the table, list every loop of every kernel (address range, FFMA, LDS, size)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

arch=sm_90 ptx_dir="" keep_dir="" list_loops=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --arch) arch="$2"; shift 2 ;;
        --ptx) ptx_dir="$2"; shift 2 ;;
        --keep) keep_dir="$2"; shift 2 ;;
        --loops) list_loops=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "sass-report: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

# Per-SM limits of the architecture (CUDA C Programming Guide, "Compute Capabilities" table).
case "$arch" in
    sm_90) smem_per_sm=$((228 * 1024)); smem_per_block=$((227 * 1024)); gpu="H100" ;;
    sm_80) smem_per_sm=$((164 * 1024)); smem_per_block=$((163 * 1024)); gpu="A100" ;;
    *) echo "sass-report: --arch must be sm_90 or sm_80 (the occupancy limits are tabled for those), got '$arch'" >&2; exit 2 ;;
esac

find_tool() {   # $1 = tool name, $2 = environment override
    if [[ -n "${2:-}" ]]; then [[ -x "$2" ]] && { echo "$2"; return; }; return 1; fi
    if [[ -x "$repo/.tools/$1" ]]; then echo "$repo/.tools/$1"; return; fi
    command -v "$1" 2>/dev/null || return 1
}
ptxas="$(find_tool ptxas "${PTXAS:-}")" || { echo "sass-report: ptxas not found; run .ci/install-ptxas.sh (installs ptxas, cuobjdump, nvdisasm into .tools/) or set PTXAS" >&2; exit 1; }
cuobjdump="$(find_tool cuobjdump "${CUOBJDUMP:-}")" || { echo "sass-report: cuobjdump not found; run .ci/install-ptxas.sh (installs ptxas, cuobjdump, nvdisasm into .tools/) or set CUOBJDUMP" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
out="${keep_dir:-$work/out}"
mkdir -p "$out"

if [[ -z "$ptx_dir" ]]; then
    command -v dotnet >/dev/null || { echo "sass-report: dotnet not found; install the .NET SDK or pass --ptx DIR with pre-built PTX" >&2; exit 1; }
    ptx_dir="$work/ptx"
    if ! dotnet run -c Release --project "$repo/Runner" -- kernels ptx --arch "$arch" --out "$ptx_dir" >"$work/emit.log" 2>&1; then
        cat "$work/emit.log" >&2
        echo "sass-report: compiling the kernels to PTX failed (dotnet run --project Runner -- kernels ptx)" >&2
        exit 1
    fi
fi
shopt -s nullglob
ptx_files=("$ptx_dir"/*.ptx)
[[ ${#ptx_files[@]} -gt 0 ]] || { echo "sass-report: no .ptx files in $ptx_dir" >&2; exit 1; }

# Threads per group of each kernel's launch. Source: the KernelConfig each op passes in
# Kernels/Gpu/GpuKernels.*.cs: Linear(n) and WarpPerRow(rows) (GpuKernels.cs) and every explicit
# config use GroupSize = 256, except SumSquaresFinish, launched as one warp (KernelConfig(1,
# WarpSize), GpuKernels.Optimizers.cs). A kernel missing here is reported with block "?".
declare -A BLOCK=(
    [ActivationKernels.Dropout]=256 [ActivationKernels.GeluBackward]=256 [ActivationKernels.GeluForward]=256
    [AttentionLongKernels.BackwardDkDv]=256 [AttentionLongKernels.BackwardDq]=256 [AttentionLongKernels.Forward]=256 [AttentionKernels.RowDot]=256
    [ElementwiseKernels.AddBroadcast]=256 [ElementwiseKernels.CopyStrided]=256 [ElementwiseKernels.Fill]=256
    [ElementwiseKernels.MulBroadcast]=256 [ElementwiseKernels.Scale]=256 [PatchKernels.Patchify]=256
    [LayerNormKernels.BackwardDx]=256 [LayerNormKernels.Forward]=256 [LayerNormKernels.ParamPartials]=256 [LayerNormKernels.ParamReduce]=256
    [MatMulPipelinedKernels.MatMul]=256
    [MatMulTensorCoreKernels.Tf32]=128 [MatMulTensorCoreKernels.Bf16]=128
    [AttentionKernels.Forward]=128
    [AttentionKernels.Backward]=128
    [AttentionKernels.BackwardDq]=128
    [AttentionKernels.BackwardDkDv]=128
    [AttentionTensorCoreKernels.Forward]=128 [AttentionTensorCoreKernels.BackwardDq]=128 [AttentionTensorCoreKernels.BackwardDkDv]=128
    [LayerNormKernels.Backward]=256
    [LayerNormKernels.ForwardLong]=256
    [SoftmaxKernels.ForwardLong]=256
    [SoftmaxKernels.BackwardLong]=256
    [OptimizerKernels.AdamW]=256 [OptimizerKernels.Sgd]=256 [OptimizerKernels.AdamWScalars]=256 [OptimizerKernels.SgdScalars]=256
    [FusedKernels.GeluBiasBackward]=256 [FusedKernels.AddLayerNormForward]=256 [OptimizerKernels.SumSquaresFinish]=32 [OptimizerKernels.SumSquaresPartials]=256
    [ReduceKernels.SumColumns]=256 [ReduceKernels.SumRows]=256
    [SoftmaxKernels.Backward]=256 [SoftmaxKernels.CountCorrect]=256 [SoftmaxKernels.CrossEntropyBackward]=256
    [SoftmaxKernels.CrossEntropyForward]=256 [SoftmaxKernels.Forward]=256
)

# One line per kernel from its cuobjdump -sass listing:
#   FFMA loops innerFFMA innerLDS innerInstr LDS32 LDS64 LDS128 LDG32 LDG64 LDG128 LD ST LDL STL HMMA
# and, with --loops, lines "loop <fn> <from> <to> <FFMA> <LDS> <instr> <innermost>" before it.
analyse_sass() {
    awk -v list_loops="$list_loops" '
    function hex(h,   v, i) { sub(/^0x/, "", h); v = 0; for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1; return v }
    function width(op) { return op ~ /\.128(\.|$)/ ? 3 : op ~ /\.64(\.|$)/ ? 2 : 1 }
    /Function :/ { fn++ ; next }
    match($0, /\/\*[0-9a-f]+\*\/[ \t]+[^\/]/) {
        # "/*0240*/   @!P1 BRA 0x120 ;   /* 0x...encoding */"
        addr = hex(substr($0, RSTART + 2, index(substr($0, RSTART + 2), "*") - 1))
        text = substr($0, RSTART); sub(/^\/\*[0-9a-f]+\*\//, "", text); sub(/;.*$/, "", text); sub(/^[ \t]+/, "", text); sub(/[ \t]+$/, "", text)
        n = split(text, tok, /[ \t,]+/); i = 1; while (i < n && tok[i] ~ /^@/) i++
        op = tok[i]; base = op; sub(/\..*$/, "", base)
        k = ++count; F[k] = fn; A[k] = addr
        isFfma[k] = (base == "FFMA"); isLds[k] = (base == "LDS")
        if (base == "FFMA") ffma++
        else if (base == "HMMA") hmma++
        else if (base == "LDS") lds[width(op)]++
        else if (base == "LDG") ldg[width(op)]++
        else if (base == "LD") ld++
        else if (base == "ST") st++
        else if (base == "LDL") ldl++
        else if (base == "STL") stl++
        else if (base == "BRA") {
            target = tok[n]; if (target ~ /^0x[0-9a-f]+$/ && hex(target) < addr) { L++; Lfn[L] = fn; Lfrom[L] = hex(target); Lto[L] = addr }
        }
    }
    END {
        best = 0
        for (l = 1; l <= L; l++) {
            inner = 1
            for (m = 1; m <= L; m++)
                if (m != l && Lfn[m] == Lfn[l] && Lfrom[m] >= Lfrom[l] && Lto[m] <= Lto[l] && (Lfrom[m] != Lfrom[l] || Lto[m] != Lto[l] || m > l)) inner = 0
            f = 0; s = 0; c = 0
            for (k = 1; k <= count; k++)
                if (F[k] == Lfn[l] && A[k] >= Lfrom[l] && A[k] <= Lto[l]) { c++; f += isFfma[k]; s += isLds[k] }
            if (list_loops) printf "loop %d 0x%04x 0x%04x %d %d %d %d\n", Lfn[l], Lfrom[l], Lto[l], f, s, c, inner
            if (inner && (best == 0 || f > bf || (f == bf && c > bc))) { best = l; bf = f; bs = s; bc = c }
        }
        if (best == 0) { bf = "-"; bs = "-"; bc = "-" }
        printf "%d %d %s %s %s %d %d %d %d %d %d %d %d %d %d %d\n", ffma, L, bf, bs, bc, lds[1], lds[2], lds[3], ldg[1], ldg[2], ldg[3], ld, st, ldl, stl, hmma
    }'
}

# Theoretical occupancy: "<warps>/64 (<percent>%) <limiter>" for block threads, regs, smem bytes.
occupancy() {
    local block=$1 regs=$2 smem=$3
    local warps=$(( (block + 31) / 32 ))
    local by_threads=$(( 2048 / (warps * 32) )) by_blocks=32
    local regs_per_warp=$(( (regs * 32 + 255) / 256 * 256 ))
    local by_regs=$(( 65536 / regs_per_warp / warps ))
    local smem_alloc=$(( (smem + 127) / 128 * 128 + 1024 ))
    local by_smem=$(( smem_per_sm / smem_alloc ))
    (( smem <= smem_per_block )) || by_smem=0
    local blocks=$by_threads limiter=threads
    (( by_blocks < blocks )) && { blocks=$by_blocks; limiter="groups"; }
    (( by_regs < blocks )) && { blocks=$by_regs; limiter="registers"; }
    (( by_smem < blocks )) && { blocks=$by_smem; limiter="shared"; }
    local resident=$(( blocks * warps ))
    echo "$resident/64 ($(( resident * 100 / 64 ))%) $limiter"
}

version="$("$ptxas" --version | grep -o 'release [0-9.]*, V[0-9.]*' || true)"
echo "### SASS of every kernel, $arch ($gpu limits; ptxas $version, cuobjdump -sass)"
echo
echo "| kernel | block | regs | smem (B) | FFMA | HMMA | loops | inner loop FFMA / LDS / instr | LDS 32/64/128 | LDG 32/64/128 | LD/ST generic | LDL/STL | occupancy (warps/SM) | limited by |"
echo "|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---|---|---|"
loops_text=""
status=0
for ptx in "${ptx_files[@]}"; do
    name="$(basename "$ptx" .ptx)"
    [[ "$ptx" == "$out/$name.ptx" ]] || cp "$ptx" "$out/$name.ptx"
    if ! "$ptxas" -arch="$arch" -v -o "$out/$name.cubin" "$ptx" >"$work/ptxas.log" 2>&1; then
        cat "$work/ptxas.log" >&2; echo "sass-report: ptxas failed on $name" >&2; exit 1
    fi
    # "Used 48 registers, 8320 bytes smem, 400 bytes cmem[0]" (smem absent when 0)
    regs="$(awk '{for (i = 2; i <= NF; i++) if ($i ~ /^registers/ && $(i-2) == "Used") s += $(i-1)} END {print s + 0}' "$work/ptxas.log")"
    smem="$(awk '{for (i = 2; i <= NF; i++) if ($i == "smem" || $i == "smem,") s += $(i-2)} END {print s + 0}' "$work/ptxas.log")"
    "$cuobjdump" -sass "$out/$name.cubin" >"$out/$name.sass"
    analysis="$(analyse_sass <"$out/$name.sass")"
    read -r ffma loops inF inS inC l1 l2 l3 g1 g2 g3 ld st ldl stl hmma <<<"$(tail -n 1 <<<"$analysis")"
    if [[ $list_loops -eq 1 ]]; then
        loops_text+="$(awk -v k="$name" '$1 == "loop" {printf "| %s | %d | %s..%s | %d | %d | %d | %s |\n", k, $2, $3, $4, $5, $6, $7, $8 ? "yes" : "no"}' <<<"$analysis")"
        [[ -z "$loops_text" || "$loops_text" == *$'\n' ]] || loops_text+=$'\n'
    fi
    block="${BLOCK[$name]:-}"
    if [[ -n "$block" ]]; then
        read -r occ pct limiter <<<"$(occupancy "$block" "$regs" "$smem")"
        occ="$occ $pct"
    else
        echo "sass-report: no block size known for $name: add it to BLOCK in tools/sass-report.sh" >&2
        block="?" occ="?" limiter="?" status=1
    fi
    inner="-"; [[ "$inF" != "-" ]] && inner="$inF / $inS / $inC"
    echo "| $name | $block | $regs | $smem | $ffma | $hmma | $loops | $inner | $l1/$l2/$l3 | $g1/$g2/$g3 | $ld/$st | $ldl/$stl | $occ | $limiter |"
done
if [[ $list_loops -eq 1 ]]; then
    echo
    echo "Loops (backward branches) by kernel; addresses are byte offsets in the function's SASS:"
    echo
    echo "| kernel | function | range | FFMA | LDS | instr | innermost |"
    echo "|---|---:|---|---:|---:|---:|---|"
    printf "%s" "$loops_text"
fi
exit $status
