/* attention.h — fused multi-head scaled dot-product attention on raw (B, T, C) floats, softmax
 * inside. Head h owns channels [h Dh, (h + 1) Dh), Dh = C / heads. Backward accumulates (+=)
 * and skips NULL gradients. */
#ifndef UG_K_ATTENTION_H
#define UG_K_ATTENTION_H
#include <stdint.h>

/* out (B, T, C); P (B, heads, T, T) receives the softmax probabilities (kept for backward). */
void ug_k_attention_forward(float *out, float *P, const float *q, const float *k, const float *v,
                            int64_t B, int64_t T, int64_t C, int64_t heads);
/* scratch: B heads T floats (one row of dP per batch and head). */
void ug_k_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                             const float *q, const float *k, const float *v, const float *P,
                             int64_t B, int64_t T, int64_t C, int64_t heads);
#endif
