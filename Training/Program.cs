namespace ViTScratch.Training;

public static class Program
{
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("vit: the console runner is not written yet.");
        return 2;
    }
}
