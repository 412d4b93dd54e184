namespace ViTScratch.Kernels.Cpu;

// Patchify: images [B, C, H, W] → patches [B, N, p·p·C], N = (H/p)(W/p), in vit-pytorch's order
// (KernelMath.PatchIndex). A permutation, so the backward pass is the same walk with the roles of
// the two buffers swapped. One task per image row (b, ch, y): the row is read (or written)
// contiguously, and its W pixels land in W/p patches, p·C floats apart inside each.
internal sealed partial class CpuKernels
{
    private readonly record struct PatchJob(CpuBuffer Images, CpuBuffer Patches, int C, int H, int W, int P, bool Backward, bool Accumulate);

    public void PatchifyForward(DeviceBuffer images, DeviceBuffer patches, int batch, int channels, int height, int width, int patch) =>
        Patch(new PatchJob(CpuBuffer.Of(images), CpuBuffer.Of(patches), channels, height, width, patch, false, false), batch);

    public void PatchifyBackward(DeviceBuffer dPatches, DeviceBuffer dImages, int batch, int channels, int height, int width, int patch, bool accumulate) =>
        Patch(new PatchJob(CpuBuffer.Of(dImages), CpuBuffer.Of(dPatches), channels, height, width, patch, true, accumulate), batch);

    private static void Patch(in PatchJob job, int batch)
    {
        int rows = batch * job.C * job.H;
        if (rows <= 0 || job.W <= 0) return;
        Par.For(rows, job.W, job, static (in PatchJob j, int start, int end) =>
        {
            var img = j.Images.Span;
            var pat = j.Patches.Span;
            int c = j.C, h = j.H, w = j.W, p = j.P;
            for (int r = start; r < end; r++)
            {
                int y = r % h, bc = r / h, ch = bc % c, b = bc / c;
                int src = r * w;                                  // image row (b, ch, y)
                int dst0 = KernelMath.PatchIndex(b, ch, y, 0, c, h, w, p);
                int tokenStride = p * p * c;                      // next patch along x
                for (int gx = 0, x = 0; gx < w / p; gx++)
                {
                    int dst = dst0 + gx * tokenStride;
                    for (int p2 = 0; p2 < p; p2++, x++, dst += c)
                    {
                        if (!j.Backward) pat[dst] = img[src + x];
                        else img[src + x] = j.Accumulate ? img[src + x] + pat[dst] : pat[dst];
                    }
                }
            }
        });
    }
}
