/* embed.h — embedding lookup, sinusoidal features and inverted dropout on raw buffers.
 * Backward kernels accumulate (+=). */
#ifndef UG_K_EMBED_H
#define UG_K_EMBED_H
#include <stdint.h>

/* out (n, D) = weight[idx[i]] rows (weight (V, D)). */
void ug_k_embedding_forward(float *out, const float *weight, const int32_t *idx, int64_t n,
                            int64_t D);
/* dweight[idx[i]] += dout[i]: repeated indices add up. */
void ug_k_embedding_backward(float *dweight, const float *dout, const int32_t *idx, int64_t n,
                             int64_t D);
/* out (B, 2 half): [sin(x f_k)..., cos(x f_k)...] (cosines first if cos_first),
 * f_k = exp(log_fmax k / (half - 1)) (f_0 = 1 when half = 1). */
void ug_k_sinusoidal_forward(float *out, const float *x, int64_t B, int64_t half, float log_fmax,
                             int cos_first);
/* dx (B) += sum_k f_k (dsin_k cos(x f_k) - dcos_k sin(x f_k)) */
void ug_k_sinusoidal_backward(float *dx, const float *dout, const float *x, int64_t B,
                              int64_t half, float log_fmax, int cos_first);
/* out = x * scale (scale: 0 where dropped, 1/(1-p) where kept); backward dx += dout * scale. */
void ug_k_mul_mask_forward(float *out, const float *x, const float *scale, int64_t n);
void ug_k_mul_mask_backward(float *dx, const float *dout, const float *scale, int64_t n);
#endif
