/* formulation.c — s(t), sigma(t), preconditioning and training weights (SPEC sections 1-3).
 * Sources: Ho et al. 2020 (DDPM betas), Nichol & Dhariwal 2021 (cosine abar, betas clipped at
 * 0.999), Song et al. 2021 (VP SDE), Karras et al. 2022 (eq. 4, Table 1, VP/VE/EDM precond),
 * Lipman et al. 2023 / Liu et al. 2023 (flow matching), Esser et al. 2024 (SD3 logit-normal,
 * shift). */
#include "formulation.h"
#include <math.h>
#include <string.h>

static const char *const k_form[UG_FORM_COUNT] = {"vp", "vp-cosine", "vp-cont", "ve", "edm", "fm"};
static const char *const k_param[UG_PARAM_COUNT] = {"eps", "x0", "v", "edm", "velocity"};
static const char *const k_ts[UG_TS_COUNT] = {"default", "uniform", "lognormal", "logitnormal"};

static int lookup(const char *const *names, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

const char *ug_form_name(ug_form_kind k) { return (unsigned)k < UG_FORM_COUNT ? k_form[k] : "?"; }
const char *ug_param_name(ug_param_kind k) { return (unsigned)k < UG_PARAM_COUNT ? k_param[k] : "?"; }
const char *ug_tsampler_name(ug_tsampler_kind k) { return (unsigned)k < UG_TS_COUNT ? k_ts[k] : "?"; }
int ug_form_from_name(const char *s, ug_form_kind *out) {
    int i = lookup(k_form, UG_FORM_COUNT, s);
    if (i < 0) return -1;
    *out = (ug_form_kind)i;
    return 0;
}
int ug_param_from_name(const char *s, ug_param_kind *out) {
    int i = lookup(k_param, UG_PARAM_COUNT, s);
    if (i < 0) return -1;
    *out = (ug_param_kind)i;
    return 0;
}
int ug_tsampler_from_name(const char *s, ug_tsampler_kind *out) {
    int i = lookup(k_ts, UG_TS_COUNT, s);
    if (i < 0) return -1;
    *out = (ug_tsampler_kind)i;
    return 0;
}

ug_param_kind ug_form_natural_param(ug_form_kind k) {
    switch (k) {
    case UG_FORM_EDM: return UG_PARAM_EDM;
    case UG_FORM_FM: return UG_PARAM_VELOCITY;
    default: return UG_PARAM_EPS;
    }
}

/* Improved DDPM's alpha-bar function f(t) = cos^2(((t/T) + 0.008)/1.008 * pi/2). */
static double cosine_f(double u) {
    double c = cos((u + 0.008) / 1.008 * M_PI / 2);
    return c * c;
}

void ug_form_init(ug_form *f, ug_form_kind kind) {
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->sigma_data = 0.5;
    f->tsampler = UG_TS_DEFAULT;
    f->p_mean = NAN;   /* NAN: the sampler's own default */
    f->p_std = NAN;
    f->shift = 1.0;
    switch (kind) {
    case UG_FORM_VP:
    case UG_FORM_VP_COSINE: {
        f->T = 1000;
        double abar = 1.0;
        for (int i = 0; i < f->T; i++) {
            double beta;
            if (kind == UG_FORM_VP) {
                beta = 1e-4 + (0.02 - 1e-4) * i / (f->T - 1);   /* linspace(1e-4, 0.02, T) */
            } else {
                beta = 1.0 - cosine_f((double)(i + 1) / f->T) / cosine_f((double)i / f->T);
                if (beta > 0.999) beta = 0.999;
            }
            abar *= 1.0 - beta;
            f->beta[i] = beta;
            f->abar[i] = abar;
            f->log_sigma[i] = 0.5 * log((1.0 - abar) / abar);
        }
        f->sigma_min = exp(f->log_sigma[0]);
        f->sigma_max = exp(f->log_sigma[f->T - 1]);
        break;
    }
    case UG_FORM_VP_CONT:
        f->b_min = 0.1;
        f->b_d = 19.9;
        f->eps_t = 1e-3;
        f->sigma_min = ug_form_sigma(f, f->eps_t);
        f->sigma_max = ug_form_sigma(f, 1.0);
        break;
    case UG_FORM_VE:
        f->sigma_min = 0.02;
        f->sigma_max = 100;
        break;
    case UG_FORM_EDM:
        f->sigma_min = 0.002;
        f->sigma_max = 80;
        break;
    case UG_FORM_FM:
        /* t in [1e-3, 1 - 1e-3]: sigma = t / (1 - t). */
        f->sigma_min = 1e-3 / (1 - 1e-3);
        f->sigma_max = (1 - 1e-3) / 1e-3;
        break;
    default: break;
    }
}

/* Discrete VP: log sigma interpolated linearly in the (fractional) index. */
static double disc_log_sigma(const ug_form *f, double t, double *slope) {
    if (t <= 0) t = 0;
    if (t >= f->T - 1) t = f->T - 1;
    int lo = (int)floor(t);
    if (lo > f->T - 2) lo = f->T - 2;
    double w = t - lo;
    double d = f->log_sigma[lo + 1] - f->log_sigma[lo];
    if (slope) *slope = d;
    return f->log_sigma[lo] + w * d;
}

/* Continuous VP: the exponent 0.5 b_d t^2 + b_min t = ln(1 + sigma^2). */
static double vp_expo(const ug_form *f, double t) { return 0.5 * f->b_d * t * t + f->b_min * t; }

double ug_form_sigma(const ug_form *f, double t) {
    switch (f->kind) {
    case UG_FORM_VP:
    case UG_FORM_VP_COSINE: return exp(disc_log_sigma(f, t, NULL));
    case UG_FORM_VP_CONT: return sqrt(expm1(vp_expo(f, t)));
    case UG_FORM_VE: return sqrt(t);
    case UG_FORM_EDM: return t;
    case UG_FORM_FM: return t / (1 - t);
    default: return NAN;
    }
}

double ug_form_s(const ug_form *f, double t) {
    switch (f->kind) {
    case UG_FORM_VP:
    case UG_FORM_VP_COSINE: {
        double sg = ug_form_sigma(f, t);
        return 1 / sqrt(1 + sg * sg);
    }
    case UG_FORM_VP_CONT: return exp(-0.5 * vp_expo(f, t));
    case UG_FORM_FM: return 1 - t;
    default: return 1;
    }
}

double ug_form_s_of_sigma(const ug_form *f, double sigma) {
    switch (f->kind) {
    case UG_FORM_VP:
    case UG_FORM_VP_COSINE:
    case UG_FORM_VP_CONT: return 1 / sqrt(1 + sigma * sigma);
    case UG_FORM_FM: return 1 / (1 + sigma);
    default: return 1;
    }
}

double ug_form_dsigma_dt(const ug_form *f, double t) {
    switch (f->kind) {
    case UG_FORM_VP:
    case UG_FORM_VP_COSINE: {
        double slope;
        double ls = disc_log_sigma(f, t, &slope);
        return exp(ls) * slope;
    }
    case UG_FORM_VP_CONT: {
        double e = vp_expo(f, t);
        return 0.5 * (f->b_d * t + f->b_min) * exp(e) / sqrt(expm1(e));
    }
    case UG_FORM_VE: return 0.5 / sqrt(t);
    case UG_FORM_EDM: return 1;
    case UG_FORM_FM: return 1 / ((1 - t) * (1 - t));
    default: return NAN;
    }
}

double ug_form_ds_dt(const ug_form *f, double t) {
    switch (f->kind) {
    case UG_FORM_VP:
    case UG_FORM_VP_COSINE: {
        /* s = (1 + sigma^2)^(-1/2): ds/dt = -s^3 sigma dsigma/dt */
        double sg = ug_form_sigma(f, t), s = 1 / sqrt(1 + sg * sg);
        return -s * s * s * sg * ug_form_dsigma_dt(f, t);
    }
    case UG_FORM_VP_CONT: return -0.5 * (f->b_d * t + f->b_min) * ug_form_s(f, t);
    case UG_FORM_FM: return -1;
    default: return 0;
    }
}

double ug_form_t(const ug_form *f, double sigma) {
    switch (f->kind) {
    case UG_FORM_VP:
    case UG_FORM_VP_COSINE: {
        /* k-diffusion DiscreteSchedule.sigma_to_t: the last grid point at or below log sigma,
         * then linear interpolation in log sigma, clamped to the grid. */
        double ls = log(sigma);
        int lo = 0;
        for (int i = 0; i < f->T; i++)
            if (ls - f->log_sigma[i] >= 0) lo = i;
        if (lo > f->T - 2) lo = f->T - 2;
        double l = f->log_sigma[lo], h = f->log_sigma[lo + 1];
        double w = (l - ls) / (l - h);
        if (w < 0) w = 0;
        if (w > 1) w = 1;
        return (1 - w) * lo + w * (lo + 1);
    }
    case UG_FORM_VP_CONT:
        return (sqrt(f->b_min * f->b_min + 2 * f->b_d * log1p(sigma * sigma)) - f->b_min) / f->b_d;
    case UG_FORM_VE: return sigma * sigma;
    case UG_FORM_EDM: return sigma;
    case UG_FORM_FM: return sigma / (1 + sigma);
    default: return NAN;
    }
}

/* The noise conditioning a time-conditioned network of this formulation expects. */
static double time_noise(const ug_form *f, double sigma) {
    switch (f->kind) {
    case UG_FORM_VP:
    case UG_FORM_VP_COSINE: return ug_form_t(f, sigma);
    case UG_FORM_VP_CONT: return 999.0 * ug_form_t(f, sigma);   /* EDM VPPrecond: (M-1) t */
    case UG_FORM_VE: return log(0.5 * sigma);
    case UG_FORM_EDM: return 0.25 * log(sigma);
    case UG_FORM_FM: return sigma / (1 + sigma);
    default: return NAN;
    }
}

ug_precond ug_precond_at(const ug_form *f, ug_param_kind p, double sigma) {
    ug_precond c;
    double sd = f->sigma_data, s2 = sigma * sigma;
    switch (p) {
    case UG_PARAM_EDM: {
        double r = sqrt(s2 + sd * sd);
        c.c_skip = sd * sd / (s2 + sd * sd);
        c.c_out = sigma * sd / r;
        c.c_in = 1 / r;
        c.c_noise = 0.25 * log(sigma);
        c.a = sigma / (sd * r);
        c.b = -sd / r;
        break;
    }
    case UG_PARAM_X0:
        c.c_skip = 0;
        c.c_out = 1;
        c.c_in = 1 / sqrt(s2 + sd * sd);
        c.c_noise = 0.25 * log(sigma);
        c.a = 1;
        c.b = 0;
        break;
    case UG_PARAM_EPS:
        if (f->kind == UG_FORM_VE || f->kind == UG_FORM_EDM) {
            /* VE: D = x + sigma F, F regresses -eps (sigma times the score). */
            c.c_skip = 1;
            c.c_out = sigma;
            c.c_in = 1;
            c.c_noise = log(0.5 * sigma);
            c.a = 0;
            c.b = -1;
        } else {
            c.c_skip = 1;
            c.c_out = -sigma;
            c.c_in = 1 / sqrt(s2 + 1);
            c.c_noise = time_noise(f, sigma);
            c.a = 0;
            c.b = 1;
        }
        break;
    case UG_PARAM_V: {
        double r = sqrt(s2 + 1);
        c.c_skip = 1 / (s2 + 1);
        c.c_out = -sigma / r;
        c.c_in = 1 / r;
        c.c_noise = time_noise(f, sigma);
        c.a = -sigma / r;
        c.b = 1 / r;
        break;
    }
    case UG_PARAM_VELOCITY:
    default:
        c.c_skip = 1 / (1 + sigma);
        c.c_out = -sigma / (1 + sigma);
        c.c_in = 1 / (1 + sigma);
        c.c_noise = sigma / (1 + sigma);
        c.a = -1;
        c.b = 1;
        break;
    }
    return c;
}

double ug_form_lambda(const ug_form *f, double sigma) {
    double sd = f->sigma_data;
    switch (f->kind) {
    case UG_FORM_EDM: return (sigma * sigma + sd * sd) / ((sigma * sd) * (sigma * sd));
    case UG_FORM_FM: return (1 + sigma) * (1 + sigma) / (sigma * sigma);
    default: return 1 / (sigma * sigma);
    }
}

double ug_shift_t(double t, double a) { return a * t / (1 + (a - 1) * t); }

double ug_form_train_sigma(const ug_form *f, double u, double n) {
    ug_tsampler_kind ts = f->tsampler;
    if (ts == UG_TS_DEFAULT)
        ts = f->kind == UG_FORM_EDM ? UG_TS_LOGNORMAL
           : f->kind == UG_FORM_VE ? UG_TS_DEFAULT   /* log-uniform, handled below */
           : UG_TS_UNIFORM;
    double sigma;
    switch (ts) {
    case UG_TS_LOGNORMAL: {
        double m = isnan(f->p_mean) ? -1.2 : f->p_mean, s = isnan(f->p_std) ? 1.2 : f->p_std;
        sigma = exp(m + s * n);
        break;
    }
    case UG_TS_LOGITNORMAL: {
        double m = isnan(f->p_mean) ? 0.0 : f->p_mean, s = isnan(f->p_std) ? 1.0 : f->p_std;
        double t = 1 / (1 + exp(-(m + s * n)));
        sigma = t / (1 - t);
        break;
    }
    case UG_TS_UNIFORM:
        switch (f->kind) {
        case UG_FORM_VP:
        case UG_FORM_VP_COSINE: {
            int i = (int)floor(u * f->T);
            if (i >= f->T) i = f->T - 1;
            sigma = exp(f->log_sigma[i]);
            break;
        }
        case UG_FORM_VP_CONT: sigma = ug_form_sigma(f, 1 + u * (f->eps_t - 1)); break;
        case UG_FORM_VE:
            sigma = sqrt(f->sigma_min * f->sigma_min +
                         u * (f->sigma_max * f->sigma_max - f->sigma_min * f->sigma_min));
            break;
        case UG_FORM_EDM: sigma = f->sigma_min + u * (f->sigma_max - f->sigma_min); break;
        default: sigma = u / (1 - u); break;   /* fm: t ~ U(0, 1) */
        }
        break;
    default:   /* VE's own: ln sigma ~ U(ln sigma_min, ln sigma_max) */
        sigma = f->sigma_min * pow(f->sigma_max / f->sigma_min, u);
        break;
    }
    if (f->shift != 1.0) {
        double t = sigma / (1 + sigma);
        t = ug_shift_t(t, f->shift);
        sigma = t / (1 - t);
    }
    return sigma;
}
