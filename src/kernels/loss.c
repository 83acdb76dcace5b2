/* loss.c — per-sample losses.
 *   mse:            w_b mean_j (x - y)^2
 *   bce with logits: max(z, 0) - z t + log1p(e^-|z|)   (= -t log s(z) - (1-t) log(1 - s(z)),
 *                    the stable form of torch.nn.BCEWithLogitsLoss; finite for any finite z)
 *   cross entropy:   logsumexp(z) - z_label
 *   Gaussian NLL:    0.5 (ln 2 pi + lv + (x - m)^2 e^-lv)   (full constant, as a density)
 * One sample per iteration, its sum in double, so results do not depend on the thread count. */
#include "loss.h"
#include "core/core.h"
#include "softmax.h"
#include "vmath.h"
#include <math.h>

#define PER_SAMPLE _Pragma("omp parallel for schedule(static) if (B * F >= UG_PAR_MIN)") \
    for (int64_t b = 0; b < B; b++)

void ug_k_mse_forward(float *out, const float *x, const float *y, const float *w, int64_t B,
                      int64_t F) {
    PER_SAMPLE {
        const float *xb = x + b * F, *yb = y + b * F;
        double s = 0;
        for (int64_t j = 0; j < F; j++) {
            double d = (double)xb[j] - yb[j];
            s += d * d;
        }
        out[b] = (float)((w ? w[b] : 1.0) * s / (double)F);
    }
}

void ug_k_mse_backward(float *dx, float *dy, const float *dout, const float *x, const float *y,
                       const float *w, int64_t B, int64_t F) {
    PER_SAMPLE {
        float c = (float)(2.0 * dout[b] * (w ? w[b] : 1.0) / (double)F);
        for (int64_t j = 0; j < F; j++) {
            float g = c * (x[b * F + j] - y[b * F + j]);
            if (dx) dx[b * F + j] += g;
            if (dy) dy[b * F + j] -= g;
        }
    }
}

/* Each term in float (ug_log1p_expnegf vectorizes; the terms are within a few ulp of the
 * double-precision ones) into a block on the stack, then summed in 8 double lanes added at the
 * end: the order is fixed by the code, not by the vector width. */
#define BCE_LANES 8
#define BCE_BLOCK 256
static inline float bce_term(float z, float t) {
    return (z > 0 ? z : 0.0f) - z * t + ug_log1p_expnegf(fabsf(z));
}

void ug_k_bce_logits_forward(float *out, const float *z, const float *t, int64_t B, int64_t F) {
    PER_SAMPLE {
        const float *zb = z + b * F, *tb = t + b * F;
        double acc[BCE_LANES] = {0};
        float term[BCE_BLOCK];
        for (int64_t j0 = 0; j0 < F; j0 += BCE_BLOCK) {
            int64_t n = F - j0 < BCE_BLOCK ? F - j0 : BCE_BLOCK;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) term[j] = bce_term(zb[j0 + j], tb[j0 + j]);
            int64_t j = 0;
            for (; j + BCE_LANES <= n; j += BCE_LANES)
                for (int k = 0; k < BCE_LANES; k++) acc[k] += term[j + k];
            for (; j < n; j++) acc[j % BCE_LANES] += term[j];
        }
        out[b] = (float)(((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
    }
}

void ug_k_bce_logits_backward(float *dz, float *dt, const float *dout, const float *z,
                              const float *t, int64_t B, int64_t F) {
    PER_SAMPLE {
        float g = dout[b];
        const int64_t o = b * F;
        if (dz) {
#pragma omp simd
            for (int64_t j = 0; j < F; j++) dz[o + j] += g * (ug_sigmoidf(z[o + j]) - t[o + j]);
        }
        if (dt) {
#pragma omp simd
            for (int64_t j = 0; j < F; j++) dt[o + j] -= g * z[o + j];
        }
    }
}

void ug_k_cross_entropy_forward(float *out, float *lse, const float *z, const int32_t *labels,
                                int64_t B, int64_t K) {
    int64_t F = K;
    PER_SAMPLE {
        double l = ug_k_row_lse(z + b * K, K);
        lse[b] = (float)l;
        out[b] = (float)(l - z[b * K + labels[b]]);
    }
}

void ug_k_cross_entropy_backward(float *dz, const float *dout, const float *z, const float *lse,
                                 const int32_t *labels, int64_t B, int64_t K) {
    int64_t F = K;
    PER_SAMPLE {
        float *d = dz + b * K;
        const float *zb = z + b * K;
        for (int64_t k = 0; k < K; k++) d[k] += dout[b] * expf(zb[k] - lse[b]);
        d[labels[b]] -= dout[b];
    }
}

void ug_k_gaussian_nll_forward(float *out, const float *x, const float *m, const float *lv,
                               int64_t B, int64_t F) {
    const double ln2pi = 1.8378770664093454836;
    PER_SAMPLE {
        double s = 0;
        for (int64_t j = 0; j < F; j++) {
            int64_t i = b * F + j;
            double d = (double)x[i] - m[i];
            s += 0.5 * (ln2pi + lv[i] + d * d * exp(-(double)lv[i]));
        }
        out[b] = (float)s;
    }
}

void ug_k_gaussian_nll_backward(float *dx, float *dm, float *dlv, const float *dout,
                                const float *x, const float *m, const float *lv, int64_t B,
                                int64_t F) {
    PER_SAMPLE {
        float g = dout[b];
        for (int64_t j = 0; j < F; j++) {
            int64_t i = b * F + j;
            float d = x[i] - m[i], iv = expf(-lv[i]);
            float gx = g * d * iv;
            if (dx) dx[i] += gx;
            if (dm) dm[i] -= gx;
            if (dlv) dlv[i] += g * 0.5f * (1.0f - d * d * iv);
        }
    }
}
