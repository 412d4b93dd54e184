namespace ViTScratch;

/// <summary>
/// An error the user can fix: a bad flag, a wrong shape, a missing or corrupt dataset, an
/// unreadable checkpoint. Its message says what is wrong and how to fix it; the console runner
/// prints the message alone (no stack trace) and exits non-zero. Bugs stay ordinary exceptions.
/// </summary>
public class ViTScratchException : Exception
{
    public ViTScratchException(string message) : base(message) { }
    public ViTScratchException(string message, Exception inner) : base(message, inner) { }
}
