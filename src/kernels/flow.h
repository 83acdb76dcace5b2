/* flow.h — raw kernels of the normalizing flows (SPEC section 7): column gather/scatter for
 * coupling splits, the affine coupling y = x exp(s) + t with its log-determinant, the priors'
 * log-densities and Glow's LU-parameterized 1x1 convolution weight. Backward kernels
 * accumulate (+=); a NULL gradient pointer skips that input. */
#ifndef UG_K_FLOW_H
#define UG_K_FLOW_H
#include <stdint.h>

/* Gather along the rows of x (N, D): out (N, m), out[r, j] (+)= x[r, idx[j]]. */
void ug_k_gather_cols(float *out, const float *x, const int32_t *idx, int64_t N, int64_t D,
                      int64_t m, int accumulate);
/* Its adjoint: out (N, D), out[r, idx[j]] (+)= a[r, j] (idx distinct). */
void ug_k_scatter_cols(float *out, const float *a, const int32_t *idx, int64_t N, int64_t D,
                       int64_t m, int accumulate);

/* Affine coupling on N examples of n values; h holds 2n per example: s_raw then t.
 *   s = c tanh(s_raw / c)  (soft clamp; c <= 0: s = s_raw),   y = x exp(s) + t,
 * and where mask[j] != 0 (the conditioning half; mask NULL: none) y = x and s counts as 0. */
void ug_k_coupling_forward(float *y, const float *x, const float *h, const float *mask, float c,
                         int64_t N, int64_t n);
/* x = (y - t) exp(-s): the inverse. */
void ug_k_coupling_inverse(float *x, const float *y, const float *h, const float *mask, float c,
                         int64_t N, int64_t n);
/* dx += dy exp(s), dh_s += dy x exp(s) ds/ds_raw, dh_t += dy. */
void ug_k_coupling_backward(float *dx, float *dh, const float *dy, const float *x, const float *h,
                          const float *mask, float c, int64_t N, int64_t n);
/* ld (N) = sum_j s_j (log|det dy/dx|); backward dh_s += dld ds/ds_raw. */
void ug_k_coupling_logdet_forward(float *ld, const float *h, const float *mask, float c, int64_t N,
                                int64_t n);
void ug_k_coupling_logdet_backward(float *dh, const float *dld, const float *h, const float *mask,
                                 float c, int64_t N, int64_t n);

/* Per-example log-density of z (N, n) under a standard prior, summed over the n values:
 *   gaussian  log N(z; 0, 1) = -z^2/2 - ln(2 pi)/2,   d/dz = -z
 *   logistic  -(softplus(z) + softplus(-z)) = -|z| - 2 log1p(exp(-|z|)),   d/dz = -tanh(z/2) */
void ug_k_prior_logp_forward(float *lp, const float *z, int logistic, int64_t N, int64_t n);
void ug_k_prior_logp_backward(float *dz, const float *dlp, const float *z, int logistic,
                              int64_t N, int64_t n);

/* Glow's 1x1 convolution weight (Kingma & Dhariwal 2018, sec. 3.2):
 *   W = P L (U + diag(sign exp(logs))),  L = unit lower triangular from l's strict lower part,
 *   U = u's strict upper part, P fixed: row perm[i] of W is row i of L (U + diag).
 * l, u, W (C, C); logs, sign (C). */
void ug_k_lu_weight_forward(float *W, const float *l, const float *u, const float *logs,
                            const int32_t *perm, const float *sign, int64_t C);
void ug_k_lu_weight_backward(float *dl, float *du, float *dlogs, const float *dW, const float *l,
                             const float *u, const float *logs, const int32_t *perm,
                             const float *sign, int64_t C);
#endif
