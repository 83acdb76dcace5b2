/* vlb.c — the DDPM variational bound on -log p(x0) for discrete VP models (SPEC section 6,
 * optional; Ho et al. 2020 eq. 5, Nichol & Dhariwal 2021 section 2 / improved-diffusion's
 * calc_bpd_loop). In DDPM's indices t = 1..T (the formulation's arrays hold t at index t - 1,
 * abar_0 = 1):
 *   L = L_T + sum_{t=2..T} L_{t-1} + L_0,
 *   L_T     = KL(q(x_T | x0) || N(0, I)) = d/2 [abar_T (|x0|^2/d - 1) - log(1 - abar_T)] (closed form),
 *   L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)),  x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,
 *   L_0     = -log p(x0 | x_1).
 * q(x_{t-1} | x_t, x0) = N(c1 x0 + c2 x_t, beta~_t I) with c1 = sqrt(abar_{t-1}) beta_t / (1 - abar_t),
 * beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t; the model's p(x_{t-1} | x_t) has the same mean
 * with x0 replaced by x0_hat = D(x_t / sqrt(abar_t); sigma_t), sigma_t^2 = (1 - abar_t) / abar_t,
 * so the means differ by c1 (x0 - x0_hat) and x_t itself is needed only to evaluate D. The model
 * variance is beta~_t or beta_t (Ho's two fixed choices). At t = 1, c1 = 1 and c2 = 0: the decoder
 * mean is x0_hat; its variance is beta_1 for the beta choice (Ho's sigma_1^2 = beta_1) and beta~_2
 * for beta~ (beta~_1 = 0; improved-diffusion's posterior_log_variance_clipped). Note that the
 * reference codes (Ho's diffusion_utils_2.py, improved-diffusion FIXED_LARGE) use beta~_2 at t = 1
 * for both choices, so the beta choice's L_0 differs from theirs.
 * Decoders: discretized Gaussian for 8-bit data scaled to [-1, 1] (bins of width 2/255, the end
 * bins extended to +-inf, improved-diffusion's discretized_gaussian_log_likelihood but with the
 * exact normal CDF in log space instead of the tanh approximation and the 1e-12 clamp), or a
 * Gaussian density for continuous data.
 * Each example draws its noise at step t from Philox (seed, first_stream + i, sub), so its value
 * never depends on the batch, the chunking or the thread count. With t_samples = k > 0 the
 * decoder term is still evaluated for every example (it dominates the variance of uniform step
 * sampling) and k steps are drawn from 2..T. */
#include "eval/eval.h"
#include "core/core.h"
#include <math.h>

#define VLB_TILE 4096
#define LOG_2PI 1.8378770664093454836

ug_vlb_cfg ug_vlb_default(void) {
    ug_vlb_cfg c;
    memset(&c, 0, sizeof c);
    c.decoder = UG_VLB_DISCRETIZED;
    c.var = UG_VLB_VAR_BETA_TILDE;
    c.t_samples = 0;
    c.schedule = UG_FORM_COUNT;
    return c;
}

double ug_gauss_kl(double m1, double v1, double m2, double v2) {
    /* 0.5 [(r - 1) - log r + (m1 - m2)^2 / v2], r = v1 / v2, written without cancellation at r ~ 1. */
    double rm1 = (v1 - v2) / v2, dm = m1 - m2;
    return 0.5 * (rm1 - log1p(rm1) + dm * dm / v2);
}

/* log Q(z), Q the standard normal upper tail, finite down to the smallest double tails. */
static double log_q(double z) {
    if (z < 30) return log(0.5 * erfc(z * 0.70710678118654752440));
    /* Q(z) = phi(z)/z (1 - 1/z^2 + 3/z^4 - 15/z^6 + 105/z^8 - ...), relative error < 1e-12 here. */
    double u = 1 / (z * z);
    return -0.5 * z * z - log(z) - 0.5 * LOG_2PI + log1p(u * (-1 + u * (3 + u * (-15 + u * 105))));
}

double ug_log_normal_mass(double a, double b) {
    if (!(b > a)) return -INFINITY;
    if (a >= 0) {          /* both in the upper tail: Q(a) - Q(b) */
        double la = log_q(a);
        return la + log1p(-exp(log_q(b) - la));
    }
    if (b <= 0) {          /* both in the lower tail: Q(-b) - Q(-a) */
        double lb = log_q(-b);
        return lb + log1p(-exp(log_q(-a) - lb));
    }
    return log1p(-(exp(log_q(-a)) + exp(log_q(b))));
}

double ug_discretized_gaussian_logp(double x, double mean, double sd) {
    const double half = 1.0 / 255.0;
    double lo = x < -0.999 ? -INFINITY : (x - half - mean) / sd;
    double hi = x > 0.999 ? INFINITY : (x + half - mean) / sd;
    return ug_log_normal_mass(lo, hi);
}

static int is_discrete_vp(const ug_form *f) {
    return (f->kind == UG_FORM_VP || f->kind == UG_FORM_VP_COSINE) && f->T >= 2 &&
           f->T <= UG_FORM_MAX_T;
}

/* Coefficients of step t (1..T). */
typedef struct { double sigma, c1, var_q, var_p; } vlb_step;

static vlb_step step_at(const ug_form *f, ug_vlb_var var, int t) {
    vlb_step s;
    double ab = f->abar[t - 1], ab_prev = t >= 2 ? f->abar[t - 2] : 1.0, beta = f->beta[t - 1];
    s.sigma = exp(f->log_sigma[t - 1]);
    s.c1 = sqrt(ab_prev) * beta / (1 - ab);
    s.var_q = (1 - ab_prev) / (1 - ab) * beta;
    if (var == UG_VLB_VAR_BETA) {
        s.var_p = beta;
    } else if (t >= 2) {
        s.var_p = s.var_q;
    } else {
        s.var_p = (1 - f->abar[0]) / (1 - f->abar[1]) * f->beta[1];
    }
    return s;
}

/* The step-t term of one example: x0 (d), x0_hat (d). */
static double term_at(const ug_vlb_cfg *c, const vlb_step *s, int t, int64_t d, const double *x0,
                      const double *xh) {
    double acc = 0;
    if (t >= 2) {
        for (int64_t j = 0; j < d; j++) acc += ug_gauss_kl(s->c1 * x0[j], s->var_q, s->c1 * xh[j], s->var_p);
    } else if (c->decoder == UG_VLB_GAUSSIAN) {
        for (int64_t j = 0; j < d; j++) {
            double e = x0[j] - xh[j];
            acc += 0.5 * (LOG_2PI + log(s->var_p) + e * e / s->var_p);
        }
    } else {
        double sd = sqrt(s->var_p);
        for (int64_t j = 0; j < d; j++) acc -= ug_discretized_gaussian_logp(x0[j], xh[j], sd);
    }
    return acc;
}

/* One group of evaluations at step t: pair p is example ex[p] with noise block sub[p]. */
typedef struct {
    const ug_form *f;
    const ug_denoiser *dn;
    const ug_vlb_cfg *c;
    const double *x0;
    int64_t d;
    double *xt, *xh, *val;   /* (VLB_TILE, d), (VLB_TILE, d), (VLB_TILE) scratch */
    float *z;                /* (VLB_TILE, d) */
    double *acc, *tsum;      /* (n) running sums, (T) per-step sums or NULL */
    int64_t *tcount;
} vlb_run;

static ug_status run_group(vlb_run *r, int t, int64_t np, const int64_t *ex, const uint32_t *sub) {
    int64_t d = r->d;
    vlb_step s = step_at(r->f, r->c->var, t);
    for (int64_t p0 = 0; p0 < np; p0 += VLB_TILE) {
        int64_t m = np - p0 < VLB_TILE ? np - p0 : VLB_TILE;
#pragma omp parallel for schedule(static) if (m * d >= UG_PAR_MIN)
        for (int64_t p = 0; p < m; p++) {
            int64_t i = ex ? ex[p0 + p] : p0 + p;
            ug_rng g = ug_rng_make(r->c->seed, r->c->first_stream + (uint64_t)i,
                                   sub ? sub[p0 + p] : (uint32_t)t);
            ug_rng_normal(&g, r->z + p * d, d);
            for (int64_t j = 0; j < d; j++)
                r->xt[p * d + j] = r->x0[i * d + j] + s.sigma * (double)r->z[p * d + j];
        }
        ug_status st = r->dn->fn(r->dn->self, m, r->xt, s.sigma, r->xh);
        if (st) return st;
        for (int64_t q = 0; q < m * d; q++)
            if (!isfinite(r->xh[q]))
                return ug_fail(UG_ERR_NUMERIC, "vlb: non-finite denoiser output at t = %d (point %lld)",
                               t, (long long)(ex ? ex[p0 + q / d] : p0 + q / d));
#pragma omp parallel for schedule(static) if (m * d >= UG_PAR_MIN)
        for (int64_t p = 0; p < m; p++) {
            int64_t i = ex ? ex[p0 + p] : p0 + p;
            r->val[p] = term_at(r->c, &s, t, d, r->x0 + i * d, r->xh + p * d);
        }
        /* Serial: one example may appear twice in a tile (the same t drawn twice), and its sum
         * must run in a fixed order. */
        for (int64_t p = 0; p < m; p++) {
            int64_t i = ex ? ex[p0 + p] : p0 + p;
            r->acc[i] += r->val[p];
            if (r->tsum) { r->tsum[t - 1] += r->val[p]; r->tcount[t - 1]++; }
        }
    }
    return UG_OK;
}

ug_status ug_ddpm_vlb(const ug_form *f, const ug_denoiser *dn, const ug_vlb_cfg *c, int64_t n,
                      const double *x0, double *nats, double *terms) {
    if (!is_discrete_vp(f))
        return ug_fail(UG_ERR_INVALID_ARG, "vlb: formulation %s, expected a discrete VP (vp, vp-cosine)",
                       ug_form_name(f->kind));
    if (n < 1 || dn->dim < 1)
        return ug_fail(UG_ERR_INVALID_ARG, "vlb: %lld points of dimension %lld", (long long)n,
                       (long long)dn->dim);
    if ((unsigned)c->decoder >= UG_VLB_DECODER_COUNT || (unsigned)c->var >= UG_VLB_VAR_COUNT)
        return ug_fail(UG_ERR_INVALID_ARG, "vlb: decoder %d / variance %d unknown", (int)c->decoder,
                       (int)c->var);
    if (c->t_samples < 0 || c->t_samples > 1000000)
        return ug_fail(UG_ERR_INVALID_ARG, "vlb: t_samples %d, expected 0 (all T steps) .. 1000000",
                       c->t_samples);
    int64_t d = dn->dim, T = f->T;
    for (int64_t q = 0; q < n * d; q++) {
        if (!isfinite(x0[q]))
            return ug_fail(UG_ERR_INVALID_ARG, "vlb: non-finite data (point %lld)", (long long)(q / d));
        if (c->decoder == UG_VLB_DISCRETIZED && fabs(x0[q]) > 1 + 1e-9)
            return ug_fail(UG_ERR_INVALID_ARG,
                           "vlb: discretized decoder needs data in [-1, 1], point %lld has %g",
                           (long long)(q / d), x0[q]);
    }
    int k = c->t_samples;
    int64_t npair = k ? n * k : 0;
    size_t bytes = (size_t)VLB_TILE * (2 * d + 1) * sizeof(double) + (size_t)VLB_TILE * d * sizeof(float) +
                   (size_t)n * sizeof(double) + (size_t)T * (sizeof(double) + sizeof(int64_t)) +
                   (size_t)npair * (sizeof(int64_t) + sizeof(uint32_t) + sizeof(int32_t)) +
                   (size_t)(T + 2) * sizeof(int64_t);
    char *mem = calloc(1, bytes);
    if (!mem) return ug_fail(UG_ERR_NOMEM, "vlb: out of memory for %lld points", (long long)n);
    vlb_run r = {f, dn, c, x0, d, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    char *p = mem;
    r.xt = (double *)p; p += (size_t)VLB_TILE * d * sizeof(double);
    r.xh = (double *)p; p += (size_t)VLB_TILE * d * sizeof(double);
    r.val = (double *)p; p += (size_t)VLB_TILE * sizeof(double);
    r.acc = (double *)p; p += (size_t)n * sizeof(double);
    r.tsum = (double *)p; p += (size_t)T * sizeof(double);
    r.tcount = (int64_t *)p; p += (size_t)T * sizeof(int64_t);
    int64_t *start = (int64_t *)p; p += (size_t)(T + 2) * sizeof(int64_t);
    int64_t *ex = (int64_t *)p; p += (size_t)npair * sizeof(int64_t);
    uint32_t *sub = (uint32_t *)p; p += (size_t)npair * sizeof(uint32_t);
    int32_t *tdraw = (int32_t *)p; p += (size_t)npair * sizeof(int32_t);
    r.z = (float *)p;

    /* The decoder term (t = 1) of every example first, apart: it is the largest term and the
     * noisiest one to reach by sampling t. */
    double *dec = calloc((size_t)n, sizeof *dec), *acc = r.acc;
    if (!dec) { free(mem); return ug_fail(UG_ERR_NOMEM, "vlb: out of memory"); }
    r.acc = dec;
    ug_status st = run_group(&r, 1, n, NULL, NULL);
    r.acc = acc;
    if (st) {
    } else if (!k) {   /* every step once: sub = t */
        for (int t = 2; t <= T && !st; t++) st = run_group(&r, t, n, NULL, NULL);
    } else {
        /* Example i draws its k steps uniformly from 2..T in block 0 of its stream; its j-th draw
         * uses noise block j (T + 1) + t (never 0 or 1, and equal to t for j = 0 as in the full
         * sum). A stable counting sort by t groups the draws into one denoiser call per step and
         * keeps each example's additions in (t, j) order. */
        double *u = malloc((size_t)k * sizeof *u);
        if (!u) { free(mem); free(dec); return ug_fail(UG_ERR_NOMEM, "vlb: out of memory"); }
        for (int64_t i = 0; i < n; i++) {
            ug_rng g = ug_rng_make(c->seed, c->first_stream + (uint64_t)i, 0);
            ug_rng_uniform_f64(&g, u, k);
            for (int j = 0; j < k; j++) {
                int t = 2 + (int)(u[j] * (double)(T - 1));
                tdraw[i * k + j] = t > T ? (int32_t)T : t;
                start[tdraw[i * k + j] + 1]++;
            }
        }
        free(u);
        for (int64_t t = 1; t <= T; t++) start[t + 1] += start[t];
        int64_t *fill = r.tcount + 1;   /* borrowed as the insertion cursor, restored below */
        for (int64_t t = 2; t <= T; t++) fill[t - 2] = start[t];
        for (int64_t q = 0; q < npair; q++) {
            int t = tdraw[q];
            int64_t at = fill[t - 2]++;
            ex[at] = q / k;
            sub[at] = (uint32_t)((q % k) * (T + 1) + t);
        }
        memset(r.tcount + 1, 0, (size_t)(T - 1) * sizeof *r.tcount);
        for (int t = 2; t <= T && !st; t++)
            if (start[t + 1] > start[t])
                st = run_group(&r, t, start[t + 1] - start[t], ex + start[t], sub + start[t]);
    }
    if (!st) {
        double ab = f->abar[T - 1], w = k ? (double)(T - 1) / k : 1.0, prior_sum = 0;
        for (int64_t i = 0; i < n; i++) {
            double q2 = 0;
            for (int64_t j = 0; j < d; j++) q2 += x0[i * d + j] * x0[i * d + j];
            double prior = 0.5 * (ab * (q2 - (double)d) - (double)d * log1p(-ab));
            prior_sum += prior;
            nats[i] = prior + dec[i] + w * r.acc[i];
        }
        if (terms) {
            for (int64_t t = 0; t < T; t++) terms[t] = r.tcount[t] ? r.tsum[t] / (double)r.tcount[t] : NAN;
            terms[T] = prior_sum / (double)n;
        }
    }
    free(dec);
    free(mem);
    return st;
}

ug_status ug_model_vlb(ug_model *m, const ug_vlb_cfg *cfg, int64_t n, const double *x0,
                       double *nats, double *terms) {
    ug_vlb_cfg c = cfg ? *cfg : ug_vlb_default();
    const ug_gmm *g = ug_model_gmm(m);
    ug_form f;
    if (g) {
        ug_form_kind k = c.schedule;
        if (k == UG_FORM_COUNT) {
            k = ug_model_config(m)->formulation;
            if (k != UG_FORM_VP_COSINE) k = UG_FORM_VP;
        }
        ug_form_init(&f, k);
        ug_denoiser dn = ug_gmm_denoiser(g);
        return ug_ddpm_vlb(&f, &dn, &c, n, x0, nats, terms);
    }
    const ug_diffusion *diff = ug_model_diffusion(m);
    if (c.schedule != UG_FORM_COUNT && c.schedule != diff->form.kind)
        return ug_fail(UG_ERR_INVALID_ARG, "vlb: schedule %s, but the model was trained with %s",
                       ug_form_name(c.schedule), ug_form_name(diff->form.kind));
    if (!is_discrete_vp(&diff->form))
        return ug_fail(UG_ERR_INVALID_ARG,
                       "vlb: the DDPM bound needs a discrete VP model (vp, vp-cosine), this one is %s",
                       ug_form_name(diff->form.kind));
    ug_ctx *ctx;
    ug_status st = ug_ctx_create(&ctx, 0);
    if (st) return st;
    ug_denoiser dn;
    void *state = NULL;
    st = ug_diffusion_denoiser(diff, ctx, NULL, &dn, &state);
    if (!st) st = ug_ddpm_vlb(&diff->form, &dn, &c, n, x0, nats, terms);
    ug_diffusion_denoiser_free(state);
    ug_ctx_free(ctx);
    return st;
}
