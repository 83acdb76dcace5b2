/* test_conv.c — the convolutions of src/kernels/conv.c under both schedules (one image at a
 * time with threaded sgemm; whole images across 2, 3 and 7 workers, uneven shares included:
 * the im2col, direct and Winograd paths) against a naive double-precision convolution,
 * forward, dx, dw and db, for 3x3 (stride 1 and 2, padded or not) and 1x1 kernels; the
 * Winograd kernel alone on odd and tiny images; and the worker rule. */
#include "test.h"
#include "kernels/conv.h"
#include "kernels/winograd.h"
#include "core/core.h"

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* y = conv(x, w) + b; dx, dw, db for dout = R; all in double. */
static void naive_conv(double *y, double *dx, double *dw, double *db, const float *x,
                       const float *w, const float *b, const float *R, const ug_conv_geom *g) {
    const int64_t N = g->N, C = g->C, H = g->H, W = g->W, O = g->O, k = g->kh, s = g->stride,
                  p = g->pad, Ho = g->Ho, Wo = g->Wo;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oh = 0; oh < Ho; oh++)
                for (int64_t ow = 0; ow < Wo; ow++) {
                    int64_t yi = ((n * O + o) * Ho + oh) * Wo + ow;
                    double acc = b[o];
                    db[o] += R[yi];
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t ki = 0; ki < k; ki++)
                            for (int64_t kj = 0; kj < k; kj++) {
                                int64_t ih = oh * s - p + ki, iw = ow * s - p + kj;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                int64_t xi = ((n * C + c) * H + ih) * W + iw;
                                int64_t wi = ((o * C + c) * k + ki) * k + kj;
                                acc += (double)x[xi] * w[wi];
                                dx[xi] += (double)R[yi] * w[wi];
                                dw[wi] += (double)R[yi] * x[xi];
                            }
                    y[yi] = acc;
                }
}

static float *randf(int64_t n, uint64_t seed) {
    float *p = malloc((size_t)n * sizeof *p);
    ug_rng r = ug_rng_make(seed, 0, 0);
    ug_rng_normal(&r, p, n);
    return p;
}

static int close_f(const char *what, const float *got, const double *ref, int64_t n, double tol) {
    double *g = malloc((size_t)n * sizeof *g);
    for (int64_t i = 0; i < n; i++) g[i] = got[i];
    int ok = ug_test_allclose_f64(what, g, ref, n, tol, tol);
    free(g);
    return ok;
}

TEST(conv_workers_match_naive) {
    /* N = 7 over 1, 2, 3 (3 + 2 + 2) and 7 workers. The 6 x 11 x 9 input is not square, so a
     * swapped H/W would show. */
    /* 3x3 stride-1 pad-1 (the direct path with > 1 worker): 5 -> 4 channels (one padded block of
     * 8) and 12 -> 17 (three blocks, the last partial; dx's transposed kernel 17 -> 12);
     * 16 -> 20 and 40 -> 16 (several blocks both ways, 360 terms a sum). */
    /* 48 -> 48 (C O >= UG_WINO_MIN_CO) runs the forward and dx by Winograd on the images of at
     * least 6 x 6 (11 x 9, 20 x 19, 7 x 7) and directly on the others. */
    const struct { int64_t C, O, k, s, p; } cfg[] = {{5, 4, 3, 1, 1}, {5, 4, 3, 2, 1},
                                                     {6, 3, 1, 1, 0}, {3, 2, 3, 1, 0},
                                                     {12, 17, 3, 1, 1}, {16, 20, 3, 1, 1},
                                                     {40, 16, 3, 1, 1}, {48, 48, 3, 1, 1}};
    /* The direct path's dw sweeps 4 images at a time on 11 x 9 (110 positions of the padded
     * grid; with 4 + 3 images per worker one group is partial), one at a time on 20 x 19. 7 x 7
     * and 5 x 6 pad images in stacks of 2 (3 images a worker: one stack is partial) and sweep
     * up to 4 stacks for dw. 3 x 45 gives stride 2 rows of 22-23 outputs (a vector of 16 and a
     * partial one in the columns' gather). */
    const int64_t N = 7, sizes[5][2] = {{11, 9}, {20, 19}, {7, 7}, {5, 6}, {3, 45}};
    const int wks[] = {1, 2, 3, 7};
    for (int si = 0; si < 5; si++)
    for (int ci = 0; ci < NELEM(cfg); ci++) {
        const int64_t H = sizes[si][0], W = sizes[si][1];
        ug_conv_geom g = {N, cfg[ci].C, H, W, cfg[ci].O, cfg[ci].k, cfg[ci].k, cfg[ci].s,
                          cfg[ci].p, 0, 0};
        ASSERT(ug_conv_geom_init(&g), "geometry %d", ci);
        int64_t nx = N * g.C * H * W, nw = g.O * g.C * g.kh * g.kw, ny = N * g.O * g.Ho * g.Wo;
        float *x = randf(nx, 1 + ci), *w = randf(nw, 11 + ci), *b = randf(g.O, 21 + ci),
              *R = randf(ny, 31 + ci);
        double *y = calloc((size_t)ny, sizeof *y), *dx = calloc((size_t)nx, sizeof *dx),
               *dw = calloc((size_t)nw, sizeof *dw), *db = calloc((size_t)g.O, sizeof *db);
        naive_conv(y, dx, dw, db, x, w, b, R, &g);
        /* The forward's other terms (ug_conv_epi): a per-image bias and an added tensor. */
        float *ib = randf(N * g.O, 81 + ci), *A = randf(ny, 91 + ci);
        for (int64_t i = 0; i < ny; i++) y[i] += (double)ib[i / (g.Ho * g.Wo)] + A[i];
        const ug_conv_epi e = {b, ib, A};
        /* Float sums of K unit-normal products: K roundings of partial sums of size ~sqrt(K),
         * so the error grows like K (sqrt(K) gave 1.9e-5 at K = 360, and sgemm erred by 2.1e-5
         * on 5 x 6); 1e-5 up to K = 100 (the forward sums C k k terms, dx O k k). */
        const double tol_y = 1e-5 * fmax(1.0, g.C * g.kh * g.kw / 100.0),
                     tol_x = 1e-5 * fmax(1.0, g.O * g.kh * g.kw / 100.0);
        for (int wi = 0; wi < NELEM(wks); wi++) {
            int wk = wks[wi];
            int64_t ns = ug_conv_scratch_size(&g, wk, 1);
            float *scratch = ns ? malloc((size_t)ns * sizeof *scratch) : NULL;
            float *out = malloc((size_t)ny * sizeof *out);
            /* Gradients start at 1, not 0: the kernels must add, not overwrite. */
            float *gx = malloc((size_t)nx * sizeof *gx), *gw = malloc((size_t)nw * sizeof *gw),
                  *gb = malloc((size_t)g.O * sizeof *gb);
            for (int64_t i = 0; i < nx; i++) gx[i] = 1.0f;
            for (int64_t i = 0; i < nw; i++) gw[i] = 1.0f;
            for (int64_t i = 0; i < g.O; i++) gb[i] = 1.0f;
            ug_k_conv2d_forward(out, scratch, wk, x, w, &e, &g, NULL);
            ug_k_conv2d_backward(gx, gw, gb, scratch, wk, R, x, w, &g, 1);
            for (int64_t i = 0; i < nx; i++) gx[i] -= 1.0f;
            for (int64_t i = 0; i < nw; i++) gw[i] -= 1.0f;
            for (int64_t i = 0; i < g.O; i++) gb[i] -= 1.0f;
            char what[64];
            snprintf(what, sizeof what, "%lldx%lld cfg %d workers %d forward", (long long)H,
                     (long long)W, ci, wk);
            EXPECT(close_f(what, out, y, ny, tol_y), "%s", what);
            snprintf(what, sizeof what, "%lldx%lld cfg %d workers %d dx", (long long)H,
                     (long long)W, ci, wk);
            EXPECT(close_f(what, gx, dx, nx, tol_x), "%s", what);
            snprintf(what, sizeof what, "%lldx%lld cfg %d workers %d dw", (long long)H,
                     (long long)W, ci, wk);
            EXPECT(close_f(what, gw, dw, nw, 1e-4), "%s", what);
            snprintf(what, sizeof what, "%lldx%lld cfg %d workers %d db", (long long)H,
                     (long long)W, ci, wk);
            EXPECT(close_f(what, gb, db, g.O, 1e-4), "%s", what);
            /* Only dx, then only dw: each NULL gradient is skipped, the other still right. dx
             * alone is written (dx_add 0) over NaNs: every element, none of the old read. */
            for (int64_t i = 0; i < nx; i++) gx[i] = NAN;
            ug_k_conv2d_backward(gx, NULL, NULL, scratch, wk, R, x, w, &g, 0);
            snprintf(what, sizeof what, "%lldx%lld cfg %d workers %d dx alone, written",
                     (long long)H, (long long)W, ci, wk);
            EXPECT(close_f(what, gx, dx, nx, tol_x), "%s", what);
            memset(gw, 0, (size_t)nw * sizeof *gw);
            ug_k_conv2d_backward(NULL, gw, NULL, scratch, wk, R, x, w, &g, 1);
            snprintf(what, sizeof what, "%lldx%lld cfg %d workers %d dw alone", (long long)H,
                     (long long)W, ci, wk);
            EXPECT(close_f(what, gw, dw, nw, 1e-4), "%s", what);
            /* The same call twice gives the same bits: dw does not depend on timing. */
            float *gw2 = calloc((size_t)nw, sizeof *gw2);
            ug_k_conv2d_backward(NULL, gw2, NULL, scratch, wk, R, x, w, &g, 1);
            EXPECT(!memcmp(gw, gw2, (size_t)nw * sizeof *gw),
                   "%lldx%lld cfg %d workers %d: dw repeats", (long long)H, (long long)W, ci, wk);
            free(gw2);
            /* Weights packed beforehand (a sampling run's cache): the same bits, and the
             * scratch's own packing region (NaN here) is not read. */
            const int64_t npk = ug_conv_packed_size(&g, wk);
            EXPECT((npk > 0) == (wk > 1 && ug_conv_is_direct(&g)),
                   "%lldx%lld cfg %d workers %d: %lld packed floats", (long long)H, (long long)W,
                   ci, wk, (long long)npk);
            if (npk) {
                float *pk = malloc((size_t)npk * sizeof *pk),
                      *out2 = malloc((size_t)ny * sizeof *out2);
                ug_k_conv2d_pack(pk, w, &g);
                for (int64_t i = 0; i < ns; i++) scratch[i] = NAN;
                ug_k_conv2d_forward(out2, scratch, wk, x, w, &e, &g, pk);
                EXPECT(!memcmp(out, out2, (size_t)ny * sizeof *out),
                       "%lldx%lld cfg %d workers %d: forward with packed weights differs",
                       (long long)H, (long long)W, ci, wk);
                free(pk); free(out2);
            }
            free(scratch); free(out); free(gx); free(gw); free(gb);
        }
        free(x); free(w); free(b); free(R); free(y); free(dx); free(dw); free(db);
        free(ib); free(A);
    }
}

TEST(conv_winograd_matches_naive) {
    /* The Winograd kernel alone (whatever the size rule of ug_conv_is_winograd): forward with
     * bias, and dx (the transposed, flipped kernel, added to what is there), on 1 x 1 ... 20 x 19
     * and 3 x 37, 2 x 64 images, odd sizes included (their last tile half outside), 1 to 17
     * channels (partial register blocks). Three images in one call, and again one call per
     * image: the same bits (each tile is computed the same way wherever its chunk starts). */
    const struct { int64_t C, O; } ch[] = {{5, 4}, {12, 17}, {9, 3}, {1, 1}};
    const int64_t sizes[][2] = {{1, 1}, {2, 3}, {5, 6}, {7, 7}, {11, 9}, {8, 16}, {20, 19},
                                {3, 37}, {2, 64}};   /* rows of 2 and 3 runs of 32 columns */
    const int64_t N = 3;
    for (int si = 0; si < NELEM(sizes); si++)
    for (int ci = 0; ci < NELEM(ch); ci++) {
        ug_conv_geom g = {N, ch[ci].C, sizes[si][0], sizes[si][1], ch[ci].O, 3, 3, 1, 1, 0, 0};
        ASSERT(ug_conv_geom_init(&g), "geometry");
        const int64_t C = g.C, O = g.O, HW = g.H * g.W, nx = N * C * HW, ny = N * O * HW,
                      nw = O * C * 9;
        float *x = randf(nx, 41 + ci), *w = randf(nw, 51 + ci), *b = randf(O, 61 + ci),
              *R = randf(ny, 71 + ci);
        double *y = calloc((size_t)ny, sizeof *y), *dx = calloc((size_t)nx, sizeof *dx),
               *dw = calloc((size_t)nw, sizeof *dw), *db = calloc((size_t)O, sizeof *db);
        naive_conv(y, dx, dw, db, x, w, b, R, &g);
        float *ib = randf(N * O, 81 + ci), *A = randf(ny, 91 + ci);
        for (int64_t i = 0; i < ny; i++) y[i] += (double)ib[i / HW] + A[i];
        const ug_conv_epi e = {b, ib, A};
        const int64_t nu = ug_wino_packed_size(O, C) > ug_wino_packed_size(C, O)
                               ? ug_wino_packed_size(O, C) : ug_wino_packed_size(C, O),
                      nk = ug_wino_work_size(&g, C, O) > ug_wino_work_size(&g, O, C)
                               ? ug_wino_work_size(&g, C, O) : ug_wino_work_size(&g, O, C);
        float *U = malloc((size_t)nu * sizeof *U), *work = malloc((size_t)nk * sizeof *work),
              *out = malloc((size_t)ny * sizeof *out), *out1 = malloc((size_t)ny * sizeof *out1),
              *gx = malloc((size_t)nx * sizeof *gx), *gx1 = malloc((size_t)nx * sizeof *gx1);
        char what[64];
        /* NaN scratch: whatever the kernel reads of it, it must have written first. */
        for (int64_t i = 0; i < nk; i++) work[i] = NAN;
        ug_wino_pack(U, w, O, C, 0);
        ug_wino_images(out, O * HW, &e, x, C * HW, N, C, O, U, &g, work);
        for (int64_t n = 0; n < N; n++) {
            const ug_conv_epi en = ug_conv_epi_at(&e, n, O, O * HW);
            ug_wino_images(out1 + n * O * HW, O * HW, &en, x + n * C * HW, C * HW, 1, C, O, U,
                           &g, work);
        }
        snprintf(what, sizeof what, "%lldx%lld %lld->%lld forward", (long long)g.H,
                 (long long)g.W, (long long)C, (long long)O);
        EXPECT(close_f(what, out, y, ny, 1e-5), "%s", what);
        EXPECT(!memcmp(out, out1, (size_t)ny * sizeof *out), "%s: split", what);
        ug_wino_pack(U, w, O, C, 1);
        for (int64_t i = 0; i < nx; i++) gx[i] = gx1[i] = 1.0f;
        const ug_conv_epi ax = {NULL, NULL, gx}, ax1 = {NULL, NULL, gx1};
        ug_wino_images(gx, C * HW, &ax, R, O * HW, N, O, C, U, &g, work);
        for (int64_t n = 0; n < N; n++) {
            const ug_conv_epi en = ug_conv_epi_at(&ax1, n, C, C * HW);
            ug_wino_images(gx1 + n * C * HW, C * HW, &en, R + n * O * HW, O * HW, 1, O, C, U,
                           &g, work);
        }
        EXPECT(!memcmp(gx, gx1, (size_t)nx * sizeof *gx), "%s: dx split", what);
        for (int64_t i = 0; i < nx; i++) gx[i] -= 1.0f;
        snprintf(what, sizeof what, "%lldx%lld %lld->%lld dx", (long long)g.H, (long long)g.W,
                 (long long)C, (long long)O);
        EXPECT(close_f(what, gx, dx, nx, 1e-5), "%s", what);
        free(x); free(w); free(b); free(R); free(y); free(dx); free(dw); free(db);
        free(ib); free(A);
        free(U); free(work); free(out); free(out1); free(gx); free(gx1);
    }
}

TEST(conv_worker_rule) {
    ug_conv_geom g = {64, 96, 28, 28, 32, 3, 3, 1, 1, 0, 0};
    ASSERT(ug_conv_geom_init(&g), "geometry");
    int t = ug_get_threads();
    EXPECT(ug_conv_workers(&g) == t, "64 images: %d workers, expected the %d threads",
           ug_conv_workers(&g), t);
    /* Direct path (AVX-512 or AVX2 + FMA builds): packed weights (32 x 96 x 9 both ways) + per
     * worker the backward's dw group of 4 images (3200+ positions of 812-position grids) of
     * padded input (96 x 30 x 29 + slack) and padded dout (32 channels), and dx accumulators
     * (96 x the 812 positions of the 28 x 29 grid rounded up to whole blocks of 32 or 24), and
     * the dw accumulator; elsewhere the im2col path: no packed weights, the
     * columns per worker. */
#if (defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))) && !defined(UG_NO_DIRECT_CONV)
#if defined(__AVX512F__)
    const int64_t block = 32, vw = 16;
#else
    const int64_t block = 24, vw = 8;
#endif
    EXPECT(ug_conv_is_direct(&g), "3x3 stride 1 pad 1 is direct");
#if !defined(UG_NO_WINOGRAD)
    /* 96 x 32 >= UG_WINO_MIN_CO at 28 x 28: the forward and dx by Winograd. Its buffers for Ci
     * input and Oc output channels: 8 arrays per input channel, each the 14 tile rows of 14
     * tiles, one more tile row and one vector; a chunk of transformed inputs and products,
     * 16 x NQ x (Ci + Oc rounded up to the register block), NQ = 65536 / (16 x 128) = 32 tiles
     * rounded down to whole blocks (24 or 32), and one vector of slack (the output transform's
     * loads past the last tile). Packed: 16 x 96 x 32 both ways. */
    EXPECT(ug_conv_is_winograd(&g), "96 -> 32 at 28 x 28 is Winograd");
    const int64_t ds = 15 * 14 + vw, nq = 32 / block * block,
                  wf = 8 * 96 * ds + 16 * nq * (96 + 32) + vw,
                  wb = 8 * 32 * ds + 16 * nq * (32 + 96) + vw,
                  packed = 16 * 96 * 32,
                  bwd = 4 * ((96 * 870 + block + 16) + (32 * 870 + block + 16)) + wb,
                  per = wf > bwd ? wf : bwd;
#else
    /* Packed weights (32 x 96 x 9 both ways) + per worker the backward's dw group of 4 images'
     * padded input (96 x 30 x 29 + slack) and padded dout (32 channels), and dx accumulators
     * (96 x the 812 positions of the 28 x 29 grid rounded up to whole blocks of 32 or 24). */
    const int64_t packed = 32 * 96 * 9,
                  per = 4 * ((96 * 870 + block + 16) + (32 * 870 + block + 16)) +
                        96 * ((812 + block - 1) / block * block);
#endif
#else
    const int64_t packed = 0, per = 96 * 9 * 784;
    EXPECT(!ug_conv_is_direct(&g), "3x3 stride 1 pad 1 is im2col without vector FMA");
#endif
    EXPECT(ug_conv_scratch_size(&g, 2, 1) == packed + 2 * (per + 32 * 96 * 9),
           "2 workers with dw: %lld floats", (long long)ug_conv_scratch_size(&g, 2, 1));
    EXPECT(ug_conv_scratch_size(&g, 1, 1) == 96 * 9 * 784, "1 worker: the columns alone");
#if (defined(__AVX2__) && defined(__FMA__)) && !defined(__AVX512F__) && !defined(UG_NO_DIRECT_CONV)
    /* 7 x 7, 64 -> 64 with AVX2: Winograd for the forward and dx; dw direct, on stacks of 2
     * images (17 padded rows of 8 = 136 floats a channel), over groups of 4 stacks. The
     * backward's part is the larger: 4 x (2 padded stacks) + Winograd's buffers for dx (8
     * arrays of 5 tile rows of 4 tiles + 8; NQ = 65536 / (16 x 128) = 32 rounded down to 24
     * tiles; 8 floats of slack). Packed: 16 x 64 x 64. */
    ug_conv_geom s = {64, 64, 7, 7, 64, 3, 3, 1, 1, 0, 0};
    ASSERT(ug_conv_geom_init(&s), "geometry 7 x 7");
    EXPECT(ug_conv_is_winograd(&s), "64 -> 64 at 7 x 7 is Winograd");
    const int64_t xp7 = 64 * 136 + 24 + 16,
                  per7 = 4 * (2 * xp7) + 8 * 64 * (5 * 4 + 8) + 16 * 24 * (64 + 64) + 8;
    EXPECT(ug_conv_scratch_size(&s, 2, 1) == 16 * 64 * 64 + 2 * (per7 + 64 * 64 * 9),
           "7 x 7, 2 workers with dw: %lld floats", (long long)ug_conv_scratch_size(&s, 2, 1));
#endif
    g.N = 1;
    EXPECT(ug_conv_workers(&g) == 1, "one image: one worker (OpenBLAS threads the sgemm)");
}

static int g_packs_made;
static void count_pack(float *dst, const void *arg) {
    (void)arg;
    dst[0] = 7.0f;
    g_packs_made++;
}

TEST(conv_packed_weights_cached) {
    /* The cache itself: one pack per (key, tag, size), the same copy after. */
    ug_pack_cache *c = ug_pack_cache_new();
    ASSERT(c, "cache");
    float k1[1], k2[1];
    g_packs_made = 0;
    const float *p1 = ug_pack_cache_get(c, k1, 1, 10, count_pack, NULL),
                *p2 = ug_pack_cache_get(c, k1, 1, 10, count_pack, NULL),
                *p3 = ug_pack_cache_get(c, k1, 2, 10, count_pack, NULL),
                *p4 = ug_pack_cache_get(c, k2, 1, 10, count_pack, NULL),
                *p5 = ug_pack_cache_get(c, k1, 1, 12, count_pack, NULL);
    ASSERT(p1 && p2 && p3 && p4 && p5, "entries");
    EXPECT(p1 == p2 && p1 != p3 && p1 != p4 && p1 != p5 && p3 != p4 && g_packs_made == 4 &&
           p1[0] == 7.0f, "cache: %d packs, p1 == p2 %d", g_packs_made, p1 == p2);
    EXPECT(!ug_pack_cache_get(NULL, k1, 1, 10, count_pack, NULL), "no cache: NULL");
    /* ug_conv2d with the cache attached and no tape, at a direct (32 -> 8) and a Winograd
     * (64 -> 64) geometry: the bits of the uncached call. Then w changes while the cache is
     * attached (which its owner must never let happen): the output stays that of the old w,
     * which shows the packed copy is what the convolution reads. */
    ug_set_threads(2);
    const int64_t shapes[2][2] = {{32, 8}, {64, 64}};
    for (int si = 0; si < 2; si++) {
        const int64_t C = shapes[si][0], O = shapes[si][1];
        ug_ctx *ctx;
        ASSERT_OK(ug_ctx_create(&ctx, 0));
        ug_ctx_set_grad(ctx, 0);
        float *xv = randf(4 * C * 100, 81), *wv = randf(O * C * 9, 82), *bv = randf(O, 83);
        ug_params *ps;
        ASSERT_OK(ug_params_create(&ps));
        ug_tensor *w = ug_params_add(ps, "conv.weight", 4, (int64_t[]){O, C, 3, 3}),
                  *b = ug_params_add(ps, "conv.bias", 1, (int64_t[]){O});
        ASSERT(w && b, "params");
        ASSERT_OK(ug_params_finalize(ps));
        memcpy(w->data, wv, (size_t)(O * C * 9) * sizeof *wv);
        memcpy(b->data, bv, (size_t)O * sizeof *bv);
        ug_tensor *x = ug_tensor_from(ctx, 4, (int64_t[]){4, C, 10, 10}, xv),
                  *wa = ug_tensor_from(ctx, 4, (int64_t[]){O, C, 3, 3}, wv);
        const int64_t ny = 4 * O * 100;
        float *plain = malloc((size_t)ny * sizeof *plain);
        memcpy(plain, ug_conv2d(ctx, x, w, b, 1, 1)->data, (size_t)ny * sizeof *plain);
        ug_pack_cache *pc = ug_pack_cache_new();
        ctx->packs = pc;
        ug_tensor *y1 = ug_conv2d(ctx, x, w, b, 1, 1);
        EXPECT(!memcmp(plain, y1->data, (size_t)ny * sizeof *plain),
               "%lld -> %lld: cached packing changed the output", (long long)C, (long long)O);
        /* A weight that is no parameter (in the arena) is packed on every call. */
        for (int call = 0; call < 2; call++) {
            ug_tensor *ya = ug_conv2d(ctx, x, wa, b, 1, 1);
            EXPECT(call == 1 || !memcmp(plain, ya->data, (size_t)ny * sizeof *plain),
                   "%lld -> %lld: arena weight", (long long)C, (long long)O);
            EXPECT(call == 0 || memcmp(plain, ya->data, (size_t)ny * sizeof *plain),
                   "%lld -> %lld: an arena weight's packed copy was reused", (long long)C,
                   (long long)O);
            for (int64_t i = 0; i < O * C * 9; i++) wa->data[i] *= 2.0f;
        }
        /* Only the direct and Winograd paths pack (not without AVX2 + FMA, e.g. the sanitizer
         * build): elsewhere the new weights show at once. */
        ug_conv_geom g = {4, C, 10, 10, O, 3, 3, 1, 1, 0, 0};
        ASSERT(ug_conv_geom_init(&g), "geometry");
        const int packs = ug_conv_packed_size(&g, ug_conv_workers(&g)) > 0;
        for (int64_t i = 0; i < O * C * 9; i++) w->data[i] *= 2.0f;
        ug_tensor *y2 = ug_conv2d(ctx, x, w, b, 1, 1);
        EXPECT(packs == !memcmp(plain, y2->data, (size_t)ny * sizeof *plain),
               "%lld -> %lld: the second call %s the packed weights (path packs: %d)",
               (long long)C, (long long)O, packs ? "did not reuse" : "reused", packs);
        /* With the tape on, the cache is not used. */
        ug_ctx_set_grad(ctx, 1);
        ug_tensor *y3 = ug_conv2d(ctx, x, w, b, 1, 1);
        EXPECT(memcmp(plain, y3->data, (size_t)ny * sizeof *plain),
               "%lld -> %lld: the tape's call read the cache", (long long)C, (long long)O);
        ctx->packs = NULL;
        ug_pack_cache_free(pc);
        ug_params_free(ps);
        ug_ctx_free(ctx);
        free(xv); free(wv); free(bv); free(plain);
    }
    ug_set_threads(0);
    ug_pack_cache_free(c);
}
