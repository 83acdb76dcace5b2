/* rk45.c — adaptive Dormand-Prince 5(4) (Dormand & Prince 1980), the integrator behind
 * score_sde's likelihood (scipy.integrate.solve_ivp, method RK45). The tableau, the error
 * coefficients, the step-size control and the initial step follow scipy/integrate/_ivp/rk.py
 * and common.select_initial_step (Hairer, Norsett & Wanner, "Solving ODEs I", II.4), so NFE
 * and accepted steps should match scipy's on the same problem. */
#include "eval/eval.h"
#include "core/core.h"
#include <float.h>
#include <math.h>

#define RK_STAGES 6
static const double k_c[RK_STAGES] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1};
static const double k_a[RK_STAGES][5] = {
    {0},
    {1.0 / 5},
    {3.0 / 40, 9.0 / 40},
    {44.0 / 45, -56.0 / 15, 32.0 / 9},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
};
static const double k_b[RK_STAGES] = {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192,
                                      -2187.0 / 6784, 11.0 / 84};
/* b - b_hat over the 7 stages (the last one is f at the new point: FSAL). */
static const double k_e[RK_STAGES + 1] = {-71.0 / 57600, 0, 71.0 / 16695, -71.0 / 1920,
                                          17253.0 / 339200, -22.0 / 525, 1.0 / 40};
static const double k_safety = 0.9, k_min_factor = 0.2, k_max_factor = 10;

ug_rk45_cfg ug_rk45_default(void) {
    ug_rk45_cfg c = {1e-5, 1e-5, 0, 0, 0};
    return c;
}

static double rms(const double *v, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i] * v[i];
    return sqrt(s / (double)n);
}

/* scipy's select_initial_step (order = error estimator order 4). tmp: 2n scratch. */
static ug_status initial_step(ug_ode_fn f, void *self, int64_t n, double t0, const double *y0,
                              const double *f0, double dir, double span, double rtol,
                              double atol, double *tmp, int64_t *nfe, double *h_out) {
    double *y1 = tmp, *f1 = tmp + n, d0 = 0, d1 = 0, d2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double sc = atol + fabs(y0[i]) * rtol;
        d0 += (y0[i] / sc) * (y0[i] / sc);
        d1 += (f0[i] / sc) * (f0[i] / sc);
    }
    d0 = sqrt(d0 / (double)n);
    d1 = sqrt(d1 / (double)n);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    h0 = fmin(h0, span);
    for (int64_t i = 0; i < n; i++) y1[i] = y0[i] + h0 * dir * f0[i];
    ug_status st = f(self, t0 + h0 * dir, y1, f1);
    (*nfe)++;
    if (st) return st;
    for (int64_t i = 0; i < n; i++) {
        double sc = atol + fabs(y0[i]) * rtol, q = (f1[i] - f0[i]) / sc;
        d2 += q * q;
    }
    d2 = sqrt(d2 / (double)n) / h0;
    double h1 = (d1 <= 1e-15 && d2 <= 1e-15) ? fmax(1e-6, h0 * 1e-3)
                                             : pow(0.01 / fmax(d1, d2), 1.0 / 5);
    *h_out = fmin(fmin(100 * h0, h1), span);
    return UG_OK;
}

ug_status ug_rk45_solve(const ug_rk45_cfg *c, ug_ode_fn f, void *self, int64_t n, double *y,
                        double t0, double t1, ug_ode_stats *stats) {
    ug_ode_stats s = {0, 0, 0};
    if (stats) *stats = s;
    if (n < 1) return ug_fail(UG_ERR_INVALID_ARG, "rk45: state size %lld, expected >= 1", (long long)n);
    if (!(c->rtol > 0) || !(c->atol >= 0))
        return ug_fail(UG_ERR_INVALID_ARG, "rk45: rtol %g, atol %g, expected rtol > 0, atol >= 0",
                       c->rtol, c->atol);
    if (!isfinite(t0) || !isfinite(t1))
        return ug_fail(UG_ERR_INVALID_ARG, "rk45: t0 %g, t1 %g, expected finite", t0, t1);
    if (t0 == t1) return UG_OK;
    int64_t max_nfe = c->max_nfe > 0 ? c->max_nfe : 1000000;
    double dir = t1 > t0 ? 1 : -1, max_step = c->max_step > 0 ? c->max_step : INFINITY;
    /* k[0..6] stages, ynew, err. */
    double *buf = malloc((size_t)n * 9 * sizeof *buf);
    if (!buf) return ug_fail(UG_ERR_NOMEM, "rk45: out of memory for a state of %lld", (long long)n);
    double *k[RK_STAGES + 1];
    for (int j = 0; j <= RK_STAGES; j++) k[j] = buf + (size_t)j * n;
    double *ynew = buf + 7 * (size_t)n, *err = buf + 8 * (size_t)n;
    ug_status st = f(self, t0, y, k[0]);
    s.nfe++;
    double t = t0, h = 0;
    if (!st) {
        if (c->first_step > 0) h = c->first_step;
        else st = initial_step(f, self, n, t0, y, k[0], dir, fabs(t1 - t0), c->rtol, c->atol,
                               ynew, &s.nfe, &h);
    }
    h = fmin(h, max_step);
    int rejected_last = 0;
    while (!st && dir * (t1 - t) > 0) {
        double min_step = 10 * fabs(nextafter(t, dir * INFINITY) - t);
        if (h < min_step) {
            st = ug_fail(UG_ERR_NUMERIC, "rk45: step size %g fell below %g at t = %g", h,
                         min_step, t);
            break;
        }
        if (s.nfe + RK_STAGES > max_nfe) {
            st = ug_fail(UG_ERR_NUMERIC, "rk45: more than %lld evaluations before t = %g (at %g)",
                         (long long)max_nfe, t1, t);
            break;
        }
        double tn = t + dir * h;
        if (dir * (tn - t1) > 0) tn = t1;
        double hs = tn - t;   /* signed */
        double hab = fabs(hs);
        for (int j = 1; j < RK_STAGES && !st; j++) {
            for (int64_t i = 0; i < n; i++) {
                double acc = 0;
                for (int l = 0; l < j; l++) acc += k_a[j][l] * k[l][i];
                ynew[i] = y[i] + hs * acc;
            }
            st = f(self, t + k_c[j] * hs, ynew, k[j]);
            s.nfe++;
        }
        if (st) break;
        for (int64_t i = 0; i < n; i++) {
            double acc = 0;
            for (int l = 0; l < RK_STAGES; l++) acc += k_b[l] * k[l][i];
            ynew[i] = y[i] + hs * acc;
        }
        st = f(self, tn, ynew, k[RK_STAGES]);
        s.nfe++;
        if (st) break;
        for (int64_t i = 0; i < n; i++) {
            double acc = 0;
            for (int l = 0; l <= RK_STAGES; l++) acc += k_e[l] * k[l][i];
            double sc = c->atol + fmax(fabs(y[i]), fabs(ynew[i])) * c->rtol;
            err[i] = hs * acc / sc;
        }
        double en = rms(err, n);
        if (!isfinite(en)) {
            st = ug_fail(UG_ERR_NUMERIC, "rk45: non-finite error estimate at t = %g", t);
            break;
        }
        if (en < 1) {
            double factor = en == 0 ? k_max_factor
                                    : fmin(k_max_factor, k_safety * pow(en, -1.0 / 5));
            if (rejected_last) factor = fmin(1, factor);
            h = fmin(hab * factor, max_step);
            memcpy(y, ynew, (size_t)n * sizeof *y);
            memcpy(k[0], k[RK_STAGES], (size_t)n * sizeof *y);
            t = tn;
            s.steps++;
            rejected_last = 0;
        } else {
            h = hab * fmax(k_min_factor, k_safety * pow(en, -1.0 / 5));
            s.rejected++;
            rejected_last = 1;
        }
    }
    free(buf);
    if (stats) *stats = s;
    return st;
}
