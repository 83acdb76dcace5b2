/* softmax.h — softmax, log-softmax and logsumexp over the last dim of (N, C) rows.
 * All subtract the row max first (stable for any finite input; a row of -inf gives lse -inf).
 * Backward kernels accumulate (+=). */
#ifndef UG_K_SOFTMAX_H
#define UG_K_SOFTMAX_H
#include <stdint.h>

/* y = exp(x - lse(x)) */
void ug_k_softmax_forward(float *y, const float *x, int64_t N, int64_t C);
/* dx += y * (dy - sum_c dy y) */
void ug_k_softmax_backward(float *dx, const float *dy, const float *y, int64_t N, int64_t C);
/* y = x - lse(x) */
void ug_k_log_softmax_forward(float *y, const float *x, int64_t N, int64_t C);
/* dx += dy - exp(y) sum_c dy */
void ug_k_log_softmax_backward(float *dx, const float *dy, const float *y, int64_t N, int64_t C);
/* lse (N) = log sum_c exp(x) */
void ug_k_logsumexp_forward(float *lse, const float *x, int64_t N, int64_t C);
/* dx += dlse * exp(x - lse) */
void ug_k_logsumexp_backward(float *dx, const float *dlse, const float *x, const float *lse,
                             int64_t N, int64_t C);
/* log sum exp of one row: max-shifted, the sum of exponentials accumulated in double. */
double ug_k_row_lse(const float *x, int64_t C);
#endif
