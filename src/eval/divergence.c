/* divergence.c — D(x; sigma) together with div_x D, the extra term the probability-flow ODE
 * needs for log-likelihoods (SPEC section 6; Song et al. 2021, appendix D.2; Grathwohl et al.
 * 2019, FFJORD, for the Hutchinson estimator).
 *
 * Mixture, analytically. D = sum_k r_k m_k with m_k = mu_k + f_k (x - mu_k), f_k = s_k^2/v_k,
 * v_k = s_k^2 + sigma^2 and r_k = w_k N(x; mu_k, v_k I) / p(x). With g_k = -(x - mu_k)/v_k,
 * grad log r_k = g_k - gbar (gbar = sum_l r_l g_l), so
 *   dD_j/dx_j = sum_k r_k f_k + sum_k m_kj r_k (g_kj - gbar_j)
 *   div D    = d sum_k r_k f_k + sum_k r_k (m_k - D) . g_k
 * (sum_k r_k (g_k - gbar) = 0 and sum_k r_k (m_k - D) = 0 let D and gbar drop out). The
 * centred form keeps the second sum free of cancellation when one component dominates.
 *
 * Network. One forward pass with x requiring grad, then per output coordinate j a backward pass
 * seeded with e_j on every row at once: row i of x->grad is then row j of sample i's Jacobian
 * transposed, so its j-th entry is dD_ij/dx_ij. ug_tape_zero_grads between passes lets the same
 * tape serve all d products. Hutchinson replaces e_j by Rademacher probes v: E[v^T J v] = tr J. */
#include "eval/eval.h"
#include "core/core.h"
#include <math.h>

void ug_gmm_denoise_div(const ug_gmm *g, const double *x, double sigma, double *D, double *div) {
    ug_gmm_denoise(g, x, sigma, D);
    if (!div) return;
    int K = g->K, d = g->d;
    double buf[64], *r = K <= 64 ? buf : malloc((size_t)K * sizeof *r);
    UG_CHECK(r, "gmm divergence: out of memory for %d components", K);
    ug_gmm_responsibilities(g, x, 1.0, sigma, r);
    double s2 = sigma * sigma, tr = 0, cross = 0;
    for (int k = 0; k < K; k++) {
        double sk2 = g->s[k] * g->s[k], v = sk2 + s2, f = sk2 / v;
        if (r[k] == 0) continue;
        double dot = 0;
        for (int j = 0; j < d; j++) {
            double mu = g->mu[(size_t)k * d + j], e = x[j] - mu;
            dot += (mu + f * e - D[j]) * e;
        }
        tr += r[k] * f;
        cross += r[k] * dot / v;
    }
    *div = d * tr - cross;
    if (r != buf) free(r);
}

static ug_status gmm_div_fn(void *self, int64_t n, const double *x, double sigma, double *D,
                            double *div) {
    const ug_gmm *g = self;
#pragma omp parallel for schedule(static) if (n * g->K * g->d >= UG_PAR_MIN / 4)
    for (int64_t i = 0; i < n; i++)
        ug_gmm_denoise_div(g, x + i * g->d, sigma, D + i * g->d, div ? div + i : NULL);
    return UG_OK;
}

ug_div_denoiser ug_gmm_div_denoiser(const ug_gmm *g) {
    ug_div_denoiser dn = {g->d, gmm_div_fn, (void *)g};
    return dn;
}

/* ---------------------------------------------------------------- network */
static const char *const k_div_names[UG_DIV_COUNT] = {"auto", "exact", "hutchinson"};
const char *ug_div_name(ug_div_kind k) { return (unsigned)k < UG_DIV_COUNT ? k_div_names[k] : "?"; }
int ug_div_from_name(const char *name, ug_div_kind *out) {
    for (int i = 0; i < UG_DIV_COUNT; i++)
        if (!strcmp(name, k_div_names[i])) { *out = (ug_div_kind)i; return 0; }
    return -1;
}

ug_div_cfg ug_div_default(void) {
    ug_div_cfg c = {UG_DIV_AUTO, 1, 0, 0};
    return c;
}

typedef struct {
    ug_model *m;
    const ug_diffusion *diff;
    ug_ctx *ctx;
    const int32_t *labels;
    ug_div_kind kind;
    int probes;
    uint64_t seed, first_stream;
    int64_t n;          /* fixed by the first call; probes are drawn for it */
    float *v;           /* (probes, n, d) Rademacher, Hutchinson only */
} net_div;

static ug_status net_div_fn(void *self, int64_t n, const double *x, double sigma, double *D,
                            double *div) {
    net_div *s = self;
    int64_t d = s->diff->data_dim;
    if (s->n && s->n != n)
        return ug_fail(UG_ERR_INVALID_ARG,
                       "divergence: called with %lld points, this denoiser serves %lld",
                       (long long)n, (long long)s->n);
    if (!s->ctx) {
        ug_status st = ug_ctx_create(&s->ctx, 0);
        if (st) return st;
    }
    if (div && s->kind == UG_DIV_HUTCHINSON && !s->v) {
        s->v = malloc((size_t)(s->probes * n * d) * sizeof *s->v);
        if (!s->v) return ug_fail(UG_ERR_NOMEM, "divergence: out of memory for the probes");
        float *row = malloc((size_t)(s->probes * d) * sizeof *row);
        if (!row) {
            free(s->v);
            s->v = NULL;
            return ug_fail(UG_ERR_NOMEM, "divergence: out of memory for the probes");
        }
        for (int64_t i = 0; i < n; i++) {
            ug_rng r = ug_rng_make(s->seed, s->first_stream + (uint64_t)i, 0);
            ug_rng_rademacher(&r, row, s->probes * d);
            for (int p = 0; p < s->probes; p++)
                memcpy(s->v + ((size_t)p * n + i) * d, row + (size_t)p * d, (size_t)d * sizeof *row);
        }
        free(row);
    }
    s->n = n;
    ug_ctx *ctx = s->ctx;
    ug_params *ps = ug_model_params(s->m);
    int nt = ug_params_num_tensors(ps);
    int was = nt > 0 && ug_params_tensor(ps, 0)->requires_grad;
    ug_params_set_requires_grad(ps, 0);
    int old = ug_ctx_set_grad(ctx, div != NULL);
    ug_tensor *xt = ug_tensor_new(ctx, 2, (int64_t[]){n, d});
    for (int64_t j = 0; j < n * d; j++) xt->data[j] = (float)x[j];
    if (div) ug_tensor_requires_grad(ctx, xt);
    ug_tensor *Dt = ug_diffusion_denoise(ctx, s->diff, xt, sigma, s->labels);
    for (int64_t j = 0; j < n * d; j++) D[j] = Dt->data[j];
    ug_status st = UG_OK;
    if (div) {
        for (int64_t i = 0; i < n; i++) div[i] = 0;
        float *seed = ug_ctx_alloc(ctx, (size_t)(n * d) * sizeof *seed);
        int passes = s->kind == UG_DIV_EXACT ? (int)d : s->probes;
        for (int p = 0; p < passes && !st; p++) {
            ug_tape_zero_grads(ctx);
            memset(xt->grad, 0, (size_t)(n * d) * sizeof *xt->grad);
            if (s->kind == UG_DIV_EXACT) {
                memset(seed, 0, (size_t)(n * d) * sizeof *seed);
                for (int64_t i = 0; i < n; i++) seed[i * d + p] = 1;
            } else {
                memcpy(seed, s->v + (size_t)p * n * d, (size_t)(n * d) * sizeof *seed);
            }
            st = ug_backward_seed(ctx, Dt, seed);
            if (st) break;
            for (int64_t i = 0; i < n; i++) {
                if (s->kind == UG_DIV_EXACT) {
                    div[i] += xt->grad[i * d + p];
                } else {
                    double acc = 0;
                    for (int64_t j = 0; j < d; j++) acc += (double)seed[i * d + j] * xt->grad[i * d + j];
                    div[i] += acc / s->probes;
                }
            }
        }
    }
    ug_ctx_set_grad(ctx, old);
    ug_ctx_reset(ctx);
    ug_params_set_requires_grad(ps, was);
    return st;
}

ug_status ug_model_div_denoiser(ug_model *m, const int32_t *labels, const ug_div_cfg *c,
                                ug_div_denoiser *out, void **state) {
    *state = NULL;
    const ug_model_cfg *mc = ug_model_config(m);
    if (mc->family != UG_FAMILY_DIFFUSION)
        return ug_fail(UG_ERR_UNSUPPORTED, "divergence: a %s model has no denoiser",
                       ug_family_name(mc->family));
    if (!strcmp(mc->net, "gmm"))
        return ug_fail(UG_ERR_UNSUPPORTED,
                       "divergence: an analytic mixture model: use ug_gmm_div_denoiser on the ug_gmm");
    if ((unsigned)c->kind >= UG_DIV_COUNT)
        return ug_fail(UG_ERR_INVALID_ARG, "divergence: kind %d unknown", (int)c->kind);
    if (c->probes < 0)
        return ug_fail(UG_ERR_INVALID_ARG, "divergence: %d probes, expected >= 0", c->probes);
    if (mc->num_classes && !labels)
        return ug_fail(UG_ERR_INVALID_ARG, "divergence: a class-conditional model needs labels");
    net_div *s = calloc(1, sizeof *s);
    if (!s) return ug_fail(UG_ERR_NOMEM, "divergence: out of memory");
    s->m = m;
    s->diff = ug_model_diffusion(m);
    s->labels = labels;
    s->kind = c->kind == UG_DIV_AUTO ? (s->diff->data_dim <= 64 ? UG_DIV_EXACT : UG_DIV_HUTCHINSON)
                                     : c->kind;
    s->probes = c->probes > 0 ? c->probes : 1;
    s->seed = c->seed;
    s->first_stream = c->first_stream;
    out->dim = s->diff->data_dim;
    out->fn = net_div_fn;
    out->self = s;
    *state = s;
    return UG_OK;
}

void ug_model_div_free(void *state) {
    net_div *s = state;
    if (!s) return;
    ug_ctx_free(s->ctx);
    free(s->v);
    free(s);
}
