/* sampler.c — ug_sampler_run and the samplers that step the probability-flow ODE / reverse SDE
 * of EDM eq. 4 directly (SPEC section 4):
 *   euler, heun, edm-sde: NVlabs/edm ablation_sampler (Karras et al. 2022, Algorithms 1 and 2)
 *     in the formulation's t when s(t) != 1 or sigma(t) != t, else in sigma (k-diffusion):
 *       dx/dt = (sigma'/sigma + s'/s) x - sigma' s / sigma D(x/s; sigma(t))
 *   em: Euler-Maruyama on the reverse SDE of EDM eq. 6 in sigma with beta = eta^2/sigma,
 *       dx = (1 + eta^2) (x - D)/sigma dsigma + eta sqrt(2 sigma |dsigma|) z
 *     (eta = 1: the VE reverse SDE of Song et al. 2021; eta = 0: the ODE, i.e. euler).
 *   pc: Song et al. 2021 Algorithms 2 and 4 (VE, in sigma): at each level the Langevin corrector
 *     x += e g + sqrt(2 e) z, g = (D - x)/sigma^2, e = 2 (snr sigma)^2,
 *     then the reverse-diffusion predictor
 *     x += (1 + eta^2)/2 (sigma^2 - sigma_next^2) g + eta sqrt(sigma^2 - sigma_next^2) z.
 *     Song's e = 2 (snr |z| / |g|)^2 uses norms averaged over the batch (score_sde); per sample
 *     they do not concentrate in low dimension (|g| -> 0 near a mode makes e unbounded) and a
 *     batch average would tie a sample to its batch, so |z| and |g| take their high-dimensional
 *     values sqrt(d) and sqrt(d)/sigma (annealed Langevin's e ~ sigma^2, Song & Ermon 2019).
 * em and pc return D (Tweedie's denoised mean, score_sde's x_mean) on the step to sigma = 0. */
#include "sampler_impl.h"
#include "core/core.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

ug_status ug_smp_denoise(ug_smp *s, const double *x, double sigma, double *out) {
    (*s->nfe)++;
    return s->dn->fn(s->dn->self, s->n, x, sigma, out);
}

void ug_smp_normal(ug_smp *s, int step, int k, double *z) {
    ug_rng_normal_rows(s->c->seed, s->c->first_stream, (uint32_t)(64 * step + k), s->zbuf, s->n, s->d);
    for (int64_t j = 0; j < s->nd; j++) z[j] = s->zbuf[j];
}

double *ug_smp_alloc(const ug_smp *s, int k) {
    return malloc((size_t)(s->nd > 0 ? s->nd : 1) * (size_t)k * sizeof(double));
}

ug_status ug_smp_nomem(const ug_smp *s) {
    return ug_fail(UG_ERR_NOMEM, "sampler: cannot allocate state for %lld points", (long long)s->n);
}

/* The time variable of the EDM family: the formulation's t in UG_SPACE_T, else sigma itself. */
typedef struct { const ug_form *f; } tvar;
static double tv_sigma(tvar v, double t) { return v.f ? ug_form_sigma(v.f, t) : t; }
static double tv_s(tvar v, double t) { return v.f ? ug_form_s(v.f, t) : 1.0; }
static double tv_dsigma(tvar v, double t) { return v.f ? ug_form_dsigma_dt(v.f, t) : 1.0; }
static double tv_ds(tvar v, double t) { return v.f ? ug_form_ds_dt(v.f, t) : 0.0; }
static double tv_t(tvar v, double sigma) { return v.f ? ug_form_t(v.f, sigma) : sigma; }

/* D(x/s; sigma(t)) and the slope d = (sigma'/sigma + s'/s) x - sigma' s/sigma D. */
static ug_status edm_slope(ug_smp *s, tvar v, const double *x, double t, double *xs, double *d) {
    double sg = tv_sigma(v, t), sc = tv_s(v, t), dsg = tv_dsigma(v, t), dsc = tv_ds(v, t);
    const double *in = x;
    if (sc != 1.0) {
        for (int64_t j = 0; j < s->nd; j++) xs[j] = x[j] / sc;
        in = xs;
    }
    ug_status st = ug_smp_denoise(s, in, sg, d);
    if (st) return st;
    double a = dsg / sg + dsc / sc, b = dsg * sc / sg;
    for (int64_t j = 0; j < s->nd; j++) d[j] = a * x[j] - b * d[j];
    return UG_OK;
}

/* euler, heun and edm-sde: NVlabs/edm ablation_sampler with alpha = 1. */
static ug_status run_edm(ug_smp *s, double *x) {
    const ug_sampler_cfg *c = s->c;
    const ug_grid *g = s->g;
    tvar v = {g->space == UG_SPACE_T ? c->form : NULL};
    int N = g->steps, heun = c->sampler != UG_SAMPLER_EULER;
    double *buf = ug_smp_alloc(s, 4);
    if (!buf) return ug_smp_nomem(s);
    double *xs = buf, *d = buf + s->nd, *d2 = buf + 2 * s->nd, *xp = buf + 3 * s->nd;
    ug_status st = UG_OK;
    double t0 = g->t[0], a0 = tv_sigma(v, t0) * tv_s(v, t0);
    for (int64_t j = 0; j < s->nd; j++) x[j] *= a0;
    for (int i = 0; i < N && !st; i++) {
        double tc = g->t[i], tn = g->t[i + 1], th = tc, sc = tv_sigma(v, tc);
        /* EDM Algorithm 2: raise the noise level by gamma inside [S_tmin, S_tmax]. */
        double gamma = 0;
        if (c->sampler == UG_SAMPLER_EDM_SDE && c->s_churn > 0 && c->s_tmin <= sc && sc <= c->s_tmax)
            gamma = fmin(c->s_churn / N, sqrt(2.0) - 1);
        if (gamma > 0) {
            th = tv_t(v, sc + gamma * sc);
            double sh = tv_sigma(v, th), ratio = tv_s(v, th) / tv_s(v, tc);
            double amp = sqrt(fmax(sh * sh - sc * sc, 0)) * tv_s(v, th) * c->s_noise;
            ug_smp_normal(s, i, 0, d2);
            for (int64_t j = 0; j < s->nd; j++) x[j] = ratio * x[j] + amp * d2[j];
        }
        double h = tn - th;
        if ((st = edm_slope(s, v, x, th, xs, d))) break;
        if (!heun || i == N - 1) {   /* the last step (to t = 0) is Euler */
            for (int64_t j = 0; j < s->nd; j++) x[j] += h * d[j];
            continue;
        }
        for (int64_t j = 0; j < s->nd; j++) xp[j] = x[j] + h * d[j];
        if ((st = edm_slope(s, v, xp, tn, xs, d2))) break;
        for (int64_t j = 0; j < s->nd; j++) x[j] += h * (0.5 * d[j] + 0.5 * d2[j]);
    }
    free(buf);
    return st;
}

static ug_status run_em(ug_smp *s, double *x) {
    const ug_grid *g = s->g;
    double eta = s->eta, sn0 = s->c->s_noise;
    double *buf = ug_smp_alloc(s, 2);
    if (!buf) return ug_smp_nomem(s);
    double *den = buf, *z = buf + s->nd;
    ug_status st = UG_OK;
    for (int64_t j = 0; j < s->nd; j++) x[j] *= g->sigma[0];
    for (int i = 0; i < g->steps && !st; i++) {
        double sg = g->sigma[i], sn = g->sigma[i + 1];
        if ((st = ug_smp_denoise(s, x, sg, den))) break;
        if (sn == 0) {
            memcpy(x, den, (size_t)s->nd * sizeof *x);
            continue;
        }
        double a = (1 + eta * eta) * (sn - sg) / sg, b = eta * sqrt(2 * sg * (sg - sn)) * sn0;
        if (b != 0) ug_smp_normal(s, i, 0, z);
        for (int64_t j = 0; j < s->nd; j++) x[j] += a * (x[j] - den[j]) + (b != 0 ? b * z[j] : 0);
    }
    free(buf);
    return st;
}

static ug_status run_pc(ug_smp *s, double *x) {
    const ug_sampler_cfg *c = s->c;
    const ug_grid *g = s->g;
    double eta = s->eta;
    double *buf = ug_smp_alloc(s, 2);
    if (!buf) return ug_smp_nomem(s);
    double *den = buf, *z = buf + s->nd;
    ug_status st = UG_OK;
    if (c->corrector_steps < 0 || c->corrector_steps > 63) {
        free(buf);
        return ug_fail(UG_ERR_INVALID_ARG, "sampler: pc corrector steps %d, expected 0..63", c->corrector_steps);
    }
    for (int64_t j = 0; j < s->nd; j++) x[j] *= g->sigma[0];
    for (int i = 0; i < g->steps && !st; i++) {
        double sg = g->sigma[i], sn = g->sigma[i + 1], v = sg * sg;
        for (int m = 0; m < c->corrector_steps && !st; m++) {
            if ((st = ug_smp_denoise(s, x, sg, den))) break;
            ug_smp_normal(s, i, 1 + m, z);
            double e = 2 * c->snr * c->snr * v, amp = sqrt(2 * e);
            for (int64_t j = 0; j < s->nd; j++) x[j] += e * (den[j] - x[j]) / v + amp * z[j];
        }
        if (st || (st = ug_smp_denoise(s, x, sg, den))) break;
        if (sn == 0) {
            memcpy(x, den, (size_t)s->nd * sizeof *x);
            continue;
        }
        double dv = v - sn * sn, a = 0.5 * (1 + eta * eta) * dv / v, b = eta * sqrt(dv) * c->s_noise;
        if (b != 0) ug_smp_normal(s, i, 0, z);
        for (int64_t j = 0; j < s->nd; j++) x[j] += a * (den[j] - x[j]) + (b != 0 ? b * z[j] : 0);
    }
    free(buf);
    return st;
}

ug_status ug_sampler_run(const ug_sampler_cfg *c, const ug_denoiser *dn, int64_t n, double *x,
                         int64_t *nfe) {
    *nfe = 0;
    ug_grid *g = malloc(sizeof *g);
    if (!g) return ug_fail(UG_ERR_NOMEM, "sampler: out of memory");
    ug_status st = ug_sampler_make_grid(c, g);
    if (st) { free(g); return st; }
    ug_smp s = {c, dn, g, n, dn->dim, n * dn->dim, nfe, 0, NULL};
    s.eta = !isnan(c->eta) ? c->eta : c->sampler == UG_SAMPLER_DDIM ? 0.0 : 1.0;
    s.zbuf = malloc((size_t)(s.nd > 0 ? s.nd : 1) * sizeof *s.zbuf);
    if (!s.zbuf) { free(g); return ug_smp_nomem(&s); }
    switch (c->sampler) {
    case UG_SAMPLER_EULER:
    case UG_SAMPLER_HEUN:
    case UG_SAMPLER_EDM_SDE: st = run_edm(&s, x); break;
    case UG_SAMPLER_EULER_A: st = ug_run_euler_a(&s, x); break;
    case UG_SAMPLER_DPM2: st = ug_run_dpm2(&s, x); break;
    case UG_SAMPLER_LMS: st = ug_run_lms(&s, x); break;
    case UG_SAMPLER_DPMPP_2S_A: st = ug_run_dpmpp_2s_a(&s, x); break;
    case UG_SAMPLER_DPMPP_2M: st = ug_run_dpmpp_2m(&s, x); break;
    case UG_SAMPLER_DPMPP_2M_SDE: st = ug_run_dpmpp_2m_sde(&s, x); break;
    case UG_SAMPLER_DPMPP_3M_SDE: st = ug_run_dpmpp_3m_sde(&s, x); break;
    case UG_SAMPLER_DDIM: st = ug_run_ddim(&s, x); break;
    case UG_SAMPLER_DDPM: st = ug_run_ddpm(&s, x); break;
    case UG_SAMPLER_EM: st = run_em(&s, x); break;
    case UG_SAMPLER_PC: st = run_pc(&s, x); break;
    case UG_SAMPLER_FM_EULER:
    case UG_SAMPLER_FM_HEUN: st = ug_run_fm(&s, x); break;
    default: st = ug_fail(UG_ERR_INVALID_ARG, "sampler: kind %d unknown", (int)c->sampler);
    }
    free(s.zbuf);
    free(g);
    return st;
}

/* ug_sampler_eval_sigmas: a denoiser on one 1-D point that records the sigma it is asked for. */
typedef struct { double *out; int64_t max, count; } recorder;
static ug_status rec_fn(void *self, int64_t n, const double *x, double sigma, double *out) {
    recorder *r = self;
    if (r->count < r->max) r->out[r->count] = sigma;
    r->count++;
    for (int64_t i = 0; i < n; i++) out[i] = 0 * x[i];
    return UG_OK;
}
static ug_status rec_fm(void *self, int64_t n, const double *x, double t, double *out) {
    return rec_fn(self, n, x, t < 1 ? t / (1 - t) : INFINITY, out);
}

ug_status ug_sampler_eval_sigmas(const ug_sampler_cfg *c, double *out, int64_t max,
                                 int64_t *count) {
    recorder r = {out, max, 0};
    ug_denoiser dn = {1, rec_fn, &r, rec_fm};
    double x = 1.0;
    int64_t nfe = 0;
    ug_status st = ug_sampler_run(c, &dn, 1, &x, &nfe);
    *count = nfe;
    return st;
}
