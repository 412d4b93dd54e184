namespace ViTScratch.Kernels;

// The shapes and layouts IKernels ops take: a strided copy, a (batched) matmul, attention rows.

/// <summary>Index map of <see cref="IKernels.CopyStrided"/>: three outer loops and a contiguous inner run.</summary>
/// <param name="N0">Count of the outermost loop.</param>
/// <param name="N1">Count of the middle loop.</param>
/// <param name="N2">Count of the innermost of the three outer loops.</param>
/// <param name="Inner">Length of each contiguous run copied.</param>
/// <param name="SrcOffset">Source index of the first element.</param>
/// <param name="S0">Source stride of loop 0, in floats (0 repeats the source: a broadcast).</param>
/// <param name="S1">Source stride of loop 1, in floats.</param>
/// <param name="S2">Source stride of loop 2, in floats.</param>
/// <param name="DstOffset">Destination index of the first element.</param>
/// <param name="D0">Destination stride of loop 0, in floats.</param>
/// <param name="D1">Destination stride of loop 1, in floats.</param>
/// <param name="D2">Destination stride of loop 2, in floats.</param>
public readonly record struct StridedCopy(
    int N0, int N1, int N2, int Inner,
    int SrcOffset, int S0, int S1, int S2,
    int DstOffset, int D0, int D1, int D2)
{
    /// <summary>Elements copied: N0·N1·N2·Inner.</summary>
    public long Count => (long)N0 * N1 * N2 * Inner;
}

/// <summary>Shape of a (batched) matmul C[M, N] = op(A)[M, K] op(B)[K, N]; strides are per batch, in floats.</summary>
/// <param name="Batch">Number of products.</param>
/// <param name="M">Rows of op(A) and C.</param>
/// <param name="N">Columns of op(B) and C.</param>
/// <param name="K">Columns of op(A), rows of op(B).</param>
/// <param name="TransA">A is stored [K, M] (op(A) = Aᵀ).</param>
/// <param name="TransB">B is stored [N, K] (op(B) = Bᵀ).</param>
/// <param name="StrideA">Floats between consecutive batches of A; 0 shares one A across the batch.</param>
/// <param name="StrideB">Floats between consecutive batches of B; 0 shares one B across the batch.</param>
/// <param name="StrideC">Floats between consecutive batches of C.</param>
public readonly record struct MatMulShape(
    int Batch, int M, int N, int K, bool TransA, bool TransB,
    long StrideA, long StrideB, long StrideC)
{
    /// <summary>A single 2-D product with no batch.</summary>
    public static MatMulShape Single(int m, int n, int k, bool transA = false, bool transB = false) =>
        new(1, m, n, k, transA, transB, 0, 0, 0);

    /// <summary>Contiguous batches of A, B and C.</summary>
    public static MatMulShape Batched(int batch, int m, int n, int k, bool transA = false, bool transB = false) =>
        new(batch, m, n, k, transA, transB, (long)m * k, (long)k * n, (long)m * n);

    /// <summary>Floating-point operations of the product: 2·Batch·M·N·K.</summary>
    public double Flops => 2.0 * Batch * M * N * K;
}

/// <summary>
/// Where attention finds its rows. Pair bh = b·Heads + h (batch b, head h) reads row i of q, k, v,
/// and writes row i of dq, dk, dv, at b·InBatch + h·D + i·InRow of its buffer; row i of o and dO
/// sits at b·OutBatch + h·D + i·OutRow. Rows are D contiguous floats; lse stays dense [BH, N].
/// </summary>
/// <remarks>
/// Dense: q, k, v, o are [BH, N, D] (Heads 1). Packed: q, k, v are the three column blocks of a
/// to_qkv output [B, N, 3·H·D] (slices at 0, H·D, 2·H·D) and o is [B, N, H·D], heads side by
/// side. Packed attention reads and writes the layer's own activations in place, so the head
/// split and merge (four copies forward, four backward per layer) never happen.
/// </remarks>
/// <param name="Heads">Heads per batch entry (1 for the dense layout).</param>
/// <param name="InBatch">Floats between batch entries in q, k, v, dq, dk, dv.</param>
/// <param name="InRow">Floats between token rows in q, k, v, dq, dk, dv.</param>
/// <param name="OutBatch">Floats between batch entries in o and dO.</param>
/// <param name="OutRow">Floats between token rows in o and dO.</param>
public readonly record struct AttentionLayout(int Heads, int InBatch, int InRow, int OutBatch, int OutRow)
{
    /// <summary>Separate contiguous q, k, v, o: [BH, N, D].</summary>
    public static AttentionLayout Dense(int n, int d) => new(1, n * d, d, n * d, d);

    /// <summary>q, k, v sliced from qkv: [B, N, 3·heads·d]; o: [B, N, heads·d].</summary>
    public static AttentionLayout Packed(int heads, int n, int d) => new(heads, n * 3 * heads * d, 3 * heads * d, n * heads * d, heads * d);

    /// <summary>Offset of row 0 of pair bh in q, k, v, dq, dk, dv.</summary>
    public int InBase(int bh, int d) => bh / Heads * InBatch + bh % Heads * d;

    /// <summary>Offset of row 0 of pair bh in o and dO.</summary>
    public int OutBase(int bh, int d) => bh / Heads * OutBatch + bh % Heads * d;

    /// <summary>Floats a buffer needs to hold bh pairs of n rows: (in, out).</summary>
    public (long In, long Out) Extent(int bh, int n, int d)
    {
        if (bh <= 0 || n <= 0) return (0, 0);
        return ((long)InBase(bh - 1, d) + (long)(n - 1) * InRow + d, (long)OutBase(bh - 1, d) + (long)(n - 1) * OutRow + d);
    }
}
