using ILGPU;
using ILGPU.Runtime;

namespace ViTScratch.Kernels.Gpu;

// Patchify in one launch: thread t handles image element t of [B, C, H, W] (so the image side is
// read or written coalesced) and computes where it lands in [B, N, p·p·C] with the same
// KernelMath.PatchIndex as the CPU backend. The strided-copy version needed p·p·C launches
// (48 for CIFAR), one per (row in patch, column in patch, channel).
internal sealed partial class GpuKernels
{
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, PatchArgs>? _patchify;

    public void PatchifyForward(DeviceBuffer images, DeviceBuffer patches, int batch, int channels, int height, int width, int patch) =>
        LaunchPatchify(images, patches, new PatchArgs(batch, channels, height, width, patch, 0, 0));

    public void PatchifyBackward(DeviceBuffer dPatches, DeviceBuffer dImages, int batch, int channels, int height, int width, int patch, bool accumulate) =>
        LaunchPatchify(dImages, dPatches, new PatchArgs(batch, channels, height, width, patch, 1, accumulate ? 1 : 0));

    private void LaunchPatchify(DeviceBuffer images, DeviceBuffer patches, PatchArgs a)
    {
        long n = (long)a.B * a.C * a.H * a.W;
        if (n == 0) return;
        (_patchify ??= Load<ArrayView<float>, ArrayView<float>, PatchArgs>(PatchKernels.Patchify))(Linear(n), V(images), V(patches), a);
    }
}

/// <summary>Patchify's shape; Backward = 1 writes the image side, (=|+=) by Accumulate.</summary>
internal readonly record struct PatchArgs(int B, int C, int H, int W, int P, int Backward, int Accumulate);

/// <summary>The kernel of GpuKernels.Patches.cs.</summary>
internal static class PatchKernels
{
    [GpuKernel]
    public static void Patchify(ArrayView<float> images, ArrayView<float> patches, PatchArgs a)
    {
        int total = a.B * a.C * a.H * a.W;
        for (int t = Grid.GlobalIndex.X; t < total; t += Grid.DimX * Group.DimX)
        {
            int x = t % a.W, r = t / a.W;
            int y = r % a.H, bc = r / a.H;
            int ch = bc % a.C, b = bc / a.C;
            int j = KernelMath.PatchIndex(b, ch, y, x, a.C, a.H, a.W, a.P);
            if (a.Backward == 0) patches[j] = images[t];
            else images[t] = a.Accumulate != 0 ? images[t] + patches[j] : patches[j];
        }
    }
}
