/* conv.c — 2-D convolution by im2col + sgemm (the Caffe / llm.c-style lowering), nearest 2x
 * upsampling and average pooling.
 *
 * Per image n: col_n (C kh kw, Ho Wo) = im2col(x_n), out_n (O, Ho Wo) = W (O, C kh kw) col_n.
 * Backward: dW += dout_n col_n^T, dcol = W^T dout_n, dx_n += col2im(dcol), db += sum dout.
 * One image at a time keeps the scratch to one image's columns; each sgemm is still large
 * (O x Ho Wo x C kh kw) and OpenBLAS threads it. im2col/col2im run on the same OpenMP pool,
 * but never around an sgemm call. */
#include "conv.h"
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

void ug_k_im2col(float *col, const float *img, const ug_conv_geom *g) {
    const int64_t C = g->C, H = g->H, W = g->W, kh = g->kh, kw = g->kw, s = g->stride,
                  p = g->pad, Ho = g->Ho, Wo = g->Wo, rows = C * kh * kw;
#pragma omp parallel for schedule(static) if (rows * Ho * Wo >= UG_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
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
            } else {
                for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow * s - off];
            }
            for (int64_t ow = hi; ow < Wo; ow++) dst[ow] = 0.0f;
        }
    }
}

void ug_k_col2im(float *img, const float *col, const ug_conv_geom *g) {
    const int64_t C = g->C, H = g->H, W = g->W, kh = g->kh, kw = g->kw, s = g->stride,
                  p = g->pad, Ho = g->Ho, Wo = g->Wo;
    /* Split over channels: the rows of channel c only ever touch plane c, so no two threads
     * write the same pixel and the summation order is fixed. */
#pragma omp parallel for schedule(static) if (C * kh * kw * Ho * Wo >= UG_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
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

void ug_k_conv2d_forward(float *out, float *col, const float *inp, const float *w,
                         const float *bias, const ug_conv_geom *g) {
    const int64_t C = g->C, O = g->O, HW = g->H * g->W, L = g->Ho * g->Wo,
                  K = g->C * g->kh * g->kw;
    const int pw = ug_conv_is_pointwise(g);
    for (int64_t n = 0; n < g->N; n++) {
        float *on = out + n * O * L;   /* (O, Ho Wo) */
        const float *xn = inp + n * C * HW;
        if (bias) {
#pragma omp parallel for schedule(static) if (O * L >= UG_PAR_MIN)
            for (int64_t o = 0; o < O; o++)
                for (int64_t l = 0; l < L; l++) on[o * L + l] = bias[o];
        }
        if (!pw) ug_k_im2col(col, xn, g);
        ug_k_gemm(0, 0, O, L, K, w, pw ? xn : col, bias ? 1.0f : 0.0f, on);
    }
}

void ug_k_conv2d_backward(float *dinp, float *dw, float *dbias, float *col, const float *dout,
                          const float *inp, const float *w, const ug_conv_geom *g) {
    const int64_t C = g->C, O = g->O, HW = g->H * g->W, L = g->Ho * g->Wo,
                  K = g->C * g->kh * g->kw, N = g->N;
    const int pw = ug_conv_is_pointwise(g);
    for (int64_t n = 0; n < N; n++) {
        const float *dn = dout + n * O * L;   /* (O, Ho Wo) */
        const float *xn = inp + n * C * HW;
        if (dw) {
            if (!pw) ug_k_im2col(col, xn, g);
            ug_k_gemm(0, 1, O, K, L, dn, pw ? xn : col, 1.0f, dw);   /* (O, K) += dn col^T */
        }
        if (dinp) {
            float *dxn = dinp + n * C * HW;
            if (pw) {
                ug_k_gemm(1, 0, C, L, O, w, dn, 1.0f, dxn);
            } else {
                /* The columns are no longer needed: reuse their buffer for dcol. */
                ug_k_gemm(1, 0, K, L, O, w, dn, 0.0f, col);
                ug_k_col2im(dxn, col, g);
            }
        }
    }
    if (dbias) {
        /* One channel per iteration, summed in double over N Ho Wo (up to ~10^5 terms). */
#pragma omp parallel for schedule(static) if (N * O * L >= UG_PAR_MIN)
        for (int64_t o = 0; o < O; o++) {
            double acc = 0;
            for (int64_t n = 0; n < N; n++) {
                const float *row = dout + (n * O + o) * L;
                for (int64_t l = 0; l < L; l++) acc += row[l];
            }
            dbias[o] += (float)acc;
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
