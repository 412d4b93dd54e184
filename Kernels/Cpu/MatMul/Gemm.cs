using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace ViTScratch.Kernels.Cpu.MatMul;

/// <summary>
/// Single-threaded blocked GEMM, C[m, n] (=|+=) alpha * op(A)[m, k] op(B)[k, n], in the
/// GotoBLAS / BLIS loop order. The caller splits big problems across cores (CpuKernels.MatMul);
/// the fused attention's tiny per-(batch, head) products use SmallGemm instead.
///
///   for jc in N, step NC            B block of NC columns
///     for pc in K, step KC          pack B[pc.., jc..] -> KC x NC, read from L2/L3
///       for ic in M, step MC        pack A[ic.., pc..] -> MC x KC, stays in L2
///         for jr in NC, step NR     one B micro-panel (KC x NR) stays in L1 across ir
///           for ir in MC, step MR   micro-kernel: MR x NR tile held in registers over KC steps
///
/// On the AVX2 path a row-major A (no TransA) is not packed: each A row is already contiguous
/// along k, so the micro-kernel broadcasts straight from six row pointers (MicroKernel256.FullUnpackedA)
/// and only a ragged last group of fewer than MR rows is packed (zero-padded). Measured on the
/// vit-micro shapes (K = 49..384, Benchmarks/SmallKMatMulBenchmarks.cs), packing A there cost
/// 10-20% of the multiply. A transposed A (the weight gradient: A is the layer's input [K, M], K =
/// batch x tokens) already holds the MR values of one k side by side, lda apart from one k to the
/// next: the packed panel's order with a longer step. The AVX-512 kernel reads it in place
/// (MicroKernel512.FullStridedA), same arithmetic, same bits: on a Zen 5 the weight gradients ran
/// 1.04-1.16x as fast as with A packed (two runs), because packing copied each value of A, fetched from memory,
/// for only N / NR uses (Benchmarks --interleaved-inplace). On the AVX2 path it made no
/// difference (0.98-1.02x), so A is packed there. B is always packed: read in place, a B
/// micro-panel's rows, ldb apart, fall into a few of L1's sets and evict one another (in-place B
/// and A made the weight gradients up to 1.17x slower than both packed).
///
/// KC bounds the micro-panels so that one B micro-panel and the A micro-panel it meets stay close
/// to L1 size (6 x 384 + 384 x 16 floats = 33 KB on AVX2); MC bounds the packed A block to a
/// fraction of L2. Only the first K block applies the caller's `=`/`+=`;
/// later K blocks add to what the first wrote. Ragged edges run the micro-kernel into a small
/// tile buffer (the packing zero-pads) and copy the valid part out.
///
/// PackBuffers (packed A, packed B, edge tile) is per thread, 64-byte aligned, pinned, and grown
/// once: steady-state calls allocate nothing. The blocking, PackBuffers, MacroKernel and AddBias
/// are internal for the numbered CPU versions under Benchmarks/Lab that vary Run's loop.
/// </summary>
internal static unsafe class Gemm
{
    /// <param name="TransposedAInPlace">read a transposed A in place instead of packing it (AVX-512 only: see the summary)</param>
    /// <param name="RowsAInPlace">read a row-major A in place instead of packing it (the AVX2 kernel always does; for AVX-512 this switch)</param>
    internal readonly record struct Blocking(int MR, int NR, int KC, int MC, int NC, bool TransposedAInPlace = false, bool RowsAInPlace = false);

    // KC 384 on AVX2: vit-tiny's products with K = 384 ran 1.15-1.23x and with K = 576 1.06-1.09x
    // faster than with 256 on the Zen 3 host (one pass over C instead of two for K = 384; the
    // weight gradients, K = 8320, 1.00-1.02x; an interleaved A/B recorded in
    // docs/log/2026-performance-log.md; the harness and its knob are gone), though a 384 x 16 B micro-panel (24 KB) and six A rows
    // no longer both fit L1 with room to spare. AVX-512 keeps 256, timed on a Zen 4 (32 KB L1D,
    // where the 256 x 32 B micro-panel alone fills L1): KC 128 ran 0.93-1.02x and 384 0.98-1.02x
    // as fast on one thread (Benchmarks --interleaved-kc; docs/log/2026-performance-log.md).
    internal static readonly Blocking Avx2 = new(MicroKernel256.MR, MicroKernel256.NR, KC: 384, MC: 120, NC: 2048);
    // Both A layouts are read in place on AVX-512 (only a ragged last group of rows is packed): the
    // weight gradients' transposed A 1.04-1.16x, the forward and input-gradient products' row-major
    // A 1.00-1.12x (in a second run 0.99-1.08x) against packing it first (Zen 5; Benchmarks --interleaved-inplace and
    // --interleaved-rows-inplace, docs/log/2026-performance-log.md). The flags stay for those A/Bs.
    internal static readonly Blocking Avx512 = new(MicroKernel512.MR, MicroKernel512.NR, KC: 256, MC: 128, NC: 2048, TransposedAInPlace: true, RowsAInPlace: true);

    // The larger of the two paths' K blocks: the per-thread scratch is sized for it.
    private const int MaxBlockK = 384;

    /// <summary>The row and column granularity of <paramref name="path"/>: split work across threads on multiples of these.</summary>
    public static (int MR, int NR) Tile(SimdPath path) => path == SimdPath.Vector512
        ? (MicroKernel512.MR, MicroKernel512.NR)
        : (MicroKernel256.MR, MicroKernel256.NR);

    /// <summary>
    /// C[i, j] at c[i*ldc + j] (=|+=) alpha * sum_p op(A)[i, p] op(B)[p, j], with
    /// op(A)[i, p] = transA ? a[p*lda + i] : a[i*lda + p] and op(B)[p, j] = transB ? b[j*ldb + p] : b[p*ldb + j].
    /// <paramref name="bias"/> is null, or n values added to every row of C after the product (see AddBias).
    /// </summary>
    public static void Run(SimdPath path, int m, int n, int k,
        float* a, long lda, bool transA, float* b, long ldb, bool transB,
        float* c, long ldc, float alpha, bool accumulate, float* bias = null) =>
        Run(path, path == SimdPath.Vector512 ? Avx512 : Avx2, m, n, k, a, lda, transA, b, ldb, transB, c, ldc, alpha, accumulate, bias);

    /// <summary>
    /// <see cref="Run(SimdPath, int, int, int, float*, long, bool, float*, long, bool, float*, long, float, bool, float*)"/>
    /// with another cache blocking of the same micro-kernel (MR and NR must be the path's): for the
    /// A/B harnesses that choose the blocks (Benchmarks --interleaved-kc). KC at most 384.
    /// </summary>
    internal static void Run(SimdPath path, in Blocking bl, int m, int n, int k,
        float* a, long lda, bool transA, float* b, long ldb, bool transB,
        float* c, long ldc, float alpha, bool accumulate, float* bias = null)
    {
        if (m <= 0 || n <= 0) return;
        if (k <= 0)
        {
            // An empty sum: `=` writes zeros, `+=` adds nothing.
            if (!accumulate)
                for (int i = 0; i < m; i++) new Span<float>(c + i * ldc, n).Clear();
            if (bias != null) AddBias(path, c, ldc, m, n, bias);
            return;
        }

        if ((bl.MR, bl.NR) != Tile(path))
            throw new ArgumentOutOfRangeException(nameof(bl), $"blocking {bl} has a {bl.MR} x {bl.NR} tile; the {path} micro-kernel's is {Tile(path)}");
        if (bl.KC > MaxBlockK || bl.MC > Math.Max(Avx2.MC, Avx512.MC) || bl.NC > Math.Max(Avx2.NC, Avx512.NC))
            throw new ArgumentOutOfRangeException(nameof(bl), $"blocking {bl} exceeds the pack buffers (KC {MaxBlockK}, MC {Math.Max(Avx2.MC, Avx512.MC)}, NC {Math.Max(Avx2.NC, Avx512.NC)})");
        if (bl.TransposedAInPlace && path != SimdPath.Vector512)
            throw new ArgumentOutOfRangeException(nameof(bl), $"blocking {bl}: only the {SimdPath.Vector512} micro-kernel reads a transposed A in place");
        var s = PackBuffers.For(bl);
        // A read in place instead of packed: a row-major A by the AVX2 kernel (MicroKernel256.FullUnpackedA),
        // a transposed A by the AVX-512 one (MicroKernel512.FullStridedA). Only a ragged last group
        // of rows (< MR) is still packed, so the kernel can zero-pad it.
        bool direct = transA ? bl.TransposedAInPlace : path == SimdPath.Vector256 || bl.RowsAInPlace;
        int ahead = Packing.RowsAhead;       // rows of a k-major source prefetched while packing
        for (int jc = 0; jc < n; jc += bl.NC)
        {
            int nc = Math.Min(bl.NC, n - jc);
            for (int pc = 0; pc < k; pc += bl.KC)
            {
                int kc = Math.Min(bl.KC, k - pc);
                bool acc = accumulate || pc > 0;
                Packing.PackB(b, ldb, transB, pc, kc, jc, nc, bl.NR, s.B, Block8x8.IsSupported, ahead);
                for (int ic = 0; ic < m; ic += bl.MC)
                {
                    int mc = Math.Min(bl.MC, m - ic);
                    float* aDirect = null;
                    if (!direct)
                        Packing.PackA(a, lda, transA, ic, mc, pc, kc, bl.MR, s.A, Block8x8.IsSupported, ahead);
                    else
                    {
                        aDirect = transA ? a + pc * lda + ic : a + ic * lda + pc;
                        int full = mc / bl.MR * bl.MR;
                        if (full < mc) Packing.PackA(a, lda, transA, ic + full, mc - full, pc, kc, bl.MR, s.A);
                    }
                    // C is cold in the first K block only: later blocks find it where the first left it.
                    bool prefetchC = pc == 0;
                    MacroKernel(path, bl, mc, nc, kc, s.A, aDirect, lda, transA, s.B, c + ic * ldc + jc, ldc, alpha, acc, s.Tile, prefetchC);
                    // The bias goes on after the last K block, while this mc x nc block of C is
                    // still in L2: fusing it here saved the Linear layer a separate pass over C.
                    if (bias != null && pc + kc >= k) AddBias(path, c + ic * ldc + jc, ldc, mc, nc, bias + jc);
                }
            }
        }
    }

    // Every micro-tile of one A block times one packed B block. A is either packed (aDirect null:
    // panel ir at pa + ir kc) or read in place, with only its ragged last panel packed at pa:
    // row-major at aDirect + ir lda, or transposed (aTransposed) at aDirect + ir, lda apart from
    // one k to the next.
    internal static void MacroKernel(SimdPath path, in Blocking bl, int mc, int nc, int kc,
        float* pa, float* aDirect, long lda, bool aTransposed, float* pb, float* c, long ldc, float alpha, bool accumulate, float* tile, bool prefetchC)
    {
        int MR = bl.MR, NR = bl.NR;
        // The micro-kernels that read A in place, for its layout and the path (Run refuses a
        // transposed A in place on AVX2), and how far apart A's rows start.
        delegate*<int, float*, long, float*, float*, long, float, bool, void> fullInPlace, halfInPlace;
        if (aTransposed) { fullInPlace = &MicroKernel512.FullStridedA; halfInPlace = &MicroKernel512.HalfStridedA; }
        else if (path == SimdPath.Vector512) { fullInPlace = &MicroKernel512.FullRowsA; halfInPlace = &MicroKernel512.HalfRowsA; }
        else { fullInPlace = &MicroKernel256.FullUnpackedA; halfInPlace = &MicroKernel256.HalfUnpackedA; }
        long rowStep = aTransposed ? 1 : lda;
        for (int jr = 0; jr < nc; jr += NR)
        {
            int nr = Math.Min(NR, nc - jr);
            bool half = nr <= NR / 2;
            float* bp = pb + (long)jr * kc;
            for (int ir = 0; ir < mc; ir += MR)
            {
                int mr = Math.Min(MR, mc - ir);
                float* ap = aDirect == null ? pa + (long)ir * kc : pa;
                float* cp = c + ir * ldc + jr;
                if (prefetchC) PrefetchTile(cp, ldc, mr, nr);
                if (aDirect != null && mr == MR)
                {
                    var inPlace = half ? halfInPlace : fullInPlace;
                    float* ar = aDirect + ir * rowStep;
                    if (nr == NR || nr == NR / 2) inPlace(kc, ar, lda, bp, cp, ldc, alpha, accumulate);
                    else
                    {
                        inPlace(kc, ar, lda, bp, tile, NR, alpha, false);
                        CopyOut(tile, NR, cp, ldc, mr, nr, accumulate);
                    }
                }
                else if (mr == MR && (nr == NR || nr == NR / 2))
                    Kernel(path, half, kc, ap, bp, cp, ldc, alpha, accumulate);
                else
                {
                    // Ragged tile: full-size product into the scratch tile, then copy the valid corner.
                    Kernel(path, half, kc, ap, bp, tile, NR, alpha, false);
                    CopyOut(tile, NR, cp, ldc, mr, nr, accumulate);
                }
            }
        }
    }

    // Asks for the lines of an mr x nr tile of C before the micro-kernel's k loop runs, so that its
    // stores (and, for `+=`, its loads) at the end do not wait for memory. A C that is written for
    // the first time (a forward activation, a gradient buffer) is cold: it has not been touched
    // since it was last used, a whole layer ago. On the Zen 3 host this made vit-tiny's forward and
    // input-gradient products 1.01-1.13x faster (an interleaved A/B recorded
    // in docs/log/2026-performance-log.md); the weight gradients (K = 8320, C hot after the first K
    // block) did not change. Only the AVX2 path was timed; AVX-512 runs the same code with its larger tile.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchTile(float* c, long ldc, int mr, int nr)
    {
        if (!Sse.IsSupported) return;
        for (int r = 0; r < mr; r++)
        {
            float* row = c + r * ldc;
            // First, last and (32-wide AVX-512 tiles) middle float: every line the row touches.
            Sse.Prefetch0(row);
            Sse.Prefetch0(row + nr - 1);
            if (nr > 16) Sse.Prefetch0(row + 16);
        }
    }

    // c[i, j] += bias[j] for an m x n block.
    internal static void AddBias(SimdPath path, float* c, long ldc, int m, int n, float* bias)
    {
        var b = new ReadOnlySpan<float>(bias, n);
        for (int i = 0; i < m; i++)
        {
            var row = new Span<float>(c + i * ldc, n);
            Simd.AddScaled(path, row, b, row, 1f);
        }
    }

    // The valid mr x nr corner of an edge tile computed into scratch, written (=|+=) into C.
    private static void CopyOut(float* tile, int ldt, float* c, long ldc, int mr, int nr, bool accumulate)
    {
        for (int i = 0; i < mr; i++)
        {
            float* dst = c + i * ldc;
            float* src = tile + i * ldt;
            if (accumulate) for (int j = 0; j < nr; j++) dst[j] += src[j];
            else for (int j = 0; j < nr; j++) dst[j] = src[j];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Kernel(SimdPath path, bool half, int kc, float* a, float* b, float* c, long ldc, float alpha, bool accumulate)
    {
        if (path == SimdPath.Vector512)
        {
            if (half) MicroKernel512.Half(kc, a, b, c, ldc, alpha, accumulate);
            else MicroKernel512.Full(kc, a, b, c, ldc, alpha, accumulate);
        }
        else
        {
            if (half) MicroKernel256.Half(kc, a, b, c, ldc, alpha, accumulate);
            else MicroKernel256.Full(kc, a, b, c, ldc, alpha, accumulate);
        }
    }

    /// <summary>One thread's packing buffers, sized for the largest blocking and kept for the thread's life.</summary>
    internal sealed class PackBuffers
    {
        [ThreadStatic] private static PackBuffers? _current;

        private readonly float[] _storage; // pinned (POH), never moves
        public readonly float* A, B, Tile;

        /// <summary>The storage's first float and one past its last: the three regions must lie within (PackBuffersFitTheirStorage).</summary>
        internal float* StorageStart => (float*)Unsafe.AsPointer(ref _storage[0]);
        internal float* StorageEnd => StorageStart + _storage.Length;

        private PackBuffers(int aLen, int bLen, int tileLen)
        {
            const int Align = 16; // floats = 64 bytes, one cache line / one zmm
            _storage = GC.AllocateUninitializedArray<float>(aLen + bLen + tileLen + 3 * Align, pinned: true);
            float* p = (float*)Unsafe.AsPointer(ref _storage[0]);
            p = (float*)(((nint)p + 63) & ~(nint)63);
            A = p; p += RoundUp(aLen, Align);
            B = p; p += RoundUp(bLen, Align);
            Tile = p;
        }

        public static PackBuffers For(in Blocking bl)
        {
            // Sized for both blockings at the largest K block so switching never reallocates.
            var s = _current;
            if (s is null)
            {
                int aLen = Math.Max(Avx2.MC, Avx512.MC) * MaxBlockK;
                int bLen = MaxBlockK * Math.Max(Avx2.NC, Avx512.NC);
                int tLen = Math.Max(Avx2.MR * Avx2.NR, Avx512.MR * Avx512.NR);
                _current = s = new PackBuffers(aLen, bLen, tLen);
            }
            return s;
        }

        private static int RoundUp(int x, int m) => (x + m - 1) / m * m;
    }
}
