/* nade.h — NADE's fused conditionals (Larochelle & Murray 2011) on raw row-major floats:
 *   a_0 = c,  h_i = sigmoid(a_i),  logit_i = b_i + V_i . h_i,  a_{i+1} = a_i + W[:, i] x_i,
 * O(d H) per example thanks to the running pre-activation a. W is passed transposed,
 * wt (d, H) = W^T, so that the column W[:, i] is the contiguous row wt_i. Positions are the
 * natural order 0..d-1. Backward kernels accumulate (+=). */
#ifndef UG_K_NADE_H
#define UG_K_NADE_H
#include <stdint.h>

/* logits (B, d); aend (B, H) or NULL: a_d, the pre-activation after the last input, from which
 * the backward pass walks the recursion back. x (B, d), wt (d, H), c (H), v (d, H),
 * b (d) or NULL (no bias).
 * scratch: ug_k_nade_forward_scratch floats, nt the most threads that may run. If u (B, d) is
 * not NULL the kernel samples instead: x_i = 1[u_i < sigmoid(logit_i)] is written into x
 * before it is used. */
void ug_k_nade_forward(float *logits, float *aend, float *x, const float *u, const float *wt,
                       const float *c, const float *v, const float *b, float *scratch, int nt,
                       int64_t B, int64_t d, int64_t H);
/* Scratch floats the kernels need. */
int64_t ug_k_nade_forward_scratch(int nt, int64_t H);
int64_t ug_k_nade_backward_scratch(int nt, int64_t B, int64_t d, int64_t H);
/* Reverse recursion from a_d: with G_{i+1} = dL/da_{i+1} (everything after position i),
 *   dx_i += wt_i . G_{i+1},  dW[:, i] += x_i G_{i+1},  a_i = a_{i+1} - wt_i x_i,
 *   dv_i += dlogit_i h_i,  db_i += dlogit_i,  G_i = G_{i+1} + dlogit_i v_i * h_i (1 - h_i),
 *   dc += G_0.
 * The recursion is elementwise in the hidden unit, so threads split H: dw, dv, dc need no
 * per-thread copies; only dx (a dot over H) sums per-thread partials (thread count changes
 * its float summation order, nothing else). Any gradient may be NULL. dw (H, d). */
void ug_k_nade_backward(float *dx, float *dw, float *dc, float *dv, float *db,
                        const float *dlogits, const float *x, const float *aend, const float *wt,
                        const float *v, float *scratch, int nt, int64_t B, int64_t d, int64_t H);
#endif
