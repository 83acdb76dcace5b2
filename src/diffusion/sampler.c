/* sampler.c — time grids and samplers in sigma-space (SPEC section 4; Karras et al. 2022,
 * Algorithm 1; k-diffusion sampling.py). */
#include "sampler.h"
#include "core/core.h"
#include <math.h>

static const char *const k_sampler[UG_SAMPLER_COUNT] = {"euler", "heun"};
static const char *const k_sched[UG_SCHED_COUNT] = {"karras", "exponential"};

const char *ug_sampler_name(ug_sampler_kind k) { return (unsigned)k < UG_SAMPLER_COUNT ? k_sampler[k] : "?"; }
const char *ug_schedule_name(ug_schedule_kind k) { return (unsigned)k < UG_SCHED_COUNT ? k_sched[k] : "?"; }
int ug_sampler_from_name(const char *s, ug_sampler_kind *out) {
    for (int i = 0; i < UG_SAMPLER_COUNT; i++)
        if (!strcmp(s, k_sampler[i])) { *out = (ug_sampler_kind)i; return 0; }
    return -1;
}
int ug_schedule_from_name(const char *s, ug_schedule_kind *out) {
    for (int i = 0; i < UG_SCHED_COUNT; i++)
        if (!strcmp(s, k_sched[i])) { *out = (ug_schedule_kind)i; return 0; }
    return -1;
}

ug_sampler_cfg ug_sampler_default(void) {
    ug_sampler_cfg c = {UG_SAMPLER_HEUN, UG_SCHED_KARRAS, 18, 0.002, 80.0, 7.0};
    return c;
}

ug_status ug_sampler_grid(const ug_sampler_cfg *c, double *sigmas) {
    int N = c->steps;
    if (N < 1)
        return ug_fail(UG_ERR_INVALID_ARG, "sampler: steps = %d, expected >= 1", N);
    if (!(c->sigma_min > 0) || !(c->sigma_max > c->sigma_min))
        return ug_fail(UG_ERR_INVALID_ARG,
                       "sampler: sigma-min %g and sigma-max %g, expected 0 < min < max",
                       c->sigma_min, c->sigma_max);
    for (int i = 0; i < N; i++) {
        double r = N > 1 ? (double)i / (N - 1) : 0;
        switch (c->schedule) {
        case UG_SCHED_KARRAS: {
            double a = pow(c->sigma_max, 1 / c->rho), b = pow(c->sigma_min, 1 / c->rho);
            sigmas[i] = pow(a + r * (b - a), c->rho);
            break;
        }
        case UG_SCHED_EXPONENTIAL:
            sigmas[i] = exp(log(c->sigma_max) + r * (log(c->sigma_min) - log(c->sigma_max)));
            break;
        default:
            return ug_fail(UG_ERR_INVALID_ARG, "sampler: schedule %d unknown", (int)c->schedule);
        }
    }
    sigmas[N] = 0;
    return UG_OK;
}

ug_status ug_sampler_run(const ug_sampler_cfg *c, const ug_denoiser *dn, int64_t n, double *x,
                         int64_t *nfe) {
    int N = c->steps;
    int64_t d = dn->dim, nd = n * d;
    double sig[1025];
    if (N > 1024) return ug_fail(UG_ERR_INVALID_ARG, "sampler: steps = %d, at most 1024", N);
    ug_status st = ug_sampler_grid(c, sig);
    if (st) return st;
    double *den = malloc((size_t)nd * sizeof *den), *dcur = malloc((size_t)nd * sizeof *dcur);
    double *xn = malloc((size_t)nd * sizeof *xn);
    if (!den || !dcur || !xn) {
        free(den); free(dcur); free(xn);
        return ug_fail(UG_ERR_NOMEM, "sampler: cannot allocate state for %lld points", (long long)n);
    }
    *nfe = 0;
    for (int64_t j = 0; j < nd; j++) x[j] *= sig[0];
    for (int i = 0; i < N && !st; i++) {
        double s = sig[i], sn = sig[i + 1];
        if ((st = dn->fn(dn->self, n, x, s, den))) break;
        (*nfe)++;
        for (int64_t j = 0; j < nd; j++) {
            dcur[j] = (x[j] - den[j]) / s;
            xn[j] = x[j] + (sn - s) * dcur[j];
        }
        if (c->sampler == UG_SAMPLER_HEUN && sn != 0) {
            /* EDM Algorithm 1: average the slope at the Euler end point (not on the last step). */
            if ((st = dn->fn(dn->self, n, xn, sn, den))) break;
            (*nfe)++;
            for (int64_t j = 0; j < nd; j++)
                xn[j] = x[j] + (sn - s) * 0.5 * (dcur[j] + (xn[j] - den[j]) / sn);
        }
        memcpy(x, xn, (size_t)nd * sizeof *x);
    }
    free(den); free(dcur); free(xn);
    return st;
}
