/* embed.c — embedding rows, sinusoidal embeddings (Transformer / DDPM time embedding:
 * Vaswani et al. 2017 sec. 3.5, Ho et al. 2020 appendix B) and the dropout mask product
 * (Srivastava et al. 2014, inverted scaling so evaluation needs no rescale).
 * The frequencies are computed in float as PyTorch's `exp(arange(half) * step)` does, so the
 * features match the reference code's bits up to libm differences. */
#include "embed.h"
#include "core/core.h"
#include <math.h>

void ug_k_embedding_forward(float *out, const float *weight, const int32_t *idx, int64_t n,
                            int64_t D) {
#pragma omp parallel for schedule(static) if (n * D >= UG_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * D, weight + (int64_t)idx[i] * D, (size_t)D * sizeof(float));
}

void ug_k_embedding_backward(float *dweight, const float *dout, const int32_t *idx, int64_t n,
                             int64_t D) {
    /* Serial over i: two lookups of the same row would race if split across threads. */
    for (int64_t i = 0; i < n; i++) {
        float *dw = dweight + (int64_t)idx[i] * D;
        const float *g = dout + i * D;
        for (int64_t j = 0; j < D; j++) dw[j] += g[j];
    }
}

static inline float freq(int64_t k, int64_t half, float log_fmax) {
    float step = half > 1 ? log_fmax / (float)(half - 1) : 0.0f;
    return expf((float)k * step);
}

void ug_k_sinusoidal_forward(float *out, const float *x, int64_t B, int64_t half, float log_fmax,
                             int cos_first) {
    int64_t so = cos_first ? half : 0, co = cos_first ? 0 : half;
    /* A sampler's rows share one noise level: a row whose x has the bits of the row before it
     * in the same thread's range is a copy of that row (same bits either way). */
#pragma omp parallel if (B * half >= UG_PAR_MIN)
    {
        int nt = ug_omp_nthreads(), id = ug_omp_tid();
        int64_t lo = B * id / nt, hi = B * (id + 1) / nt;
        for (int64_t b = lo; b < hi; b++) {
            float *o = out + b * 2 * half;
            if (b > lo && !memcmp(x + b, x + b - 1, sizeof *x)) {
                memcpy(o, o - 2 * half, (size_t)(2 * half) * sizeof *o);
                continue;
            }
            for (int64_t k = 0; k < half; k++) {
                float arg = x[b] * freq(k, half, log_fmax);
                o[so + k] = sinf(arg);
                o[co + k] = cosf(arg);
            }
        }
    }
}

void ug_k_sinusoidal_backward(float *dx, const float *dout, const float *x, int64_t B,
                              int64_t half, float log_fmax, int cos_first) {
    int64_t so = cos_first ? half : 0, co = cos_first ? 0 : half;
#pragma omp parallel for schedule(static) if (B * half >= UG_PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        const float *g = dout + b * 2 * half;
        double s = 0;
        for (int64_t k = 0; k < half; k++) {
            float f = freq(k, half, log_fmax), arg = x[b] * f;
            s += (double)f * ((double)g[so + k] * cosf(arg) - (double)g[co + k] * sinf(arg));
        }
        dx[b] += (float)s;
    }
}

void ug_k_mul_mask_forward(float *out, const float *x, const float *scale, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale[i];
}

void ug_k_mul_mask_backward(float *dx, const float *dout, const float *scale, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] += dout[i] * scale[i];
}
