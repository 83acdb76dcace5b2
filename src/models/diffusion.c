/* diffusion.c — training loss and denoiser of the diffusion family (see diffusion.h). */
#include "diffusion.h"
#include "core/core.h"
#include <math.h>

double ug_diffusion_emb_log_fmax(ug_form_kind form, ug_param_kind param) {
    int index_time = (param == UG_PARAM_EPS || param == UG_PARAM_V) &&
                     (form == UG_FORM_VP || form == UG_FORM_VP_COSINE || form == UG_FORM_VP_CONT);
    return index_time ? -log(10000.0) : log(1000.0);
}

ug_status ug_diffusion_init(ug_diffusion *m, ug_form_kind form, ug_param_kind param,
                            const ug_net *net) {
    memset(m, 0, sizeof *m);
    if ((unsigned)form >= UG_FORM_COUNT || (unsigned)param >= UG_PARAM_COUNT)
        return ug_fail(UG_ERR_INVALID_ARG, "diffusion: formulation %d / parameterization %d unknown",
                       (int)form, (int)param);
    ug_form_init(&m->form, form);
    m->param = param;
    m->net = *net;
    m->data_dim = net->data_dim;
    m->num_classes = net->num_classes;
    m->p_uncond = 0.1;
    return UG_OK;
}

void ug_diffusion_free(ug_diffusion *m) { ug_net_free(&m->net); }

ug_status ug_diffusion_declare(ug_diffusion *m, ug_params *ps, ug_form_kind form,
                               ug_param_kind param, const ug_mlp_cfg *net) {
    memset(m, 0, sizeof *m);
    /* The embedding must resolve the range of c_noise. */
    ug_mlp_cfg nc = *net;
    nc.emb_log_fmax = ug_diffusion_emb_log_fmax(form, param);
    ug_mlp mlp;
    ug_status st = ug_mlp_declare(&mlp, ps, &nc);
    if (st) return st;
    ug_net n;
    ug_net_from_mlp(&n, &mlp);
    return ug_diffusion_init(m, form, param, &n);
}

ug_tensor *ug_diffusion_loss(ug_ctx *ctx, const ug_diffusion *m, const float *x0, int64_t B,
                             const int32_t *labels, uint64_t seed, uint64_t first_stream) {
    int64_t d = m->data_dim;
    ug_tensor *x_in = ug_tensor_new(ctx, 2, (int64_t[]){B, d});     /* c_in (x0 + sigma eps) */
    ug_tensor *target = ug_tensor_new(ctx, 2, (int64_t[]){B, d});   /* a x0 + b eps */
    ug_tensor *c_noise = ug_tensor_new(ctx, 1, (int64_t[]){B});
    ug_tensor *w = ug_tensor_new(ctx, 1, (int64_t[]){B});           /* lambda c_out^2 */
    int32_t *lab = NULL;
    if (m->num_classes) lab = ug_ctx_alloc(ctx, (size_t)B * sizeof *lab);
#pragma omp parallel for schedule(static) if (B * d >= UG_PAR_MIN / 4)
    for (int64_t b = 0; b < B; b++) {
        ug_rng r = ug_rng_make(seed, first_stream + (uint64_t)b, 0);
        double u;
        float nz[4];
        ug_rng_uniform_f64(&r, &u, 1);
        ug_rng_normal(&r, nz, 1);
        double sigma = ug_form_train_sigma(&m->form, u, nz[0]);
        ug_precond c = ug_precond_at(&m->form, m->param, sigma);
        /* Discrete VP trains on the integer index itself. */
        c_noise->data[b] = (float)c.c_noise;
        w->data[b] = (float)(ug_form_lambda(&m->form, sigma) * c.c_out * c.c_out);
        float *xi = x_in->data + b * d, *tg = target->data + b * d;
        const float *x0b = x0 + b * d;
        ug_rng_normal(&r, xi, d);   /* eps, overwritten in place below */
        for (int64_t j = 0; j < d; j++) {
            double eps = xi[j];
            tg[j] = (float)(c.a * x0b[j] + c.b * eps);
            xi[j] = (float)(c.c_in * (x0b[j] + sigma * eps));
        }
        if (lab) {
            float drop;
            ug_rng_uniform(&r, &drop, 1);
            lab[b] = drop < m->p_uncond ? m->num_classes : labels[b];
        }
    }
    /* Sub-stream 0 of each example's stream went to sigma, eps and the label above; the
     * network's dropout masks take sub-streams 1, 2, ... */
    ug_net_train tr = {seed, first_stream, 1};
    ug_tensor *F = ug_net_forward_train(ctx, &m->net, x_in, c_noise, lab, &tr);
    return ug_mean_all(ctx, ug_mse(ctx, F, target, w));
}

ug_tensor *ug_diffusion_denoise(ug_ctx *ctx, const ug_diffusion *m, ug_tensor *x, double sigma,
                                const int32_t *labels) {
    int64_t B = x->shape[0];
    ug_precond c = ug_precond_at(&m->form, m->param, sigma);
    ug_tensor *c_noise = ug_tensor_new(ctx, 1, (int64_t[]){B});
    for (int64_t b = 0; b < B; b++) c_noise->data[b] = (float)c.c_noise;
    const int32_t *lab = labels;
    if (m->num_classes && !labels) {
        int32_t *nul = ug_ctx_alloc(ctx, (size_t)B * sizeof *nul);
        for (int64_t b = 0; b < B; b++) nul[b] = m->num_classes;
        lab = nul;
    }
    ug_tensor *x_in = ug_affine(ctx, x, (float)c.c_in, 0.0f);
    ug_tensor *F = ug_net_forward(ctx, &m->net, x_in, c_noise, lab);
    /* D = c_skip x + c_out F, both scalars at one sigma. */
    return ug_add(ctx, ug_affine(ctx, x, (float)c.c_skip, 0.0f), ug_affine(ctx, F, (float)c.c_out, 0.0f));
}

/* Sampler adapter: double state in, float network, double out; no tape, arena reset after.
 * The network always runs on tiles of exactly net.row_tile rows (the last one padded, unless
 * net.rows_alone): OpenBLAS chooses its kernels by matrix size, so a sample's value would
 * otherwise depend, in the last bits, on how many samples share its batch. With fixed tiles it
 * depends on nothing else.
 * Several tiles run side by side, one per thread, each in its own arena (extra[t - 1] for thread
 * t >= 1, created on first use) with the kernels inside running serially: no hand-offs between
 * the threads inside a network call, which is where small tiles lose their time. */
#define DN_MAX_THREADS 64
typedef struct {
    const ug_diffusion *m;
    ug_ctx *ctx;                          /* the caller's: thread 0 */
    const int32_t *labels;
    ug_ctx **extra;                       /* threads 1..: own, or lent by the caller */
    int nextra;
    ug_ctx *own[DN_MAX_THREADS - 1];
    ug_pack_cache *packs;                 /* the network's packed weights, shared by the threads */
} dn_self;

static int64_t row_tile(const ug_diffusion *m) { return m->net.row_tile > 0 ? m->net.row_tile : 512; }

static int64_t padded_rows(const ug_diffusion *m, int64_t n) {
    int64_t t = row_tile(m);
    return m->net.rows_alone ? n : (n + t - 1) / t * t;
}

static ug_status diffusion_tile(void *self, int64_t n, const double *x, double sigma, double *out) {
    dn_self *s = self;
    int64_t d = s->m->data_dim;
    int old = ug_ctx_set_grad(s->ctx, 0);
    s->ctx->packs = s->packs;
    int64_t np = padded_rows(s->m, n);
    ug_tensor *xt = ug_tensor_zeros(s->ctx, 2, (int64_t[]){np, d});
    for (int64_t j = 0; j < n * d; j++) xt->data[j] = (float)x[j];
    const int32_t *lab = s->labels;
    if (lab && np > n) {
        int32_t *pl = ug_ctx_alloc(s->ctx, (size_t)np * sizeof *pl);
        memcpy(pl, lab, (size_t)n * sizeof *pl);
        for (int64_t b = n; b < np; b++) pl[b] = s->m->num_classes;
        lab = pl;
    }
    ug_tensor *D = ug_diffusion_denoise(s->ctx, s->m, xt, sigma, lab);
    for (int64_t j = 0; j < n * d; j++) out[j] = D->data[j];
    s->ctx->packs = NULL;
    ug_ctx_set_grad(s->ctx, old);
    ug_ctx_reset(s->ctx);
    return UG_OK;
}

/* Flow matching in x_t: with the velocity parameterization the network already sees x_t and t
 * (c_in x~ = x_t, c_noise = t), so E[x0 | x_t] = x_t - t v(x_t, t) is defined at t = 1 too. */
static ug_status diffusion_fm_tile(void *self, int64_t n, const double *x, double t, double *out) {
    dn_self *s = self;
    const ug_diffusion *m = s->m;
    int64_t d = m->data_dim;
    int old = ug_ctx_set_grad(s->ctx, 0);
    s->ctx->packs = s->packs;
    int64_t np = padded_rows(s->m, n);
    ug_tensor *xt = ug_tensor_zeros(s->ctx, 2, (int64_t[]){np, d});
    ug_tensor *c_noise = ug_tensor_new(s->ctx, 1, (int64_t[]){np});
    for (int64_t j = 0; j < n * d; j++) xt->data[j] = (float)x[j];
    for (int64_t b = 0; b < np; b++) c_noise->data[b] = (float)t;
    const int32_t *lab = s->labels;
    if (m->num_classes) {
        int32_t *pl = ug_ctx_alloc(s->ctx, (size_t)np * sizeof *pl);
        for (int64_t b = 0; b < np; b++) pl[b] = lab && b < n ? lab[b] : m->num_classes;
        lab = pl;
    }
    ug_tensor *v = ug_net_forward(s->ctx, &m->net, xt, c_noise, lab);
    for (int64_t j = 0; j < n * d; j++) out[j] = x[j] - t * (double)v->data[j];
    s->ctx->packs = NULL;
    ug_ctx_set_grad(s->ctx, old);
    ug_ctx_reset(s->ctx);
    return UG_OK;
}

typedef ug_status (*tile_fn)(void *, int64_t, const double *, double, double *);

static ug_status by_tiles(tile_fn f, void *self, int64_t n, const double *x, double s, double *out) {
    dn_self *me = self;
    const int64_t d = me->m->data_dim, tile = row_tile(me->m), ntiles = (n + tile - 1) / tile;
    int nt = 1;
#ifdef _OPENMP
    nt = omp_in_parallel() ? 1 : omp_get_max_threads();
#endif
    if (nt > ntiles) nt = (int)ntiles;
    if (nt > me->nextra + 1) nt = me->nextra + 1;
    ug_status st = UG_OK;
    for (int t = 1; t < nt && !st; t++)
        if (!me->extra[t - 1]) st = ug_ctx_create(&me->extra[t - 1], 0);
    if (st) return st;   /* ug_ctx_create's own status and message */
    char msg[512] = "";
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = ug_omp_tid();
        dn_self mine = *me;
        mine.ctx = t ? me->extra[t - 1] : me->ctx;
#pragma omp for schedule(dynamic, 1)
        for (int64_t q = 0; q < ntiles; q++) {
            int64_t i = q * tile, k = n - i < tile ? n - i : tile;
            mine.labels = me->labels ? me->labels + i : NULL;
            ug_status e = f(&mine, k, x + i * d, s, out + i * d);
            if (e) {
#pragma omp critical(ug_dn_tiles)
                if (!st) {
                    st = e;
                    snprintf(msg, sizeof msg, "%s", ug_last_error());
                }
            }
        }
    }
    return st ? ug_fail(st, "%s", msg) : UG_OK;
}

static ug_status diffusion_fn(void *self, int64_t n, const double *x, double sigma, double *out) {
    return by_tiles(diffusion_tile, self, n, x, sigma, out);
}

static ug_status diffusion_fm_fn(void *self, int64_t n, const double *x, double t, double *out) {
    return by_tiles(diffusion_fm_tile, self, n, x, t, out);
}

ug_status ug_diffusion_denoiser(const ug_diffusion *m, ug_ctx *ctx, const int32_t *labels,
                                ug_denoiser *out, void **state) {
    dn_self *s = calloc(1, sizeof *s);
    if (!s) return ug_fail(UG_ERR_NOMEM, "diffusion: out of memory");
    s->m = m;
    s->ctx = ctx;
    s->labels = labels;
    s->extra = s->own;
    s->nextra = DN_MAX_THREADS - 1;
    s->packs = ug_pack_cache_new();   /* NULL: every call packs for itself */
    out->dim = m->data_dim;
    out->fn = diffusion_fn;
    out->self = s;
    out->fm_fn = m->param == UG_PARAM_VELOCITY ? diffusion_fm_fn : NULL;
    *state = s;
    return UG_OK;
}

void ug_diffusion_denoiser_free(void *state) {
    dn_self *s = state;
    if (!s) return;
    for (int t = 0; t < DN_MAX_THREADS - 1; t++) ug_ctx_free(s->own[t]);
    ug_pack_cache_free(s->packs);
    free(s);
}

void ug_diffusion_denoiser_lend(void *state, ug_ctx **extra, int n) {
    dn_self *s = state;
    s->extra = extra;
    s->nextra = n < DN_MAX_THREADS - 1 ? n : DN_MAX_THREADS - 1;
}
