namespace ViTScratch.Training.Data;

/// <summary>
/// The entry point for datasets by name: cifar10, cifar100, fashion-mnist, mnist.
///
/// Lookup: a --data directory given by the user is the only place searched (no silent fallback to
/// another copy elsewhere); when it does not hold the split, that is an error naming the missing
/// files, unless <see cref="DatasetOptions.DownloadIntoDataDir"/> (`--download`) asks for a download
/// into it. Without --data: the cache directory, then (MNIST-like sets) the system directory of the
/// Debian package, then a download into the cache directory. Downloads are MD5-checked and written
/// atomically. The directory a split was read from is its <see cref="ImageDataset.Source"/>; load
/// the other split from there (<c>dataDir: first.Source</c>) so train and test never come from two copies.
/// </summary>
public static class DatasetCatalog
{
    /// <summary>Where CIFAR-10 is downloaded from.</summary>
    public const string Cifar10Url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
    /// <summary>Its archive's MD5.</summary>
    public const string Cifar10Md5 = "c32a1d4ab5d03f1284b67883e8d87530";
    /// <summary>Where CIFAR-100 is downloaded from.</summary>
    public const string Cifar100Url = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz";
    /// <summary>Its archive's MD5.</summary>
    public const string Cifar100Md5 = "03b5dce01913d631647c71ecec9e9cb8";
    /// <summary>Where the Fashion-MNIST files are downloaded from.</summary>
    public const string FashionMnistBaseUrl = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";
    /// <summary>Where the MNIST files are downloaded from.</summary>
    public const string MnistBaseUrl = "https://ossci-datasets.s3.amazonaws.com/mnist/";

    /// <summary>The dataset names <see cref="Load"/> knows.</summary>
    public static IReadOnlyList<string> Names { get; } = ["cifar10", "cifar100", "fashion-mnist", "mnist", ImageFolder.Name];

    /// <summary>
    /// The splits a run trains on, all from one directory: the training split, a validation split
    /// when the data brings one (an image folder's val/; otherwise null, and --val-split carves
    /// one), and the test split (null for an image folder without test/).
    /// </summary>
    public static (ImageDataset Train, ImageDataset? Val, ImageDataset? Test) LoadSplits(string name, string? dataDir, DatasetOptions? options = null)
    {
        options ??= new DatasetOptions();
        if (Canonical(name) == ImageFolder.Name)
        {
            // One --cache-mb for the run: the training split takes what it needs first.
            var budget = options.Folder.Budget ?? new CacheBudget(options.Folder.CacheMb << 20);
            options = options.WithFolder(options.Folder with { Budget = budget });
            var train = Load(name, dataDir, train: true, options);
            // Validation and test are normalised with the training split's statistics.
            var fo = options.Folder with { Mean = train.Mean, Std = train.Std };
            return (train, ImageFolder.Load(train.Source!, "val", fo, train.ClassNames), ImageFolder.Load(train.Source!, "test", fo, train.ClassNames));
        }
        var first = Load(name, dataDir, train: true, options);
        // The test split from the directory the training split came from, never from a second copy.
        return (first, null, Load(name, first.Source, train: false, options));
    }

    /// <summary>Shape, classes and statistics of a dataset, without reading any file.</summary>
    public static DatasetInfo Info(string name) => Canonical(name) switch
    {
        "folder" => throw new ViTScratchException("an image folder's classes and statistics come from its files: use DatasetInfo.Of(the loaded split)"),
        "cifar10" => DatasetInfo.Cifar10,
        "cifar100" => DatasetInfo.Cifar100,
        "fashion-mnist" => DatasetInfo.FashionMnist,
        _ => DatasetInfo.Mnist,
    };

    /// <summary>Loads the training (<paramref name="train"/> = true) or test split of a dataset into memory.</summary>
    public static ImageDataset Load(string name, string? dataDir, bool train, DatasetOptions? options = null)
    {
        options ??= new DatasetOptions();
        var data = Canonical(name) switch
        {
            "folder" => train
                ? ImageFolder.Load(dataDir ?? throw new ViTScratchException("--dataset folder needs --data DIR, the folder of your class folders"), "train", options.Folder)!
                : ImageFolder.Load(dataDir ?? throw new ViTScratchException("--dataset folder needs --data DIR"), "test", options.Folder)
                  ?? throw new ViTScratchException($"'{dataDir}' has no test/ folder of class folders to evaluate on"),
            "cifar10" => LoadCifar(Cifar10Spec, dataDir, train, options),
            "cifar100" => LoadCifar(Cifar100Spec, dataDir, train, options),
            "fashion-mnist" => LoadIdx(FashionSpec, dataDir, train, options),
            _ => LoadIdx(MnistSpec, dataDir, train, options),
        };
        if (data.Count == 0)
            throw new ViTScratchException($"the {(train ? "training" : "test")} split of {data.Name} in '{data.Source}' holds no images: " +
                "its files are empty or truncated; replace them with a complete copy");
        return data;
    }

    /// <summary>The canonical name of a dataset (cifar-10 → cifar10, fmnist → fashion-mnist, ...); unknown names are an error.</summary>
    public static string CanonicalName(string name) => Canonical(name);

    private static string Canonical(string name)
    {
        string n = (name ?? "").Trim().ToLowerInvariant().Replace("_", "-");
        return n switch
        {
            "cifar10" or "cifar-10" => "cifar10",
            "cifar100" or "cifar-100" => "cifar100",
            "fashion-mnist" or "fashionmnist" or "fmnist" => "fashion-mnist",
            "mnist" => "mnist",
            "folder" or "imagefolder" => ImageFolder.Name,
            _ => throw new ViTScratchException($"Unknown dataset '{name}'. Known datasets: {string.Join(", ", Names)}."),
        };
    }

    // ---------------------------------------------------------------- CIFAR

    private sealed record CifarSpec(DatasetInfo Info, string ArchiveName, string DirName, string Url, string Md5, string EnvVar,
        CifarFormat.Layout Layout, string[] TrainFiles, string[] TestFiles, string ClassNamesFile);

    private static readonly CifarSpec Cifar10Spec = new(DatasetInfo.Cifar10, "cifar-10-binary.tar.gz", "cifar-10-batches-bin",
        Cifar10Url, Cifar10Md5, "VIT_CIFAR10_URL", CifarFormat.Cifar10,
        ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"],
        ["test_batch.bin"], "batches.meta.txt");

    private static readonly CifarSpec Cifar100Spec = new(DatasetInfo.Cifar100, "cifar-100-binary.tar.gz", "cifar-100-binary",
        Cifar100Url, Cifar100Md5, "VIT_CIFAR100_URL", CifarFormat.Cifar100Fine,
        ["train.bin"], ["test.bin"], "fine_label_names.txt");

    private static ImageDataset LoadCifar(CifarSpec spec, string? dataDir, bool train, DatasetOptions options)
    {
        string[] files = train ? spec.TrainFiles : spec.TestFiles;
        var roots = SearchRoots(dataDir, options);

        // 1. An extracted copy: ROOT/<dir>/ or ROOT itself holding the .bin files (all of them:
        //    a directory with only some is reported, not mixed with another copy).
        string? found = null;
        foreach (var root in roots)
        {
            foreach (var dir in new[] { Path.Combine(root, spec.DirName), root })
            {
                var missing = files.Where(f => !File.Exists(Path.Combine(dir, f))).ToList();
                if (missing.Count == 0) { found = dir; break; }
                if (missing.Count < files.Length)
                    throw new ViTScratchException($"'{Path.GetFullPath(dir)}' holds part of the {spec.Info.Name} {(train ? "training" : "test")} split " +
                        $"but lacks {string.Join(", ", missing)}; copy the whole '{spec.DirName}' directory there (or extract {spec.ArchiveName} again)");
            }
            if (found != null) break;
        }

        // 2. An archive already in a root (dropped there by the user, or an earlier download).
        if (found == null)
        {
            string? url = options.Url ?? NonEmpty(options.GetEnvironment(spec.EnvVar));
            string md5 = options.ExpectedMd5 ?? spec.Md5; // a mirror of the official archive has the official checksum
            string? archive = roots.Select(r => Path.Combine(r, spec.ArchiveName)).FirstOrDefault(File.Exists);
            string target;
            if (archive != null)
            {
                target = Path.GetDirectoryName(archive)!;
                VerifyMd5(archive, md5);
            }
            else
            {
                // 3. Download into the cache directory, or into the data directory when asked to.
                if (dataDir != null && !options.DownloadIntoDataDir)
                    throw new ViTScratchException($"--data '{Path.GetFullPath(dataDir)}' does not hold {spec.Info.Name}: neither '{spec.DirName}/' with " +
                        $"{string.Join(", ", files)} nor {spec.ArchiveName} is there. Point --data at the directory that holds them, add --download " +
                        "to download it into that directory, or leave out --data to use the cache");
                target = dataDir ?? options.CacheDir;
                archive = Path.Combine(target, spec.ArchiveName);
                url ??= spec.Url;
                string hint = $"Either put the extracted '{spec.DirName}' directory (or {spec.ArchiveName}) into a directory and pass it " +
                              $"with --data DIR, or set {spec.EnvVar} to a reachable mirror URL or a local copy of {spec.ArchiveName}.";
                if (!options.AllowDownload)
                    throw new ViTScratchException($"{spec.Info.Name} was not found in {string.Join(", ", roots)} and downloading is disabled. {hint}");
                DatasetDownloader.Fetch(url, archive, md5, hint, options.Progress, options.Cancel);
            }
            DatasetDownloader.ExtractTarGz(archive, target, deleteArchiveOnFailure: true, options.Cancel);
            found = Path.Combine(target, spec.DirName);
            if (!Directory.Exists(found))
                throw new ViTScratchException($"The archive '{archive}' does not contain the directory '{spec.DirName}': it is not the " +
                    $"{spec.Info.Name} binary archive. Delete it and point the URL override at {spec.ArchiveName} (binary version).");
        }

        var paths = files.Select(f => Path.Combine(found, f)).ToArray();
        var (pixels, labels) = CifarFormat.ReadFiles(paths, spec.Layout);
        IReadOnlyList<string> names = spec.Info.ClassNames;
        string namesFile = Path.Combine(found, spec.ClassNamesFile);
        if (File.Exists(namesFile))
        {
            var fromFile = CifarFormat.ReadClassNames(namesFile);
            if (fromFile.Length == spec.Layout.ClassCount) names = fromFile;
        }
        return new ImageDataset(spec.Info.Name, labels.Length, 3, 32, 32, pixels, labels, names, spec.Info.Mean, spec.Info.Std)
        {
            Source = Path.GetFullPath(found),
        };
    }

    private static void VerifyMd5(string path, string expected)
    {
        if (string.IsNullOrEmpty(expected)) return;
        string actual;
        using (var file = File.OpenRead(path))
            actual = Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(file));
        if (!actual.Equals(expected, StringComparison.OrdinalIgnoreCase))
            throw new ViTScratchException($"The archive '{path}' has MD5 {actual}, expected {expected.ToLowerInvariant()}: it is corrupt or " +
                "incomplete. Delete it and run again to download it afresh.");
    }

    // ---------------------------------------------------------------- MNIST-like (IDX)

    private sealed record IdxSpec(DatasetInfo Info, string DirName, string TorchDirName, string BaseUrl, string EnvVar,
        Dictionary<string, string> Md5s);

    private static readonly IdxSpec FashionSpec = new(DatasetInfo.FashionMnist, "fashion-mnist", "FashionMNIST", FashionMnistBaseUrl,
        "VIT_FASHION_MNIST_URL", new()
        {
            ["train-images-idx3-ubyte.gz"] = "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            ["train-labels-idx1-ubyte.gz"] = "25c81989df183df01b3e8a0aad5dffbe",
            ["t10k-images-idx3-ubyte.gz"] = "bef4ecab320f06d8554ea6380940ec79",
            ["t10k-labels-idx1-ubyte.gz"] = "bb300cfdad3c16e7a12a480ee83cd310",
        });

    private static readonly IdxSpec MnistSpec = new(DatasetInfo.Mnist, "mnist", "MNIST", MnistBaseUrl, "VIT_MNIST_URL", new()
    {
        ["train-images-idx3-ubyte.gz"] = "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ["train-labels-idx1-ubyte.gz"] = "d53e105ee54ea40749a09fcbcd1e9432",
        ["t10k-images-idx3-ubyte.gz"] = "9fb629c4189551a2d022fa330f9573f3",
        ["t10k-labels-idx1-ubyte.gz"] = "ec29112dd5afa0611ce80d1b7f02629c",
    });

    private static ImageDataset LoadIdx(IdxSpec spec, string? dataDir, bool train, DatasetOptions options)
    {
        string prefix = train ? "train" : "t10k";
        string imagesName = $"{prefix}-images-idx3-ubyte", labelsName = $"{prefix}-labels-idx1-ubyte";

        // An explicit --data is the only place looked at: a wrong one must fail, not quietly train
        // on another copy found in the cache or the system directory.
        var dirs = new List<string>();
        if (dataDir != null)
        {
            dirs.Add(Path.Combine(dataDir, spec.DirName));
            dirs.Add(Path.Combine(dataDir, spec.TorchDirName, "raw"));
            dirs.Add(dataDir);
        }
        else
        {
            dirs.Add(Path.Combine(options.CacheDir, spec.DirName));
            dirs.AddRange(options.SystemDirs.Select(s => Path.Combine(s, spec.DirName)));
        }

        (string Images, string Labels)? found = null;
        foreach (var dir in dirs)
        {
            string? imagesPath = FindIdx(dir, imagesName), labelsPath = FindIdx(dir, labelsName);
            if (imagesPath != null && labelsPath != null) { found = (imagesPath, labelsPath); break; }
            if (dataDir != null && (imagesPath ?? labelsPath) is string half)
                throw new ViTScratchException($"'{half}' is there but its {(imagesPath == null ? "images" : "labels")} file " +
                    $"({(imagesPath == null ? imagesName : labelsName)}[.gz]) is not in '{Path.GetFullPath(dir)}'; put the matching pair together");
        }

        if (found == null && dataDir != null && !options.DownloadIntoDataDir)
            throw new ViTScratchException($"--data '{Path.GetFullPath(dataDir)}' does not hold the {spec.Info.Name} {(train ? "training" : "test")} split: " +
                $"{imagesName}[.gz] and {labelsName}[.gz] are not in it, nor in its {spec.DirName}/ or {spec.TorchDirName}/raw/. Point --data at the " +
                "directory that holds them, add --download to download them into it, or leave out --data to use the cache");

        if (found == null)
        {
            string hint = $"Either install the Debian package (apt-get install dataset-fashion-mnist, Fashion-MNIST only), put the four " +
                          $"IDX files (e.g. {imagesName}.gz) into a directory and pass it with --data DIR, or set {spec.EnvVar} to a " +
                          "reachable mirror base URL or a local directory holding them.";
            if (!options.AllowDownload)
                throw new ViTScratchException($"{spec.Info.Name} ({imagesName}, {labelsName}) was not found in {string.Join(", ", dirs)} " +
                    $"and downloading is disabled. {hint}");
            string target = Path.Combine(dataDir ?? options.CacheDir, spec.DirName);
            string baseUrl = options.Url ?? NonEmpty(options.GetEnvironment(spec.EnvVar)) ?? spec.BaseUrl;
            string Fetch(string file)
            {
                string dest = Path.Combine(target, file);
                string md5 = options.ExpectedMd5 == "" ? "" : spec.Md5s[file];
                DatasetDownloader.Fetch(JoinUrl(baseUrl, file), dest, md5, hint, options.Progress, options.Cancel);
                return dest;
            }
            found = (Fetch(imagesName + ".gz"), Fetch(labelsName + ".gz"));
        }

        var (pixels, count, rows, cols) = IdxFormat.ReadImages(found.Value.Images);
        byte[] labels = IdxFormat.ReadLabels(found.Value.Labels);
        if (labels.Length != count)
            throw new ViTScratchException($"'{found.Value.Images}' holds {count} images but '{found.Value.Labels}' holds {labels.Length} labels: " +
                "they are from different splits or one is corrupt. Replace them with a matching pair.");
        return new ImageDataset(spec.Info.Name, count, 1, rows, cols, pixels, labels, spec.Info.ClassNames, spec.Info.Mean, spec.Info.Std)
        {
            Source = Path.GetFullPath(Path.GetDirectoryName(found.Value.Images)!),
        };
    }

    private static string? FindIdx(string dir, string baseName)
    {
        foreach (var candidate in new[] { baseName + ".gz", baseName, baseName.Replace("-idx", ".idx") })
        {
            string path = Path.Combine(dir, candidate);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    // ---------------------------------------------------------------- helpers

    private static List<string> SearchRoots(string? dataDir, DatasetOptions options)
    {
        // An explicit --data is searched alone; the cache only when none was given.
        return dataDir != null ? [dataDir] : [options.CacheDir];
    }

    private static string JoinUrl(string baseUrl, string file)
    {
        if (DatasetDownloader.LocalPath(baseUrl) is string local) return Path.Combine(local, file);
        return baseUrl.EndsWith('/') ? baseUrl + file : baseUrl + "/" + file;
    }

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;
}
