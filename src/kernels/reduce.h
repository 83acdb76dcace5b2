/* reduce.h — sums over one axis of x viewed as (outer, n, inner), and over everything.
 * Sums are accumulated in double; scale turns a sum into a mean. Backward accumulates. */
#ifndef UG_K_REDUCE_H
#define UG_K_REDUCE_H
#include <stdint.h>

/* out (outer, inner) = scale * sum_k x (outer, n, inner) */
void ug_k_sum_axis_forward(float *out, const float *x, int64_t outer, int64_t n, int64_t inner,
                           double scale);
/* dx (outer, n, inner) += scale * dout (outer, inner) */
void ug_k_sum_axis_backward(float *dx, const float *dout, int64_t outer, int64_t n,
                            int64_t inner, double scale);
/* sum of x[0..n) in double, in a fixed order (independent of the thread count) */
double ug_k_sum_all(const float *x, int64_t n);
/* dx[0..n) += v */
void ug_k_add_scalar(float *dx, float v, int64_t n);
#endif
