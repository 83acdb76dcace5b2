/* loglik.h — per-row log-likelihoods of ONE data vector x under many decoder outputs, forward
 * only: the inner loop of importance-weighted bounds (IWAE, Burda et al. 2016), where k = 5000
 * decoder outputs are scored against the same x and libm's scalar log1p would cost as much as
 * the decoder's GEMMs. Sums are accumulated in double. */
#ifndef UG_K_LOGLIK_H
#define UG_K_LOGLIK_H
#include "vmath.h"
#include <stdint.h>

/* log(1 + e^-|a|), branch-free so `omp simd` loops vectorize it: with e = e^-|a| in (0, 1],
 *   log(1 + e) = 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ...),  s = e / (2 + e) in (0, 1/3],
 * the series cut after s^14/15 (the next term is below 1.5e-9 of the sum for every e), so the
 * result has float accuracy in relative terms even where e underflows towards 0. */
static inline float ug_log1p_exp_neg_abs(float a) {
    float e = ug_expf(-fabsf(a));
    float s = e / (2.0f + e), t = s * s;
    float p = 1.0f / 15.0f;
    p = fmaf(p, t, 1.0f / 13.0f);
    p = fmaf(p, t, 1.0f / 11.0f);
    p = fmaf(p, t, 1.0f / 9.0f);
    p = fmaf(p, t, 1.0f / 7.0f);
    p = fmaf(p, t, 1.0f / 5.0f);
    p = fmaf(p, t, 1.0f / 3.0f);
    p = fmaf(p, t, 1.0f);
    return 2.0f * s * p;
}

/* out[r] = sum_j x_j a_rj - softplus(a_rj)  (= sum_j log Bernoulli(x_j; sigmoid(a_rj)) for
 * binary x): logits a (rows, d), x (d). */
void ug_k_bernoulli_loglik_rows(double *out, const float *a, const float *x, int64_t rows,
                                int64_t d);
/* out[r] = -0.5 sum_j (ln 2 pi + lv_j + (x_j - m_rj)^2 e^-lv_j): means m (rows, d), one
 * log-variance vector lv (d) shared by every row, x (d). */
void ug_k_gaussian_loglik_rows(double *out, const float *m, const float *lv, const float *x,
                               int64_t rows, int64_t d);
#endif
