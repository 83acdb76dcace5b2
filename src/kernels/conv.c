/* conv.c — 2-D convolution by im2col + sgemm (the Caffe / llm.c-style lowering), nearest 2x
 * upsampling and average pooling.
 *
 * Per image n: col_n (C kh kw, Ho Wo) = im2col(x_n), out_n (O, Ho Wo) = W (O, C kh kw) col_n.
 * Backward: dW += dout_n col_n^T, dcol = W^T dout_n, dx_n += col2im(dcol), db += sum dout.
 *
 * Two schedules (ug_conv_workers picks):
 * - images across threads (N >= threads): ONE parallel region per call; each thread lowers its
 *   own images into its own columns and calls a single-threaded sgemm (OpenBLAS runs serially
 *   inside an OpenMP region). dW goes to a per-thread accumulator, summed in thread order at
 *   the end, so the result does not depend on timing. Per image the products are small
 *   (32 x 784 x 288 ... 64 x 49 x 576); threading each of them costs a fork/join and the
 *   threads' hand-offs inside OpenBLAS, which is where the time went (bench/NOTES.md).
 * - one image at a time (N < threads, e.g. sampling one image): OpenBLAS threads each sgemm.
 * With whole images across threads, 3x3 stride-1 pad-1 convolutions skip the columns: the
 * direct convolution below, or for the forward and dx of larger layers Winograd's F(2x2, 3x3)
 * (winograd.c; ug_conv_is_winograd has the rule). */
#include "conv.h"
#include "lanes.h"
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include "linear.h"
#include "core/core.h"

int ug_conv_geom_init(ug_conv_geom *g) {
    if (g->stride < 1 || g->pad < 0 || g->kh < 1 || g->kw < 1) return 0;
    int64_t hp = g->H + 2 * g->pad - g->kh, wp = g->W + 2 * g->pad - g->kw;
    if (hp < 0 || wp < 0) return 0;
    g->Ho = hp / g->stride + 1;
    g->Wo = wp / g->stride + 1;
    return 1;
}

int ug_conv_is_pointwise(const ug_conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && g->stride == 1 && g->pad == 0;
}

int64_t ug_conv_col_size(const ug_conv_geom *g) {
    return ug_conv_is_pointwise(g) ? 0 : g->C * g->kh * g->kw * g->Ho * g->Wo;
}

/* Output columns ow whose input column iw = ow s - p + kj lies inside [0, W): [lo, hi). The
 * same range holds for every output row, so the inner loops carry no bounds tests. */
static void valid_range(int64_t kj, int64_t s, int64_t p, int64_t W, int64_t Wo, int64_t *lo,
                        int64_t *hi) {
    int64_t off = p - kj;   /* iw = ow s - off */
    int64_t l = off > 0 ? (off + s - 1) / s : 0;
    int64_t h = (W - 1 + off) >= 0 ? (W - 1 + off) / s + 1 : 0;
    if (h > Wo) h = Wo;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* dst[j] = src[2 j] for j < n: stride 2's gather, 16 outputs from two masked loads and one
 * permute (nothing past src[2 n - 2] read); scalar elsewhere. */
static void gather_even(float *dst, const float *src, int64_t n) {
    int64_t j = 0;
#ifdef __AVX512F__
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                          28, 30);
    for (; j < n; j += 16) {
        const int64_t m = n - j < 16 ? n - j : 16, ns = 2 * m - 1;   /* source floats needed */
        const __mmask16 klo = (__mmask16)(ns >= 16 ? 0xFFFFu : (1u << ns) - 1u),
                        khi = (__mmask16)(ns > 16 ? (1u << (ns - 16)) - 1u : 0u),
                        kout = (__mmask16)(m == 16 ? 0xFFFFu : (1u << m) - 1u);
        const __m512 lo = _mm512_maskz_loadu_ps(klo, src + 2 * j),
                     hi = _mm512_maskz_loadu_ps(khi, src + 2 * j + 16);
        _mm512_mask_storeu_ps(dst + j, kout, _mm512_permutex2var_ps(lo, idx, hi));
    }
#endif
    for (; j < n; j++) dst[j] = src[2 * j];
}

/* Rows [r0, r1) of one image's columns. */
static void im2col_rows(float *col, const float *img, const ug_conv_geom *g, int64_t r0,
                        int64_t r1) {
    const int64_t H = g->H, W = g->W, kh = g->kh, kw = g->kw, s = g->stride, p = g->pad,
                  Ho = g->Ho, Wo = g->Wo;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r / (kh * kw), ki = (r / kw) % kh, kj = r % kw, lo, hi;
        valid_range(kj, s, p, W, Wo, &lo, &hi);
        const float *plane = img + c * H * W;
        float *dst = col + r * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; oh++, dst += Wo) {
            int64_t ih = oh * s - p + ki;
            if (ih < 0 || ih >= H) {
                memset(dst, 0, (size_t)Wo * sizeof(float));
                continue;
            }
            const float *src = plane + ih * W;
            const int64_t off = p - kj;   /* iw = ow s - off, inside the row for lo <= ow < hi */
            for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
            if (s == 1) {
                if (hi > lo) memcpy(dst + lo, src + (lo - off), (size_t)(hi - lo) * sizeof(float));
            } else if (s == 2) {
                if (hi > lo) gather_even(dst + lo, src + (2 * lo - off), hi - lo);
            } else {
                for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow * s - off];
            }
            for (int64_t ow = hi; ow < Wo; ow++) dst[ow] = 0.0f;
        }
    }
}

/* Channels [c0, c1) of one image folded back from its columns. */
static void col2im_channels(float *img, const float *col, const ug_conv_geom *g, int64_t c0,
                            int64_t c1) {
    const int64_t H = g->H, W = g->W, kh = g->kh, kw = g->kw, s = g->stride, p = g->pad,
                  Ho = g->Ho, Wo = g->Wo;
    for (int64_t c = c0; c < c1; c++) {
        float *plane = img + c * H * W;
        for (int64_t ki = 0; ki < kh; ki++) {
            for (int64_t kj = 0; kj < kw; kj++) {
                int64_t lo, hi;
                valid_range(kj, s, p, W, Wo, &lo, &hi);
                const float *src = col + ((c * kh + ki) * kw + kj) * Ho * Wo;
                for (int64_t oh = 0; oh < Ho; oh++) {
                    int64_t ih = oh * s - p + ki;
                    if (ih < 0 || ih >= H) continue;
                    float *dst = plane + ih * W;
                    const float *row = src + oh * Wo;
                    const int64_t off = p - kj;
                    for (int64_t ow = lo; ow < hi; ow++) dst[ow * s - off] += row[ow];
                }
            }
        }
    }
}

void ug_k_im2col(float *col, const float *img, const ug_conv_geom *g) {
    const int64_t rows = g->C * g->kh * g->kw;
#pragma omp parallel if (rows * g->Ho * g->Wo >= UG_PAR_MIN)
    {
        int nt = ug_omp_nthreads(), id = ug_omp_tid();
        im2col_rows(col, img, g, rows * id / nt, rows * (id + 1) / nt);
    }
}

void ug_k_col2im(float *img, const float *col, const ug_conv_geom *g) {
    /* Split over channels: the rows of channel c only ever touch plane c, so no two threads
     * write the same pixel and the summation order is fixed. */
#pragma omp parallel if (g->C * g->kh * g->kw * g->Ho * g->Wo >= UG_PAR_MIN)
    {
        int nt = ug_omp_nthreads(), id = ug_omp_tid();
        col2im_channels(img, col, g, g->C * id / nt, g->C * (id + 1) / nt);
    }
}

/* ---------------------------------------------------------------- direct 3x3 convolution
 * For the U-Net's 3x3 stride-1 pad-1 convolutions (and their input gradient, which is the same
 * convolution of dout with the kernel transposed and flipped), no columns: the image is copied
 * once into a zero-bordered buffer xp (C, H + 2, Wp = W + 1: one zero column between rows serves
 * as the right border of a row and the left border of the next), and every output position p =
 * y Wp + x of the padded-width grid reads its 3x3 window at p + ky Wp + kx in every channel,
 * so a block of DB_P consecutive positions is NV contiguous vector loads per (channel, tap).
 * A register block of DB_O output channels x DB_P positions takes each tap's DB_O weights as
 * broadcasts: with AVX-512 8 channels x 2 vectors of 16 (16 accumulators of 32), with AVX2 +
 * FMA 4 channels x 3 vectors of 8 (12 accumulators of 16 registers, room for the loads). The
 * border column of each row (x = W) is computed and dropped (3.6 % extra at 28 x 28, 7 % at
 * 14 x 14). Sums run over (c, ky, kx) in that order in float with one rounding per term (fma),
 * as a dot product does; results match the im2col path to rounding. dw is direct too
 * (direct_dw: padded input x padded dout, vectors along the positions of a group of images).
 * Other machines take the im2col path (ug_conv_is_direct). */
#include "conv_simd.h"
#include "winograd.h"

int ug_conv_is_direct(const ug_conv_geom *g) {
    /* UG_NO_DIRECT_CONV: the build switch for A/B timings, the im2col path everywhere. */
#if defined(UG_NO_DIRECT_CONV) || !defined(UG_DIRECT_CONV)
    (void)g;
    return 0;
#else
    return g->kh == 3 && g->kw == 3 && g->stride == 1 && g->pad == 1;
#endif
}

int ug_conv_is_winograd(const ug_conv_geom *g) {
    /* UG_NO_WINOGRAD: the build switch for A/B timings, the direct convolution instead. */
#if defined(UG_NO_WINOGRAD)
    return 0;
#else
    return ug_conv_is_direct(g) && g->H >= UG_WINO_MIN && g->W >= UG_WINO_MIN &&
           g->C * g->O >= UG_WINO_MIN_CO;
#endif
}

/* A stack: k images padded one above the other in one buffer, each pair sharing a zero row
 * (channel c: zero row, image 0's H rows, zero row, image 1's, ..., zero row). Its grid has
 * k (H + 1) - 1 rows of Wp positions; the k - 1 rows on the shared zero rows are computed and
 * dropped like the border column. Small images waste less that way: 7 x 7 computes 120
 * positions for 2 images (15 rows of 8, five blocks of 24) instead of 2 x 72. direct_stack
 * picks the k of 1..4 with the fewest computed positions per image (ties: the smaller k). */
static int64_t stack_grid(const ug_conv_geom *g, int64_t k) {   /* positions of the grid */
    return (k * (g->H + 1) - 1) * (g->W + 1);
}
static int64_t stack_cs(const ug_conv_geom *g, int64_t k) {     /* floats per channel */
    return (k * (g->H + 1) + 1) * (g->W + 1);
}
static int64_t direct_stack(const ug_conv_geom *g) {
    int64_t best = 1, bq = round_up(stack_grid(g, 1), DB_P);
    for (int64_t k = 2; k <= 4; k++) {
        int64_t q = round_up(stack_grid(g, k), DB_P);
        if (q * best < bq * k) {
            best = k;
            bq = q;
        }
    }
    return best;
}

/* Floats of a padded stack of k images (with read-past slack) and of its accumulator grid. */
static int64_t direct_xp_size(const ug_conv_geom *g, int64_t ch, int64_t k) {
    return ch * stack_cs(g, k) + DB_P + 16;
}
static int64_t direct_acc_size(const ug_conv_geom *g, int64_t rows, int64_t k) {
    return round_up(rows, DB_O) * round_up(stack_grid(g, k), DB_P);
}

/* wpk[ob][c][tap][DB_O] = w[o][c][tap] with o = DB_O ob + j (zero past O); transposed: the roles of
 * the weight's two channel axes swap and the taps run backwards (dx = conv(dout, w^T flipped)). */
static void direct_pack(float *wpk, const float *w, int64_t O, int64_t C, int transposed) {
    const int64_t Ob = round_up(transposed ? C : O, DB_O), Ci = transposed ? O : C;
    /* Orphaned, as ug_wino_pack: inside a parallel region the team shares the (block, channel)
     * pairs, and every thread must call it. */
#pragma omp for schedule(static)
    for (int64_t q = 0; q < Ob / DB_O * Ci; q++) {
        const int64_t ob = q / Ci, c = q % Ci;
        for (int t = 0; t < 9; t++)
            for (int j = 0; j < DB_O; j++) {
                const int64_t o = ob * DB_O + j;
                float v = 0.0f;
                if (!transposed && o < O) v = w[(o * C + c) * 9 + t];
                if (transposed && o < C) v = w[(c * C + o) * 9 + (8 - t)];
                wpk[((ob * Ci + c) * 9 + t) * DB_O + j] = v;
            }
    }
}

/* acc[j][p0 .. p0 + DB_P) for the DB_O output channels of wpk's block: sum over Ci channels of
 * xp (channel stride cs) and the 9 taps. */
static void direct_block(float *acc, int64_t lda, const float *xp, int64_t cs, int64_t Wp,
                         const float *wb, int64_t Ci, int64_t p0) {
    ug_vf a[DB_O][NV];
    block_zero(a);
    for (int64_t c = 0; c < Ci; c++) {
        /* The three input rows of the window: the taps are constant displacements from them. */
        const float *xc = xp + c * cs + p0, *row[3] = {xc, xc + Wp, xc + 2 * Wp};
        const float *wc = wb + c * 9 * DB_O;
#pragma GCC unroll 3
        for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
            for (int kx = 0; kx < 3; kx++) {
                ug_vf x[NV];
                block_load(x, row[ky] + kx);
                block_fma(a, wc + (ky * 3 + kx) * DB_O, x);
            }
    }
    block_store(acc, lda, p0, a);
}

/* dst[0 .. n) = src[0 .. n) and dst[n] = 0; zero_run: dst[0 .. n) = 0. Rows of 7 to 28 floats:
 * masked vector moves, where libc's memcpy / memset calls a row were 1.8 % of a W2 step. */
static inline void copy_row_z(float *dst, const float *src, int64_t n) {
#ifdef __AVX512F__
    for (int64_t j = 0; j <= n; j += 16) {
        const int64_t nl = n - j < 16 ? n - j : 16, ns = n + 1 - j < 16 ? n + 1 - j : 16;
        const __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << nl) - 1u), src + j);
        _mm512_mask_storeu_ps(dst + j, (__mmask16)((1u << ns) - 1u), v);   /* lane nl: 0 */
    }
#else
    memcpy(dst, src, (size_t)n * sizeof *dst);
    dst[n] = 0.0f;
#endif
}
static inline void zero_run(float *dst, int64_t n) {
#ifdef __AVX512F__
    for (int64_t j = 0; j < n; j += 16)
        _mm512_mask_storeu_ps(dst + j, (__mmask16)((1u << (n - j < 16 ? n - j : 16)) - 1u),
                              _mm512_setzero_ps());
#else
    memset(dst, 0, (size_t)n * sizeof *dst);
#endif
}

/* xp (Ci, k (H + 1) + 1, Wp) = the stack of k images (Ci, H, W), istride floats apart, with
 * their zero borders, and the read-past slack zeroed: direct_xp_size(Ci, k) floats. Only the
 * borders are written besides the copied rows. */
static void direct_pad(float *xp, const float *in, int64_t istride, int64_t k, int64_t Ci,
                       const ug_conv_geom *g) {
    const int64_t H = g->H, W = g->W, Wp = W + 1, cs = stack_cs(g, k);
    for (int64_t c = 0; c < Ci; c++) {
        float *pc = xp + c * cs;
        for (int64_t i = 0; i < k; i++) {
            /* The zero row above image i and its first row's left border. */
            zero_run(pc + i * (H + 1) * Wp, Wp + 1);
            /* Each row and its right border, which is the next row's left one. */
            for (int64_t y = 0; y < H; y++)
                copy_row_z(pc + (i * (H + 1) + y + 1) * Wp + 1,
                           in + i * istride + (c * H + y) * W, W);
        }
        zero_run(pc + k * (H + 1) * Wp, Wp);
    }
    memset(xp + Ci * cs, 0, (size_t)(direct_xp_size(g, Ci, k) - Ci * cs) * sizeof *xp);
}

/* out (Oc, H, W) of each of the stack's k images, ostride floats apart, = conv3x3 of the padded
 * stack xp (Ci channels) + e's terms (e at the stack's first image); acc:
 * direct_acc_size(Oc, k) floats. One thread. */
static void direct_compute(float *out, int64_t ostride, int64_t k, const ug_conv_epi *e,
                           const float *xp, int64_t Ci, int64_t Oc, const float *wpk,
                           const ug_conv_geom *g, float *acc) {
    const int64_t H = g->H, W = g->W, Wp = W + 1, cs = stack_cs(g, k),
                  Lq = round_up(stack_grid(g, k), DB_P), Ob = round_up(Oc, DB_O);
    for (int64_t p0 = 0; p0 < Lq; p0 += DB_P)
        for (int64_t ob = 0; ob < Ob; ob += DB_O)
            direct_block(acc + ob * Lq, Lq, xp, cs, Wp, wpk + ob * Ci * 9, Ci, p0);
    for (int64_t i = 0; i < k; i++) {
        const ug_conv_epi ei = ug_conv_epi_at(e, i, Oc, ostride);
        for (int64_t o = 0; o < Oc; o++) {
            const float b = ei.bias ? ei.bias[o] : 0.0f, t = ei.ibias ? ei.ibias[o] : 0.0f;
            for (int64_t y = 0; y < H; y++) {
                const int64_t at = (o * H + y) * W;
                float *dst = out + i * ostride + at;   /* (may be ei.add: accumulating) */
                const float *restrict src = acc + o * Lq + (i * (H + 1) + y) * Wp;
                if (ei.add) {
                    const float *add = ei.add + at;
#pragma omp simd
                    for (int64_t x = 0; x < W; x++) dst[x] = src[x] + b + t + add[x];
                } else {
#pragma omp simd
                    for (int64_t x = 0; x < W; x++) dst[x] = src[x] + b + t;
                }
            }
        }
    }
}

/* Stacks per dw sweep (DW_MAX_IMG images at most). A sweep ends in 3 DB_O lane sums, so it
 * wants many positions: grids of 192+ positions take 3200+ (28 x 28: 4 images, 14 x 14: 16),
 * smaller ones 400+ in at most 8 images (7 x 7: 4 stacks of 2). Measured (AVX-512 Zen 4, 16
 * images a worker, GFLOP/s of dw): 28 x 28 170 -> 195, 14 x 14 143 -> 168 against 400+ in at
 * most 8 images; 7 x 7 lost with more (124 -> 117 at 3200+ in 16). With one image a sweep,
 * 14 x 14 and 7 x 7 ran 0.96x and 0.65x the columns + sgemm (bench/NOTES.md, sessions 8, 16). */
#define DW_MAX_IMG 16
static int64_t direct_dw_group(const ug_conv_geom *g) {
    const int64_t k = direct_stack(g), L = stack_grid(g, k), big = L >= 192,
                  n = ((big ? 3200 : 400) + L - 1) / L, cap = (big ? DW_MAX_IMG : 8) / k;
    return n < cap ? n : cap;
}

/* The sum of a vector's lanes, as a tree: halves added until one lane is left. */
static inline float lanes_sum(const ug_vf *pv) {   /* (a pointer: see LOADV) */
    ug_vf v = *pv;
#if defined(UG_DIRECT_CONV)
#if VW == 16
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd((__m512)v), 1)),
           h = _mm256_add_ps(_mm512_castps512_ps256((__m512)v), hi);
#else
    __m256 h = (__m256)v;
#endif
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
#else
    float l[VW];
    memcpy(l, &v, sizeof l);
    for (int w = VW / 2; w >= 1; w /= 2)
        for (int k = 0; k < w; k++) l[k] += l[k + w];
    return l[0];
#endif
}

/* dw (O, C, 3, 3) += the weight gradient of nimg images in stacks of k (the last may hold
 * fewer), from their padded inputs xpx (C channels, direct_xp_size(C, k) floats a stack) and
 * padded output gradients xpd (O channels, direct_xp_size(O, k) a stack): dw[o][c][ky][kx] =
 * sum over the stacks and the positions p = y Wp + x of each grid of dout[o][p]
 * xpx[c][p + ky Wp + kx], where dout[o][p] = xpd[o][p + Wp + 1] (zero on the border column
 * x = W, on the shared rows and past the last row, so the positions run to a whole number of
 * vectors). Register block: DB_O output channels x the 3 taps of one kernel row, one vector of
 * positions each (12 accumulators with AVX2), one sweep over all the stacks; each
 * accumulator's lanes are then summed by lanes_sum's tree. Output channels past O read channel
 * 0's gradient and are dropped. */
static void direct_dw(float *dw, const float *xpx, const float *xpd, int64_t nimg, int64_t k,
                      int64_t C, int64_t O, const ug_conv_geom *g) {
    const int64_t Wp = g->W + 1, sx = direct_xp_size(g, C, k), sd = direct_xp_size(g, O, k),
                  ns = (nimg + k - 1) / k;
    /* Per stack (at most DW_MAX_IMG): its channel stride, its positions and, per block of output
     * channels, its DB_O dout rows: set up once, out of the sweeps (7 x 7 sweeps 15 vectors a
     * stack, where computing them per sweep cost 10 %). */
    int64_t cs[DW_MAX_IMG], P[DW_MAX_IMG];
    const float *d[DW_MAX_IMG][DB_O];
    for (int64_t i = 0; i < ns; i++) {
        const int64_t kk = nimg - i * k < k ? nimg - i * k : k;
        cs[i] = stack_cs(g, kk);
        P[i] = round_up(stack_grid(g, kk), VW);
    }
    for (int64_t o0 = 0; o0 < O; o0 += DB_O) {
        for (int64_t i = 0; i < ns; i++)
            for (int j = 0; j < DB_O; j++)
                d[i][j] = xpd + i * sd + (o0 + j < O ? o0 + j : 0) * cs[i] + Wp + 1;
        for (int64_t c = 0; c < C; c++)
            for (int ky = 0; ky < 3; ky++) {
                ug_vf a[DB_O][3];
                memset(a, 0, sizeof a);
                for (int64_t i = 0; i < ns; i++) {
                    const float *xr = xpx + i * sx + c * cs[i] + ky * Wp;
                    for (int64_t p = 0; p < P[i]; p += VW) {
                        ug_vf x[3];
#pragma GCC unroll 3
                        for (int kx = 0; kx < 3; kx++) {
                            LOADV(x[kx], xr + p + kx);
                            IN_REGISTER(x[kx]);
                        }
#pragma GCC unroll 8
                        for (int j = 0; j < DB_O; j++) {
                            ug_vf dv;
                            LOADV(dv, d[i][j] + p);
                            IN_REGISTER(dv);
#pragma GCC unroll 3
                            for (int kx = 0; kx < 3; kx++) a[j][kx] = FMAVV(a[j][kx], dv, x[kx]);
                        }
                    }
                }
                for (int j = 0; j < DB_O && o0 + j < O; j++)
                    for (int kx = 0; kx < 3; kx++)
                        dw[((o0 + j) * C + c) * 9 + ky * 3 + kx] += lanes_sum(&a[j][kx]);
            }
    }
}

int ug_conv_workers(const ug_conv_geom *g) {
    int t = ug_get_threads();
    return g->N >= t ? t : 1;
}

/* Per worker: the columns (im2col path), or the direct path's buffers for the forward or the
 * backward, whichever is larger. */
static int64_t per_worker(const ug_conv_geom *g, int workers) {
    if (workers > 1 && ug_conv_is_direct(g)) {
        /* Forward: a padded stack + accumulators (Winograd: its planes and chunk buffers);
         * backward: a dw group's padded stacks of inputs and douts, and dx's accumulators (or
         * Winograd's buffers for dx). */
        const int64_t k = direct_stack(g);
        const int wino = ug_conv_is_winograd(g);
        int64_t f = wino ? ug_wino_work_size(g, g->C, g->O)
                         : direct_xp_size(g, g->C, k) + direct_acc_size(g, g->O, k),
                b = direct_dw_group(g) * (direct_xp_size(g, g->C, k) + direct_xp_size(g, g->O, k)) +
                    (wino ? ug_wino_work_size(g, g->O, g->C) : direct_acc_size(g, g->C, k));
        return f > b ? f : b;
    }
    return ug_conv_col_size(g);
}

/* Floats of the direct path's packed weights for the forward (transposed 0) or dx. */
static int64_t packed_floats(const ug_conv_geom *g, int transposed) {
    const int64_t Oc = transposed ? g->C : g->O, Ci = transposed ? g->O : g->C;
    return ug_conv_is_winograd(g) ? ug_wino_packed_size(Oc, Ci) : round_up(Oc, DB_O) * Ci * 9;
}

/* The direct path's packed weights (shared by the workers), ahead of the per-worker parts. */
static int64_t packed_size(const ug_conv_geom *g, int workers) {
    if (workers <= 1 || !ug_conv_is_direct(g)) return 0;
    const int64_t f = packed_floats(g, 0), b = packed_floats(g, 1);
    return f > b ? f : b;
}

int64_t ug_conv_packed_size(const ug_conv_geom *g, int workers) {
    return workers <= 1 || !ug_conv_is_direct(g) ? 0 : packed_floats(g, 0);
}

void ug_k_conv2d_pack(float *dst, const float *w, const ug_conv_geom *g) {
    if (!ug_conv_is_direct(g)) return;
    const int wino = ug_conv_is_winograd(g);
    /* A team of its own for the orphaned loops: called by one thread of a team (a sampler's
     * thread, inside the cache's critical section), they must not bind to that team. */
#pragma omp parallel num_threads(ug_get_threads())
    {
        if (wino) ug_wino_pack(dst, w, g->O, g->C, 0);
        else direct_pack(dst, w, g->O, g->C, 0);
    }
}

int64_t ug_conv_scratch_size(const ug_conv_geom *g, int workers, int with_dw) {
    int64_t per = per_worker(g, workers) + (with_dw && workers > 1 ? g->O * g->C * g->kh * g->kw : 0);
    return packed_size(g, workers) + per * workers;
}

/* e's per-image terms after a product that added only the bias: on (O, L) += ibias, then add
 * (the columns' path: the direct and Winograd paths add them as they write out). */
static void epi_rest(float *on, const ug_conv_epi *e, int64_t O, int64_t L) {
    if (!e->ibias && !e->add) return;
    for (int64_t o = 0; o < O; o++) {
        const float t = e->ibias ? e->ibias[o] : 0.0f;
        float *dst = on + o * L;
        const float *add = e->add ? e->add + o * L : NULL;
        for (int64_t l = 0; l < L; l++) dst[l] = dst[l] + t + (add ? add[l] : 0.0f);
    }
}

/* One image: out_n = W col_n + e's terms (e at this image). */
static void forward_image(float *on, float *col, const float *xn, const float *w,
                          const ug_conv_epi *e, const ug_conv_geom *g) {
    const int64_t O = g->O, L = g->Ho * g->Wo, K = g->C * g->kh * g->kw;
    const int pw = ug_conv_is_pointwise(g);
    const float *bias = e->bias;
    if (bias)
        for (int64_t o = 0; o < O; o++)
            for (int64_t l = 0; l < L; l++) on[o * L + l] = bias[o];
    if (!pw) im2col_rows(col, xn, g, 0, K);
    ug_k_gemm(0, 0, O, L, K, w, pw ? xn : col, bias ? 1.0f : 0.0f, on);
    epi_rest(on, e, O, L);
}

void ug_k_conv2d_forward(float *out, float *scratch, int workers, const float *inp,
                         const float *w, const ug_conv_epi *epi, const ug_conv_geom *g,
                         const float *packed) {
    const int64_t C = g->C, O = g->O, HW = g->H * g->W, L = g->Ho * g->Wo, N = g->N;
    const int pw = ug_conv_is_pointwise(g);
    const ug_conv_epi none = {NULL, NULL, NULL}, *e = epi ? epi : &none;
    if (workers > 1) {
        const int64_t per = per_worker(g, workers), pk = packed_size(g, workers);
        const int direct = ug_conv_is_direct(g), wino = ug_conv_is_winograd(g);
#pragma omp parallel num_threads(workers)
        {
            int nt = ug_omp_nthreads(), id = ug_omp_tid();
            /* The packed weights, shared out among the team (the loop's barrier ends it), unless
             * the caller has them already. */
            if (!packed) {
                if (wino) ug_wino_pack(scratch, w, O, C, 0);
                else if (direct) direct_pack(scratch, w, O, C, 0);
            }
            const float *wpk = packed ? packed : scratch;
            float *col = scratch ? scratch + pk + per * id : NULL;   /* NULL: 1x1, no columns */
            const int64_t n0 = N * id / nt, n1 = N * (id + 1) / nt,
                          k = direct ? direct_stack(g) : 1;
            if (wino && n1 > n0) {
                const ug_conv_epi en = ug_conv_epi_at(e, n0, O, O * L);
                ug_wino_images(out + n0 * O * L, O * L, &en, inp + n0 * C * HW, C * HW,
                               n1 - n0, C, O, wpk, g, col);
            }
            for (int64_t n = n0; n < n1 && !wino; n += k) {
                const ug_conv_epi en = ug_conv_epi_at(e, n, O, O * L);
                if (direct) {
                    const int64_t kk = n1 - n < k ? n1 - n : k;
                    direct_pad(col, inp + n * C * HW, C * HW, kk, C, g);
                    direct_compute(out + n * O * L, O * L, kk, &en, col, C, O, wpk, g,
                                   col + direct_xp_size(g, C, k));
                }
                else forward_image(out + n * O * L, col, inp + n * C * HW, w, &en, g);
            }
        }
        return;
    }
    for (int64_t n = 0; n < N; n++) {
        float *on = out + n * O * L;   /* (O, Ho Wo) */
        const float *xn = inp + n * C * HW, *bias = e->bias;
        if (bias) {
#pragma omp parallel for schedule(static) if (O * L >= UG_PAR_MIN)
            for (int64_t o = 0; o < O; o++)
                for (int64_t l = 0; l < L; l++) on[o * L + l] = bias[o];
        }
        if (!pw) ug_k_im2col(scratch, xn, g);
        ug_k_gemm(0, 0, O, L, C * g->kh * g->kw, w, pw ? xn : scratch, bias ? 1.0f : 0.0f, on);
        const ug_conv_epi en = ug_conv_epi_at(e, n, O, O * L);
        epi_rest(on, &en, O, L);
    }
}

/* One image's dx and dw (into dwacc with beta: 0 for a worker's first image, else 1). */
static void backward_image(float *dxn, float *dwacc, float beta, float *col, const float *dn,
                           const float *xn, const float *w, const ug_conv_geom *g, int serial) {
    const int64_t C = g->C, O = g->O, L = g->Ho * g->Wo, K = g->C * g->kh * g->kw;
    const int pw = ug_conv_is_pointwise(g);
    if (dwacc) {
        if (!pw) {
            if (serial) im2col_rows(col, xn, g, 0, K);
            else ug_k_im2col(col, xn, g);
        }
        ug_k_gemm(0, 1, O, K, L, dn, pw ? xn : col, beta, dwacc);   /* (O, K) += dn col^T */
    }
    if (dxn) {
        if (pw) {
            ug_k_gemm(1, 0, C, L, O, w, dn, 1.0f, dxn);
        } else {
            /* The columns are no longer needed: reuse their buffer for dcol. */
            ug_k_gemm(1, 0, K, L, O, w, dn, 0.0f, col);
            if (serial) col2im_channels(dxn, col, g, 0, C);
            else ug_k_col2im(dxn, col, g);
        }
    }
}

void ug_k_conv2d_backward(float *dinp, float *dw, float *dbias, float *scratch, int workers,
                          const float *dout, const float *inp, const float *w,
                          const ug_conv_geom *g, int dx_add) {
    const int64_t C = g->C, O = g->O, HW = g->H * g->W, L = g->Ho * g->Wo,
                  K = g->C * g->kh * g->kw, N = g->N;
    if (workers > 1 && (dinp || dw)) {
        const int64_t ncol = per_worker(g, workers), per = ncol + (dw ? O * K : 0),
                      pk = packed_size(g, workers);
        const int direct = ug_conv_is_direct(g), wino = ug_conv_is_winograd(g);
#pragma omp parallel num_threads(workers)
        {
            int nt = ug_omp_nthreads(), id = ug_omp_tid();
            if (wino && dinp) ug_wino_pack(scratch, w, O, C, 1);
            else if (direct && dinp) direct_pack(scratch, w, O, C, 1);
            float *col = scratch ? scratch + pk + per * id : NULL, *acc = dw ? col + ncol : NULL;
            int64_t n0 = N * id / nt, n1 = N * (id + 1) / nt;
            if (acc && (n1 == n0 || direct)) memset(acc, 0, (size_t)(O * K) * sizeof(float));
            /* The direct and Winograd paths write dx when asked (dx_add 0); the columns' path
             * adds, so its images are zeroed first. */
            if (dinp && !dx_add && !direct && n1 > n0)
                memset(dinp + n0 * C * HW, 0, (size_t)((n1 - n0) * C * HW) * sizeof(float));
            const int64_t ks = direct ? direct_stack(g) : 1,
                          grp = direct ? direct_dw_group(g) * ks : 1;   /* images */
            /* With Winograd, the direct loop is for dw alone; dx follows over all the images. */
            for (int64_t n = n0; n < n1 && !(wino && !acc); n += grp) {
                if (!direct) {
                    backward_image(dinp ? dinp + n * C * HW : NULL, acc, n == n0 ? 0.0f : 1.0f,
                                   col, dout + n * O * L, inp + n * C * HW, w, g, 1);
                    continue;
                }
                /* The direct path, a group of stacks at a time: dout padded once, for dw (with
                 * the padded input) and for dx (unless by Winograd), the direct convolution of
                 * dout with the transposed, flipped kernel. */
                const int64_t m = n1 - n < grp ? n1 - n : grp, sx = direct_xp_size(g, C, ks),
                              sd = direct_xp_size(g, O, ks);
                float *xpx = col, *xpd = col + (grp / ks) * sx, *dacc = xpd + (grp / ks) * sd;
                for (int64_t i = 0; i * ks < m; i++) {
                    const int64_t i0 = n + i * ks, kk = n + m - i0 < ks ? n + m - i0 : ks;
                    direct_pad(xpd + i * sd, dout + i0 * O * L, O * L, kk, O, g);
                    if (acc) direct_pad(xpx + i * sx, inp + i0 * C * HW, C * HW, kk, C, g);
                }
                if (acc) direct_dw(acc, xpx, xpd, m, ks, C, O, g);
                if (dinp && !wino)
                    for (int64_t i = 0; i * ks < m; i++) {
                        const int64_t i0 = n + i * ks, kk = n + m - i0 < ks ? n + m - i0 : ks;
                        const ug_conv_epi ex = {NULL, NULL, dx_add ? dinp + i0 * C * HW : NULL};
                        direct_compute(dinp + i0 * C * HW, C * HW, kk, &ex, xpd + i * sd, O, C,
                                       scratch, g, dacc);
                    }
            }
            if (wino && dinp && n1 > n0) {
                /* dx by Winograd, in the buffers after the dw group's padded stacks. */
                const int64_t g8 = direct_dw_group(g);
                const ug_conv_epi ex = {NULL, NULL, dx_add ? dinp + n0 * C * HW : NULL};
                ug_wino_images(dinp + n0 * C * HW, C * HW, &ex, dout + n0 * O * L,
                               O * L, n1 - n0, O, C, scratch, g,
                               col + g8 * (direct_xp_size(g, C, ks) + direct_xp_size(g, O, ks)));
            }
#pragma omp barrier
            if (dw) {
                /* dw += the workers' sums, added in worker order whatever the timing. */
                int64_t lo = O * K * id / nt, hi = O * K * (id + 1) / nt;
                for (int t = 0; t < nt; t++) {
                    const float *a = scratch + pk + per * t + ncol;
                    for (int64_t i = lo; i < hi; i++) dw[i] += a[i];
                }
            }
        }
    } else {
        if (dinp && !dx_add) memset(dinp, 0, (size_t)(N * C * HW) * sizeof(float));
        for (int64_t n = 0; n < N; n++)
            backward_image(dinp ? dinp + n * C * HW : NULL, dw, 1.0f, scratch, dout + n * O * L,
                           inp + n * C * HW, w, g, 0);
    }
    if (dbias) {
        /* One channel per iteration, summed in double over N Ho Wo (up to ~10^5 terms), in
         * lanes.h's 32 lanes (one running double was 2.4 % of a W2 training step). */
#pragma omp parallel for schedule(static) if (N * O * L >= UG_PAR_MIN)
        for (int64_t o = 0; o < O; o++) {
            double acc[UG_LANES] = {0};
            for (int64_t n = 0; n < N; n++) ug_lanes_add(acc, dout + (n * O + o) * L, L);
            dbias[o] += (float)ug_lanes_total(acc);
        }
    }
}

void ug_k_conv2d_epi_backward(float *dibias, float *dadd, int add_add, const float *dout,
                              int64_t N, int64_t O, int64_t L) {
    if (!dibias && !dadd) return;
#pragma omp parallel for schedule(static) if (N * O * L >= UG_PAR_MIN)
    for (int64_t r = 0; r < N * O; r++) {   /* r = (n, o) */
        const float *src = dout + r * L;
        if (dibias) dibias[r] += (float)ug_sum_f64(src, L);
        if (dadd) {
            float *dst = dadd + r * L;
            if (add_add)
                for (int64_t l = 0; l < L; l++) dst[l] += src[l];
            else memcpy(dst, src, (size_t)L * sizeof *dst);
        }
    }
}

void ug_k_upsample2x_forward(float *out, const float *inp, int64_t NC, int64_t H, int64_t W) {
    const int64_t W2 = 2 * W;
#pragma omp parallel for schedule(static) if (4 * NC * H * W >= UG_PAR_MIN)
    for (int64_t r = 0; r < NC * H; r++) {   /* r = (nc, i): out rows 2i and 2i + 1 */
        const float *src = inp + r * W;
        float *d0 = out + 2 * r * W2, *d1 = d0 + W2;
        for (int64_t j = 0; j < W; j++) d0[2 * j] = d0[2 * j + 1] = src[j];
        memcpy(d1, d0, (size_t)W2 * sizeof(float));
    }
}

void ug_k_upsample2x_backward(float *dinp, const float *dout, int64_t NC, int64_t H, int64_t W) {
    const int64_t W2 = 2 * W;
#pragma omp parallel for schedule(static) if (4 * NC * H * W >= UG_PAR_MIN)
    for (int64_t r = 0; r < NC * H; r++) {
        const float *s0 = dout + 2 * r * W2, *s1 = s0 + W2;
        float *dst = dinp + r * W;
        for (int64_t j = 0; j < W; j++)
            dst[j] += (s0[2 * j] + s0[2 * j + 1]) + (s1[2 * j] + s1[2 * j + 1]);
    }
}

void ug_k_avg_pool2d_forward(float *out, const float *inp, int64_t NC, int64_t H, int64_t W,
                             int64_t k) {
    const int64_t Ho = H / k, Wo = W / k;
    const float area = (float)(k * k);
#pragma omp parallel for schedule(static) if (NC * H * W >= UG_PAR_MIN)
    for (int64_t r = 0; r < NC * Ho; r++) {   /* r = (nc, oh) */
        const float *src = inp + (r / Ho) * H * W + (r % Ho) * k * W;
        float *dst = out + r * Wo;
        for (int64_t ow = 0; ow < Wo; ow++) {
            float acc = 0;
            for (int64_t a = 0; a < k; a++)
                for (int64_t b = 0; b < k; b++) acc += src[a * W + ow * k + b];
            dst[ow] = acc / area;
        }
    }
}

void ug_k_avg_pool2d_backward(float *dinp, const float *dout, int64_t NC, int64_t H, int64_t W,
                              int64_t k) {
    const int64_t Ho = H / k, Wo = W / k;
    const float inv = 1.0f / (float)(k * k);
#pragma omp parallel for schedule(static) if (NC * H * W >= UG_PAR_MIN)
    for (int64_t r = 0; r < NC * Ho; r++) {
        float *dst = dinp + (r / Ho) * H * W + (r % Ho) * k * W;
        const float *src = dout + r * Wo;
        for (int64_t ow = 0; ow < Wo; ow++) {
            float gv = src[ow] * inv;
            for (int64_t a = 0; a < k; a++)
                for (int64_t b = 0; b < k; b++) dst[a * W + ow * k + b] += gv;
        }
    }
}
