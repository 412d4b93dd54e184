// The FMA ceiling of this machine's cores, outside .NET: T threads, each running 10 independent
// chains of 256-bit FMAs (no memory traffic), so the two FMA pipes of a core stay busy.
//   gcc -O2 -mavx2 -mfma -pthread tools/fma-ceiling.c -o /tmp/fma && /tmp/fma 1 && /tmp/fma 2
// docs/log/2026-performance-log.md compares it with Benchmarks/FmaCeilingBenchmarks.cs and the matmul rates.
#include <immintrin.h>
#include <stdio.h>
#include <pthread.h>
#include <time.h>
#include <stdlib.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static long N=200000000;
static void* run(void* arg){
  // Each chain starts from its own value: ten identical chains would be one chain to the
  // compiler (gcc -O2 merged them, and the loop then timed a single latency-bound chain while the
  // printout counted ten: the figures this tool gave before 2026-11-26's seventh session were 10x
  // the work it really did, divided by the time of one chain).
  __m256 a0=_mm256_set1_ps(1.0f),a1=_mm256_set1_ps(1.1f),a2=_mm256_set1_ps(1.2f),a3=_mm256_set1_ps(1.3f),a4=_mm256_set1_ps(1.4f),
         a5=_mm256_set1_ps(1.5f),a6=_mm256_set1_ps(1.6f),a7=_mm256_set1_ps(1.7f),a8=_mm256_set1_ps(1.8f),a9=_mm256_set1_ps(1.9f);
  __m256 x=_mm256_set1_ps(0.9999f), y=_mm256_set1_ps(0.0001f);
  for(long i=0;i<N;i++){
    a0=_mm256_fmadd_ps(a0,x,y);a1=_mm256_fmadd_ps(a1,x,y);a2=_mm256_fmadd_ps(a2,x,y);a3=_mm256_fmadd_ps(a3,x,y);a4=_mm256_fmadd_ps(a4,x,y);
    a5=_mm256_fmadd_ps(a5,x,y);a6=_mm256_fmadd_ps(a6,x,y);a7=_mm256_fmadd_ps(a7,x,y);a8=_mm256_fmadd_ps(a8,x,y);a9=_mm256_fmadd_ps(a9,x,y);
  }
  float r[8]; _mm256_storeu_ps(r,_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0,a1),_mm256_add_ps(a2,a3)),_mm256_add_ps(_mm256_add_ps(a4,a5),_mm256_add_ps(_mm256_add_ps(a6,a7),_mm256_add_ps(a8,a9)))));
  *(float*)arg=r[0]; return 0;
}
int main(int argc,char**argv){
  int T=atoi(argv[1]); pthread_t th[8]; float out[8];
  double t0=now(); for(int i=0;i<T;i++) pthread_create(&th[i],0,run,&out[i]); for(int i=0;i<T;i++) pthread_join(th[i],0);
  double dt=now()-t0; printf("%d threads: %.1f GFLOP/s total (%.2f s)\n",T, T*N*10.0*16/dt/1e9, dt); return 0;}
