using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

/// <summary>
/// TorchSharp 0.107's libLibTorchSharp.so was built with GCC 13+, so it asks libstdc++ for version
/// GLIBCXX_3.4.32, which Debian 12's libstdc++ (GCC 12, up to GLIBCXX_3.4.30) does not have, and the
/// native load fails. The only symbol behind that version is std::ios_base_library_init(), which GCC 13's
/// &lt;iostream&gt; names with a bare ".globl" to pull in the right libstdc++: nothing calls it (no
/// relocation refers to it). Marking that one version requirement weak (VER_FLG_WEAK in its Vernaux
/// entry) lets the dynamic linker accept an older libstdc++, and changes nothing where the version exists.
/// Only the copies in this app's output folder are patched, never the NuGet cache.
/// </summary>
static class GlibcxxCompat
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;
    private const string Version = "GLIBCXX_3.4.32";

    public static void Apply()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) return;
        string dir = AppContext.BaseDirectory;
        foreach (var path in new[] { Path.Combine(dir, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"), Path.Combine(dir, "cpu", "libLibTorchSharp.so") })
            if (File.Exists(path)) MarkWeak(path);
    }

    private static void MarkWeak(string path)
    {
        byte[] elf = File.ReadAllBytes(path);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != 'E' || elf[2] != 'L' || elf[3] != 'F' || elf[4] != 2 || elf[5] != 1) return; // ELF64 little-endian only
        var span = elf.AsSpan();
        long shoff = BinaryPrimitives.ReadInt64LittleEndian(span[0x28..]);
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3A..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3C..]);

        for (int i = 0; i < shnum; i++)
        {
            var sh = span.Slice((int)(shoff + (long)i * shentsize), shentsize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) != ShtGnuVerneed) continue;
            long off = BinaryPrimitives.ReadInt64LittleEndian(sh[0x18..]);
            int strtab = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x28..]);
            int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x2C..]);
            long strOff = BinaryPrimitives.ReadInt64LittleEndian(span[(int)(shoff + (long)strtab * shentsize + 0x18)..]);

            long vn = off;
            for (int n = 0; n < count; n++)
            {
                int cnt = BinaryPrimitives.ReadUInt16LittleEndian(span[(int)(vn + 2)..]);
                long aux = vn + BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(vn + 8)..]);
                for (int a = 0; a < cnt; a++)
                {
                    int nameAt = (int)(strOff + BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(aux + 8)..]));
                    int end = Array.IndexOf(elf, (byte)0, nameAt);
                    var flags = span[(int)(aux + 4)..];
                    ushort f = BinaryPrimitives.ReadUInt16LittleEndian(flags);
                    if (Encoding.ASCII.GetString(elf, nameAt, end - nameAt) == Version && (f & VerFlgWeak) == 0)
                    {
                        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
                        fs.Position = aux + 4;
                        var patched = new byte[2];
                        BinaryPrimitives.WriteUInt16LittleEndian(patched, (ushort)(f | VerFlgWeak));
                        fs.Write(patched);
                    }
                    aux += BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(aux + 12)..]);
                }
                vn += BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(vn + 12)..]);
            }
        }
    }
}
