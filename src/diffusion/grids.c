/* grids.c — the time grids of SPEC section 4 and the sampler/schedule names.
 * Sources: Karras et al. 2022 eq. 5 (karras), k-diffusion get_sigmas_exponential / get_sigmas_vp,
 * NVlabs/edm ablation_sampler (vp, ve, iddpm grids in t), diffusers DDIMScheduler.set_timesteps
 * (leading, trailing, linspace, steps_offset, set_alpha_to_one) and
 * FlowMatchEulerDiscreteScheduler (shifted uniform t, SD3's shift of Esser et al. 2024).
 * "linear" is linear in sigma from sigma_max to sigma_min. */
#include "sampler_impl.h"
#include "core/core.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_sampler[UG_SAMPLER_COUNT] = {
    "euler", "heun", "edm-sde", "euler-a", "dpm2", "lms", "dpmpp-2s-a", "dpmpp-2m",
    "dpmpp-2m-sde", "dpmpp-3m-sde", "ddim", "ddpm", "em", "pc", "fm-euler", "fm-heun"};
static const char *const k_sched[UG_SCHED_COUNT] = {
    "karras", "exponential", "vp", "ve", "linear", "iddpm", "leading", "trailing", "linspace",
    "fm", "user", "auto"};
static const char *const k_var[UG_DDPM_VAR_COUNT] = {"beta", "beta-tilde"};
static const char *const k_sde[UG_SDE_SOLVER_COUNT] = {"midpoint", "heun"};

static int lookup(const char *const *names, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}
const char *ug_sampler_name(ug_sampler_kind k) { return (unsigned)k < UG_SAMPLER_COUNT ? k_sampler[k] : "?"; }
const char *ug_schedule_name(ug_schedule_kind k) { return (unsigned)k < UG_SCHED_COUNT ? k_sched[k] : "?"; }
const char *ug_ddpm_var_name(ug_ddpm_var k) { return (unsigned)k < UG_DDPM_VAR_COUNT ? k_var[k] : "?"; }
const char *ug_sde_solver_name(ug_sde_solver k) { return (unsigned)k < UG_SDE_SOLVER_COUNT ? k_sde[k] : "?"; }
#define FROM_NAME(fn, type, names, count)                       \
    int fn(const char *s, type *out) {                          \
        int i = lookup(names, count, s);                        \
        if (i < 0) return -1;                                   \
        *out = (type)i;                                         \
        return 0;                                               \
    }
FROM_NAME(ug_sampler_from_name, ug_sampler_kind, k_sampler, UG_SAMPLER_COUNT)
FROM_NAME(ug_schedule_from_name, ug_schedule_kind, k_sched, UG_SCHED_COUNT)
FROM_NAME(ug_ddpm_var_from_name, ug_ddpm_var, k_var, UG_DDPM_VAR_COUNT)
FROM_NAME(ug_sde_solver_from_name, ug_sde_solver, k_sde, UG_SDE_SOLVER_COUNT)

ug_sampler_cfg ug_sampler_default(void) {
    ug_sampler_cfg c;
    memset(&c, 0, sizeof c);
    c.sampler = UG_SAMPLER_HEUN;
    c.schedule = UG_SCHED_KARRAS;
    c.steps = 18;
    c.sigma_min = 0.002;
    c.sigma_max = 80.0;
    c.rho = 7.0;
    c.eta = NAN;
    c.s_noise = 1.0;
    c.s_tmin = 0.0;
    c.s_tmax = INFINITY;
    c.sde_solver = UG_SDE_MIDPOINT;
    c.ddpm_var = UG_DDPM_VAR_BETA_TILDE;
    c.snr = 0.16;
    c.corrector_steps = 1;
    c.set_alpha_to_one = 1;
    c.shift = 1.0;
    c.fm_t_min = 1e-3;
    return c;
}

static int is_discrete(ug_schedule_kind k) {
    return k == UG_SCHED_LEADING || k == UG_SCHED_TRAILING || k == UG_SCHED_LINSPACE;
}

ug_schedule_kind ug_sampler_schedule(const ug_sampler_cfg *c) {
    if (c->schedule != UG_SCHED_AUTO) return c->schedule;
    if (c->sampler == UG_SAMPLER_DDIM || c->sampler == UG_SAMPLER_DDPM) return UG_SCHED_LEADING;
    if (c->sampler == UG_SAMPLER_FM_EULER || c->sampler == UG_SAMPLER_FM_HEUN) return UG_SCHED_FM;
    if (c->form && c->form->kind == UG_FORM_VP_CONT) return UG_SCHED_VP;
    if (c->form && c->form->kind == UG_FORM_VE) return UG_SCHED_VE;
    if (c->form && c->form->kind == UG_FORM_FM) return UG_SCHED_FM;
    return UG_SCHED_KARRAS;
}

/* diffusers' betas = torch.linspace(1e-4, 0.02, 1000, dtype=float32) as torch 1.13's AVX2 CPU
 * kernel computes it: vectors of 8 starting at a fused start + step*i0 (end - step*(999-i0) in
 * the upper half), element k adding the rounded step*k. alphas_cumprod = torch.cumprod(1 - b),
 * accumulated in double and rounded to float per element. Checked bit for bit against
 * tests/ref/samplers/ddim_alphas_cumprod.npy. */
void ug_diffusers_abar(double abar[1000]) {
    const int T = 1000, half = T / 2;
    const float start = 1e-4f, end = 0.02f, step = (end - start) / (float)(T - 1);
    double acc = 1.0;
    for (int i = 0; i < T; i++) {
        int i0 = i / 8 * 8;
        float base = i0 < half ? fmaf(step, (float)i0, start) : fmaf(-step, (float)(T - 1 - i0), end);
        float beta = base + step * (float)(i - i0);
        acc *= (double)(1.0f - beta);
        abar[i] = (double)(float)acc;
    }
}

const double *ug_sampler_abar_table(const ug_sampler_cfg *c, int *T, double *buf) {
    if (c->form && (c->form->kind == UG_FORM_VP || c->form->kind == UG_FORM_VP_COSINE) &&
        !(c->diffusers && c->form->kind == UG_FORM_VP)) {
        *T = c->form->T;
        return c->form->abar;
    }
    *T = 1000;
    if (c->diffusers) {
        ug_diffusers_abar(buf);
        return buf;
    }
    /* DDPM's linear betas in double, as formulation.c builds them. */
    ug_form *f = malloc(sizeof *f);
    if (!f) return NULL;
    ug_form_init(f, UG_FORM_VP);
    memcpy(buf, f->abar, 1000 * sizeof *buf);
    free(f);
    return buf;
}

/* NVlabs/edm ablation_sampler's iddpm discretization: u_M = 0,
 * u_{j-1} = sqrt((u_j^2 + 1) / max(abar(j-1)/abar(j), C_1) - 1), abar(j) = sin^2(pi j / (2 M (C_2+1))),
 * keep u in [sigma_min, sigma_max], pick round((len-1)/(N-1) i) (half to even). */
static ug_status iddpm_grid(const ug_sampler_cfg *c, int N, double *sigma) {
    enum { M = 1000 };
    const double C1 = 0.001, C2 = 0.008;
    double u[M + 1], keep[M + 1];
    u[M] = 0;
    for (int j = M; j > 0; j--) {
        double a = sin(0.5 * M_PI * (j - 1) / M / (C2 + 1)), b = sin(0.5 * M_PI * j / M / (C2 + 1));
        double r = (a * a) / (b * b);
        if (r < C1) r = C1;
        u[j - 1] = sqrt((u[j] * u[j] + 1) / r - 1);
    }
    int len = 0;
    for (int j = 0; j <= M; j++)
        if (u[j] >= c->sigma_min && u[j] <= c->sigma_max) keep[len++] = u[j];
    if (len < 1) return ug_fail(UG_ERR_INVALID_ARG, "sampler: iddpm grid empty in [%g, %g]", c->sigma_min, c->sigma_max);
    for (int i = 0; i < N; i++) {
        double pos = N > 1 ? (double)(len - 1) / (N - 1) * i : 0;
        sigma[i] = keep[(int)nearbyint(pos)];
    }
    return UG_OK;
}

/* diffusers DDIMScheduler.set_timesteps and the step's prev_t = t - T // N. */
static ug_status discrete_grid(const ug_sampler_cfg *c, ug_schedule_kind sk, ug_grid *g) {
    int N = g->steps, T;
    double *buf = malloc(1000 * sizeof *buf);
    if (!buf) return ug_fail(UG_ERR_NOMEM, "sampler: out of memory");
    const double *abar = ug_sampler_abar_table(c, &T, buf);
    if (!abar) { free(buf); return ug_fail(UG_ERR_NOMEM, "sampler: out of memory"); }
    if (N > T) { free(buf); return ug_fail(UG_ERR_INVALID_ARG, "sampler: %d steps on %d timesteps", N, T); }
    for (int i = 0; i < N; i++) {
        int ts;
        if (sk == UG_SCHED_LEADING) {
            ts = (N - 1 - i) * (T / N) + c->steps_offset;
        } else if (sk == UG_SCHED_TRAILING) {
            ts = (int)nearbyint(T - i * ((double)T / N)) - 1;
        } else {   /* numpy linspace(0, T-1, N) rounded, reversed; its last point is exact */
            int k = N - 1 - i;
            double v = N > 1 ? (k == N - 1 ? T - 1.0 : k * ((double)(T - 1) / (N - 1))) : 0;
            ts = (int)nearbyint(v);
        }
        if (ts < 0 || ts >= T) {
            free(buf);
            return ug_fail(UG_ERR_INVALID_ARG, "sampler: timestep %d outside 0..%d (steps_offset %d)", ts, T - 1, c->steps_offset);
        }
        int pv = ts - T / N;
        g->timestep[i] = ts;
        g->prev_timestep[i] = pv;
        g->abar[i] = abar[ts];
        g->abar_prev[i] = pv >= 0 ? abar[pv] : c->set_alpha_to_one ? 1.0 : abar[0];
        g->sigma[i] = sqrt((1 - g->abar[i]) / g->abar[i]);
        g->t[i] = ts;
    }
    g->sigma[N] = sqrt((1 - g->abar_prev[N - 1]) / g->abar_prev[N - 1]);
    g->t[N] = -1;
    free(buf);
    return UG_OK;
}

/* The flow-matching t grid: linspace(1, t_lo, N) shifted. diffusers (cfg.diffusers): t_lo is
 * its sigma_min, already the float32-shifted 1/1000, so the low end is shifted twice, and the
 * result is rounded to float32. */
static void fm_grid(const ug_sampler_cfg *c, int N, double *t) {
    double a = c->shift, lo = c->fm_t_min;
    if (c->diffusers) {
        float s0 = 1.0f / 1000.0f, sa = (float)a;
        float smin = (sa * s0) / (1.0f + (sa - 1.0f) * s0);
        double start = 1000.0 * (double)((sa * 1.0f) / (1.0f + (sa - 1.0f) * 1.0f));
        double stop = 1000.0 * (double)smin, step = N > 1 ? (stop - start) / (N - 1) : 0;
        for (int i = 0; i < N; i++) {
            double y = (i == N - 1 && N > 1) ? stop : i * step + start;
            t[i] = (double)(float)ug_shift_t(y / 1000.0, a);
        }
        return;
    }
    for (int i = 0; i < N; i++) {
        double r = N > 1 ? (double)i / (N - 1) : 0;
        t[i] = ug_shift_t(1 + r * (lo - 1), a);
    }
}

static int space_of(const ug_sampler_cfg *c) {
    switch (c->sampler) {
    case UG_SAMPLER_DDIM:
    case UG_SAMPLER_DDPM: return UG_SPACE_DISCRETE;
    case UG_SAMPLER_FM_EULER:
    case UG_SAMPLER_FM_HEUN: return UG_SPACE_FM;
    case UG_SAMPLER_EULER:
    case UG_SAMPLER_HEUN:
    case UG_SAMPLER_EDM_SDE:
        if (c->form && (c->form->kind == UG_FORM_VP_CONT || c->form->kind == UG_FORM_VE))
            return UG_SPACE_T;
        return UG_SPACE_SIGMA;
    default: return UG_SPACE_SIGMA;
    }
}

ug_status ug_sampler_make_grid(const ug_sampler_cfg *c, ug_grid *g) {
    ug_schedule_kind sk = ug_sampler_schedule(c);
    int N = c->steps;
    if ((unsigned)c->sampler >= UG_SAMPLER_COUNT)
        return ug_fail(UG_ERR_INVALID_ARG, "sampler: kind %d unknown", (int)c->sampler);
    if (sk == UG_SCHED_USER) {
        if (!c->user_sigmas || c->n_user < 1)
            return ug_fail(UG_ERR_INVALID_ARG, "sampler: schedule user without sigmas");
        N = c->user_sigmas[c->n_user - 1] == 0 ? c->n_user - 1 : c->n_user;
    }
    if (N < 1 || N > UG_SAMPLER_MAX_STEPS)
        return ug_fail(UG_ERR_INVALID_ARG, "sampler: steps = %d, expected 1..%d", N, UG_SAMPLER_MAX_STEPS);
    memset(g, 0, sizeof *g);
    g->steps = N;
    g->space = space_of(c);
    if (g->space == UG_SPACE_DISCRETE && !is_discrete(sk))
        return ug_fail(UG_ERR_INVALID_ARG, "sampler: %s needs a discrete schedule (leading, trailing, linspace), got %s",
                       ug_sampler_name(c->sampler), ug_schedule_name(sk));
    if (g->space != UG_SPACE_FM && sk == UG_SCHED_FM)
        return ug_fail(UG_ERR_INVALID_ARG, "sampler: schedule fm starts at sigma = inf; use fm-euler or fm-heun");
    int ranged = sk == UG_SCHED_KARRAS || sk == UG_SCHED_EXPONENTIAL || sk == UG_SCHED_LINEAR ||
                 sk == UG_SCHED_VE || sk == UG_SCHED_IDDPM;
    if (ranged && !(c->sigma_min > 0 && c->sigma_max > c->sigma_min))
        return ug_fail(UG_ERR_INVALID_ARG, "sampler: sigma-min %g and sigma-max %g, expected 0 < min < max",
                       c->sigma_min, c->sigma_max);
    double smin = c->sigma_min, smax = c->sigma_max;
    ug_status st = UG_OK;
    for (int i = 0; i < N && ranged; i++) {
        double r = N > 1 ? (double)i / (N - 1) : 0;
        switch (sk) {
        case UG_SCHED_KARRAS: {
            double a = pow(smax, 1 / c->rho), b = pow(smin, 1 / c->rho);
            g->sigma[i] = pow(a + r * (b - a), c->rho);
            break;
        }
        case UG_SCHED_EXPONENTIAL: g->sigma[i] = exp(log(smax) + r * (log(smin) - log(smax))); break;
        case UG_SCHED_LINEAR: g->sigma[i] = smax + r * (smin - smax); break;
        case UG_SCHED_VE: g->sigma[i] = sqrt(smax * smax * pow(smin * smin / (smax * smax), r)); break;
        default: break;
        }
    }
    if (sk == UG_SCHED_IDDPM) st = iddpm_grid(c, N, g->sigma);
    if (sk == UG_SCHED_VP) {
        /* t uniform from 1 to eps_s through the VP sigma(t) (formulation's b_d, b_min, eps_t
         * when it is vp-cont; k-diffusion's 19.9, 0.1, 1e-3 otherwise). */
        ug_form *vf = malloc(sizeof *vf);
        if (!vf) return ug_fail(UG_ERR_NOMEM, "sampler: out of memory");
        if (c->form && c->form->kind == UG_FORM_VP_CONT) *vf = *c->form;
        else ug_form_init(vf, UG_FORM_VP_CONT);
        for (int i = 0; i < N; i++) {
            double r = N > 1 ? (double)i / (N - 1) : 0;
            g->sigma[i] = ug_form_sigma(vf, 1 + r * (vf->eps_t - 1));
        }
        free(vf);
    }
    if (is_discrete(sk)) st = discrete_grid(c, sk, g);
    if (sk == UG_SCHED_USER) {
        for (int i = 0; i < N; i++) {
            g->sigma[i] = c->user_sigmas[i];
            if (!(g->sigma[i] > 0) || (i > 0 && !(g->sigma[i] < g->sigma[i - 1])))
                return ug_fail(UG_ERR_INVALID_ARG, "sampler: user sigma %d = %g, expected positive and decreasing", i, g->sigma[i]);
        }
    }
    if (st) return st;
    if (sk == UG_SCHED_FM) {
        fm_grid(c, N, g->t);
        g->t[N] = 0;
        for (int i = 0; i <= N; i++) g->sigma[i] = g->t[i] / (1 - g->t[i]);
        return UG_OK;
    }
    if (!is_discrete(sk)) {
        g->sigma[N] = 0;
        for (int i = 0; i <= N; i++) g->t[i] = g->sigma[i];
    }
    if (g->space == UG_SPACE_T) {
        /* ablation_sampler: t_i = sigma_inv(sigma_i), t_N = 0, and the sigma it reports is
         * sigma(t_i) again. */
        for (int i = 0; i < N; i++) {
            g->t[i] = ug_form_t(c->form, g->sigma[i]);
            g->sigma[i] = ug_form_sigma(c->form, g->t[i]);
        }
        g->t[N] = 0;
        g->sigma[N] = 0;
    } else if (g->space == UG_SPACE_FM) {
        for (int i = 0; i <= N; i++) g->t[i] = g->sigma[i] / (1 + g->sigma[i]);
    }
    return UG_OK;
}

ug_status ug_sampler_grid(const ug_sampler_cfg *c, double *sigmas) {
    ug_grid *g = malloc(sizeof *g);
    if (!g) return ug_fail(UG_ERR_NOMEM, "sampler: out of memory");
    ug_status st = ug_sampler_make_grid(c, g);
    if (!st) memcpy(sigmas, g->sigma, (size_t)(g->steps + 1) * sizeof *sigmas);
    free(g);
    return st;
}
