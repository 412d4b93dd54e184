namespace ViTScratch.Tests.Reference;

// Scaled dot-product attention, unfused: for each (batch·head) h and query row i,
//   S_ij = scale q_i·k_j,  lse_i = logsumexp_j S_ij,  P_ij = exp(S_ij - lse_i)  (= softmax),
//   M_ij = dropout factor of element (h N + i) N + j (1 when p = 0),  o_i = Σ_j M_ij P_ij v_j.
// The backward pass is the textbook chain rule through those steps, with nothing saved:
//   dP_ij = M_ij dO_i·v_j,  dS_ij = P_ij (dP_ij - Σ_k P_ik dP_ik),
//   dq_i += scale Σ_j dS_ij k_j,  dk_j += scale Σ_i dS_ij q_i,  dv_j += Σ_i M_ij P_ij dO_i.
// The fused kernels use Σ_k P_ik dP_ik = dO_i·o_i and P = exp(S - lse) instead; the reference
// deliberately does not, so a backend that gets either identity wrong disagrees with it.
public static partial class ReferenceKernels
{
    /// <summary>The attention-dropout multiplier of score (i, j) of head h.</summary>
    public static double AttentionDropFactor(int h, int i, int j, int n, float dropoutP, uint seed) =>
        dropoutP > 0f ? DropoutFactor(seed, (uint)((h * n + i) * n + j), dropoutP) : 1.0;

    /// <summary>P of head h, row i: softmax_j(scale q_i·k_j), with its logsumexp.</summary>
    public static double[] AttentionRow(double[] q, double[] k, int h, int i, int n, int d, double scale, out double lse)
    {
        var s = new double[n];
        int b0 = h * n * d;
        for (int j = 0; j < n; j++)
        {
            double dot = 0;
            for (int c = 0; c < d; c++) dot += q[b0 + i * d + c] * k[b0 + j * d + c];
            s[j] = scale * dot;
        }
        lse = LogSumExp(s, 0, n);
        for (int j = 0; j < n; j++) s[j] = Math.Exp(s[j] - lse);
        return s;
    }

    /// <summary>q, k, v, o: [bh, n, d]; lse: [bh, n]. o = dropout(softmax(scale q kᵀ)) v.</summary>
    public static void AttentionForward(double[] q, double[] k, double[] v, double[] o, double[] lse,
        int bh, int n, int d, double scale, float dropoutP, uint seed)
    {
        for (int h = 0; h < bh; h++)
            for (int i = 0; i < n; i++)
            {
                double[] p = AttentionRow(q, k, h, i, n, d, scale, out double l);
                lse[h * n + i] = l;
                for (int c = 0; c < d; c++)
                {
                    double acc = 0;
                    for (int j = 0; j < n; j++)
                        acc += AttentionDropFactor(h, i, j, n, dropoutP, seed) * p[j] * v[h * n * d + j * d + c];
                    o[h * n * d + i * d + c] = acc;
                }
            }
    }

    /// <summary>
    /// dq += ..., dk += ..., dv += ... . <paramref name="o"/> and <paramref name="lse"/> are taken
    /// for signature parity with IKernels but not read: everything is recomputed from q, k, v.
    /// </summary>
    public static void AttentionBackward(double[] q, double[] k, double[] v, double[] o, double[] lse,
        double[] dO, double[] dq, double[] dk, double[] dv,
        int bh, int n, int d, double scale, float dropoutP, uint seed)
    {
        _ = o; _ = lse;
        for (int h = 0; h < bh; h++)
        {
            int b0 = h * n * d;
            for (int i = 0; i < n; i++)
            {
                double[] p = AttentionRow(q, k, h, i, n, d, scale, out _);
                var m = new double[n];
                var dp = new double[n];
                for (int j = 0; j < n; j++)
                {
                    m[j] = AttentionDropFactor(h, i, j, n, dropoutP, seed);
                    double dot = 0;
                    for (int c = 0; c < d; c++) dot += dO[b0 + i * d + c] * v[b0 + j * d + c];
                    dp[j] = m[j] * dot;
                }
                double rowDot = 0;
                for (int j = 0; j < n; j++) rowDot += p[j] * dp[j];
                for (int j = 0; j < n; j++)
                {
                    double ds = p[j] * (dp[j] - rowDot);
                    for (int c = 0; c < d; c++)
                    {
                        dq[b0 + i * d + c] += scale * ds * k[b0 + j * d + c];
                        dk[b0 + j * d + c] += scale * ds * q[b0 + i * d + c];
                        dv[b0 + j * d + c] += m[j] * p[j] * dO[b0 + i * d + c];
                    }
                }
            }
        }
    }
}
