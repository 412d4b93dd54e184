using ViTScratch.Tests.TestSupport;
using ViTScratch.Kernels;
using ViTScratch.Kernels.Cpu;
using Xunit;

namespace ViTScratch.Tests.Cpu;

/// <summary>
/// Fused CPU attention (forward and backward, with and without dropout) against an unfused
/// float64 computation written out here, on both micro-kernel paths and ragged N and D.
///
/// Tolerance, first order in u = 2^-24. A score s_ij = scale q_i.k_j carries an absolute error of
/// at most (d + 2) u scale sum_p |q_ip k_jp| (one FMA chain of d terms plus the alpha rounding);
/// exp turns an absolute error of the exponent into the same relative error of P, and exp, the
/// row sum (n terms) and the normalisation add (n + 4) u relative. Every output below is a sum
/// over at most max(n, d) products of such quantities (one more FMA chain: max(n, d) + 2 u). So
/// each output element may differ from the exact value by
///     eps_row * mag,   eps_row = 2 (d + 2) u Smag_row + (2 n + 2 d + 12) u,
/// where mag is the same sum taken over absolute values (computed by the reference), Smag_row is
/// the largest scale sum_p |q_ip k_jp| of the row, and the factor 2 on the score term covers the
/// backward pass using the score error twice (in P and in dS = P (dP - D)). The same bound, with
/// the rows' eps, is applied to lse (absolute, mag = 1 + Smag).
/// </summary>
public class CpuAttentionTests
{
    private const double U = 1.0 / (1 << 24);

    public static TheoryData<string, int, int, int, float> Cases()
    {
        var data = new TheoryData<string, int, int, int, float>();
        foreach (var path in new[] { "V256", "V512" })
        {
            data.Add(path, 3, 65, 64, 0f);
            data.Add(path, 3, 65, 64, 0.1f);
            data.Add(path, 2, 1, 7, 0f);
            data.Add(path, 5, 7, 33, 0.3f);
            data.Add(path, 2, 17, 32, 0f);
            data.Add(path, 1, 129, 16, 0.2f); // N above the 128-row query block: two blocks per pair
            data.Add(path, 2, 32, 16, 0.2f);  // N a whole number of vectors (no padding) with dropout: the rows' loops must stop at N
        }
        data.Add("V256", 4, 300, 24, 0.1f);   // three query blocks, the last ragged
        data.Add("V256", 12, 65, 32, 0f);     // enough pairs to run on several cores
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardAndBackwardMatchFloat64(string path, int bh, int n, int d, float dropoutP)
    {
        var kern = CpuMatMulTests.Kernels(path);
        var rnd = new Random(bh * 1000 + n * 10 + d);
        int len = bh * n * d;
        float[] q = Rand(rnd, len, 1.5), k = Rand(rnd, len, 1.5), v = Rand(rnd, len, 1), gO = Rand(rnd, len, 1);
        float[] dq0 = Rand(rnd, len, 1), dk0 = Rand(rnd, len, 1), dv0 = Rand(rnd, len, 1); // backward must add to these
        float scale = 1f / MathF.Sqrt(d);
        uint seed = 1234567u + (uint)n;

        var Q = kern.Upload(q); var K = kern.Upload(k); var V = kern.Upload(v); var dO = kern.Upload(gO);
        var O = kern.Upload(Rand(rnd, len, 1)); var L = kern.Upload(Rand(rnd, bh * n, 1)); // garbage: forward must overwrite
        var dQ = kern.Upload(dq0); var dK = kern.Upload(dk0); var dV = kern.Upload(dv0);
        kern.AttentionForward(Q, K, V, O, L, bh, n, d, scale, dropoutP, seed);
        kern.AttentionBackward(Q, K, V, O, L, dO, dQ, dK, dV, bh, n, d, scale, dropoutP, seed);
        float[] o = kern.Download(O), lse = kern.Download(L), dq = kern.Download(dQ), dk = kern.Download(dK), dv = kern.Download(dV);

        for (int h = 0; h < bh; h++)
        {
            int b0 = h * n * d;
            var P = new double[n, n]; var Pm = new double[n, n]; var M = new double[n, n];
            var eps = new double[n];
            for (int i = 0; i < n; i++)
            {
                double max = double.NegativeInfinity, smag = 0;
                var s = new double[n];
                for (int j = 0; j < n; j++)
                {
                    double dot = 0, mag = 0;
                    for (int p = 0; p < d; p++) { double t = (double)q[b0 + i * d + p] * k[b0 + j * d + p]; dot += t; mag += Math.Abs(t); }
                    s[j] = scale * dot; smag = Math.Max(smag, scale * mag); max = Math.Max(max, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < n; j++) sum += Math.Exp(s[j] - max);
                double l = max + Math.Log(sum);
                eps[i] = 2 * (d + 2) * U * smag + (2 * n + 2 * d + 12) * U;
                Near(lse[h * n + i], l, eps[i] * (1 + smag), $"lse[{h},{i}]");
                for (int j = 0; j < n; j++)
                {
                    P[i, j] = Math.Exp(s[j] - l);
                    M[i, j] = dropoutP > 0 ? (KernelMath.DropoutKeep(seed, (uint)((h * n + i) * n + j), dropoutP) ? 1.0 / (1.0 - dropoutP) : 0) : 1;
                    Pm[i, j] = P[i, j] * M[i, j];
                }
            }
            if (dropoutP > 0) AssertMaskIsNontrivial(M, n);

            // Forward: O = (P∘M) V.
            var oRef = new double[n, d];
            for (int i = 0; i < n; i++)
                for (int c = 0; c < d; c++)
                {
                    double acc = 0, mag = 0;
                    for (int j = 0; j < n; j++) { double t = Pm[i, j] * v[b0 + j * d + c]; acc += t; mag += Math.Abs(t); }
                    oRef[i, c] = acc;
                    Near(o[b0 + i * d + c], acc, eps[i] * mag, $"o[{h},{i},{c}]");
                }

            // Backward: dPm = dO Vᵀ, dP = dPm∘M, D_i = sum_j P dP, dS = P (dP - D).
            var dS = new double[n, n]; var dSmag = new double[n, n];
            for (int i = 0; i < n; i++)
            {
                var dP = new double[n]; var dPmag = new double[n];
                double D = 0, Dmag = 0;
                for (int j = 0; j < n; j++)
                {
                    double acc = 0, mag = 0;
                    for (int c = 0; c < d; c++) { double t = (double)gO[b0 + i * d + c] * v[b0 + j * d + c]; acc += t; mag += Math.Abs(t); }
                    dP[j] = acc * M[i, j]; dPmag[j] = mag * M[i, j];
                    D += P[i, j] * dP[j]; Dmag += P[i, j] * dPmag[j];
                }
                for (int j = 0; j < n; j++)
                {
                    dS[i, j] = P[i, j] * (dP[j] - D);
                    dSmag[i, j] = P[i, j] * (dPmag[j] + Dmag);
                }
            }
            for (int i = 0; i < n; i++)
                for (int c = 0; c < d; c++)
                {
                    double acc = 0, mag = 0;
                    for (int j = 0; j < n; j++) { acc += dS[i, j] * k[b0 + j * d + c]; mag += dSmag[i, j] * Math.Abs(k[b0 + j * d + c]); }
                    Near(dq[b0 + i * d + c], dq0[b0 + i * d + c] + scale * acc, eps[i] * (scale * mag + Math.Abs(dq0[b0 + i * d + c])), $"dq[{h},{i},{c}]");
                }
            double epsMax = eps.Max();
            for (int j = 0; j < n; j++)
                for (int c = 0; c < d; c++)
                {
                    double ak = 0, mk = 0, av = 0, mv = 0;
                    for (int i = 0; i < n; i++)
                    {
                        ak += dS[i, j] * q[b0 + i * d + c]; mk += dSmag[i, j] * Math.Abs(q[b0 + i * d + c]);
                        av += Pm[i, j] * gO[b0 + i * d + c]; mv += Pm[i, j] * Math.Abs(gO[b0 + i * d + c]);
                    }
                    Near(dk[b0 + j * d + c], dk0[b0 + j * d + c] + scale * ak, epsMax * (scale * mk + Math.Abs(dk0[b0 + j * d + c])), $"dk[{h},{j},{c}]");
                    Near(dv[b0 + j * d + c], dv0[b0 + j * d + c] + av, epsMax * (mv + Math.Abs(dv0[b0 + j * d + c])), $"dv[{h},{j},{c}]");
                }
        }
    }

    [Fact]
    public void DropoutMaskRowMatchesScalarHash()
    {
        // The vector hash must reproduce KernelMath.DropoutKeep exactly, including the ragged tail,
        // at both widths (Vector512 emulated where the CPU lacks it).
        var dst = new float[1000];
        foreach (var path in new[] { SimdPath.Vector256, SimdPath.Vector512 })
        foreach (float p in new[] { 0.1f, 0.5f, 0.9f })
            foreach (uint start in new[] { 0u, 77u, 4_294_966_999u }) // the last wraps around 2^32
            {
                Array.Fill(dst, -7f); // the three floats past the row must stay as they are
                unsafe { fixed (float* ptr = dst) DropoutRow.Fill(path, 42u, start, 997, p, 3f, ptr); }
                for (int j = 0; j < 997; j++)
                    Assert.Equal(KernelMath.DropoutKeep(42u, unchecked(start + (uint)j), p) ? 3f : 0f, dst[j]);
                Assert.Equal(new[] { -7f, -7f, -7f }, dst[997..]);
            }
    }

    [Fact]
    public void DropoutMaskRowMatchesScalarHashOverMillionsOfDraws()
    {
        // A hash that differs from KernelMath.Mix only in the low bits of the 24-bit draw (the
        // final xorshift turned into an or, say) flips a keep decision only for draws just below
        // the threshold: never in the thousand draws above, and at p = 0.5, whose threshold has no
        // low bits, never at all; at p = 0.9 the first flip came at draw 320,759.
        const int N = 1 << 20;
        var dst = new float[N];
        foreach (var path in new[] { SimdPath.Vector256, SimdPath.Vector512 })
            foreach (float p in new[] { 0.1f, 0.5f, 0.9f })
            {
                unsafe { fixed (float* ptr = dst) DropoutRow.Fill(path, 7u, 1000u, N, p, 1f, ptr); }
                for (int j = 0; j < N; j++)
                    if (dst[j] != (KernelMath.DropoutKeep(7u, 1000u + (uint)j, p) ? 1f : 0f))
                        Assert.Fail($"{path}, p = {p}: element {j} differs from KernelMath.DropoutKeep");
            }
    }

    private static void AssertMaskIsNontrivial(double[,] m, int n)
    {
        if (n * n < 40) return;
        int dropped = 0;
        foreach (double x in m) if (x == 0) dropped++;
        Assert.InRange(dropped, 1, n * n - 1);
    }

    private static void Near(float got, double want, double tol, string what)
    {
        double err = Math.Abs(got - want);
        if (!(err <= tol)) Assert.Fail($"{what} = {got}, want {want} (|err| {err:E3} > tol {tol:E3})");
    }

    private static float[] Rand(Random rnd, int n, double range)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)((rnd.NextDouble() * 2 - 1) * range);
        return x;
    }

}
