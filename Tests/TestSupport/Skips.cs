using ViTScratch.Kernels;
using Xunit;

namespace ViTScratch.Tests.TestSupport;

/// <summary>
/// Every reason a test may not run, as one place that both the attributes below and CI's
/// allow-list (.ci/allowed-skips) quote. A test whose precondition is missing is reported as
/// *skipped* with one of these reasons, never as passed: xunit 2 decides skips when it discovers a
/// test, so each precondition is an attribute that sets <see cref="FactAttribute.Skip"/> from the
/// machine's state. .ci/run fails on any skip whose reason is not on its allow-list.
/// </summary>
public static class SkipReasons
{
    /// <summary>Allowed on CI machines without a GPU: the cuda column cannot run there.</summary>
    public const string NoCuda = "no CUDA device: the cuda column of the backend matrix does not run on this machine (set VIT_REQUIRE_CUDA=1 to make this a failure)";

    public const string NoFashionMnist = "the Debian package dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)";

    public const string MatrixNarrowed = "VIT_TEST_BACKENDS narrows the backend matrix";

    public const string FashionMnistTestImages = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";

    /// <summary>CI=true (set by .ci/run and by most CI services).</summary>
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
}

/// <summary>A fact that needs a CUDA device, unless VIT_REQUIRE_CUDA=1, which makes it run (and fail) without one.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        if (!BackendFactory.HasCuda && Environment.GetEnvironmentVariable("VIT_REQUIRE_CUDA") != "1") Skip = SkipReasons.NoCuda;
    }
}

/// <summary>A fact that reads the real Fashion-MNIST files of the Debian package.</summary>
public sealed class FashionMnistFactAttribute : FactAttribute
{
    public FashionMnistFactAttribute()
    {
        if (!File.Exists(SkipReasons.FashionMnistTestImages)) Skip = SkipReasons.NoFashionMnist;
    }
}

/// <summary>A fact about the whole backend matrix: skipped while VIT_TEST_BACKENDS narrows it on purpose, except under CI.</summary>
public sealed class FullMatrixFactAttribute : FactAttribute
{
    public FullMatrixFactAttribute()
    {
        if (!SkipReasons.IsCi && Environment.GetEnvironmentVariable("VIT_TEST_BACKENDS") is { Length: > 0 }) Skip = SkipReasons.MatrixNarrowed;
    }
}
