/* eval.h — evaluation: exact log-likelihood of diffusion models through the probability-flow
 * ODE (SPEC section 6), bits/dim, and two-sample metrics (SPEC section 10): MMD^2, energy
 * distance, sliced Wasserstein-2, Fréchet distance, precision / recall.
 * The public part is declared in unigen.h; this header keeps the internal links. */
#ifndef UG_EVAL_H
#define UG_EVAL_H
#include "unigen.h"

/* ---------------------------------------------------------------- internal */
#include "models/diffusion.h"

/* ---------------------------------------------------------------- DDPM variational bound (vlb.c)
 * The public part (ug_vlb_cfg, ug_model_vlb) is in unigen.h. */
/* The bound L = L_T + sum_{t=2..T} L_{t-1} + L_0 in nats per example, nats (n), for the discrete
 * VP formulation f and a denoiser D(x~; sigma) evaluated at x~ = x_t / sqrt(abar_t),
 * sigma_t = sqrt((1 - abar_t) / abar_t). x0 (n, d). terms (T + 1) or NULL: terms[t - 1] the mean
 * over the examples of the step-t term (L_0 at t = 1, L_{t-1} for t >= 2; NAN when no example
 * drew t), terms[T] the mean L_T. Bits/dim: discretized decoder nats / (d ln 2) (already a
 * probability of the 8-bit values), Gaussian decoder ug_bits_per_dim(nats, d, levels). */
ug_status ug_ddpm_vlb(const ug_form *f, const ug_denoiser *dn, const ug_vlb_cfg *c, int64_t n,
                      const double *x0, double *nats, double *terms);
/* KL(N(m1, v1) || N(m2, v2)) in one dimension. */
double ug_gauss_kl(double m1, double v1, double m2, double v2);
/* log (Phi(b) - Phi(a)) for a < b (either may be infinite), accurate in both tails. */
double ug_log_normal_mass(double a, double b);
/* log P(bin of x) under N(mean, sd^2) for x on the 8-bit grid of [-1, 1]. */
double ug_discretized_gaussian_logp(double x, double mean, double sd);
#endif
