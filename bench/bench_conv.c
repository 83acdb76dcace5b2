/* bench_conv.c — the 3x3 convolution kernels alone, at the W2 U-Net's layer shapes: GFLOP/s
 * (2 N O C 9 H W per call, the direct convolution's count, whatever path runs) of the forward,
 * dx and dw (with db) of ug_k_conv2d_*, best of repeated calls, and a hash of the forward's
 * and dx's bits, so that a layout change can be checked to leave every float as it was.
 * Which path runs is ug_conv_is_winograd's rule (else the direct convolution, with AVX-512 or
 * AVX2 + FMA). N images per call, the threads taking whole images: 16 is W2's sampling tile,
 * 64 its training batch.
 * Usage: bench_conv [N] [threads]  (defaults 64, all) */
#include "unigen.h"
#include "bench.h"
#include "kernels/conv.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *randbuf(int64_t n, uint64_t seed) {
    float *p = malloc((size_t)n * sizeof *p);
    ug_rng r = ug_rng_make(seed, 0, 0);
    ug_rng_normal(&r, p, n);
    return p;
}

/* FNV-1a over the floats' bits. */
static uint64_t hash_floats(uint64_t h, const float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, p + i, sizeof u);
        h = (h ^ u) * 1099511628211ULL;
    }
    return h;
}

int main(int argc, char **argv) {
    const int64_t N = argc > 1 ? atoi(argv[1]) : 64;
    ug_set_threads(argc > 2 ? atoi(argv[2]) : 0);
    /* in -> out channels @ size: the U-Net's 3x3 stride-1 convolutions (peers/unet.py). */
    const int shapes[][3] = {{32, 32, 28}, {96, 32, 28}, {64, 32, 28}, {64, 64, 28},
                             {32, 64, 14}, {64, 64, 14}, {128, 64, 14}, {96, 64, 14},
                             {64, 64, 7},  {128, 64, 7}, {1, 32, 28},   {32, 1, 28}};
    printf("%-14s %-6s %8s %8s %8s  %s\n", "conv", "path", "fwd", "dx", "dw", "hash (fwd, dx)");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        ug_conv_geom g = {N, shapes[s][0], shapes[s][2], shapes[s][2], shapes[s][1], 3, 3, 1, 1,
                          0, 0};
        if (!ug_conv_geom_init(&g)) return 1;
        const int workers = ug_conv_workers(&g);
        const int64_t nx = g.N * g.C * g.H * g.W, ny = g.N * g.O * g.Ho * g.Wo,
                      nw = g.O * g.C * 9, ns = ug_conv_scratch_size(&g, workers, 1) + 1;
        float *x = randbuf(nx, 1), *w = randbuf(nw, 2), *b = randbuf(g.O, 3), *dy = randbuf(ny, 4),
              *y = malloc((size_t)ny * sizeof *y), *dx = malloc((size_t)nx * sizeof *dx),
              *dw = calloc((size_t)nw, sizeof *dw), *db = calloc((size_t)g.O, sizeof *db),
              *scratch = malloc((size_t)ns * sizeof *scratch);
        const double flop = 2.0 * (double)(g.N * g.O * g.C * 9 * g.Ho * g.Wo);
        const int reps = (int)(2e9 / flop) + 3;
        double best[3] = {1e30, 1e30, 1e30};
        for (int r = 0; r < reps; r++) {
            double t0 = bench_now_s();
            const ug_conv_epi e = {b, NULL, NULL};
            ug_k_conv2d_forward(y, scratch, workers, x, w, &e, &g, NULL);
            double t1 = bench_now_s();
            ug_k_conv2d_backward(dx, NULL, NULL, scratch, workers, dy, x, w, &g, 0);
            double t2 = bench_now_s();
            ug_k_conv2d_backward(NULL, dw, db, scratch, workers, dy, x, w, &g, 0);
            double t3 = bench_now_s();
            if (t1 - t0 < best[0]) best[0] = t1 - t0;
            if (t2 - t1 < best[1]) best[1] = t2 - t1;
            if (t3 - t2 < best[2]) best[2] = t3 - t2;
        }
        const uint64_t h = hash_floats(hash_floats(1469598103934665603ULL, y, ny), dx, nx);
        char name[32];
        snprintf(name, sizeof name, "%d->%d @%d", shapes[s][0], shapes[s][1], shapes[s][2]);
        printf("%-14s %-6s %8.1f %8.1f %8.1f  %016llx\n", name,
               ug_conv_is_winograd(&g) ? "wino" : ug_conv_is_direct(&g) ? "direct" : "cols",
               flop / best[0] * 1e-9, flop / best[1] * 1e-9, flop / best[2] * 1e-9,
               (unsigned long long)h);
        free(x); free(w); free(b); free(dy); free(y); free(dx); free(dw); free(db); free(scratch);
    }
    return 0;
}
