/* optim.c — SGD (with momentum / Nesterov), Adam and AdamW, and global gradient-norm clipping.
 * Each step is one flat loop over the parameter arena (llm.c's AdamW kernel); the state buffers
 * (momentum, Adam moments) share the layout of ug_params_data, so no per-tensor bookkeeping.
 *
 * The updates follow PyTorch 1.13's single-tensor code operation by operation, so a float32 run
 * agrees with torch.optim to rounding (tests/ref/gen_optim_ref.py checks it):
 *   SGD    (torch.optim.SGD, dampening 0):
 *          g = grad + wd p;  buf = g (first step) | momentum buf + g;
 *          g = nesterov ? g + momentum buf : buf;  p = p - lr g
 *   Adam   (Kingma & Ba 2015, Algorithm 1; torch.optim.Adam):
 *          g = grad + wd p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g;
 *          p = p + (-lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *   AdamW  (Loshchilov & Hutter 2019, decoupled decay; torch.optim.AdamW):
 *          p = p (1 - lr wd) first, then Adam without the wd term.
 * Scalars such as 1 - b1^t are computed in double and rounded to float once, as Python does.
 *   clip   (torch.nn.utils.clip_grad_norm_): norm = ||grad||_2 over every parameter;
 *          coef = max_norm / (norm + 1e-6); grad *= coef only when coef < 1. */
#include "core/core.h"
#include <math.h>

/* ---------------------------------------------------------------- defaults */
ug_sgd_cfg ug_sgd_default(void) {
    ug_sgd_cfg c = {.momentum = 0.0f, .weight_decay = 0.0f, .nesterov = 0};
    return c;
}

ug_adam_cfg ug_adam_default(void) {
    ug_adam_cfg c = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f,
                     .decoupled = 0};
    return c;
}

ug_adam_cfg ug_adamw_default(void) {
    ug_adam_cfg c = ug_adam_default();
    c.weight_decay = 1e-2f;
    c.decoupled = 1;
    return c;
}

/* ---------------------------------------------------------------- shared checks */
/* Written so that NaN fails every range test. */
static int in_unit_halfopen(float x) { return x >= 0.0f && x < 1.0f; }

/* The optimizer state mirrors the flat buffer, which exists only after finalize. */
static ug_status check_params(const char *fn, const ug_params *ps) {
    if (!ps) return ug_fail(UG_ERR_INVALID_ARG, "%s: params is NULL", fn);
    if (!ug_params_data((ug_params *)ps))
        return ug_fail(UG_ERR_STATE, "%s: parameters are not finalized (call ug_params_finalize "
                                     "before creating the optimizer)", fn);
    return UG_OK;
}

/* n zeroed floats; n = 0 still returns a distinct pointer so "allocated" is testable. Written
 * here, not left to calloc: the first step reads each state and then writes it, and on calloc's
 * untouched pages that read maps the shared zero page and the write then takes a copy-on-write
 * fault with a TLB shootdown, page by page (do_wp_page, 3 % of a 40-step W4 profile; a 5-step
 * W4 run took 1.34-1.41 s, 1.15-1.17 s without it). Zeroing writes first: plain page faults,
 * on the threads that will use them. */
static float *zeros(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!p) return NULL;
#pragma omp parallel for schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) p[i] = 0.0f;
    return p;
}

/* ---------------------------------------------------------------- SGD */
ug_status ug_sgd_init(ug_sgd *o, const ug_params *ps, ug_sgd_cfg cfg) {
    if (!o) return ug_fail(UG_ERR_INVALID_ARG, "ug_sgd_init: optimizer is NULL");
    memset(o, 0, sizeof *o);
    ug_status st = check_params("ug_sgd_init", ps);
    if (st) return st;
    if (!(cfg.momentum >= 0.0f) || isinf(cfg.momentum))
        return ug_fail(UG_ERR_INVALID_ARG,
                       "ug_sgd_init: cfg.momentum must be finite and >= 0, found %g",
                       (double)cfg.momentum);
    if (!(cfg.weight_decay >= 0.0f) || isinf(cfg.weight_decay))
        return ug_fail(UG_ERR_INVALID_ARG,
                       "ug_sgd_init: cfg.weight_decay must be finite and >= 0, found %g",
                       (double)cfg.weight_decay);
    if (cfg.nesterov && cfg.momentum == 0.0f)
        return ug_fail(UG_ERR_INVALID_ARG,
                       "ug_sgd_init: cfg.nesterov needs cfg.momentum > 0, found momentum %g",
                       (double)cfg.momentum);
    o->cfg = cfg;
    o->n = ug_params_count(ps);
    /* Plain SGD keeps no state, as in PyTorch: no buffer to allocate. */
    if (cfg.momentum != 0.0f) {
        o->buf = zeros(o->n);
        if (!o->buf)
            return ug_fail(UG_ERR_NOMEM, "ug_sgd_init: cannot allocate the momentum buffer "
                                         "(%lld floats)", (long long)o->n);
    }
    return UG_OK;
}

void ug_sgd_step(ug_sgd *o, ug_params *ps, float lr) {
    int64_t n = ug_params_count(ps);
    UG_CHECK(o->n == n, "ug_sgd_step: optimizer made for %lld parameters, given %lld",
             (long long)o->n, (long long)n);
    UG_CHECK(o->cfg.momentum == 0.0f || o->buf, "ug_sgd_step: optimizer not initialized");
    float *restrict p = ug_params_data(ps);
    const float *restrict grad = ug_params_grad(ps);
    float *restrict buf = o->buf;
    const float wd = o->cfg.weight_decay, mom = o->cfg.momentum;
    const int nesterov = o->cfg.nesterov, first = o->t == 0;
    if (mom == 0.0f) {
#pragma omp parallel for simd schedule(static) if (n >= UG_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float g = grad[i] + wd * p[i];
            p[i] = p[i] - lr * g;
        }
    } else {
#pragma omp parallel for simd schedule(static) if (n >= UG_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float g = grad[i] + wd * p[i];
            float b = first ? g : buf[i] * mom + g;
            buf[i] = b;
            g = nesterov ? g + mom * b : b;
            p[i] = p[i] - lr * g;
        }
    }
    o->t++;
}

void ug_sgd_free(ug_sgd *o) {
    if (!o) return;
    free(o->buf);
    memset(o, 0, sizeof *o);
}

/* ---------------------------------------------------------------- Adam / AdamW */
ug_status ug_adam_init(ug_adam *o, const ug_params *ps, ug_adam_cfg cfg) {
    if (!o) return ug_fail(UG_ERR_INVALID_ARG, "ug_adam_init: optimizer is NULL");
    memset(o, 0, sizeof *o);
    ug_status st = check_params("ug_adam_init", ps);
    if (st) return st;
    if (!in_unit_halfopen(cfg.beta1))
        return ug_fail(UG_ERR_INVALID_ARG, "ug_adam_init: cfg.beta1 must be in [0, 1), found %g",
                       (double)cfg.beta1);
    if (!in_unit_halfopen(cfg.beta2))
        return ug_fail(UG_ERR_INVALID_ARG, "ug_adam_init: cfg.beta2 must be in [0, 1), found %g",
                       (double)cfg.beta2);
    if (!(cfg.eps >= 0.0f) || isinf(cfg.eps))
        return ug_fail(UG_ERR_INVALID_ARG,
                       "ug_adam_init: cfg.eps must be finite and >= 0, found %g", (double)cfg.eps);
    if (!(cfg.weight_decay >= 0.0f) || isinf(cfg.weight_decay))
        return ug_fail(UG_ERR_INVALID_ARG,
                       "ug_adam_init: cfg.weight_decay must be finite and >= 0, found %g",
                       (double)cfg.weight_decay);
    o->cfg = cfg;
    o->n = ug_params_count(ps);
    o->m = zeros(o->n);
    o->v = zeros(o->n);
    if (!o->m || !o->v) {
        ug_adam_free(o);
        return ug_fail(UG_ERR_NOMEM, "ug_adam_init: cannot allocate the moments (2 x %lld floats)",
                       (long long)ug_params_count(ps));
    }
    return UG_OK;
}

void ug_adam_step(ug_adam *o, ug_params *ps, float lr) {
    int64_t n = ug_params_count(ps);
    UG_CHECK(o->n == n, "ug_adam_step: optimizer made for %lld parameters, given %lld",
             (long long)o->n, (long long)n);
    UG_CHECK(o->m && o->v, "ug_adam_step: optimizer not initialized");
    o->t++;
    const double b1d = o->cfg.beta1, b2d = o->cfg.beta2, t = (double)o->t;
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    const float one_b1 = (float)(1.0 - b1d), one_b2 = (float)(1.0 - b2d);
    const float step_size = (float)((double)lr / (1.0 - pow(b1d, t)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(b2d, t));
    const int decoupled = o->cfg.decoupled;
    const float wd = decoupled ? 0.0f : o->cfg.weight_decay;
    const float shrink = decoupled ? (float)(1.0 - (double)lr * o->cfg.weight_decay) : 1.0f;
    float *restrict p = ug_params_data(ps);
    const float *restrict grad = ug_params_grad(ps);
    float *restrict m = o->m, *restrict v = o->v;
#pragma omp parallel for simd schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float w = p[i] * shrink;               /* AdamW's decay acts before the update */
        float g = grad[i] + wd * w;            /* Adam's L2 term (wd = 0 for AdamW) */
        float mi = m[i] * b1 + one_b1 * g;
        float vi = v[i] * b2 + one_b2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = w + (-step_size) * mi / denom;
    }
}

void ug_adam_free(ug_adam *o) {
    if (!o) return;
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

/* ---------------------------------------------------------------- clipping */
/* The sum of squares is split into a number of chunks that depends only on n, each summed in
 * double, then added in order: the norm is the same bit for bit on any thread count. */
#define CLIP_CHUNKS 256

double ug_clip_grad_norm(ug_params *ps, double max_norm) {
    int64_t n = ug_params_count(ps);
    float *restrict grad = ug_params_grad(ps);
    if (!grad || n == 0) return 0.0;
    int64_t chunk = (n + CLIP_CHUNKS - 1) / CLIP_CHUNKS;
    if (chunk < 4096) chunk = 4096;
    int64_t nchunks = (n + chunk - 1) / chunk;
    double part[CLIP_CHUNKS];
#pragma omp parallel for schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = lo; i < hi; i++) s += (double)grad[i] * (double)grad[i];
        part[c] = s;
    }
    double total = 0.0;
    for (int64_t c = 0; c < nchunks; c++) total += part[c];
    double norm = sqrt(total);
    if (max_norm > 0.0) {
        double coef = max_norm / (norm + 1e-6);
        /* A NaN norm gives a NaN coef, which fails the test: gradients stay as they are and
         * the caller sees the NaN it returns. */
        if (coef < 1.0) {
            const float cf = (float)coef;
#pragma omp parallel for simd schedule(static) if (n >= UG_PAR_MIN)
            for (int64_t i = 0; i < n; i++) grad[i] *= cf;
        }
    }
    return norm;
}
