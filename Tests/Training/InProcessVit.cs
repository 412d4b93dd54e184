using ViTScratch.Training;

namespace ViTScratch.Tests.Training;

/// <summary>`vit` called in the test's own process (Program.Run), its output captured.</summary>
internal static class InProcessVit
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Exit code 1 and one line on stderr, no stack trace, holding every <paramref name="expected"/> text.</summary>
    public static void AssertOneLineError((int Code, string Out, string Err) r, params string[] expected)
    {
        Assert.True(r.Code == 1, $"exit {r.Code}: {r.Out}{r.Err}");
        string err = r.Err.TrimEnd();
        foreach (var e in expected) Assert.Contains(e, err);
        Assert.DoesNotContain("\n", err);
        Assert.DoesNotContain("   at ", err);
    }
}
