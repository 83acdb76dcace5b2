/* loglik.c — row log-likelihoods of one data vector under many decoder outputs (loglik.h):
 *   Bernoulli with logits a:  log p(x | a) = sum_j x_j a_j - softplus(a_j)
 *   Gaussian (mean m, log-variance lv):  -0.5 sum_j (ln 2 pi + lv_j + (x_j - m_j)^2 e^-lv_j)
 * Rows are spread over threads; each row's sum is one vectorized double accumulation, so a
 * row's value does not depend on the thread count or on the other rows. */
#include "loglik.h"
#include "core/core.h"
#include <math.h>

void ug_k_bernoulli_loglik_rows(double *out, const float *a, const float *x, int64_t rows,
                                int64_t d) {
#pragma omp parallel for schedule(static) if (rows * d >= UG_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *ar = a + r * d;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < d; j++) {
            /* x a - max(a, 0) is exact for binary x; the small log term is added apart so it
             * is not rounded away against a large logit. */
            float pos = ar[j] > 0.0f ? ar[j] : 0.0f;   /* not fmaxf: a libm call, unvectorized */
            s += (double)(x[j] * ar[j] - pos) - (double)ug_log1p_exp_neg_abs(ar[j]);
        }
        out[r] = s;
    }
}

void ug_k_gaussian_loglik_rows(double *out, const float *m, const float *lv, const float *x,
                               int64_t rows, int64_t d) {
    /* The row-independent part once: sum_j (ln 2 pi + lv_j). */
    double c = 0;
    for (int64_t j = 0; j < d; j++) c += 1.8378770664093453 + (double)lv[j];
#pragma omp parallel for schedule(static) if (rows * d >= UG_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *mr = m + r * d;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < d; j++) {
            float dx = x[j] - mr[j];
            s += (double)(dx * dx * ug_expf(-lv[j]));
        }
        out[r] = -0.5 * (c + s);
    }
}
