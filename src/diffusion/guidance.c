/* guidance.c — SPEC section 5 in one place, as a denoiser wrapping denoisers:
 *   classifier-free (Ho & Salimans 2022): D_w = D(x; sigma, null) + w (D(x; sigma, y) - D(x; sigma, null))
 *   classifier (Dhariwal & Nichol 2021):  D_w = D + s sigma^2 grad_x log p_phi(y | x, sigma)
 * Both can be combined; w = 1 and s = 0 give the conditional denoiser unchanged. */
#include "guidance.h"
#include "core/core.h"

/* The scratch row buffer for n points: allocated on the first step, reused by every later one. */
static double *scratch(ug_guided *g, int64_t nd) {
    if (g->scratch_n < nd) {
        double *p = realloc(g->scratch, (size_t)nd * sizeof *p);
        if (!p) return NULL;
        g->scratch = p;
        g->scratch_n = nd;
    }
    return g->scratch;
}

void ug_guided_free(ug_guided *g) {
    free(g->scratch);
    g->scratch = NULL;
    g->scratch_n = 0;
}

static ug_status guided_fn(void *self, int64_t n, const double *x, double sigma, double *out) {
    ug_guided *g = self;
    int64_t nd = n * g->cond.dim;
    ug_status st = g->cond.fn(g->cond.self, n, x, sigma, out);
    if (!st && g->uncond.fn && g->w != 1.0) {
        double *u = scratch(g, nd);
        if (!u) return ug_fail(UG_ERR_NOMEM, "guidance: out of memory");
        st = g->uncond.fn(g->uncond.self, n, x, sigma, u);
        for (int64_t j = 0; !st && j < nd; j++) out[j] = u[j] + g->w * (out[j] - u[j]);
    }
    if (!st && g->grad_logp && g->s != 0) {
        double *gr = scratch(g, nd);
        if (!gr) return ug_fail(UG_ERR_NOMEM, "guidance: out of memory");
        st = g->grad_logp(g->grad_self, n, x, sigma, gr);
        for (int64_t j = 0; !st && j < nd; j++) out[j] += g->s * sigma * sigma * gr[j];
    }
    return st;
}

/* Flow matching in x_t: classifier-free guidance is linear in D, so it carries over. */
static ug_status guided_fm_fn(void *self, int64_t n, const double *x, double t, double *out) {
    ug_guided *g = self;
    int64_t nd = n * g->cond.dim;
    ug_status st = g->cond.fm_fn(g->cond.self, n, x, t, out);
    if (!st && g->uncond.fm_fn && g->w != 1.0) {
        double *u = scratch(g, nd);
        if (!u) return ug_fail(UG_ERR_NOMEM, "guidance: out of memory");
        st = g->uncond.fm_fn(g->uncond.self, n, x, t, u);
        for (int64_t j = 0; !st && j < nd; j++) out[j] = u[j] + g->w * (out[j] - u[j]);
    }
    return st;
}

ug_denoiser ug_guided_denoiser(ug_guided *g) {
    ug_denoiser dn = {g->cond.dim, guided_fn, g, NULL};
    /* Classifier guidance is defined in sigma-space only (sigma^2 grad); CFG also in x_t. */
    if (g->cond.fm_fn && (!g->uncond.fn || g->uncond.fm_fn) && !(g->grad_logp && g->s != 0))
        dn.fm_fn = guided_fm_fn;
    return dn;
}
