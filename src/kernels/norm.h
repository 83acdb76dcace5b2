/* norm.h — group norm and layer norm on raw floats (PyTorch semantics: biased variance, eps
 * inside the square root). Forward saves mean and rstd = 1 / sqrt(var + eps) per normalized
 * slice; backward kernels accumulate (+=) and skip NULL gradients. */
#ifndef UG_K_NORM_H
#define UG_K_NORM_H
#include <stdint.h>

/* inp (N, C, S) with S the product of the trailing dims, G groups dividing C; w, b (C) or NULL.
 * out = (x - mean) rstd w[c] + b[c]; mean, rstd (N, G). silu: out = silu of that (group norm
 * and SiLU fused; nothing more is saved); its backward then takes the b of the forward and a
 * scratch of nthr x (C / G) S floats, and runs on at most nthr threads (silu 0: b, scratch and
 * nthr unused). tot: N C pairs of doubles where dx leaves each (image, channel)'s sums for dw
 * and db (or NULL: they are summed again from dy and x). dx_add 1: dinp += dx; 0: dinp = 0 + dx
 * (a gradient buffer not yet written, see ug_grad_add). */
void ug_k_group_norm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *w, const float *b, int64_t N, int64_t C, int64_t S,
                             int64_t G, float eps, int silu);
void ug_k_group_norm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *b, const float *mean,
                              const float *rstd, int64_t N, int64_t C, int64_t S, int64_t G,
                              int silu, float *scratch, int nthr, double *tot, int dx_add);

/* inp (R, D): each row normalized; w, b (D) or NULL; mean, rstd (R). */
void ug_k_layer_norm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *w, const float *b, int64_t R, int64_t D, float eps);
void ug_k_layer_norm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, int64_t R, int64_t D);
#endif
