/* softmax.c — softmax family over the last dimension.
 *   lse(x) = m + log sum_c exp(x_c - m),  m = max_c x_c
 *   softmax = exp(x - lse),  log_softmax = x - lse
 * Subtracting m keeps every exponent <= 0, so inputs like 1000 stay finite; the sum is kept
 * in double. When m is not finite (a row of -inf, or +inf present) the shift would give
 * -inf - -inf = NaN, so it is dropped: lse is then -inf resp. +inf, as in PyTorch. */
#include "softmax.h"
#include "core/core.h"
#include <math.h>

double ug_k_row_lse(const float *x, int64_t C) {
    float m = -INFINITY;
    for (int64_t c = 0; c < C; c++) m = x[c] > m ? x[c] : m;
    if (!isfinite(m)) m = 0.0f;
    double s = 0;
    for (int64_t c = 0; c < C; c++) s += exp((double)x[c] - m);
    return (double)m + log(s);
}

#define ROWS _Pragma("omp parallel for schedule(static) if (N * C >= UG_PAR_MIN)") \
    for (int64_t n = 0; n < N; n++)

void ug_k_softmax_forward(float *y, const float *x, int64_t N, int64_t C) {
    ROWS {
        const float *xr = x + n * C;
        float *yr = y + n * C;
        double lse = ug_k_row_lse(xr, C);
        for (int64_t c = 0; c < C; c++) yr[c] = (float)exp((double)xr[c] - lse);
    }
}

void ug_k_softmax_backward(float *dx, const float *dy, const float *y, int64_t N, int64_t C) {
    ROWS {
        const float *yr = y + n * C, *dyr = dy + n * C;
        float *dxr = dx + n * C;
        double dot = 0;
        for (int64_t c = 0; c < C; c++) dot += (double)dyr[c] * yr[c];
        for (int64_t c = 0; c < C; c++) dxr[c] += yr[c] * (float)(dyr[c] - dot);
    }
}

void ug_k_log_softmax_forward(float *y, const float *x, int64_t N, int64_t C) {
    ROWS {
        const float *xr = x + n * C;
        float *yr = y + n * C;
        double lse = ug_k_row_lse(xr, C);
        for (int64_t c = 0; c < C; c++) yr[c] = (float)((double)xr[c] - lse);
    }
}

void ug_k_log_softmax_backward(float *dx, const float *dy, const float *y, int64_t N, int64_t C) {
    ROWS {
        const float *yr = y + n * C, *dyr = dy + n * C;
        float *dxr = dx + n * C;
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += dyr[c];
        for (int64_t c = 0; c < C; c++) dxr[c] += dyr[c] - (float)(exp((double)yr[c]) * s);
    }
}

void ug_k_logsumexp_forward(float *lse, const float *x, int64_t N, int64_t C) {
    ROWS lse[n] = (float)ug_k_row_lse(x + n * C, C);
}

void ug_k_logsumexp_backward(float *dx, const float *dlse, const float *x, const float *lse,
                             int64_t N, int64_t C) {
    ROWS {
        const float *xr = x + n * C;
        float *dxr = dx + n * C;
        for (int64_t c = 0; c < C; c++) dxr[c] += dlse[n] * expf(xr[c] - lse[n]);
    }
}
