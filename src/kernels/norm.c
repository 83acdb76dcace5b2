/* norm.c — group norm (Wu & He 2018) and layer norm (Ba et al. 2016) on raw floats.
 *
 * Both normalize contiguous slices: group norm the (C/G, S) block of group g of sample n,
 * layer norm one row of D values. Layer norm is group norm with G = 1 and S = 1 (channel = the
 * position in the row), so one pair of kernels serves both.
 *   forward:  xhat = (x - mean) rstd, rstd = 1 / sqrt(var + eps) (biased var), y = xhat w + b
 *   backward: g = dy w;  dx = rstd (g - mean(g) - xhat mean(g xhat))   (means over the slice)
 *             dw[c] += sum dy xhat,  db[c] += sum dy   (over samples and positions of c)
 * Statistics are two-pass in double: one-pass E[x^2] - E[x]^2 cancels when |mean| >> std.
 * Every sum runs in lanes.h's 32 independent double lanes.
 *
 * Group norm + SiLU fused (the U-Net's GN -> SiLU): z = silu(y), y = xhat w + b, and y is never
 * stored: the backward recomputes it and forms dy = dz silu'(y) slice by slice in a per-thread
 * scratch. The operations and their order are the separate kernels' (elementwise.c's SiLU), so
 * output and gradients match the unfused pair bit for bit. */
#include "norm.h"
#include "vmath.h"
#include "lanes.h"
#include "core/core.h"
#include <math.h>
#include <string.h>

/* sum (x[i] - mu)^2 */
static double sumsq_dev_f64(const float *x, int64_t n, double mu) {
    const ug_v8d z = {0}, vmu = z + mu;
    ug_v8d a[4] = {z, z, z, z}, v;
    int64_t i;
#define SQ_STEP(dst, j) do { UG_LOAD8_F64(v, x + (j)); v -= vmu; (dst) += v * v; } while (0)
    UG_LANES_ROW(a, n, i, SQ_STEP);
#undef SQ_STEP
    double acc[UG_LANES];
    ug_lanes_store(acc, a);
    for (; i < n; i++) {
        double d = x[i] - mu;
        acc[i % UG_LANES] += d * d;
    }
    return ug_lanes_total(acc);
}

/* *sa += sum a[i] dy[i],  *sb += sum dy[i],  with a[i] = (x[i] - mu) rs (xhat, in float). */
static void sums_dy_xhat(const float *dy, const float *x, int64_t n, float mu, float rs,
                         double *sxa, double *sdy) {
    const ug_v8d z = {0};
    const ug_v8f fz = {0}, vmu = fz + mu, vrs = fz + rs;
    ug_v8d a[4] = {z, z, z, z}, b[4] = {z, z, z, z}, d, h;
    ug_v8f xf;
    int64_t i;
    /* a and b share the row's loop: the step adds into a[r] and b[r] (r from a[r]'s address) */
#define DX_STEP(dst, j)                                                    \
    do {                                                                   \
        ug_v8d *bb_ = b + (&(dst) - a);                                    \
        UG_LOAD8_F64(d, dy + (j));                                         \
        UG_LOAD8_F32(xf, x + (j));                                         \
        xf = (xf - vmu) * vrs;                                             \
        h = __builtin_convertvector(xf, ug_v8d);                           \
        (dst) += d * h;                                                    \
        *bb_ += d;                                                         \
    } while (0)
    UG_LANES_ROW(a, n, i, DX_STEP);
#undef DX_STEP
    double sa[UG_LANES], sb[UG_LANES];
    ug_lanes_store(sa, a);
    ug_lanes_store(sb, b);
    for (; i < n; i++) {
        sa[i % UG_LANES] += (double)dy[i] * ((x[i] - mu) * rs);
        sb[i % UG_LANES] += dy[i];
    }
    *sxa += ug_lanes_total(sa);
    *sdy += ug_lanes_total(sb);
}

/* With a[s] = (x[s] - mu) scale + shift: y[s] = silu(a[s]) (dz NULL), or the gradient
 * y[s] = 0 + silu'(a[s]) dz[s] (as the unfused SiLU backward leaves it in a zeroed gradient).
 * 16 lanes at a time with AVX-512 (vmath.h), bit for bit the scalar loops (no contraction:
 * -std=c11 keeps the product and the sum apart, and so do the intrinsics). */
static void silu_affine(float *y, const float *dz, const float *x, int64_t n, float mu,
                        float scale, float shift) {
#ifdef __AVX512F__
    const __m512 vm = _mm512_set1_ps(mu), vs = _mm512_set1_ps(scale), vb = _mm512_set1_ps(shift);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = ug_mask_v16(n - i);
        const __m512 xi = _mm512_maskz_loadu_ps(m, x + i);
        const __m512 a = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(xi, vm), vs), vb);
        const __m512 v = dz ? _mm512_add_ps(_mm512_setzero_ps(),
                                            ug_silu_grad_v16(_mm512_maskz_loadu_ps(m, dz + i), a))
                            : ug_siluf_v16(a);
        _mm512_mask_storeu_ps(y + i, m, v);
    }
#else
    if (dz) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = 0.0f + ug_silu_grad(dz[i], (x[i] - mu) * scale + shift);
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = ug_siluf((x[i] - mu) * scale + shift);
    }
#endif
}

/* Slice (n, g) covers channels [g Cg, (g + 1) Cg), each S contiguous values. silu: out =
 * silu(y) instead of y. */
static void norm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                         const float *b, int64_t N, int64_t C, int64_t S, int64_t G, float eps,
                         int silu) {
    const int64_t Cg = C / G, M = Cg * S;
#pragma omp parallel for schedule(static) if (N * C * S >= UG_PAR_MIN)
    for (int64_t ng = 0; ng < N * G; ng++) {
        const float *x = inp + ng * M;
        float *y = out + ng * M;
        double mu = ug_sum_f64(x, M) / (double)M, ss = sumsq_dev_f64(x, M, mu);
        double rs = 1.0 / sqrt(ss / (double)M + (double)eps);
        float muf = (float)mu, rsf = (float)rs;
        mean[ng] = muf;
        rstd[ng] = rsf;
        int64_t c0 = (ng % G) * Cg;
        for (int64_t j = 0; j < Cg; j++) {
            float scale = w ? rsf * w[c0 + j] : rsf, shift = b ? b[c0 + j] : 0.0f;
            const float *xs = x + j * S;
            float *ys = y + j * S;
            if (silu)
                silu_affine(ys, NULL, xs, S, muf, scale, shift);
            else
#pragma omp simd
                for (int64_t s = 0; s < S; s++) ys[s] = (xs[s] - muf) * scale + shift;
        }
    }
}

/* dz of the fused op -> dy (M values of slice ng) in buf; y recomputed as the forward did; dy
 * as the unfused SiLU backward leaves it in a zeroed gradient (0 + v). */
static void silu_slice_grad(float *buf, const float *dz, const float *x, const float *w,
                            const float *b, float mu, float rs, int64_t c0, int64_t Cg, int64_t S) {
    for (int64_t j = 0; j < Cg; j++) {
        float scale = w ? rs * w[c0 + j] : rs, shift = b ? b[c0 + j] : 0.0f;
        const float *xs = x + j * S, *dzs = dz + j * S;
        float *d = buf + j * S;
        silu_affine(d, dzs, xs, S, mu, scale, shift);
    }
}

/* silu (fused op): dout is dz, silu_b the bias the forward used, scratch nthr x (Cg S) floats
 * for at most nthr threads (silu 0: scratch NULL, nthr the default team). tot (N C pairs of
 * doubles, or NULL): the dx pass keeps each (image, channel)'s two sums there, and dw and db
 * add them up instead of a second pass over dy and x (and, fused, a second SiLU derivative):
 * the same sums in the same order, so the same floats. */
static void norm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, const float *mean, const float *rstd, int64_t N,
                          int64_t C, int64_t S, int64_t G, int silu, const float *silu_b,
                          float *scratch, int nthr, double *tot, int dx_add) {
    const int64_t Cg = C / G, M = Cg * S;
    const int par = N * C * S >= UG_PAR_MIN;
    if (dinp) {
#pragma omp parallel for schedule(static) if (par) num_threads(nthr)
        for (int64_t ng = 0; ng < N * G; ng++) {
            const float *x = inp + ng * M, *dy = dout + ng * M;
            float *dx = dinp + ng * M;
            const float mu = mean[ng], rs = rstd[ng];
            const int64_t c0 = (ng % G) * Cg;
            if (silu) {
                float *buf = scratch + (int64_t)omp_get_thread_num() * M;
                silu_slice_grad(buf, dy, x, w, silu_b, mu, rs, c0, Cg, S);
                dy = buf;
            }
            double sg = 0, sgx = 0;   /* sum g, sum g xhat, with g = dy w */
            for (int64_t j = 0; j < Cg; j++) {
                double wc = w ? w[c0 + j] : 1.0, sxa = 0, sdy = 0;
                sums_dy_xhat(dy + j * S, x + j * S, S, mu, rs, &sxa, &sdy);
                sg += wc * sdy;
                sgx += wc * sxa;
                if (tot) {
                    double *t = tot + 2 * ((ng / G) * C + c0 + j);
                    t[0] = sxa;
                    t[1] = sdy;
                }
            }
            const float a = (float)(sg / (double)M), c = (float)(sgx / (double)M);
            for (int64_t j = 0; j < Cg; j++) {
                float wc = w ? w[c0 + j] : 1.0f;
                if (dx_add)
#pragma omp simd
                    for (int64_t s = 0; s < S; s++) {
                        int64_t i = j * S + s;
                        float xhat = (x[i] - mu) * rs;
                        dx[i] += rs * (dy[i] * wc - a - xhat * c);
                    }
                else
#pragma omp simd
                    for (int64_t s = 0; s < S; s++) {
                        int64_t i = j * S + s;
                        float xhat = (x[i] - mu) * rs;
                        dx[i] = 0.0f + rs * (dy[i] * wc - a - xhat * c);
                    }
            }
        }
    }
    if ((dw || db) && dinp && tot) {
#pragma omp parallel for schedule(static) if (par) num_threads(nthr)
        for (int64_t c = 0; c < C; c++) {
            double sw = 0, sb = 0;
            for (int64_t n = 0; n < N; n++) {
                sw += tot[2 * (n * C + c)];
                sb += tot[2 * (n * C + c) + 1];
            }
            if (dw) dw[c] += (float)sw;
            if (db) db[c] += (float)sb;
        }
    } else if (dw || db) {
        /* Split over channels so every channel's sums have one owner and a fixed order. */
#pragma omp parallel for schedule(static) if (par) num_threads(nthr)
        for (int64_t c = 0; c < C; c++) {
            double sw = 0, sb = 0;
            float *buf = silu ? scratch + (int64_t)omp_get_thread_num() * M : NULL;
            for (int64_t n = 0; n < N; n++) {
                const int64_t ng = n * G + c / Cg;
                const float mu = mean[ng], rs = rstd[ng];
                const float *dy = dout + (n * C + c) * S, *x = inp + (n * C + c) * S;
                if (silu) {
                    silu_slice_grad(buf, dy, x, w ? w + c : NULL, silu_b ? silu_b + c : NULL, mu,
                                    rs, 0, 1, S);
                    dy = buf;
                }
                sums_dy_xhat(dy, x, S, mu, rs, &sw, &sb);
            }
            if (dw) dw[c] += (float)sw;
            if (db) db[c] += (float)sb;
        }
    }
}

void ug_k_group_norm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *w, const float *b, int64_t N, int64_t C, int64_t S,
                             int64_t G, float eps, int silu) {
    norm_forward(out, mean, rstd, inp, w, b, N, C, S, G, eps, silu);
}

void ug_k_group_norm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *b, const float *mean,
                              const float *rstd, int64_t N, int64_t C, int64_t S, int64_t G,
                              int silu, float *scratch, int nthr, double *tot, int dx_add) {
    norm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C, S, G, silu, b, scratch,
                  silu ? nthr : omp_get_max_threads(), tot, dx_add);
}

void ug_k_layer_norm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *w, const float *b, int64_t R, int64_t D, float eps) {
    norm_forward(out, mean, rstd, inp, w, b, R, D, 1, 1, eps, 0);
}

void ug_k_layer_norm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, int64_t R, int64_t D) {
    norm_backward(dinp, dw, db, dout, inp, w, mean, rstd, R, D, 1, 1, 0, NULL, NULL,
                  omp_get_max_threads(), NULL, 1);
}

