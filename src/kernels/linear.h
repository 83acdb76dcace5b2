/* linear.h — dense and batched matrix kernels on raw row-major floats (OpenBLAS sgemm).
 * Backward kernels accumulate into their outputs (+=). */
#ifndef UG_K_LINEAR_H
#define UG_K_LINEAR_H
#include <stdint.h>

/* out (N, O) = inp (N, Din) w^T (w: (O, Din)) + bias (O, or NULL). */
void ug_k_linear_forward(float *out, const float *inp, const float *w, const float *bias,
                         int64_t N, int64_t Din, int64_t O);
/* dinp (N, Din) += dout w; dw (O, Din) += dout^T inp; dbias (O) += colsum(dout). NULL skips one. */
void ug_k_linear_backward(float *dinp, float *dw, float *dbias, const float *dout,
                          const float *inp, const float *w, int64_t N, int64_t Din, int64_t O);
/* c (M, N) (+)= op(a) op(b), op = transpose when ta/tb; a is (M, K) or (K, M), b (K, N) or
 * (N, K). beta = 0 overwrites c, 1 accumulates. */
void ug_k_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *a, const float *b,
               float beta, float *c);
/* Masked linear layers (MADE): out = w * mask, and dw *= mask in place, elementwise over n. */
void ug_k_mask_mul(float *out, const float *w, const float *mask, int64_t n);
void ug_k_mask_inplace(float *dw, const float *mask, int64_t n);
#endif
