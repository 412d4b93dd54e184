using System.Reflection;

namespace ViTScratch.Training.Data;

/// <summary>
/// Decodes one image file to CHW uint8 of <paramref name="size"/> x <paramref name="size"/> with
/// <paramref name="channels"/> channels (shorter side scaled to the size, centre crop), refusing
/// images of more than <paramref name="maxPixels"/> pixels with a <see cref="ViTScratchException"/>.
/// </summary>
public delegate byte[] ImageDecoder(string path, int channels, int size, long maxPixels);

/// <summary>
/// The decoder an image folder uses: <see cref="FolderOptions.Decoder"/> when set, else
/// ViTScratch.Imaging's ImageFiles.LoadChw (SkiaSharp). That one is looked up by name, so this
/// library does not depend on SkiaSharp: only programs that reference ViTScratch.Imaging carry it.
/// </summary>
internal static class ImageDecoders
{
    private static readonly Lazy<ImageDecoder?> Imaging = new(() =>
    {
        try
        {
            var method = Assembly.Load("ViTScratch.Imaging").GetType("ViTScratch.Imaging.ImageFiles")
                ?.GetMethod("LoadChw", [typeof(string), typeof(int), typeof(int), typeof(long)]);
            return method?.CreateDelegate<ImageDecoder>();
        }
        catch (FileNotFoundException) { return null; }
    });

    public static ImageDecoder Resolve(ImageDecoder? chosen) => chosen ?? Imaging.Value
        ?? throw new ViTScratchException("an image folder needs an image decoder: reference the ViTScratch.Imaging package (SkiaSharp), " +
                                         "or set FolderOptions.Decoder to your own");
}
