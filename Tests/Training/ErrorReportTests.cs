using ViTScratch.Training;

namespace ViTScratch.Tests.Training;

/// <summary>How `vit` ends on an exception: one line, the right exit code, a stack trace only with --verbose.</summary>
public class ErrorReportTests
{
    private static (int Code, string Err) Report(Exception e, bool verbose = false)
    {
        var stderr = new StringWriter();
        int code = Program.Report(e, verbose, stderr);
        return (code, stderr.ToString().TrimEnd());
    }

    public static TheoryData<Exception, string> UserErrors => new()
    {
        { new ViTScratchException("checkpoint 'x' is corrupt"), "error: checkpoint 'x' is corrupt" },
        { new UnauthorizedAccessException("Access to the path '/r/run' is denied."), "permission denied" },
        { new DirectoryNotFoundException("Could not find a part of the path '/r/x/map.png'."), "'/r/x/map.png'" },
        { new IOException("No space left on device : '/r/run/metrics.csv'", 28), "the disk is full" },
        { new OutOfMemoryException(), "out of memory" },
        { new OverflowException("Arithmetic operation resulted in an overflow."), "a size in the input is too large" },
    };

    [Theory]
    [MemberData(nameof(UserErrors))]
    public void AUserErrorIsOneLineAndExitCode1(Exception e, string expected)
    {
        var (code, err) = Report(e);
        Assert.Equal(Program.ExitUserError, code);
        Assert.StartsWith("error: ", err);
        Assert.Contains(expected, err);
        Assert.DoesNotContain("\n", err);
    }

    [Fact]
    public void ABugIsOneLineThatSaysSoAndExitCode70()
    {
        var (code, err) = Report(new InvalidOperationException("tape\nout of order"));
        Assert.Equal(Program.ExitInternalError, code);
        Assert.Equal("internal error: InvalidOperationException: tape out of order (this is a bug in vit; run again with --verbose for the stack trace and report it)", err);
    }

    [Fact]
    public void VerboseAddsTheStackTraceAfterTheLine()
    {
        Exception thrown;
        try { throw new InvalidOperationException("boom"); }
        catch (Exception e) { thrown = e; }
        var (_, err) = Report(thrown, verbose: true);
        var lines = err.Split('\n');
        Assert.StartsWith("internal error: InvalidOperationException: boom", lines[0]);
        Assert.Contains(lines, l => l.Contains("   at ", StringComparison.Ordinal));

        // End to end: the flag is taken from anywhere on the command line and given to no command.
        var stderr = new StringWriter();
        Assert.Equal(1, Program.Run(["eval", "--verbose", "--checkpoint", "/nonexistent.safetensors"], new StringWriter(), stderr));
        Assert.StartsWith("error: checkpoint '/nonexistent.safetensors' does not exist", stderr.ToString());
        Assert.Contains("   at ", stderr.ToString());
        stderr = new StringWriter();
        Program.Run(["eval", "--checkpoint", "/nonexistent.safetensors"], new StringWriter(), stderr);
        Assert.DoesNotContain("   at ", stderr.ToString());
    }
}
