/* emu_selftest.cu: hand-written CUDA kernels run under the host emulation (emu/lathe_cuda_emu.h), each
   against a plain C++ result: a shared-memory block reduction (__syncthreads, threads that exit early), warp
   shuffle reductions (down, xor, broadcast), a 1024-thread block that never synchronizes, and a wmma TF32
   tiled matmul. Built and run by emu_selftest.sh:
     g++ -std=c++17 -O1 -DLATHE_CUDA_EMULATE -include emu/lathe_cuda_emu.h -x c++ emu_selftest.cu
   The kernels are real CUDA (the host side is the emulation's only): nvcc -c -arch=sm_80 compiles them. */
#ifndef LATHE_CUDA_EMULATE
#include <mma.h>
#endif

extern "C" __global__ void __launch_bounds__(256) block_sum(float *__restrict__ out, const float *__restrict__ x,
                                                            long long n) {
    __shared__ float part[256];
    float s = 0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        s += x[i];
    part[threadIdx.x] = s;
    __syncthreads();
    for (unsigned h = blockDim.x / 2; h > 0; h /= 2) {
        if (threadIdx.x < h)
            part[threadIdx.x] += part[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = part[0];
}

/* threads past `live` exit before the barrier: the others must not wait for them */
extern "C" __global__ void early_exit(int *__restrict__ out, long long live) {
    __shared__ int seen[128];
    if (threadIdx.x >= live)
        return;
    seen[threadIdx.x] = (int)threadIdx.x + 1;
    __syncthreads();
    out[threadIdx.x] = seen[(threadIdx.x + 1) % live];
}

extern "C" __global__ void warp_sums(double *__restrict__ down, int *__restrict__ xr, float *__restrict__ bcast,
                                     const double *__restrict__ x) {
    unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
    double v = x[t];
    for (int o = 16; o > 0; o /= 2)
        v += __shfl_down_sync(0xffffffffu, v, o);
    if (threadIdx.x % 32 == 0)
        down[t / 32] = v;
    int m = (int)t;
    for (int o = 1; o < 32; o *= 2)
        m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
    xr[t] = m;
    bcast[t] = __shfl_sync(0xffffffffu, (float)x[t], 5);
}

extern "C" __global__ void no_sync(long long *__restrict__ out) {
    out[blockIdx.x * blockDim.x + threadIdx.x] = (long long)blockIdx.x * 10000 + threadIdx.x;
}

/* C[M,N] = A[M,K] B[K,N] (row-major; B read column-major as its transpose Bt[N,K]): one warp per 16x16 tile,
   A staged through shared memory, K in steps of 8 */
extern "C" __global__ void __launch_bounds__(64) wmma_gemm(float *__restrict__ c, const float *__restrict__ a,
                                                          const float *__restrict__ bt, long long m, long long nn,
                                                          long long k) {
    using namespace nvcuda;
    __shared__ float as[2][16 * 8];
    unsigned w = threadIdx.x / 32, lane = threadIdx.x % 32;
    long long tiles_n = nn / 16;
    long long tile = (long long)blockIdx.x * 2 + w;
    bool live = tile < (m / 16) * tiles_n;
    long long ti = live ? tile / tiles_n : 0, tj = live ? tile % tiles_n : 0;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (long long k0 = 0; k0 < k; k0 += 8) {
        for (unsigned e = lane; e < 16 * 8; e += 32)
            as[w][e] = a[(ti * 16 + e / 8) * k + k0 + e % 8];
        __syncthreads();
        wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fb;
        wmma::load_matrix_sync(fa, as[w], 8);
        wmma::load_matrix_sync(fb, bt + tj * 16 * k + k0, (unsigned)k);
        for (int i = 0; i < fa.num_elements; i++)
            fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
        for (int i = 0; i < fb.num_elements; i++)
            fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
        wmma::mma_sync(acc, fa, fb, acc);
        __syncthreads();
    }
    if (live)
        wmma::store_matrix_sync(c + ti * 16 * nn + tj * 16, acc, (unsigned)nn, wmma::mem_row_major);
}

/* ---------------------------------------------------------------- the host side */
#ifdef LATHE_CUDA_EMULATE

static int failures;

static void check(bool ok, const char *what) {
    printf("%s %s\n", ok ? "PASS" : "FAIL", what);
    failures += !ok;
}

static float lcg(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f * 4.0f - 2.0f;
}

static void test_block_sum(void) {
    const long long n = 5000;
    static float x[5000], part[7];
    unsigned s = 1;
    double want = 0;
    for (long long i = 0; i < n; i++)
        want += x[i] = lcg(&s);
    for (unsigned grid = 1; grid <= 7; grid += 6) {
        lathe_emu_launch(grid, 256, [&] { block_sum(part, x, n); });
        double got = 0;
        for (unsigned b = 0; b < grid; b++)
            got += part[b];
        check(fabs(got - want) <= 1e-4 * fabs(want) + 1e-3, grid == 1 ? "block_sum, grid 1" : "block_sum, grid 7");
    }
    lathe_emu_set_reverse(1);
    lathe_emu_launch(7, 256, [&] { block_sum(part, x, n); });
    lathe_emu_set_reverse(0);
    double got = 0;
    for (unsigned b = 0; b < 7; b++)
        got += part[b];
    check(fabs(got - want) <= 1e-4 * fabs(want) + 1e-3, "block_sum, grid 7, threads last to first");
}

static void test_early_exit(void) {
    int out[128];
    memset(out, 0, sizeof out);
    lathe_emu_launch(1, 128, [&] { early_exit(out, 100); });
    bool ok = true;
    for (int t = 0; t < 100; t++)
        ok &= out[t] == (t + 1) % 100 + 1;
    for (int t = 100; t < 128; t++)
        ok &= out[t] == 0;
    check(ok, "__syncthreads with exited threads");
}

static void test_warp_sums(void) {
    enum { T = 2 * 96 };
    static double x[T], down[T / 32];
    static int xr[T];
    static float bc[T];
    unsigned s = 7;
    for (int i = 0; i < T; i++)
        x[i] = lcg(&s);
    lathe_emu_launch(2, 96, [&] { warp_sums(down, xr, bc, x); });
    bool ok_down = true, ok_xor = true, ok_b = true;
    for (int w = 0; w < T / 32; w++) {
        double want = 0;
        for (int l = 0; l < 32; l++)
            want += x[w * 32 + l];
        ok_down &= fabs(down[w] - want) <= 1e-12;
        for (int l = 0; l < 32; l++) {
            ok_xor &= xr[w * 32 + l] == w * 32 + 31;
            ok_b &= bc[w * 32 + l] == (float)x[w * 32 + 5];
        }
    }
    check(ok_down, "__shfl_down_sync warp sum");
    check(ok_xor, "__shfl_xor_sync butterfly max");
    check(ok_b, "__shfl_sync broadcast of lane 5");
}

static void test_no_sync(void) {
    static long long out[3 * 1024];
    lathe_emu_launch(3, 1024, [&] { no_sync(out); });
    bool ok = true;
    for (int i = 0; i < 3 * 1024; i++)
        ok &= out[i] == (long long)(i / 1024) * 10000 + i % 1024;
    check(ok, "1024 threads a block, no synchronization");
}

static float tf32_rna(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x1000u) & ~0x1fffu;
    memcpy(&x, &u, 4);
    return x;
}

static void test_wmma_gemm(void) {
    enum { M = 48, N = 32, K = 24 };
    static float a[M * K], bt[N * K], c[M * N];
    unsigned s = 3;
    for (int i = 0; i < M * K; i++)
        a[i] = lcg(&s);
    for (int i = 0; i < N * K; i++)
        bt[i] = lcg(&s);
    /* (M/16)*(N/16) = 6 tiles, 2 warps a block: grid 3 covers them, grid 2 leaves a warp idle per block */
    lathe_emu_launch(3, 64, [&] { wmma_gemm(c, a, bt, M, N, K); });
    double worst_tf32 = 0, worst_f32 = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double t = 0, f = 0;
            for (int k = 0; k < K; k++) {
                t += (double)tf32_rna(a[i * K + k]) * tf32_rna(bt[j * K + k]);
                f += (double)a[i * K + k] * bt[j * K + k];
            }
            worst_tf32 = fmax(worst_tf32, fabs(c[i * N + j] - t));
            worst_f32 = fmax(worst_f32, fabs(c[i * N + j] - f));
        }
    check(worst_tf32 <= 1e-4, "wmma m16n16k8 tf32 matmul: as products of TF32-rounded inputs");
    check(worst_f32 > 1e-5 && worst_f32 <= 5e-2, "wmma m16n16k8 tf32 matmul: within TF32's error of float32");
}

static void test_tf32_rounding(void) {
    using nvcuda::wmma::__float_to_tf32;
    /* 1 + 2^-11 is a tie between 1 and 1 + 2^-10: away from zero; just below it rounds down */
    bool ok = __float_to_tf32(1.0f + 0x1p-11f) == 1.0f + 0x1p-10f && __float_to_tf32(-1.0f - 0x1p-11f) == -1.0f - 0x1p-10f &&
              __float_to_tf32(1.0f + 0x1p-11f - 0x1p-23f) == 1.0f && __float_to_tf32(1.0f + 0x1p-10f) == 1.0f + 0x1p-10f &&
              isinf(__float_to_tf32(__int_as_float(0x7f800000))) && isnan(__float_to_tf32(__int_as_float(0x7fc00001)));
    check(ok, "__float_to_tf32 rounds to nearest, ties away");
}

int main(void) {
    test_block_sum();
    test_early_exit();
    test_warp_sums();
    test_no_sync();
    test_wmma_gemm();
    test_tf32_rounding();
    return failures ? 1 : 0;
}
#endif
