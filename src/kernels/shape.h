/* shape.h — data movement for permute, concat and split on raw buffers. Backward kernels
 * accumulate (+=). */
#ifndef UG_K_SHAPE_H
#define UG_K_SHAPE_H
#include <stdint.h>

/* out (contiguous, shape[0..nd)) at multi-index i = x[sum_d i_d xstride_d]: a permuted copy
 * when xstride_d is x's contiguous stride of dim perm[d]. */
void ug_k_permute_forward(float *out, const float *x, int nd, const int64_t *shape,
                          const int64_t *xstride);
/* dx[sum_d i_d xstride_d] += dout at i (a permutation: every dx element is hit once). */
void ug_k_permute_backward(float *dx, const float *dout, int nd, const int64_t *shape,
                           const int64_t *xstride);
/* For o < outer: dst[o drow + doff + j] = src[o srow + soff + j], j < len (accumulate 1: +=;
 * 2: = 0 + src, a gradient buffer not yet written, see ug_grad_add). Concat and split both are
 * this with (outer, axis * inner) row views. */
void ug_k_copy_rows(float *dst, int64_t drow, int64_t doff, const float *src, int64_t srow,
                    int64_t soff, int64_t len, int64_t outer, int accumulate);
/* Columns of rows: out[o][j] = x[o][idx[j]], j < m, o < outer (x rows of n). The backward
 * dx[o][idx[j]] += dout[o][j]. */
void ug_k_gather_cols_forward(float *out, const float *x, const int32_t *idx, int64_t outer,
                              int64_t n, int64_t m);
void ug_k_gather_cols_backward(float *dx, const float *dout, const int32_t *idx, int64_t outer,
                               int64_t n, int64_t m);
#endif
