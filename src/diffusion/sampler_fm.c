/* sampler_fm.c — flow matching / rectified flow in t (Lipman et al. 2023, Liu et al. 2023;
 * diffusers FlowMatchEulerDiscreteScheduler): x_t = (1-t) x0 + t eps, t from 1 to 0, start
 * x = noise * t_0. The velocity is v = (x_t - D)/t with D = E[x0 | x_t] (= x_t - t v for a
 * velocity model); D at t = 1 (sigma = inf) needs the denoiser's fm_fn.
 *   fm-euler: x += (t_next - t) v; the step to t = 0 gives x - t v = D.
 *   fm-heun:  average v with the velocity at the Euler end point, except on the last step.
 * With cfg.diffusers x is rounded to float32 before each update, as diffusers' step() does. */
#include "sampler_impl.h"
#include "core/core.h"
#include <math.h>
#include <stdlib.h>

/* v(x_t, t) into v. */
static ug_status velocity(ug_smp *s, const double *x, double t, double *xs, double *v) {
    ug_status st;
    (*s->nfe)++;
    if (s->dn->fm_fn) {
        st = s->dn->fm_fn(s->dn->self, s->n, x, t, v);
    } else {
        if (!(t < 1))
            return ug_fail(UG_ERR_INVALID_ARG, "sampler: flow matching at t = %g needs a denoiser with fm_fn", t);
        for (int64_t j = 0; j < s->nd; j++) xs[j] = x[j] / (1 - t);
        st = s->dn->fn(s->dn->self, s->n, xs, t / (1 - t), v);
    }
    if (st) return st;
    for (int64_t j = 0; j < s->nd; j++) v[j] = (x[j] - v[j]) / t;
    return UG_OK;
}

ug_status ug_run_fm(ug_smp *s, double *x) {
    const ug_grid *g = s->g;
    int heun = s->c->sampler == UG_SAMPLER_FM_HEUN, f32 = s->c->diffusers;
    double *buf = ug_smp_alloc(s, 4);
    if (!buf) return ug_smp_nomem(s);
    double *xs = buf, *v = buf + s->nd, *v2 = buf + 2 * s->nd, *xe = buf + 3 * s->nd;
    ug_status st = UG_OK;
    for (int64_t j = 0; j < s->nd; j++) x[j] *= g->t[0];
    for (int i = 0; i < g->steps && !st; i++) {
        double t = g->t[i], tn = g->t[i + 1], h = tn - t;
        if ((st = velocity(s, x, t, xs, v))) break;
        if (f32)
            for (int64_t j = 0; j < s->nd; j++) x[j] = (double)(float)x[j];
        if (!heun || i == g->steps - 1) {
            for (int64_t j = 0; j < s->nd; j++) x[j] += h * v[j];
            continue;
        }
        for (int64_t j = 0; j < s->nd; j++) xe[j] = x[j] + h * v[j];
        if ((st = velocity(s, xe, tn, xs, v2))) break;
        for (int64_t j = 0; j < s->nd; j++) x[j] += h * 0.5 * (v[j] + v2[j]);
    }
    free(buf);
    return st;
}
