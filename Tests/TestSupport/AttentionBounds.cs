using ViTScratch.Kernels;
using R = ViTScratch.Tests.Reference.ReferenceKernels;
using static ViTScratch.Tests.TestSupport.Tol;

namespace ViTScratch.Tests.TestSupport;

/// <summary>
/// Per-element forward-error bounds of fused attention in float32 against the float64 reference,
/// for q, k, v: [BH, N, D] (dense). The bounds follow the data flow:
///   scores s_ij = scale q_i·k_j: |error| ≤ E_i = (d + 2) U scale max_j Σ|q_i||k_j|;
///   P_ij = exp(s_ij - lse_i): relative error relP_i = 2 E_i + (n + 2 R_i + 16) U, with R_i the
///     range of the row's scores (exp and softmax as in RowOpsMatrixTests; an online softmax's
///     rescalings are at most n more roundings, inside the n U);
///   o_i = Σ_j M P v_j: (relP_i + (n + 2) U) Σ_j M P |v_j|, computed by the reference on |v|;
///   lse_i: E_i + (n + 8) U + 2U |lse_i|.
/// Backward (inputs o and lse are the reference forward rounded to float, as a backend would save):
///   P from lse: relPb_i = relP_i + 2U |lse_i|; D_i = dO_i·o_i: (d + 4) U Σ|dO_i||o_i|;
///   dP_ij = M dO_i·v_j: (d + 2) U M Σ|dO_i||v_j|; dS = P (dP - D): errS = P (relPb |dP - D| + errdP + errD);
///   dq_i += scale Σ_j dS_ij k_j: scale Σ_j (errS_ij + (n + 4) U |dS_ij|) |k_j|;
///   dk_j likewise over i with q_i; dv_j += Σ_i M P dO_i: (relPb + (n + 4) U) Σ_i M P |dO_i|.
/// Those bound the added part; <see cref="Accumulated"/> adds the `+=` start's share separately.
///
/// Tensor cores (<see cref="MathPrecision.Tf32"/>, <see cref="MathPrecision.Bf16"/>;
/// Kernels/Gpu/AttentionTensorCoreKernels.cs): every input of a product (scale q, k, v, P, dO,
/// dS) is rounded to the format, unit u = 2^-11 (TF32, 10 stored mantissa bits) or 2^-8 (BF16, 7),
/// so a product term has relative error ≤ f = 2u + u²; the products of rounded inputs are exact
/// and the m-term accumulation is float32, counted at 2U per addition (a tensor core may truncate
/// instead of rounding). A dot product over m terms then errs by at most G(m) Σ|terms| with
/// G(m) = (1 + f)(1 + 2U)^m - 1, and relative errors compose by multiplication:
///   E_i = G(d + 3) scale max_j Σ|q_i||k_j| (the + 1: scale q in float32 before rounding);
///   relP_i = (1 + expm1(2 E_i))(1 + (n + 2 R_i + 16) U) - 1 (expm1: E_i is not small in BF16);
///   o_i: ((1 + relP_i)(1 + G(n + 2)) - 1) Σ_j M P |v_j|;  lse_i as above with this E_i;
///   backward: relPb_i = (1 + relP_i)(1 + 2U |lse_i|) - 1; errdP = G(d + 2) M Σ|dO_i||v_j|;
///   errS = P (relPb |dP - D| + (1 + relPb)(errdP + errD)); dq_i: scale Σ_j (errS_ij (1 + G(n + 5))
///   + G(n + 5) |dS_ij|) |k_j| (+ 1: scale dS in float32), dk_j likewise; dv_j: ((1 + relPb)(1 +
///   G(n + 4)) - 1) Σ_i M P |dO_i|. Growth with d and n is in G; the floor is the format's f.
/// </summary>
public sealed class AttentionBounds
{
    private readonly int _bh, _n, _d;
    private readonly double _scale;
    private readonly float _p;
    private readonly uint _seed;
    private readonly bool _tc;     // tensor-core arithmetic (Tf32 or Bf16)
    private readonly double _f;    // relative error of one product of two rounded inputs

    /// <summary>Unit roundoff of a tensor-core input format: 2^-11 (TF32), 2^-8 (BF16); 0 for Fp32.</summary>
    public static double FormatUnit(MathPrecision p) => p switch
    {
        MathPrecision.Tf32 => 1.0 / (1 << 11),
        MathPrecision.Bf16 => 1.0 / (1 << 8),
        _ => 0.0,
    };

    // G(m) of the summary: a tensor-core dot product's relative error bound over m terms.
    private double G(int m) => (1 + _f) * Math.Pow(1 + 2 * U, m) - 1;

    /// <summary>Per-row score error E_i and relative P error relP_i, and the exact P of each row.</summary>
    private readonly double[] _e, _relP;
    private readonly double[][] _probs;

    public AttentionBounds(double[] q, double[] k, int bh, int n, int d, double scale, float dropoutP, uint seed,
        MathPrecision precision = MathPrecision.Fp32)
    {
        (_bh, _n, _d, _scale, _p, _seed) = (bh, n, d, scale, dropoutP, seed);
        double u = FormatUnit(precision);
        (_tc, _f) = (u > 0, 2 * u + u * u);
        int rows = bh * n;
        _e = new double[rows]; _relP = new double[rows]; _probs = new double[rows][];
        for (int h = 0; h < bh; h++)
            for (int i = 0; i < n; i++)
            {
                int row = h * n + i;
                double maxAbsDot = 0, maxS = double.NegativeInfinity, minS = double.PositiveInfinity;
                for (int j = 0; j < n; j++)
                {
                    double abs = 0, dot = 0;
                    for (int t = 0; t < d; t++)
                    {
                        double a = q[row * d + t], b = k[(h * n + j) * d + t];
                        abs += Math.Abs(a * b); dot += a * b;
                    }
                    maxAbsDot = Math.Max(maxAbsDot, abs);
                    maxS = Math.Max(maxS, scale * dot); minS = Math.Min(minS, scale * dot);
                }
                double softmax = (n + 2 * (maxS - minS) + 16) * U;
                if (_tc)
                {
                    _e[row] = G(d + 3) * scale * maxAbsDot;
                    _relP[row] = Math.Exp(2 * _e[row]) * (1 + softmax) - 1;   // (1 + expm1(2E)) (1 + softmax) - 1
                }
                else
                {
                    _e[row] = (d + 2) * U * scale * maxAbsDot;
                    _relP[row] = 2 * _e[row] + softmax;
                }
                _probs[row] = R.AttentionRow(q, k, h, i, n, d, scale, out _);
            }
    }

    /// <summary>Bounds of o [BH, N, D] and lse [BH, N]; <paramref name="lse"/> is the reference's.</summary>
    public (double[] O, double[] Lse) Forward(double[] q, double[] k, double[] v, double[] lse)
    {
        var mag = new double[_bh * _n * _d];
        R.AttentionForward(q, k, Array.ConvertAll(v, Math.Abs), mag, new double[_bh * _n], _bh, _n, _d, _scale, _p, _seed);
        var bo = new double[mag.Length];
        for (int i = 0; i < mag.Length; i++)
            bo[i] = (_tc ? (1 + _relP[i / _d]) * (1 + G(_n + 2)) - 1 : _relP[i / _d] + (_n + 2) * U) * mag[i];
        var bl = new double[_bh * _n];
        for (int r = 0; r < bl.Length; r++) bl[r] = _e[r] + (_n + 8) * U + 2 * U * Math.Abs(lse[r]);
        return (bo, bl);
    }

    /// <summary>Bounds of the parts the backward adds to dq, dk and dv (all [BH, N, D]).</summary>
    public (double[] Dq, double[] Dk, double[] Dv) Backward(double[] q, double[] k, double[] v, double[] o, double[] lse, double[] dO)
    {
        int N = _n, Dm = _d, size = _bh * N * Dm;
        var bq = new double[size]; var bk = new double[size]; var bv = new double[size];
        for (int h = 0; h < _bh; h++)
            for (int i = 0; i < N; i++)
            {
                int row = h * N + i, qi = row * Dm;
                double relPb = _tc ? (1 + _relP[row]) * (1 + 2 * U * Math.Abs(lse[row])) - 1 : _relP[row] + 2 * U * Math.Abs(lse[row]);
                double absDo = 0, dotD = 0;
                for (int t = 0; t < Dm; t++) absDo += Math.Abs(dO[qi + t] * o[qi + t]);
                double errD = (Dm + 4) * U * absDo;
                var p = _probs[row];
                var dp = new double[N]; var m = new double[N];
                for (int j = 0; j < N; j++)
                {
                    m[j] = R.AttentionDropFactor(h, i, j, N, _p, _seed);
                    double dot = 0;
                    for (int t = 0; t < Dm; t++) dot += dO[qi + t] * v[(h * N + j) * Dm + t];
                    dp[j] = m[j] * dot;
                    dotD += p[j] * dp[j];
                }
                for (int j = 0; j < N; j++)
                {
                    int kj = (h * N + j) * Dm;
                    double absDP = 0;
                    for (int t = 0; t < Dm; t++) absDP += Math.Abs(dO[qi + t] * v[kj + t]);
                    double ds = p[j] * (dp[j] - dotD);
                    double errdP, errS, sErr, relV;
                    if (_tc)
                    {
                        errdP = G(Dm + 2) * m[j] * absDP;
                        errS = p[j] * (relPb * Math.Abs(dp[j] - dotD) + (1 + relPb) * (errdP + errD));
                        sErr = _scale * (errS * (1 + G(N + 5)) + G(N + 5) * Math.Abs(ds));
                        relV = (1 + relPb) * (1 + G(N + 4)) - 1;
                    }
                    else
                    {
                        errdP = (Dm + 2) * U * m[j] * absDP;
                        errS = p[j] * (relPb * Math.Abs(dp[j] - dotD) + errdP + errD);
                        sErr = _scale * (errS + (N + 4) * U * Math.Abs(ds));
                        relV = relPb + (N + 4) * U;
                    }
                    for (int t = 0; t < Dm; t++)
                    {
                        bq[qi + t] += sErr * Math.Abs(k[kj + t]);
                        bk[kj + t] += sErr * Math.Abs(q[qi + t]);
                        bv[kj + t] += relV * m[j] * p[j] * Math.Abs(dO[qi + t]);
                    }
                }
            }
        return (bq, bk, bv);
    }

    /// <summary>
    /// The bound of a `+=` result: the added part's bound plus the final addition's roundings,
    /// 2U (|start| + |added|), with the start and the exact sum taken from the reference.
    /// </summary>
    public static double Accumulated(double addedBound, double start, double exactResult) =>
        addedBound + 2 * U * (Math.Abs(start) + Math.Abs(exactResult - start));
}
