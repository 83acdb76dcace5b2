/* reduce.c — axis sums and the total sum, accumulated in double.
 * The axis sum walks x in memory order: for each outer index and a block of up to RBLK inner
 * columns it keeps RBLK double accumulators on the stack, so rows stream contiguously whatever
 * the axis. The total sum adds fixed chunks in parallel and then the chunk sums in order, so
 * it does not depend on the thread count. */
#include "reduce.h"
#include "core/core.h"

#define RBLK 256
#define NCHUNK 64

void ug_k_sum_axis_forward(float *out, const float *x, int64_t outer, int64_t n, int64_t inner,
                           double scale) {
    int64_t nblk = (inner + RBLK - 1) / RBLK;
#pragma omp parallel for schedule(static) if (outer * n * inner >= UG_PAR_MIN)
    for (int64_t t = 0; t < outer * nblk; t++) {
        int64_t o = t / nblk, i0 = (t % nblk) * RBLK;
        int64_t m = inner - i0 < RBLK ? inner - i0 : RBLK;
        double acc[RBLK];
        for (int64_t i = 0; i < m; i++) acc[i] = 0;
        const float *xo = x + o * n * inner + i0;
        for (int64_t k = 0; k < n; k++)
            for (int64_t i = 0; i < m; i++) acc[i] += xo[k * inner + i];
        for (int64_t i = 0; i < m; i++) out[o * inner + i0 + i] = (float)(acc[i] * scale);
    }
}

void ug_k_sum_axis_backward(float *dx, const float *dout, int64_t outer, int64_t n,
                            int64_t inner, double scale) {
#pragma omp parallel for schedule(static) if (outer * n * inner >= UG_PAR_MIN)
    for (int64_t t = 0; t < outer * n; t++) {
        int64_t o = t / n;
        float *dr = dx + t * inner;
        const float *g = dout + o * inner;
        for (int64_t i = 0; i < inner; i++) dr[i] += (float)(scale * g[i]);
    }
}

double ug_k_sum_all(const float *x, int64_t n) {
    double part[NCHUNK];
    int64_t chunk = (n + NCHUNK - 1) / NCHUNK;
#pragma omp parallel for schedule(static) if (n >= UG_PAR_MIN)
    for (int c = 0; c < NCHUNK; c++) {
        int64_t lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
        double s = 0;
        for (int64_t i = lo; i < hi; i++) s += x[i];
        part[c] = s;
    }
    double s = 0;
    for (int c = 0; c < NCHUNK; c++) s += part[c];
    return s;
}

void ug_k_add_scalar(float *dx, float v, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] += v;
}
