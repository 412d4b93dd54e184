using System.Runtime.CompilerServices;

// Tests drive both SIMD paths of the matmul and attention kernels (SimdPath) whatever the host
// supports, and benchmarks compare them; both need the internal switch.
[assembly: InternalsVisibleTo("ViTScratch.Tests")]
[assembly: InternalsVisibleTo("ViTScratch.Benchmarks")]
