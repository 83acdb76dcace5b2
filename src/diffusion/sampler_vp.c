/* sampler_vp.c — discrete VP samplers on x_t = sqrt(abar_t) x~ (SPEC section 4), start x_T = noise,
 * each step from timestep t to prev_t = t - T/N (diffusers), abar_prev = final_alpha_cumprod
 * below 0. The eps model comes from the denoiser: x~ = x_t / sqrt(abar_t),
 * sigma_t = sqrt((1 - abar_t)/abar_t), eps = (x~ - D(x~; sigma_t)) / sigma_t.
 *   ddim (Song, Meng, Ermon 2021, eq. 12): x0 = (x_t - sqrt(1-a) eps)/sqrt(a),
 *     x_prev = sqrt(a') x0 + sqrt(1 - a' - s^2) eps + s z,
 *     s = eta sqrt((1-a')/(1-a)) sqrt(1 - a/a')  (eta = 0: deterministic; diffusers DDIMScheduler)
 *   ddpm (Ho et al. 2020, Algorithm 2 on the strided chain, alpha_t = a/a', beta_t = 1 - alpha_t):
 *     x_prev = (x_t - beta_t/sqrt(1-a) eps)/sqrt(alpha_t) + eta sigma_t z,
 *     sigma_t^2 = beta_t or beta~_t = (1-a')/(1-a) beta_t; no noise on the last step.
 *     eta = 0 leaves the posterior-mean chain, which is deterministic but not the ODE solver:
 *     for that use ddim with eta = 0.
 * With cfg.diffusers the step coefficients are computed in float32 from float32 abar, as
 * diffusers does with its float32 alphas_cumprod tensor. */
#include "sampler_impl.h"
#include "core/core.h"
#include <math.h>
#include <stdlib.h>

/* eps(x_t) into e, through D at sigma_t. */
static ug_status eps_model(ug_smp *s, const double *x, double a, double *xs, double *e) {
    double ra = sqrt(a), sg = sqrt((1 - a) / a);
    for (int64_t j = 0; j < s->nd; j++) xs[j] = x[j] / ra;
    ug_status st = ug_smp_denoise(s, xs, sg, e);
    if (st) return st;
    for (int64_t j = 0; j < s->nd; j++) e[j] = (xs[j] - e[j]) / sg;
    return UG_OK;
}

ug_status ug_run_ddim(ug_smp *s, double *x) {
    const ug_grid *g = s->g;
    double *buf = ug_smp_alloc(s, 3);
    if (!buf) return ug_smp_nomem(s);
    double *xs = buf, *e = buf + s->nd, *z = buf + 2 * s->nd;
    ug_status st = UG_OK;
    for (int i = 0; i < g->steps && !st; i++) {
        double a = g->abar[i], ap = g->abar_prev[i];
        if ((st = eps_model(s, x, a, xs, e))) break;
        double c_eps, c_a, c_dir, c_ap, sd;
        if (s->c->diffusers) {
            float af = (float)a, apf = (float)ap;
            float var = ((1.0f - apf) / (1.0f - af)) * (1.0f - af / apf);
            float sdf = (float)s->eta * sqrtf(var);
            c_eps = sqrtf(1.0f - af);
            c_a = sqrtf(af);
            c_dir = sqrtf(1.0f - apf - sdf * sdf);
            c_ap = sqrtf(apf);
            sd = sdf;
        } else {
            sd = s->eta * sqrt((1 - ap) / (1 - a) * (1 - a / ap));
            c_eps = sqrt(1 - a);
            c_a = sqrt(a);
            c_dir = sqrt(fmax(1 - ap - sd * sd, 0));
            c_ap = sqrt(ap);
        }
        double amp = sd * s->c->s_noise;
        if (amp != 0) ug_smp_normal(s, i, 0, z);
        for (int64_t j = 0; j < s->nd; j++) {
            double x0 = (x[j] - c_eps * e[j]) / c_a;
            x[j] = c_ap * x0 + c_dir * e[j] + (amp != 0 ? amp * z[j] : 0);
        }
    }
    free(buf);
    return st;
}

ug_status ug_run_ddpm(ug_smp *s, double *x) {
    const ug_grid *g = s->g;
    double *buf = ug_smp_alloc(s, 3);
    if (!buf) return ug_smp_nomem(s);
    double *xs = buf, *e = buf + s->nd, *z = buf + 2 * s->nd;
    ug_status st = UG_OK;
    for (int i = 0; i < g->steps && !st; i++) {
        double a = g->abar[i], ap = g->abar_prev[i], alpha = a / ap, beta = 1 - alpha;
        if ((st = eps_model(s, x, a, xs, e))) break;
        double var = s->c->ddpm_var == UG_DDPM_VAR_BETA ? beta : (1 - ap) / (1 - a) * beta;
        double amp = i == g->steps - 1 ? 0 : s->eta * sqrt(var) * s->c->s_noise;
        double k = beta / sqrt(1 - a), ra = sqrt(alpha);
        if (amp != 0) ug_smp_normal(s, i, 0, z);
        for (int64_t j = 0; j < s->nd; j++)
            x[j] = (x[j] - k * e[j]) / ra + (amp != 0 ? amp * z[j] : 0);
    }
    free(buf);
    return st;
}
