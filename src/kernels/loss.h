/* loss.h — per-sample losses over (B, F) rows (F = all features of a sample).
 * Each sample's sum is accumulated in double. Backward kernels accumulate (+=) and take
 * dout (B), the gradient of each sample's loss; NULL gradient pointers are skipped. */
#ifndef UG_K_LOSS_H
#define UG_K_LOSS_H
#include <stdint.h>

/* out_b = w_b mean_j (x - y)^2 (w NULL: 1) */
void ug_k_mse_forward(float *out, const float *x, const float *y, const float *w, int64_t B,
                      int64_t F);
/* dx += dout_b w_b 2 (x - y) / F;  dy -= the same */
void ug_k_mse_backward(float *dx, float *dy, const float *dout, const float *x, const float *y,
                       const float *w, int64_t B, int64_t F);
/* out_b = sum_j max(z, 0) - z t + log1p(exp(-|z|)) */
void ug_k_bce_logits_forward(float *out, const float *z, const float *t, int64_t B, int64_t F);
/* dz += dout_b (sigmoid(z) - t);  dt += dout_b (-z) */
void ug_k_bce_logits_backward(float *dz, float *dt, const float *dout, const float *z,
                              const float *t, int64_t B, int64_t F);
/* out_b = lse(z_b) - z_b[label_b]; lse (B) saved for backward */
void ug_k_cross_entropy_forward(float *out, float *lse, const float *z, const int32_t *labels,
                                int64_t B, int64_t K);
/* dz += dout_b (softmax(z_b) - onehot(label_b)) */
void ug_k_cross_entropy_backward(float *dz, const float *dout, const float *z, const float *lse,
                                 const int32_t *labels, int64_t B, int64_t K);
/* out_b = sum_j 0.5 (ln 2 pi + lv + (x - m)^2 exp(-lv)) */
void ug_k_gaussian_nll_forward(float *out, const float *x, const float *m, const float *lv,
                               int64_t B, int64_t F);
/* dx += g (x - m) e^-lv;  dm -= g (x - m) e^-lv;  dlv += g 0.5 (1 - (x - m)^2 e^-lv) */
void ug_k_gaussian_nll_backward(float *dx, float *dm, float *dlv, const float *dout,
                                const float *x, const float *m, const float *lv, int64_t B,
                                int64_t F);
#endif
