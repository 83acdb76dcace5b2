/* nade.c — NADE's O(d H) forward, sampler and reverse-recursion backward (see nade.h;
 * Larochelle & Murray 2011, eq. 2-3 and Algorithm 1). Sigmoids use the vectorizable ug_expf. */
#include "nade.h"
#include "core/core.h"
#include "vmath.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static inline float sigmoid_f(float z) { return 1.0f / (1.0f + ug_expf(-z)); }

/* A block of nb examples advances through the positions together, so the rows wt_i, v_i
 * (and in the backward dwt_i, dv_i) are read from L1 once per block instead of from memory once
 * per example: the sweep over all d rows (2 d H floats) is the cost otherwise. */
#define NADE_BLOCK 8

/* Examples r0..r0+nb-1: logits of every position; in sampling mode (u) x_i is drawn first.
 * a: nb * H scratch. */
static void nade_block(float *logits, float *x, const float *u, float *aend, float *a,
                       const float *wt, const float *c, const float *v, const float *b,
                       int64_t nb, int64_t d, int64_t H) {
    for (int64_t r = 0; r < nb; r++) memcpy(a + r * H, c, (size_t)H * sizeof *a);
    for (int64_t i = 0; i < d; i++) {
        const float *vi = v + i * H, *wi = wt + i * H;
        for (int64_t r = 0; r < nb; r++) {
            float *ar = a + r * H, s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t k = 0; k < H; k++) s += vi[k] * sigmoid_f(ar[k]);
            float l = (b ? b[i] : 0.0f) + s;
            logits[r * d + i] = l;
            if (u) x[r * d + i] = u[r * d + i] < sigmoid_f(l) ? 1.0f : 0.0f;
            float xi = x[r * d + i];
            if (xi != 0) {
#pragma omp simd
                for (int64_t k = 0; k < H; k++) ar[k] += xi * wi[k];
            }
        }
    }
    if (aend) memcpy(aend, a, (size_t)(nb * H) * sizeof *a);
}

int64_t ug_k_nade_forward_scratch(int nt, int64_t H) { return (int64_t)nt * NADE_BLOCK * H; }

void ug_k_nade_forward(float *logits, float *aend, float *x, const float *u, const float *wt,
                       const float *c, const float *v, const float *b, float *scratch, int nt,
                       int64_t B, int64_t d, int64_t H) {
    int64_t nblk = (B + NADE_BLOCK - 1) / NADE_BLOCK;
#pragma omp parallel num_threads(nt) if (B * d * H >= UG_PAR_MIN)
    {
#ifdef _OPENMP
        float *a = scratch + (int64_t)omp_get_thread_num() * NADE_BLOCK * H;
#else
        float *a = scratch;
#endif
#pragma omp for schedule(static)
        for (int64_t q = 0; q < nblk; q++) {
            int64_t r0 = q * NADE_BLOCK, nb = B - r0 < NADE_BLOCK ? B - r0 : NADE_BLOCK;
            nade_block(logits + r0 * d, x + r0 * d, u ? u + r0 * d : NULL,
                       aend ? aend + r0 * H : NULL, a, wt, c, v, b, nb, d, H);
        }
    }
}

/* Layout: dwt (d, H) in W^T's layout, then per thread dx partials (B, d) and a, g
 * (NADE_BLOCK, H) each. */
int64_t ug_k_nade_backward_scratch(int nt, int64_t B, int64_t d, int64_t H) {
    return d * H + (int64_t)nt * (B * d + 2 * NADE_BLOCK * H);
}

void ug_k_nade_backward(float *dx, float *dw, float *dc, float *dv, float *db,
                        const float *dlogits, const float *x, const float *aend, const float *wt,
                        const float *v, float *scratch, int nt, int64_t B, int64_t d, int64_t H) {
    float *dwt = dw ? scratch : NULL;
    int64_t per = B * d + 2 * NADE_BLOCK * H;
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
        float *dxp = scratch + d * H + (int64_t)t * per;
        float *a = dxp + B * d, *g = a + NADE_BLOCK * H;
        if (dx) memset(dxp, 0, (size_t)(B * d) * sizeof *dxp);
        for (int64_t r0 = 0; r0 < B; r0 += NADE_BLOCK) {
            int64_t nb = B - r0 < NADE_BLOCK ? B - r0 : NADE_BLOCK;
            for (int64_t r = 0; r < nb; r++)
                for (int64_t k = k0; k < k1; k++) {
                    a[r * H + k] = aend[(r0 + r) * H + k];
                    g[r * H + k] = 0;
                }
            for (int64_t i = d - 1; i >= 0; i--) {
                const float *wi = wt + i * H, *vi = v + i * H;
                float *dwi = dwt ? dwt + i * H : NULL, *dvi = dv ? dv + i * H : NULL;
                for (int64_t r = 0; r < nb; r++) {
                    float *ar = a + r * H, *gr = g + r * H;
                    float xi = x[(r0 + r) * d + i];
                    if (dx) {
                        float s = 0;
#pragma omp simd reduction(+ : s)
                        for (int64_t k = k0; k < k1; k++) s += wi[k] * gr[k];
                        dxp[(r0 + r) * d + i] += s;
                    }
                    if (xi != 0) {
                        if (dwi) {
#pragma omp simd
                            for (int64_t k = k0; k < k1; k++) dwi[k] += xi * gr[k];
                        }
#pragma omp simd
                        for (int64_t k = k0; k < k1; k++) ar[k] -= xi * wi[k];
                    }
                    float gl = dlogits[(r0 + r) * d + i];
                    if (gl == 0) continue;   /* no contribution from this logit: exact skip */
                    if (dvi) {
#pragma omp simd
                        for (int64_t k = k0; k < k1; k++) {
                            float h = sigmoid_f(ar[k]);
                            dvi[k] += gl * h;
                            gr[k] += gl * vi[k] * h * (1.0f - h);
                        }
                    } else {
#pragma omp simd
                        for (int64_t k = k0; k < k1; k++) {
                            float h = sigmoid_f(ar[k]);
                            gr[k] += gl * vi[k] * h * (1.0f - h);
                        }
                    }
                }
            }
            if (dc)
                for (int64_t r = 0; r < nb; r++)
                    for (int64_t k = k0; k < k1; k++) dc[k] += g[r * H + k];
        }
    }
    if (db)
        for (int64_t r = 0; r < B; r++)
            for (int64_t i = 0; i < d; i++) db[i] += dlogits[r * d + i];
    if (dx)
        for (int t = 0; t < used; t++) {
            const float *dxp = scratch + d * H + (int64_t)t * per;
            for (int64_t j = 0; j < B * d; j++) dx[j] += dxp[j];
        }
    if (dwt) {
        /* Back to W's (H, d) layout. */
#pragma omp parallel for schedule(static) if (d * H >= UG_PAR_MIN)
        for (int64_t k = 0; k < H; k++)
            for (int64_t i = 0; i < d; i++) dw[k * d + i] += dwt[i * H + k];
    }
}
