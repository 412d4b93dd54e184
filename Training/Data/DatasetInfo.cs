namespace ViTScratch.Training.Data;

/// <summary>
/// What is known about a dataset before loading it: shape, classes, normalisation statistics
/// and where the official files live. The runner uses it to size the model without reading data.
/// </summary>
public sealed record DatasetInfo(
    string Name,
    int Channels, int Height, int Width,
    IReadOnlyList<string> ClassNames,
    IReadOnlyList<float> Mean, IReadOnlyList<float> Std,
    int TrainCount, int TestCount,
    // Default for training augmentation: flips are label-preserving for natural images,
    // not for digits (and barely useful for centred clothing).
    bool DefaultHorizontalFlip,
    // Default zero padding of the training random crop (0 = no crop).
    int DefaultCropPadding)
{
    /// <summary>Number of classes.</summary>
    public int ClassCount => ClassNames.Count;

    /// <summary>
    /// The info of a loaded split (an image folder's, whose classes and statistics come from its
    /// files). Augmentation defaults of natural images: flips, and a crop padded by an eighth.
    /// </summary>
    public static DatasetInfo Of(ImageDataset d) => new(d.Name, d.Channels, d.Height, d.Width, d.ClassNames, d.Mean, d.Std,
        d.Count, 0, DefaultHorizontalFlip: true, DefaultCropPadding: Math.Max(1, d.Height / 8));

    /// <summary>CIFAR-10: 32x32 RGB, 10 classes.</summary>
    public static readonly DatasetInfo Cifar10 = new("cifar10", 3, 32, 32,
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
        [0.4914f, 0.4822f, 0.4465f], [0.2470f, 0.2435f, 0.2616f], 50_000, 10_000, true, 4);

    /// <summary>CIFAR-100: 32x32 RGB, 100 fine classes.</summary>
    public static readonly DatasetInfo Cifar100 = new("cifar100", 3, 32, 32, Cifar100FineNames,
        [0.5071f, 0.4865f, 0.4409f], [0.2673f, 0.2564f, 0.2762f], 50_000, 10_000, true, 4);

    /// <summary>Fashion-MNIST: 28x28 grey, 10 classes.</summary>
    public static readonly DatasetInfo FashionMnist = new("fashion-mnist", 1, 28, 28,
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        [0.2860f], [0.3530f], 60_000, 10_000, false, 2);

    /// <summary>MNIST: 28x28 grey digits.</summary>
    public static readonly DatasetInfo Mnist = new("mnist", 1, 28, 28,
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        [0.1307f], [0.3081f], 60_000, 10_000, false, 2);

    /// <summary>CIFAR-100 fine label names in label order (as in the archive's fine_label_names.txt).</summary>
    public static string[] Cifar100FineNames =>
    [
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
        "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
        "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
        "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
        "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
        "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
        "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
        "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
        "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
        "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
    ];
}
