/* sampler_kdiff.c — k-diffusion's sigma-space solvers (crowsonkb/k-diffusion sampling.py), on
 * x~ = x0 + sigma eps with start x = noise * sigma_0 and d = (x - D(x; sigma))/sigma:
 *   euler-a      ancestral Euler: Euler to sigma_down, then + sigma_up z, where
 *                sigma_up = min(sigma_next, eta sqrt(sigma_next^2 (sigma^2 - sigma_next^2)/sigma^2)),
 *                sigma_down = sqrt(sigma_next^2 - sigma_up^2)
 *   dpm2         DPM-Solver-2 (Lu et al. 2022) midpoint in log sigma, as Karras et al.'s DPM2
 *   lms          linear multistep, order 4, Adams coefficients integrated exactly
 *   dpmpp-2s-a   DPM-Solver++(2S) (Lu et al. 2022b, Alg. 1) with ancestral noise
 *   dpmpp-2m     DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2)
 *   dpmpp-2m-sde DPM-Solver++(2M) SDE, midpoint or heun correction
 *   dpmpp-3m-sde DPM-Solver++(3M) SDE
 * In lambda = -ln sigma with h = lambda_next - lambda: sigma_next/sigma = e^{-h}. With eta = 0
 * every one of them is its deterministic solver (no noise is drawn). */
#include "sampler_impl.h"
#include "core/core.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* k-diffusion get_ancestral_step. */
static void ancestral_step(double s, double sn, double eta, double *down, double *up) {
    if (eta == 0) { *down = sn; *up = 0; return; }
    *up = fmin(sn, eta * sqrt(sn * sn * (s * s - sn * sn) / (s * s)));
    *down = sqrt(sn * sn - *up * *up);
}

/* x += amp z for this step's noise (amp = 0: nothing drawn). */
static void add_noise(ug_smp *s, int step, double amp, double *x, double *z) {
    if (amp == 0) return;
    ug_smp_normal(s, step, 0, z);
    for (int64_t j = 0; j < s->nd; j++) x[j] += amp * z[j];
}

static void start(ug_smp *s, double *x) {
    for (int64_t j = 0; j < s->nd; j++) x[j] *= s->g->sigma[0];
}

ug_status ug_run_euler_a(ug_smp *s, double *x) {
    const double *sig = s->g->sigma;
    double *buf = ug_smp_alloc(s, 2);
    if (!buf) return ug_smp_nomem(s);
    double *den = buf, *z = buf + s->nd;
    ug_status st = UG_OK;
    start(s, x);
    for (int i = 0; i < s->g->steps && !st; i++) {
        double sg = sig[i], down, up;
        if ((st = ug_smp_denoise(s, x, sg, den))) break;
        ancestral_step(sg, sig[i + 1], s->eta, &down, &up);
        for (int64_t j = 0; j < s->nd; j++) x[j] += (x[j] - den[j]) / sg * (down - sg);
        if (sig[i + 1] > 0) add_noise(s, i, up * s->c->s_noise, x, z);
    }
    free(buf);
    return st;
}

ug_status ug_run_dpm2(ug_smp *s, double *x) {
    const double *sig = s->g->sigma;
    double *buf = ug_smp_alloc(s, 3);
    if (!buf) return ug_smp_nomem(s);
    double *den = buf, *d = buf + s->nd, *x2 = buf + 2 * s->nd;
    ug_status st = UG_OK;
    start(s, x);
    for (int i = 0; i < s->g->steps && !st; i++) {
        double sg = sig[i], sn = sig[i + 1];
        if ((st = ug_smp_denoise(s, x, sg, den))) break;
        for (int64_t j = 0; j < s->nd; j++) d[j] = (x[j] - den[j]) / sg;
        if (sn == 0) {   /* Euler on the last step */
            for (int64_t j = 0; j < s->nd; j++) x[j] += d[j] * (sn - sg);
            continue;
        }
        /* sigma_mid = exp(lerp(ln sigma, ln sigma_next, 1/2)), torch.lerp's w >= 1/2 branch */
        double la = log(sg), lb = log(sn), smid = exp(lb - (lb - la) * 0.5);
        for (int64_t j = 0; j < s->nd; j++) x2[j] = x[j] + d[j] * (smid - sg);
        if ((st = ug_smp_denoise(s, x2, smid, den))) break;
        for (int64_t j = 0; j < s->nd; j++) x[j] += (x2[j] - den[j]) / smid * (sn - sg);
    }
    free(buf);
    return st;
}

/* Integral over [t_i, t_{i+1}] of l_j(tau) = prod_{k != j} (tau - t_{i-k}) / (t_{i-j} - t_{i-k}),
 * k < order. In u = tau - t_i the numerator is prod (u - b_k), b_k = t_{i-k} - t_i, expanded
 * into monomials c_m u^m and integrated term by term: sum c_m h^{m+1}/(m+1), h = t_{i+1} - t_i.
 * On a decreasing grid every b_k >= 0 and h < 0, so all terms share one sign: no cancellation. */
double ug_lms_coeff(int order, const double *t, int i, int j) {
    double c[8] = {1};   /* c[m]: coefficient of u^m, degree grows by one per factor */
    int deg = 0;
    double den = 1;
    for (int k = 0; k < order; k++) {
        if (k == j) continue;
        double b = t[i - k] - t[i];
        for (int m = deg + 1; m >= 0; m--) c[m] = (m > 0 ? c[m - 1] : 0) - b * (m <= deg ? c[m] : 0);
        deg++;
        den *= t[i - j] - t[i - k];
    }
    double h = t[i + 1] - t[i], hp = h, sum = 0;
    for (int m = 0; m <= deg; m++, hp *= h) sum += c[m] * hp / (m + 1);
    return sum / den;
}

ug_status ug_run_lms(ug_smp *s, double *x) {
    enum { ORDER = 4 };
    const double *sig = s->g->sigma;
    double *buf = ug_smp_alloc(s, 1 + ORDER);
    if (!buf) return ug_smp_nomem(s);
    double *den = buf, *ds[ORDER];   /* ds[k]: d of step i - k, a ring of slopes */
    for (int k = 0; k < ORDER; k++) ds[k] = buf + (1 + k) * s->nd;
    ug_status st = UG_OK;
    start(s, x);
    for (int i = 0; i < s->g->steps && !st; i++) {
        double sg = sig[i];
        if ((st = ug_smp_denoise(s, x, sg, den))) break;
        double *last = ds[ORDER - 1];
        memmove(ds + 1, ds, (ORDER - 1) * sizeof *ds);
        ds[0] = last;
        for (int64_t j = 0; j < s->nd; j++) ds[0][j] = (x[j] - den[j]) / sg;
        int order = i + 1 < ORDER ? i + 1 : ORDER;
        for (int k = 0; k < order; k++) {
            double ck = ug_lms_coeff(order, sig, i, k);
            for (int64_t j = 0; j < s->nd; j++) x[j] += ck * ds[k][j];
        }
    }
    free(buf);
    return st;
}

ug_status ug_run_dpmpp_2s_a(ug_smp *s, double *x) {
    const double *sig = s->g->sigma;
    double *buf = ug_smp_alloc(s, 3);
    if (!buf) return ug_smp_nomem(s);
    double *den = buf, *x2 = buf + s->nd, *z = buf + 2 * s->nd;
    ug_status st = UG_OK;
    start(s, x);
    for (int i = 0; i < s->g->steps && !st; i++) {
        double sg = sig[i], down, up;
        if ((st = ug_smp_denoise(s, x, sg, den))) break;
        ancestral_step(sg, sig[i + 1], s->eta, &down, &up);
        if (down == 0) {
            for (int64_t j = 0; j < s->nd; j++) x[j] += (x[j] - den[j]) / sg * (down - sg);
        } else {
            /* DPM-Solver++(2S), r = 1/2: midpoint lambda_s = lambda + h/2. */
            double t = -log(sg), tn = -log(down), h = tn - t, sm = exp(-(t + 0.5 * h));
            double a = sm / exp(-t), b = expm1(-0.5 * h);
            for (int64_t j = 0; j < s->nd; j++) x2[j] = a * x[j] - b * den[j];
            if ((st = ug_smp_denoise(s, x2, sm, den))) break;
            double a2 = exp(-tn) / exp(-t), b2 = expm1(-h);
            for (int64_t j = 0; j < s->nd; j++) x[j] = a2 * x[j] - b2 * den[j];
        }
        if (sig[i + 1] > 0) add_noise(s, i, up * s->c->s_noise, x, z);
    }
    free(buf);
    return st;
}

ug_status ug_run_dpmpp_2m(ug_smp *s, double *x) {
    const double *sig = s->g->sigma;
    double *buf = ug_smp_alloc(s, 2);
    if (!buf) return ug_smp_nomem(s);
    double *den = buf, *old = buf + s->nd;
    ug_status st = UG_OK;
    start(s, x);
    for (int i = 0; i < s->g->steps && !st; i++) {
        double sg = sig[i], sn = sig[i + 1];
        if ((st = ug_smp_denoise(s, x, sg, den))) break;
        if (sn == 0) {   /* (0/sigma) x - expm1(-inf) D = D */
            memcpy(x, den, (size_t)s->nd * sizeof *x);
        } else {
            double t = -log(sg), tn = -log(sn), h = tn - t, a = exp(-tn) / exp(-t), b = expm1(-h);
            if (i == 0) {
                for (int64_t j = 0; j < s->nd; j++) x[j] = a * x[j] - b * den[j];
            } else {
                double r = (t + log(sig[i - 1])) / h, w = 1 / (2 * r);
                for (int64_t j = 0; j < s->nd; j++)
                    x[j] = a * x[j] - b * ((1 + w) * den[j] - w * old[j]);
            }
        }
        memcpy(old, den, (size_t)s->nd * sizeof *old);
    }
    free(buf);
    return st;
}

ug_status ug_run_dpmpp_2m_sde(ug_smp *s, double *x) {
    const double *sig = s->g->sigma;
    double eta = s->eta;
    double *buf = ug_smp_alloc(s, 3);
    if (!buf) return ug_smp_nomem(s);
    double *den = buf, *old = buf + s->nd, *z = buf + 2 * s->nd;
    double h_last = 0;
    ug_status st = UG_OK;
    start(s, x);
    for (int i = 0; i < s->g->steps && !st; i++) {
        double sg = sig[i], sn = sig[i + 1];
        if ((st = ug_smp_denoise(s, x, sg, den))) break;
        if (sn == 0) {
            memcpy(x, den, (size_t)s->nd * sizeof *x);
        } else {
            double h = -log(sn) + log(sg), eh = eta * h;
            double a = sn / sg * exp(-eh), b = -expm1(-h - eh);
            for (int64_t j = 0; j < s->nd; j++) x[j] = a * x[j] + b * den[j];
            if (i > 0) {
                double r = h_last / h;
                double k = s->c->sde_solver == UG_SDE_HEUN ? (b / (-h - eh) + 1) / r : 0.5 * b / r;
                for (int64_t j = 0; j < s->nd; j++) x[j] += k * (den[j] - old[j]);
            }
            if (eta != 0) add_noise(s, i, sn * sqrt(-expm1(-2 * eh)) * s->c->s_noise, x, z);
            h_last = h;
        }
        memcpy(old, den, (size_t)s->nd * sizeof *old);
    }
    free(buf);
    return st;
}

ug_status ug_run_dpmpp_3m_sde(ug_smp *s, double *x) {
    const double *sig = s->g->sigma;
    double eta = s->eta;
    double *buf = ug_smp_alloc(s, 4);
    if (!buf) return ug_smp_nomem(s);
    double *den = buf, *d1 = buf + s->nd, *d2 = buf + 2 * s->nd, *z = buf + 3 * s->nd;
    double h1 = 0, h2 = 0;   /* h of the previous two steps (0: none yet) */
    ug_status st = UG_OK;
    start(s, x);
    for (int i = 0; i < s->g->steps && !st; i++) {
        double sg = sig[i], sn = sig[i + 1];
        if ((st = ug_smp_denoise(s, x, sg, den))) break;
        if (sn == 0) {
            memcpy(x, den, (size_t)s->nd * sizeof *x);
        } else {
            double h = -log(sn) + log(sg), he = h * (eta + 1);
            double a = exp(-he), b = -expm1(-he);
            for (int64_t j = 0; j < s->nd; j++) x[j] = a * x[j] + b * den[j];
            double phi2 = expm1(-he) / he + 1;
            if (h2 != 0) {
                double r0 = h1 / h, r1 = h2 / h, phi3 = phi2 / he - 0.5;
                for (int64_t j = 0; j < s->nd; j++) {
                    double e0 = (den[j] - d1[j]) / r0, e1 = (d1[j] - d2[j]) / r1;
                    double dd1 = e0 + (e0 - e1) * r0 / (r0 + r1), dd2 = (e0 - e1) / (r0 + r1);
                    x[j] += phi2 * dd1 - phi3 * dd2;
                }
            } else if (h1 != 0) {
                double r = h1 / h;
                for (int64_t j = 0; j < s->nd; j++) x[j] += phi2 * (den[j] - d1[j]) / r;
            }
            if (eta != 0) add_noise(s, i, sn * sqrt(-expm1(-2 * h * eta)) * s->c->s_noise, x, z);
            h2 = h1;
            h1 = h;
        }
        double *tmp = d2;   /* D_2 <- D_1 <- D */
        d2 = d1;
        d1 = tmp;
        memcpy(d1, den, (size_t)s->nd * sizeof *d1);
    }
    free(buf);
    return st;
}
