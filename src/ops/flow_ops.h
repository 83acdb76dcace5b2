/* flow_ops.h — private tensor ops of the normalizing flows (SPEC section 7), recorded on the
 * tape like the public ops; kernels and formulas in kernels/flow.h. Index lists and masks are
 * held by the caller and must outlive the tape (the flow layers own them). */
#ifndef UG_OPS_FLOW_OPS_H
#define UG_OPS_FLOW_OPS_H
#include "core/core.h"

/* x (N, ...) viewed as (N, D) -> (N, m): out[:, j] = x[:, idx[j]] (NICE's parity split). */
ug_tensor *ug_flow_gather(ug_ctx *ctx, ug_tensor *x, const int32_t *idx, int64_t m);
/* a (N, ma), b (N, mb) -> (N, ma + mb): out[:, ia[j]] = a[:, j], out[:, ib[j]] = b[:, j];
 * ia and ib partition 0 .. ma + mb - 1. */
ug_tensor *ug_flow_merge(ug_ctx *ctx, ug_tensor *a, const int32_t *ia, ug_tensor *b,
                         const int32_t *ib);
/* Affine coupling: x (N, ...) with n values per example, h (N, ...) with 2n (s_raw, then t);
 * s = c tanh(s_raw / c) (c <= 0: s = s_raw); y = x exp(s) + t, and y = x where mask != 0
 * (mask: n floats or NULL). Output shaped like x. */
ug_tensor *ug_flow_affine(ug_ctx *ctx, ug_tensor *x, ug_tensor *h, const float *mask, float c);
/* (N): the coupling's log|det dy/dx| = sum of s over the transformed entries. */
ug_tensor *ug_flow_affine_logdet(ug_ctx *ctx, ug_tensor *h, const float *mask, float c);
/* The inverse x = (y - t) exp(-s); records nothing (sampling only). */
ug_tensor *ug_flow_affine_inverse(ug_ctx *ctx, ug_tensor *y, ug_tensor *h, const float *mask,
                                  float c);
/* (N): log p(z) summed over each example, standard Gaussian or (logistic != 0) logistic. */
ug_tensor *ug_flow_prior_logp(ug_ctx *ctx, ug_tensor *z, int logistic);
/* Glow's W = P L (U + diag(sign exp(logs))) (C, C) from l, u (C, C) and logs (C); perm, sign
 * (C) fixed. */
ug_tensor *ug_flow_lu_weight(ug_ctx *ctx, ug_tensor *l, ug_tensor *u, ug_tensor *logs,
                             const int32_t *perm, const float *sign);
#endif
