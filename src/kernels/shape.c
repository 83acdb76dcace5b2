/* shape.c — permuted copies (walked with an incrementing multi-index, walk.h) and row-block
 * copies for concat / split. */
#include "shape.h"
#include "core/core.h"
#include "walk.h"

/* The output box in row-major order; the last dim is the inner loop with x stride xs. */
static void permute_pass(float *out, const float *x, int nd, const int64_t *shape,
                         const int64_t *xstride, int backward) {
    int64_t numel = ug_shape_numel(nd, shape);
    if (numel == 0) return;
    if (nd == 0) {
        if (backward) out[0] += x[0];
        else out[0] = x[0];
        return;
    }
    int dims[UG_MAX_DIMS];
    for (int d = 0; d < nd; d++) dims[d] = d;
    int64_t inner = shape[nd - 1], xs = xstride[nd - 1];
    const int64_t *st[1] = {xstride};
#pragma omp parallel if (numel >= UG_PAR_MIN)
    {
        int64_t lo, hi;
        ug_thread_range(numel, &lo, &hi);
        if (lo < hi) {
            ug_walk w;
            ug_walk_init(&w, nd - 1, dims, shape, 1, st);
            ug_walk_seek(&w, lo / inner);
            int64_t col = lo % inner;
            for (int64_t e = lo; e < hi;) {
                int64_t len = inner - col < hi - e ? inner - col : hi - e;
                int64_t base = w.off[0] + col * xs;
                /* forward: out is contiguous, x strided; backward: the same walk scatters. */
                if (backward)
                    for (int64_t k = 0; k < len; k++) out[base + k * xs] += x[e + k];
                else
                    for (int64_t k = 0; k < len; k++) out[e + k] = x[base + k * xs];
                e += len;
                col = 0;
                ug_walk_next(&w);
            }
        }
    }
}

void ug_k_permute_forward(float *out, const float *x, int nd, const int64_t *shape,
                          const int64_t *xstride) {
    permute_pass(out, x, nd, shape, xstride, 0);
}

void ug_k_permute_backward(float *dx, const float *dout, int nd, const int64_t *shape,
                           const int64_t *xstride) {
    permute_pass(dx, dout, nd, shape, xstride, 1);
}

void ug_k_copy_rows(float *dst, int64_t drow, int64_t doff, const float *src, int64_t srow,
                    int64_t soff, int64_t len, int64_t outer, int accumulate) {
#pragma omp parallel for schedule(static) if (outer * len >= UG_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        float *d = dst + o * drow + doff;
        const float *s = src + o * srow + soff;
        if (accumulate == 1)
            for (int64_t j = 0; j < len; j++) d[j] += s[j];
        else if (accumulate == 2)
            for (int64_t j = 0; j < len; j++) d[j] = 0.0f + s[j];
        else
            memcpy(d, s, (size_t)len * sizeof(float));
    }
}

void ug_k_gather_cols_forward(float *out, const float *x, const int32_t *idx, int64_t outer,
                              int64_t n, int64_t m) {
#pragma omp parallel for schedule(static) if (outer * m >= UG_PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++) out[o * m + j] = x[o * n + idx[j]];
}

void ug_k_gather_cols_backward(float *dx, const float *dout, const int32_t *idx, int64_t outer,
                               int64_t n, int64_t m) {
#pragma omp parallel for schedule(static) if (outer * m >= UG_PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++) dx[o * n + idx[j]] += dout[o * m + j];
}
