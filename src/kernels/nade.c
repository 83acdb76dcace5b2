/* nade.c — NADE's O(d H) forward, sampler and reverse-recursion backward (see nade.h;
 * Larochelle & Murray 2011, eq. 2-3 and Algorithm 1). Sigmoids use the vectorizable ug_expf. */
#include "nade.h"
#include "core/core.h"
#include "vmath.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static inline float sigmoid_f(float z) { return 1.0f / (1.0f + ug_expf(-z)); }

/* One example: logits of every position; in sampling mode (u) x_i is drawn first. */
static void nade_row(float *lrow, float *xrow, const float *urow, float *a, const float *wt,
                     const float *c, const float *v, const float *b, int64_t d, int64_t H) {
    memcpy(a, c, (size_t)H * sizeof *a);
    for (int64_t i = 0; i < d; i++) {
        const float *vi = v + i * H;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < H; k++) s += vi[k] * sigmoid_f(a[k]);
        float l = (b ? b[i] : 0.0f) + s;
        lrow[i] = l;
        if (urow) xrow[i] = urow[i] < sigmoid_f(l) ? 1.0f : 0.0f;
        float xi = xrow[i];
        if (xi != 0) {
            const float *wi = wt + i * H;
#pragma omp simd
            for (int64_t k = 0; k < H; k++) a[k] += xi * wi[k];
        }
    }
}

void ug_k_nade_forward(float *logits, float *aend, float *x, const float *u, const float *wt,
                       const float *c, const float *v, const float *b, float *scratch, int nt,
                       int64_t B, int64_t d, int64_t H) {
#pragma omp parallel num_threads(nt) if (B * d * H >= UG_PAR_MIN)
    {
#ifdef _OPENMP
        float *a = scratch + (int64_t)omp_get_thread_num() * H;
#else
        float *a = scratch;
#endif
#pragma omp for schedule(static)
        for (int64_t r = 0; r < B; r++) {
            nade_row(logits + r * d, x + r * d, u ? u + r * d : NULL, a, wt, c, v, b, d, H);
            if (aend) memcpy(aend + r * H, a, (size_t)H * sizeof *a);
        }
    }
}

/* Layout: dwt (d, H) in W^T's layout, then per thread dx partials (B, d) and a, g (H) each. */
int64_t ug_k_nade_backward_scratch(int nt, int64_t B, int64_t d, int64_t H) {
    return d * H + (int64_t)nt * (B * d + 2 * H);
}

void ug_k_nade_backward(float *dx, float *dw, float *dc, float *dv, float *db,
                        const float *dlogits, const float *x, const float *aend, const float *wt,
                        const float *v, float *scratch, int nt, int64_t B, int64_t d, int64_t H) {
    float *dwt = dw ? scratch : NULL;
    if (dwt) memset(dwt, 0, (size_t)(d * H) * sizeof *dwt);
    int used = 1;
#pragma omp parallel num_threads(nt) if (B * d * H >= UG_PAR_MIN)
    {
#ifdef _OPENMP
        int t = omp_get_thread_num(), nth = omp_get_num_threads();
#else
        int t = 0, nth = 1;
#endif
        if (t == 0) used = nth;
        int64_t k0 = H * t / nth, k1 = H * (t + 1) / nth;
        float *dxp = scratch + d * H + (int64_t)t * (B * d + 2 * H);
        float *a = dxp + B * d, *g = a + H;
        if (dx) memset(dxp, 0, (size_t)(B * d) * sizeof *dxp);
        for (int64_t r = 0; r < B; r++) {
            const float *xr = x + r * d, *dl = dlogits + r * d;
            for (int64_t k = k0; k < k1; k++) {
                a[k] = aend[r * H + k];
                g[k] = 0;
            }
            for (int64_t i = d - 1; i >= 0; i--) {
                const float *wi = wt + i * H, *vi = v + i * H;
                float xi = xr[i];
                if (dx) {
                    float s = 0;
#pragma omp simd reduction(+ : s)
                    for (int64_t k = k0; k < k1; k++) s += wi[k] * g[k];
                    dxp[r * d + i] += s;
                }
                if (xi != 0) {
                    if (dwt) {
                        float *dwi = dwt + i * H;
#pragma omp simd
                        for (int64_t k = k0; k < k1; k++) dwi[k] += xi * g[k];
                    }
#pragma omp simd
                    for (int64_t k = k0; k < k1; k++) a[k] -= xi * wi[k];
                }
                float gl = dl[i];
                if (gl == 0) continue;   /* no contribution from this logit: exact skip */
                if (dv) {
                    float *dvi = dv + i * H;
#pragma omp simd
                    for (int64_t k = k0; k < k1; k++) {
                        float h = sigmoid_f(a[k]);
                        dvi[k] += gl * h;
                        g[k] += gl * vi[k] * h * (1.0f - h);
                    }
                } else {
#pragma omp simd
                    for (int64_t k = k0; k < k1; k++) {
                        float h = sigmoid_f(a[k]);
                        g[k] += gl * vi[k] * h * (1.0f - h);
                    }
                }
            }
            if (dc)
                for (int64_t k = k0; k < k1; k++) dc[k] += g[k];
        }
    }
    if (db)
        for (int64_t r = 0; r < B; r++)
            for (int64_t i = 0; i < d; i++) db[i] += dlogits[r * d + i];
    if (dx)
        for (int t = 0; t < used; t++) {
            const float *dxp = scratch + d * H + (int64_t)t * (B * d + 2 * H);
            for (int64_t j = 0; j < B * d; j++) dx[j] += dxp[j];
        }
    if (dwt) {
        /* Back to W's (H, d) layout. */
#pragma omp parallel for schedule(static) if (d * H >= UG_PAR_MIN)
        for (int64_t k = 0; k < H; k++)
            for (int64_t i = 0; i < d; i++) dw[k * d + i] += dwt[i * H + k];
    }
}
