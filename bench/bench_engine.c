/* bench_engine.c — engine throughput next to the machine's own ceiling, in one run:
 *   OpenBLAS sgemm at 2048^3 and at the linear layer's shapes, and ug_linear forward+backward
 *   at batch 1024, 256 -> 256 through the tape (6 N In Out flops: forward, dW, dX).
 * Prints a table and one JSON line. Median of repeated timings. The 2048^3 figure is W5 of
 * ../shared/peers/README.md (peers/gemm.py: 2 warm-up + reps timed calls, reps 10) and the
 * sgemm ceiling that bench/run.sh divides every workload's GFLOP/s by.
 * Usage: bench_engine [threads] [reps]  (defaults all, 10) */
#include "unigen.h"
#include "bench.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static float *randbuf(size_t n, uint64_t seed) {
    float *p = malloc(n * sizeof *p);
    ug_rng r = ug_rng_make(seed, 0, 0);
    ug_rng_normal(&r, p, (int64_t)n);
    return p;
}

/* GFLOP/s of C(M,N) = A(M,K) B(K,N) (ta/tb as in a layer's three products). */
static double bench_sgemm(int M, int N, int K, int ta, int tb, int reps) {
    float *a = randbuf((size_t)M * K, 1), *b = randbuf((size_t)K * N, 2), *c = calloc((size_t)M * N, 4);
    double t[64];
    for (int r = -2; r < reps; r++) {
        double t0 = bench_now_s();
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, 0.0f, c, N);
        if (r >= 0) t[r] = bench_now_s() - t0;
    }
    free(a); free(b); free(c);
    return 2.0 * M * N * K / bench_median(t, reps) * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 0, reps2048 = argc > 2 ? atoi(argv[2]) : 10;
    if (reps2048 < 1 || reps2048 > 64) return 2;
    ug_set_threads(threads);
    threads = ug_get_threads();
    const int B = 1024, In = 256, Out = 256, reps = 50;

    double ceil2048 = bench_sgemm(2048, 2048, 2048, 0, 0, reps2048);
    /* The three products of a linear layer: y = x W^T, dX = dY W, dW = dY^T x. */
    double g_fwd = bench_sgemm(B, Out, In, 0, 1, reps);
    double g_dx = bench_sgemm(B, In, Out, 0, 0, reps);
    double g_dw = bench_sgemm(Out, In, B, 1, 0, reps);
    double flops_layer = 6.0 * B * In * Out;
    double sgemm_trio_s = 2.0 * B * In * Out * (1 / g_fwd + 1 / g_dx + 1 / g_dw) * 1e-9;

    ug_ctx *ctx;
    ug_params *ps;
    if (ug_ctx_create(&ctx, 0) || ug_params_create(&ps)) return 1;
    ug_tensor *w = ug_params_add(ps, "fc.weight", 2, (int64_t[]){Out, In});
    ug_tensor *b = ug_params_add(ps, "fc.bias", 1, (int64_t[]){Out});
    if (ug_params_finalize(ps)) return 1;
    ug_params_init_uniform(ps, 1);
    float *xin = randbuf((size_t)B * In, 3), *dy = randbuf((size_t)B * Out, 4);
    double t[256];
    for (int r = -5; r < reps; r++) {
        double t0 = bench_now_s();
        ug_tensor *x = ug_tensor_from(ctx, 2, (int64_t[]){B, In}, xin);
        ug_tensor_requires_grad(ctx, x);   /* dX as in a hidden layer */
        ug_tensor *y = ug_linear(ctx, x, w, b);
        /* Seed dL/dy through a dot product with a fixed tensor: loss = sum(y * dy). */
        ug_tensor *d = ug_tensor_from(ctx, 2, (int64_t[]){B, Out}, dy);
        (void)d;
        ug_params_zero_grad(ps);
        ug_tensor *loss = ug_sum_all(ctx, ug_mul(ctx, y, d));
        ug_backward(ctx, loss);
        ug_ctx_reset(ctx);
        if (r >= 0) t[r] = bench_now_s() - t0;
    }
    double lin_s = bench_median(t, reps);
    double lin_gflops = flops_layer / lin_s * 1e-9;

    printf("# unigen engine bench, %d threads\n", threads);
    printf("%-52s %10s\n", "what", "GFLOP/s");
    printf("%-52s %10.1f\n", "OpenBLAS sgemm 2048x2048x2048", ceil2048);
    printf("%-52s %10.1f\n", "OpenBLAS sgemm 1024x256x256 (x W^T)", g_fwd);
    printf("%-52s %10.1f\n", "OpenBLAS sgemm 1024x256x256 (dY W)", g_dx);
    printf("%-52s %10.1f\n", "OpenBLAS sgemm 256x256x1024 (dY^T x)", g_dw);
    printf("%-52s %10.1f\n", "the three sgemms back to back (ideal layer)", flops_layer / sgemm_trio_s * 1e-9);
    printf("%-52s %10.1f  (%.3f ms/step, %.0f%% of ideal)\n",
           "ug_linear fwd+bwd 1024x256->256 via tape", lin_gflops, lin_s * 1e3,
           100.0 * sgemm_trio_s / lin_s);
    printf("{\"workload\": \"gemm\", \"impl\": \"unigen\", \"threads\": %d, \"reps\": %d, "
           "\"sgemm_2048_gflops\": %.2f, \"sgemm_layer_gflops\": %.2f, "
           "\"linear_fwd_bwd_gflops\": %.2f, \"linear_fwd_bwd_ms\": %.4f, \"peak_rss_mib\": %.1f}\n",
           threads, reps2048, ceil2048, flops_layer / sgemm_trio_s * 1e-9, lin_gflops, lin_s * 1e3,
           bench_peak_rss_mib());
    free(xin); free(dy);
    ug_params_free(ps);
    ug_ctx_free(ctx);
    return 0;
}
