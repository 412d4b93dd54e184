using System.Text;

namespace ViTScratch;

/// <summary>
/// An error the user can fix: a bad flag, a wrong shape, a missing or corrupt dataset, an
/// unreadable checkpoint. Its message says what is wrong and how to fix it; the console runner
/// prints the message alone (no stack trace) and exits non-zero. Bugs stay ordinary exceptions.
/// </summary>
public class ViTScratchException : Exception
{
    /// <summary>An error whose one-line <paramref name="message"/> names what is wrong and the fix.</summary>
    public ViTScratchException(string message) : base(message) { }

    /// <summary>The same, keeping the exception that revealed it (an I/O or parse error) as <paramref name="inner"/>.</summary>
    public ViTScratchException(string message, Exception inner) : base(message, inner) { }

    /// <summary>
    /// Text taken from a file (a tensor name, a metadata value) made safe to put in a message:
    /// control characters escaped, so the message stays one line, and cut after
    /// <paramref name="maxLength"/> characters, so a hostile 100 MB string does not become the message.
    /// </summary>
    public static string Printable(string text, int maxLength = 80)
    {
        var sb = new StringBuilder(Math.Min(text.Length, maxLength) + 8);
        foreach (char c in text)
        {
            if (sb.Length >= maxLength) return sb.Append($"... ({text.Length} characters)").ToString();
            if (char.IsControl(c)) sb.Append(c switch { '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", _ => $"\\u{(int)c:X4}" });
            else sb.Append(c);
        }
        return sb.ToString();
    }
}
