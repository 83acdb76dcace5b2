/* likelihood.c — exact log-likelihood of a diffusion model through the probability-flow ODE in
 * sigma-space (SPEC section 6; Song et al. 2021, "Score-Based Generative Modeling through SDEs",
 * appendix D.2, and score_sde's likelihood.py):
 *   dx/dsigma = f = (x - D(x; sigma)) / sigma,   div_x f = (d - div_x D) / sigma,
 *   log p_{smin}(x(smin)) = log N(x(smax); 0, smax^2 I) + int_{smin}^{smax} div_x f dsigma,
 * the instantaneous change of variables d log p(x(sigma))/dsigma = -div f integrated upward.
 * Also bits/dim on the 8-bit scale. */
#include "eval/eval.h"
#include "core/core.h"
#include <math.h>

ug_lik_cfg ug_lik_default(void) {
    ug_lik_cfg c;
    c.sigma_min = 0.002;
    c.sigma_max = 80;
    c.ode = ug_rk45_default();
    return c;
}

typedef struct {
    const ug_div_denoiser *dn;
    int64_t n, d;
    double *D, *div;    /* (n, d), (n) scratch */
} lik_ode;

/* y = [x (n, d), delta (n)]. */
static ug_status lik_rhs(void *self, double sigma, const double *y, double *dy) {
    lik_ode *o = self;
    int64_t n = o->n, d = o->d;
    ug_status st = o->dn->fn(o->dn->self, n, y, sigma, o->D, o->div);
    if (st) return st;
    for (int64_t j = 0; j < n * d; j++) dy[j] = (y[j] - o->D[j]) / sigma;
    for (int64_t i = 0; i < n; i++) dy[n * d + i] = ((double)d - o->div[i]) / sigma;
    for (int64_t j = 0; j < n * (d + 1); j++)
        if (!isfinite(dy[j]))
            return ug_fail(UG_ERR_NUMERIC, "likelihood: non-finite drift at sigma = %g (point %lld)",
                           sigma, (long long)(j < n * d ? j / d : j - n * d));
    return UG_OK;
}

ug_status ug_likelihood_ode(const ug_lik_cfg *c, const ug_div_denoiser *dn, int64_t n,
                            const double *x, double *logp, double *z, double *delta,
                            ug_ode_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (!(c->sigma_min > 0) || !(c->sigma_max > c->sigma_min) || !isfinite(c->sigma_max))
        return ug_fail(UG_ERR_INVALID_ARG,
                       "likelihood: sigma range [%g, %g], expected 0 < sigma_min < sigma_max < inf",
                       c->sigma_min, c->sigma_max);
    if (n < 1 || dn->dim < 1)
        return ug_fail(UG_ERR_INVALID_ARG, "likelihood: %lld points of dimension %lld",
                       (long long)n, (long long)dn->dim);
    int64_t d = dn->dim, ny = n * (d + 1);
    double *y = malloc((size_t)(ny + n * d + n) * sizeof *y);
    if (!y) return ug_fail(UG_ERR_NOMEM, "likelihood: out of memory for %lld points", (long long)n);
    lik_ode o = {dn, n, d, y + ny, y + ny + n * d};
    memcpy(y, x, (size_t)(n * d) * sizeof *y);
    for (int64_t i = 0; i < n; i++) y[n * d + i] = 0;
    ug_status st = ug_rk45_solve(&c->ode, lik_rhs, &o, ny, y, c->sigma_min, c->sigma_max, stats);
    if (!st) {
        const double log2pi = 1.8378770664093454836;
        double s2 = c->sigma_max * c->sigma_max;
        for (int64_t i = 0; i < n; i++) {
            double q = 0;
            for (int64_t j = 0; j < d; j++) q += y[i * d + j] * y[i * d + j];
            double prior = -0.5 * (double)d * (log2pi + log(s2)) - 0.5 * q / s2;
            logp[i] = prior + y[n * d + i];
            if (delta) delta[i] = y[n * d + i];
        }
        if (z) memcpy(z, y, (size_t)(n * d) * sizeof *z);
    }
    free(y);
    return st;
}

double ug_bits_per_dim(double nll_nats, int64_t d, double levels) {
    return (nll_nats + (double)d * log(levels)) / ((double)d * log(2.0));
}

double ug_data_scale_levels(ug_data_scale s) {
    switch (s) {
    case UG_SCALE_PM1: return 127.5;
    case UG_SCALE_UNIT: return 255;
    case UG_SCALE_DEQUANT256: return 256;
    default: return 1;
    }
}

ug_status ug_model_loglik(ug_model *m, const ug_lik_cfg *lcfg, const ug_div_cfg *c, int64_t n,
                          const double *x, double *logp, ug_ode_stats *stats) {
    ug_lik_cfg dflt = ug_lik_default();
    const ug_lik_cfg *lc = lcfg ? lcfg : &dflt;
    const ug_gmm *g = ug_model_gmm(m);
    if (g) {
        ug_div_denoiser dn = ug_gmm_div_denoiser(g);
        return ug_likelihood_ode(lc, &dn, n, x, logp, NULL, NULL, stats);
    }
    ug_div_cfg dc = c ? *c : ug_div_default();
    ug_div_denoiser dn;
    void *state;
    ug_status st = ug_model_div_denoiser(m, NULL, &dc, &dn, &state);
    if (st) return st;
    st = ug_likelihood_ode(lc, &dn, n, x, logp, NULL, NULL, stats);
    ug_model_div_free(state);
    return st;
}
