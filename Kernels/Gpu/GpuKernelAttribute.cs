using System.Reflection;

namespace ViTScratch.Kernels.Gpu;

/// <summary>
/// Marks a static method as an explicitly grouped ILGPU kernel. The attribute is the registry:
/// <see cref="GpuKernelRegistry"/> finds every marked method, the PTX emitter and the ptxas test
/// compile all of them, and <see cref="GpuKernels"/> refuses to load a kernel that is not marked,
/// so no kernel can run on a GPU without also being checked by ptxas.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class GpuKernelAttribute : Attribute;

/// <summary>Every ILGPU kernel of the backend, found through <see cref="GpuKernelAttribute"/>.</summary>
internal static class GpuKernelRegistry
{
    private static readonly Lazy<IReadOnlyList<MethodInfo>> _all = new(() =>
        typeof(GpuKernelRegistry).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Where(m => m.GetCustomAttribute<GpuKernelAttribute>() is not null)
            .OrderBy(Name, StringComparer.Ordinal)
            .ToArray());

    /// <summary>All kernels, ordered by <see cref="Name"/>.</summary>
    public static IReadOnlyList<MethodInfo> All => _all.Value;

    /// <summary>A stable, file-name-safe name: "Family.Method", e.g. "SoftmaxKernels.Forward".</summary>
    public static string Name(MethodInfo kernel) => $"{kernel.DeclaringType!.Name}.{kernel.Name}";

    internal static void EnsureRegistered(Delegate kernel)
    {
        if (kernel.Method.GetCustomAttribute<GpuKernelAttribute>() is null)
            throw new InvalidOperationException($"{kernel.Method.DeclaringType?.Name}.{kernel.Method.Name} is loaded as a kernel but lacks [GpuKernel], so ptxas never checks it");
    }
}
