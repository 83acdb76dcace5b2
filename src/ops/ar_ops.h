/* ar_ops.h — private ops of the autoregressive family (SPEC section 8), not in unigen.h. */
#ifndef UG_OPS_AR_OPS_H
#define UG_OPS_AR_OPS_H
#include "core/core.h"

/* NADE's logits without the output bias (Larochelle & Murray 2011), O(d H) per example,
 * natural order: a_0 = c, out_i = V_i . sigmoid(a_i), a_{i+1} = a_i + W[:, i] x_i
 * (the model adds b with a broadcast ug_add). x (B, d), w (H, d), c (H), v (d, H) -> (B, d).
 * Differentiable in all four; the backward runs the recursion in reverse from the saved a_d,
 * also O(d H). */
ug_tensor *ug_nade_logits(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *c, ug_tensor *v);
/* Ancestral samples with the same recursion: x (n, d) is overwritten with
 * x_i = 1[u_i < sigmoid(b_i + out_i)] for the uniforms u (n, d). No tape. */
void ug_nade_sample(ug_ctx *ctx, float *x, const float *u, int64_t n, const ug_tensor *w,
                    const ug_tensor *c, const ug_tensor *v, const ug_tensor *b);
#endif
