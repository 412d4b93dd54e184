using System.Reflection;
using System.Runtime.CompilerServices;
using System.Xml.Linq;
using ViTScratch.Engine;
using ViTScratch.Kernels;
using ViTScratch.Model;
using ViTScratch.Training.Optim;

namespace ViTScratch.Tests.Training;

/// <summary>
/// The library surface a new user meets (issue 19, item 3): integer labels and an explicit
/// reduction for the loss, typed gradients, optimizers built from a model without invalidating
/// anything the user holds, deterministic release of tensors, presets with a patch size.
/// </summary>
public class PublicApiTests : IDisposable
{
    private readonly Device _dev = Device.Create("cpu");

    private Tensor Logits() => Tensor.FromArray(_dev, [2f, -1f, 0.5f, 0f, 3f, -2f, 1f, 1f, -0.5f, 0.25f, 0.75f, -1.5f], 4, 3);

    [Fact]
    public void CrossEntropyWithIntegerLabelsReducesAsAsked()
    {
        int[] labels = [0, 1, 2, 1];
        // By hand: loss_i = logsumexp(row_i) − row_i[label_i].
        float[] rows = [2f, -1f, 0.5f, 0f, 3f, -2f, 1f, 1f, -0.5f, 0.25f, 0.75f, -1.5f];
        var expected = new double[4];
        for (int i = 0; i < 4; i++)
        {
            double lse = Math.Log(Enumerable.Range(0, 3).Sum(c => Math.Exp(rows[i * 3 + c])));
            expected[i] = lse - rows[i * 3 + labels[i]];
        }
        var none = Ops.CrossEntropy(Logits(), labels, reduction: Reduction.None).ToArray();
        Assert.Equal(4, none.Length);
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], none[i], 5);
        Assert.Equal(expected.Average(), Ops.CrossEntropy(Logits(), labels).Item(), 5); // mean is the default
        Assert.Equal(expected.Sum(), Ops.CrossEntropy(Logits(), labels, reduction: Reduction.Sum).Item(), 5);
    }

    [Fact]
    public void CrossEntropyRefusesLabelsThatAreNotClasses()
    {
        Assert.Contains("label 3 at index 1", Assert.Throws<ViTScratchException>(() => Ops.CrossEntropy(Logits(), [0, 3, 1, 1])).Message);
        Assert.Contains("label -1", Assert.Throws<ViTScratchException>(() => Ops.CrossEntropy(Logits(), [0, 1, 1, -1])).Message);
        Assert.Contains("3 labels", Assert.Throws<ViTScratchException>(() => Ops.CrossEntropy(Logits(), [0, 1, 1])).Message);
    }

    [Fact]
    public void GradientsAreReadAndWrittenThroughTheTensor()
    {
        var w = Tensor.FromArray(_dev, [1f, 2f, 3f], 3);
        w.RequiresGrad = true;
        Assert.False(w.HasGrad);
        Assert.Throws<InvalidOperationException>(() => w.GradToArray());
        w.SetGrad([0.5f, -1f, 2f]);
        Assert.True(w.HasGrad);
        Assert.Equal([0.5f, -1f, 2f], w.GradToArray());
        // The optimizer steps on the gradient set by hand: plain SGD, p ← p − lr·g.
        var sgd = new Sgd([new OptimParam("w", w, Decay: false)], momentum: 0f);
        Assert.Equal([0.5f, -1f, 2f], w.GradToArray()); // kept through the move into the optimizer's buffers
        sgd.Step(0.1f);
        var p = w.ToArray();
        Assert.Equal(0.95f, p[0], 6); Assert.Equal(2.1f, p[1], 6); Assert.Equal(2.8f, p[2], 6);
        Assert.Throws<ViTScratchException>(() => w.SetGrad([1f]));
    }

    [Fact]
    public void AnOptimizerBuiltFromAModelKeepsEveryParameterUsableAndRefusesASecondOne()
    {
        var model = new ViT(ViTPresets.Create("vit-micro", 1, 8, 8, 3, patchSize: 4) with { Dim = 16, Depth = 1, Heads = 2, DimHead = 8, MlpDim = 16 }, _dev, seed: 1);
        var before = model.NamedParameters().Select(p => p.Parameter.Value.ToArray()).ToList();
        var parameters = OptimParam.From(model);
        Assert.Equal(model.NamedParameters().Select(p => p.Name), parameters.Select(p => p.Name));
        Assert.Equal(model.NamedParameters().Select(p => p.Parameter.WeightDecay), parameters.Select(p => p.Decay));
        Assert.Contains(parameters, p => !p.Decay);
        var adamw = new AdamW(parameters);
        var after = model.NamedParameters().Select(p => p.Parameter.Value.ToArray()).ToList();
        Assert.Equal(before, after); // the same tensors, the same values, now in the optimizer's buffers
        var e = Assert.Throws<ViTScratchException>(() => new AdamW(OptimParam.From(model)));
        Assert.Contains("already belongs to an optimizer", e.Message);
        GC.KeepAlive(adamw);
    }

    [Fact]
    public void ADisposedTensorIsReleasedAndCannotBeRead()
    {
        var t = Tensor.FromArray(_dev, [1f, 2f], 2);
        t.Dispose();
        Assert.Throws<ObjectDisposedException>(() => t.ToArray());
        t.Dispose(); // twice is harmless

        using (new TensorScope())
        {
            var pooled = Ops.Scale(Tensor.Input(_dev, [1f, 2f], 2), 2f);
            pooled.Dispose(); // early, inside its scope; the scope's end then skips it
            Assert.Throws<ObjectDisposedException>(() => pooled.ToArray());
        }
    }

    [Fact]
    public void PresetsTakeAPatchSize()
    {
        Assert.Equal(4, ViTPresets.Create("vit-micro", 3, 32, 32, 10).PatchSize);
        var c = ViTPresets.Create("vit-micro", 3, 32, 32, 10, patchSize: 8);
        Assert.Equal(8, c.PatchSize);
        Assert.Equal(16, c.NumPatches);
        Assert.Throws<ViTScratchException>(() => ViTPresets.Create("vit-micro", 3, 32, 32, 10, patchSize: 5)); // 32 is not a multiple of 5
    }

    [Fact]
    public void ClassifyIsTheArgMaxOfTheLogitsInEvaluationMode()
    {
        var model = new ViT(ViTPresets.Create("vit-micro", 1, 8, 8, 5, patchSize: 4, dropout: 0.5f) with { Dim = 16, Depth = 1, Heads = 2, DimHead = 8, MlpDim = 16 }, _dev, seed: 2);
        var rng = new Random(3);
        var images = Tensor.FromArray(_dev, Enumerable.Range(0, 3 * 64).Select(_ => (float)rng.NextDouble()).ToArray(), 3, 1, 8, 8);
        int[] classes = model.Classify(images);
        Assert.True(model.Training); // the mode it had
        model.Eval();
        float[] logits;
        using (Tensor.NoGrad()) logits = model.Forward(images).ToArray();
        for (int b = 0; b < 3; b++)
        {
            var row = logits.AsSpan(b * 5, 5).ToArray();
            Assert.Equal(Array.IndexOf(row, row.Max()), classes[b]);
        }
    }

    // The Kernels package exports the raw-op interface that Device.Kernels hands out (and what its
    // calls take), backend selection, the profiler and the exception; the backends, the kernels and
    // their helpers are internal. Adding a public type is a decision: this list says so.
    [Fact]
    public void TheKernelsPackageExportsOnlyTheRawOpInterface()
    {
        string[] expected =
        [
            "ViTScratch.Kernels.AdamWArgs", "ViTScratch.Kernels.AttentionLayout", "ViTScratch.Kernels.BackendFactory",
            "ViTScratch.Kernels.DeviceBuffer", "ViTScratch.Kernels.IKernels", "ViTScratch.Kernels.MatMulShape",
            "ViTScratch.Kernels.MathPrecision", "ViTScratch.Kernels.ProfilingKernels", "ViTScratch.Kernels.ProfilingKernels+Entry",
            "ViTScratch.Kernels.SgdArgs", "ViTScratch.Kernels.StridedCopy", "ViTScratch.ViTScratchException",
        ];
        Assert.Equal(expected, typeof(IKernels).Assembly.GetExportedTypes().Select(t => t.FullName!).Order(StringComparer.Ordinal));
    }

    // Every public or protected member of the Kernels package has an XML doc entry in the file that
    // ships with it (the build only warns; this fails).
    [Fact]
    public void EveryExportedKernelsMemberIsDocumented()
    {
        var assembly = typeof(IKernels).Assembly;
        var documented = XDocument.Load(Path.ChangeExtension(assembly.Location, ".xml"))
            .Descendants("member").Select(m => (string)m.Attribute("name")!).ToHashSet();
        var ids = new List<string>();
        const BindingFlags visible = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (var type in assembly.GetExportedTypes())
        {
            ids.Add("T:" + DocName(type));
            foreach (var member in type.GetMembers(visible))
            {
                if (member.IsDefined(typeof(CompilerGeneratedAttribute))) continue; // a record's Equals, Deconstruct, ...
                switch (member)
                {
                    case MethodBase m when (m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly) && !m.IsSpecialName:
                        var ps = m.GetParameters();
                        ids.Add($"M:{DocName(type)}.{(m.IsConstructor ? "#ctor" : m.Name)}" +
                            (ps.Length == 0 ? "" : "(" + string.Join(",", ps.Select(p => DocName(p.ParameterType))) + ")"));
                        break;
                    case PropertyInfo p when p.GetMethod is { } g && (g.IsPublic || g.IsFamily):
                        ids.Add($"P:{DocName(type)}.{p.Name}");
                        break;
                    case FieldInfo f when (f.IsPublic || f.IsFamily) && !f.IsSpecialName:
                        ids.Add($"F:{DocName(type)}.{f.Name}");
                        break;
                }
            }
        }
        Assert.Contains("M:ViTScratch.Kernels.IKernels.MatMul(ViTScratch.Kernels.DeviceBuffer,ViTScratch.Kernels.DeviceBuffer,ViTScratch.Kernels.DeviceBuffer," +
            "ViTScratch.Kernels.MatMulShape@,System.Single,System.Boolean,ViTScratch.Kernels.DeviceBuffer)", ids); // the names are built as the compiler writes them
        Assert.True(ids.Count > 100, $"only {ids.Count} members found");
        var missing = ids.Where(id => !documented.Contains(id)).ToList();
        Assert.True(missing.Count == 0, "no XML doc for: " + string.Join(", ", missing));
    }

    /// <summary>A type as an XML doc id names it: nested with '.', generics in braces, by-ref '@'.</summary>
    private static string DocName(Type t)
    {
        if (t.IsByRef) return DocName(t.GetElementType()!) + "@";
        if (t.IsArray) return DocName(t.GetElementType()!) + "[]";
        if (t.IsPointer) return DocName(t.GetElementType()!) + "*";
        string name = t.IsNested ? DocName(t.DeclaringType!) + "." + t.Name : t.Namespace + "." + t.Name;
        if (!t.IsGenericType) return name;
        return name[..name.IndexOf('`')] + "{" + string.Join(",", t.GetGenericArguments().Select(DocName)) + "}";
    }

    public void Dispose() => _dev.Dispose();
}
