/* flow.c — the normalizing-flow family (SPEC section 7): exact log-likelihood
 *   log p(x) = log p_Z(f(x)) + sum over layers of log|det J|,
 * training loss = batch mean of -log p(x) in nats, sampling x = f^-1(z) with z from the prior
 * at temperature T (Gaussian z ~ N(0, T^2 I); logistic z = T logit(u), u ~ U(0, 1)).
 * The layers live in nn/flow_layers.c; this file assembles the models (cfg->net):
 *
 *   nice-mnist  ../shared/peers/nice.py exactly: d = 784 split by the parity of the index,
 *               4 additive couplings, MLP 392 -> 1000 ReLU x 5 -> 392 (nn.Sequential indices
 *               m.i.0 .. m.i.10), coupling i even updates the odd half from the even one, odd
 *               the even from the odd; then h = y exp(s), s = 0 at init; logistic prior;
 *               19,158,352 parameters; PyTorch's default init. hidden, depth, couplings are
 *               ignored; prior must be logistic or "".
 *   nice        the same for any d >= 2. Defaults: hidden 1000, depth 5 (hidden layers),
 *               couplings 4, prior logistic.
 *   realnvp     vectors (channels 0): affine couplings y_b = x_b exp(s) + t with alternating
 *               parity masks (d = 2: each coupling moves one coordinate, the next the other);
 *               s, t from one MLP on the masked input x * mask (d -> hidden ReLU x depth ->
 *               2d), last layer zero (identity at init). Defaults: hidden 128, depth 2,
 *               couplings 8, prior gaussian.
 *               images (channels, height, width > 0; Dinh et al. 2017 multi-scale, small): per
 *               level `couplings` checkerboard couplings, squeeze, `couplings` channel
 *               couplings, factor out half the channels; the last level has couplings + 1
 *               checkerboard couplings. Conditioner: conv3x3 (C -> hidden) ReLU, depth - 1
 *               residual conv3x3 ReLU blocks, conv3x3 -> 2C (zero). Defaults: hidden 32,
 *               depth 2, couplings 3, levels 2 (1 when H or W is odd), prior gaussian.
 *   glow        images (Kingma & Dhariwal 2018, small): per level squeeze, `couplings` steps
 *               of [actnorm, invertible 1x1 conv (LU), affine coupling on the channel halves
 *               with conv3x3 - ReLU - conv1x1 - ReLU - conv3x3 (zero)], factor out half the
 *               channels between levels. Defaults: hidden 32, couplings 4, levels 2 (fewer when
 *               H, W do not halve that often), prior gaussian. Call data_init on a first batch
 *               (actnorm: zero mean, unit variance per channel).
 *
 * Soft clamp of every affine coupling: s = 2 tanh(s_raw / 2), so one coupling scales by at
 * most e^2 and an untrained network cannot overflow exp(s). The 1x1 convolutions start from
 * random rotations drawn from Philox with a FIXED key (not the model seed): P and sign(s) are
 * not parameters, so a checkpoint rebuilds the same model whatever seed its loader passes.
 * Factored-out latents carry the standard prior like the final ones (RealNVP), so
 * z = concat(factored-out parts in order, final state) (n, d) and log p_Z is one sum.
 * nll and sample run in tiles of a fixed row count (zero-padded): an example's result never
 * depends on its batch mates. */
#include "models/flow.h"
#include "nn/flow_layers.h"
#include "ops/flow_ops.h"
#include <math.h>

enum { FLOW_NICE, FLOW_REALNVP, FLOW_GLOW };

#define FLOW_CLAMP 2.0f
#define FLOW_LU_KEY 0x676C6F77ULL      /* "glow": the fixed key of the 1x1 convs' rotations */
#define FLOW_MAX_PARTS 16

typedef struct flow {
    int model;
    int image;
    int D, C, H, W;
    int logistic;
    int nl, cap;
    ug_fl_layer *layers;
    int32_t *even, *odd;      /* NICE: the two halves' columns */
    int ne, no, couplings;
    int nparts;               /* latent parts: factor-outs, then the final state */
    int64_t part[FLOW_MAX_PARTS];
    int64_t tile;
    ug_ctx *ctx;              /* nll / sample scratch */
} flow;

static void flow_free(void *impl) {
    flow *f = impl;
    if (!f) return;
    for (int i = 0; i < f->nl; i++) ug_fl_free(&f->layers[i]);
    free(f->layers);
    free(f->even);
    free(f->odd);
    ug_ctx_free(f->ctx);
    free(f);
}

static ug_fl_layer *next_layer(flow *f) {
    if (f->nl == f->cap) {
        int cap = f->cap ? 2 * f->cap : 16;
        ug_fl_layer *nl = realloc(f->layers, (size_t)cap * sizeof *nl);
        if (!nl) return NULL;
        f->layers = nl;
        f->cap = cap;
    }
    ug_fl_layer *L = &f->layers[f->nl++];
    memset(L, 0, sizeof *L);
    return L;
}

#define NEXT(L)                                                            \
    do {                                                                   \
        if (!((L) = next_layer(f))) return ug_fail(UG_ERR_NOMEM, "flow: out of memory"); \
    } while (0)

static ug_status build_nice(flow *f, ug_params *ps, int hidden, int depth, int K) {
    f->ne = (f->D + 1) / 2;
    f->no = f->D / 2;
    f->couplings = K;
    f->even = malloc((size_t)f->ne * sizeof *f->even);
    f->odd = malloc((size_t)(f->no ? f->no : 1) * sizeof *f->odd);
    if (!f->even || !f->odd) return ug_fail(UG_ERR_NOMEM, "flow: out of memory");
    for (int j = 0; j < f->ne; j++) f->even[j] = 2 * j;
    for (int j = 0; j < f->no; j++) f->odd[j] = 2 * j + 1;
    char prefix[32];
    ug_fl_layer *L;
    for (int i = 0; i < K; i++) {
        NEXT(L);
        snprintf(prefix, sizeof prefix, "m.%d", i);
        ug_status st = ug_fl_declare_additive(L, ps, prefix, f->D, i % 2, hidden, depth);
        if (st) return st;
    }
    NEXT(L);
    return ug_fl_declare_scale(L, ps, "s", f->D);
}

static ug_status build_realnvp(flow *f, ug_params *ps, int hidden, int depth, int K, int levels) {
    char prefix[48];
    ug_fl_layer *L;
    ug_status st = UG_OK;
    if (!f->image) {
        for (int i = 0; i < K && !st; i++) {
            NEXT(L);
            snprintf(prefix, sizeof prefix, "flows.%d.net", f->nl - 1);
            st = ug_fl_declare_affine(L, ps, prefix, 0, f->D, 1, 1, UG_FL_MASK_PARITY, i % 2,
                                      hidden, depth, FLOW_CLAMP);
        }
        return st;
    }
    int C = f->C, H = f->H, W = f->W;
    for (int lv = 0; lv < levels && !st; lv++) {
        int last = lv == levels - 1;
        for (int i = 0; i < K + last && !st; i++) {
            NEXT(L);
            snprintf(prefix, sizeof prefix, "flows.%d.net", f->nl - 1);
            st = ug_fl_declare_affine(L, ps, prefix, 1, C, H, W, UG_FL_MASK_CHECKER, i % 2,
                                      hidden, depth, FLOW_CLAMP);
        }
        if (last || st) break;
        NEXT(L);
        if ((st = ug_fl_declare_squeeze(L, C, H, W))) break;
        ug_fl_out_shape(L, &C, &H, &W);
        for (int i = 0; i < K && !st; i++) {
            NEXT(L);
            snprintf(prefix, sizeof prefix, "flows.%d.net", f->nl - 1);
            st = ug_fl_declare_affine(L, ps, prefix, 1, C, H, W, UG_FL_MASK_CHANNEL, i % 2,
                                      hidden, depth, FLOW_CLAMP);
        }
        if (st) break;
        NEXT(L);
        if ((st = ug_fl_declare_factor(L, C, H, W))) break;
        ug_fl_out_shape(L, &C, &H, &W);
    }
    return st;
}

static ug_status build_glow(flow *f, ug_params *ps, int hidden, int K, int levels) {
    char prefix[48];
    ug_fl_layer *L;
    ug_status st = UG_OK;
    int C = f->C, H = f->H, W = f->W;
    for (int lv = 0; lv < levels && !st; lv++) {
        NEXT(L);
        if ((st = ug_fl_declare_squeeze(L, C, H, W))) break;
        ug_fl_out_shape(L, &C, &H, &W);
        for (int k = 0; k < K && !st; k++) {
            NEXT(L);
            snprintf(prefix, sizeof prefix, "flows.%d", f->nl - 1);
            if ((st = ug_fl_declare_actnorm(L, ps, prefix, C, H, W))) break;
            NEXT(L);
            snprintf(prefix, sizeof prefix, "flows.%d", f->nl - 1);
            if ((st = ug_fl_declare_invconv(L, ps, prefix, C, H, W))) break;
            NEXT(L);
            snprintf(prefix, sizeof prefix, "flows.%d.net", f->nl - 1);
            st = ug_fl_declare_affine_split(L, ps, prefix, C, H, W, hidden, FLOW_CLAMP);
        }
        if (lv == levels - 1 || st) break;
        NEXT(L);
        if ((st = ug_fl_declare_factor(L, C, H, W))) break;
        ug_fl_out_shape(L, &C, &H, &W);
    }
    return st;
}

/* How often both sides of an H x W image halve, up to max (each squeeze halves them). */
static int halvings(int H, int W, int max) {
    int k = 0;
    for (; k < max && H % 2 == 0 && W % 2 == 0; k++) {
        H /= 2;
        W /= 2;
    }
    return k;
}

static ug_status flow_declare(const ug_model_cfg *cfg, ug_params *ps, void **impl) {
    *impl = NULL;
    const char *net = cfg->net;
    int model;
    int exact_nice = !strcmp(net, "nice-mnist");
    if (exact_nice || !strcmp(net, "nice")) model = FLOW_NICE;
    else if (!strcmp(net, "realnvp")) model = FLOW_REALNVP;
    else if (!strcmp(net, "glow")) model = FLOW_GLOW;
    else
        return ug_fail(UG_ERR_INVALID_ARG, "model: flow model '%s' unknown, expected %s", net,
                       ug_flow_family.models);
    int image = cfg->channels > 0 || cfg->height > 0 || cfg->width > 0;
    if (image && (cfg->channels < 1 || cfg->height < 1 || cfg->width < 1 ||
                  (int64_t)cfg->channels * cfg->height * cfg->width != cfg->data_dim))
        return ug_fail(UG_ERR_INVALID_ARG, "model: flow '%s' on images (%d, %d, %d): expected "
                       "positive channels, height, width with product data_dim %d", net,
                       cfg->channels, cfg->height, cfg->width, cfg->data_dim);
    if (model == FLOW_GLOW && !image)
        return ug_fail(UG_ERR_INVALID_ARG, "model: flow 'glow' needs images (channels, height, "
                       "width > 0), found vectors of %d values", cfg->data_dim);
    if (model == FLOW_NICE) image = 0;   /* NICE flattens images (parity of the flat index) */
    if (exact_nice && cfg->data_dim != 784)
        return ug_fail(UG_ERR_INVALID_ARG, "model: flow 'nice-mnist' takes data_dim 784 (28 x 28), "
                       "found %d (use 'nice')", cfg->data_dim);
    if (cfg->data_dim < 2)
        return ug_fail(UG_ERR_INVALID_ARG, "model: flow '%s' needs data_dim >= 2, found %d", net,
                       cfg->data_dim);
    int logistic = model == FLOW_NICE;
    if (!strcmp(cfg->prior, "gaussian")) logistic = 0;
    else if (!strcmp(cfg->prior, "logistic")) logistic = 1;
    else if (cfg->prior[0])
        return ug_fail(UG_ERR_INVALID_ARG, "model: prior '%s' unknown, expected gaussian or "
                       "logistic", cfg->prior);
    if (exact_nice && !logistic)
        return ug_fail(UG_ERR_INVALID_ARG, "model: flow 'nice-mnist' has the logistic prior, "
                       "found prior '%s' (use 'nice')", cfg->prior);
    if (cfg->hidden < 0 || cfg->depth < 0 || cfg->couplings < 0 || cfg->levels < 0)
        return ug_fail(UG_ERR_INVALID_ARG, "model: flow hidden %d, depth %d, couplings %d, "
                       "levels %d: expected >= 0 (0: the model's default)", cfg->hidden,
                       cfg->depth, cfg->couplings, cfg->levels);
    flow *f = calloc(1, sizeof *f);
    if (!f) return ug_fail(UG_ERR_NOMEM, "flow: out of memory");
    f->model = model;
    f->image = image;
    f->D = cfg->data_dim;
    f->C = image ? cfg->channels : cfg->data_dim;
    f->H = image ? cfg->height : 1;
    f->W = image ? cfg->width : 1;
    f->logistic = logistic;
    f->tile = image ? 32 : 128;
    ug_status st;
    /* realnvp squeezes between levels, glow at the start of every level. */
    int lv_default = model == FLOW_GLOW ? halvings(f->H, f->W, 2) : 1 + halvings(f->H, f->W, 1);
    if (model == FLOW_GLOW && !lv_default) {
        st = ug_fail(UG_ERR_INVALID_ARG, "model: flow 'glow' squeezes 2 x 2 blocks: height %d "
                     "and width %d must be even", f->H, f->W);
        flow_free(f);
        return st;
    }
    int levels = cfg->levels ? cfg->levels : lv_default;
    if (model == FLOW_NICE) {
        int hidden = exact_nice || !cfg->hidden ? 1000 : cfg->hidden;
        int depth = exact_nice || !cfg->depth ? 5 : cfg->depth;
        int K = exact_nice || !cfg->couplings ? 4 : cfg->couplings;
        st = build_nice(f, ps, hidden, depth, K);
    } else if (model == FLOW_REALNVP) {
        int hidden = cfg->hidden ? cfg->hidden : image ? 32 : 128;
        int depth = cfg->depth ? cfg->depth : 2;
        int K = cfg->couplings ? cfg->couplings : image ? 3 : 8;
        st = build_realnvp(f, ps, hidden, depth, K, image ? levels : 1);
    } else {
        st = build_glow(f, ps, cfg->hidden ? cfg->hidden : 32, cfg->couplings ? cfg->couplings : 4,
                        levels);
    }
    /* The latent parts: each factor-out's removed channels, then the final state. */
    int64_t rest = f->D;
    for (int i = 0; i < f->nl && !st; i++)
        if (f->layers[i].kind == UG_FL_FACTOR) {
            const ug_fl_layer *L = &f->layers[i];
            if (f->nparts == FLOW_MAX_PARTS - 1) {
                st = ug_fail(UG_ERR_INVALID_ARG, "model: flow levels %d, at most %d", levels,
                             FLOW_MAX_PARTS - 1);
                break;
            }
            f->part[f->nparts++] = (int64_t)(L->C / 2) * L->H * L->W;
            rest -= (int64_t)(L->C / 2) * L->H * L->W;
        }
    f->part[f->nparts++] = rest;
    if (!st) st = ug_ctx_create(&f->ctx, 0);
    if (st) {
        flow_free(f);
        return st;
    }
    *impl = f;
    return UG_OK;
}

static ug_status flow_init(void *impl, ug_params *ps, uint64_t seed) {
    flow *f = impl;
    (void)ps;
    (void)seed;
    for (int i = 0; i < f->nl; i++) ug_fl_init(&f->layers[i], FLOW_LU_KEY, (uint64_t)i, f->model != FLOW_NICE);
    return UG_OK;
}

/* ---------------------------------------------------------------- the map and its inverse */
/* z = f(x) (B, D) and *logdet (B) on ctx; x (B, D). */
static ug_tensor *flow_forward(flow *f, ug_ctx *ctx, ug_tensor *x, ug_tensor **logdet,
                               int data_init) {
    int64_t B = x->shape[0];
    ug_tensor *ld = ug_tensor_zeros(ctx, 1, (int64_t[]){B}), *zo = NULL;
    if (f->model == FLOW_NICE) {
        ug_tensor *xe = ug_flow_gather(ctx, x, f->even, f->ne), *xo = ug_flow_gather(ctx, x, f->odd, f->no);
        for (int i = 0; i < f->couplings; i++) {
            if (i % 2 == 0) xo = ug_fl_additive_halves(ctx, &f->layers[i], xe, xo, 0);
            else xe = ug_fl_additive_halves(ctx, &f->layers[i], xo, xe, 0);
        }
        ug_tensor *y = ug_flow_merge(ctx, xe, f->even, xo, f->odd);
        ug_tensor *z = ug_fl_forward(ctx, &f->layers[f->couplings], y, &ld, &zo, 0);
        *logdet = ld;
        return z;
    }
    ug_tensor *h = f->image ? ug_reshape(ctx, x, 4, (int64_t[]){B, f->C, f->H, f->W}) : x;
    ug_tensor *parts[FLOW_MAX_PARTS];
    int np = 0;
    for (int i = 0; i < f->nl; i++) {
        zo = NULL;
        h = ug_fl_forward(ctx, &f->layers[i], h, &ld, &zo, data_init);
        if (zo) parts[np++] = ug_reshape(ctx, zo, 2, (int64_t[]){B, -1});
    }
    parts[np++] = ug_reshape(ctx, h, 2, (int64_t[]){B, -1});
    *logdet = ld;
    return np == 1 ? parts[0] : ug_concat(ctx, parts, np, 1);
}

/* x = f^-1(z) (B, D), without gradients. */
static ug_tensor *flow_inverse(flow *f, ug_ctx *ctx, ug_tensor *z) {
    int64_t B = z->shape[0];
    int old = ug_ctx_set_grad(ctx, 0);
    ug_tensor *x;
    if (f->model == FLOW_NICE) {
        ug_tensor *y = ug_fl_inverse(ctx, &f->layers[f->couplings], z, NULL);
        ug_tensor *xe = ug_flow_gather(ctx, y, f->even, f->ne), *xo = ug_flow_gather(ctx, y, f->odd, f->no);
        for (int i = f->couplings - 1; i >= 0; i--) {
            if (i % 2 == 0) xo = ug_fl_additive_halves(ctx, &f->layers[i], xe, xo, 1);
            else xe = ug_fl_additive_halves(ctx, &f->layers[i], xo, xe, 1);
        }
        x = ug_flow_merge(ctx, xe, f->even, xo, f->odd);
    } else {
        ug_tensor *parts[FLOW_MAX_PARTS];
        if (f->nparts == 1) parts[0] = z;
        else ug_split(ctx, z, 1, f->part, f->nparts, parts);
        int j = f->nparts - 1;
        const ug_fl_layer *last = &f->layers[f->nl - 1];
        int C, H, W;
        ug_fl_out_shape(last, &C, &H, &W);
        ug_tensor *h = f->image ? ug_reshape(ctx, parts[j--], 4, (int64_t[]){B, C, H, W}) : parts[j--];
        for (int i = f->nl - 1; i >= 0; i--) {
            const ug_fl_layer *L = &f->layers[i];
            ug_tensor *zin = NULL;
            if (L->kind == UG_FL_FACTOR)
                zin = ug_reshape(ctx, parts[j--], 4, (int64_t[]){B, L->C / 2, L->H, L->W});
            h = ug_fl_inverse(ctx, L, h, zin);
        }
        x = ug_reshape(ctx, h, 2, (int64_t[]){B, f->D});
    }
    ug_ctx_set_grad(ctx, old);
    return x;
}

/* log p(x) (B) on ctx. */
static ug_tensor *flow_logp(flow *f, ug_ctx *ctx, ug_tensor *x) {
    ug_tensor *ld;
    ug_tensor *z = flow_forward(f, ctx, x, &ld, 0);
    return ug_add(ctx, ug_flow_prior_logp(ctx, z, f->logistic), ld);
}

/* ---------------------------------------------------------------- family interface */
static ug_status flow_data_init(void *impl, ug_ctx *ctx, const float *x, int64_t B) {
    flow *f = impl;
    if (f->model != FLOW_GLOW) return UG_OK;
    int old = ug_ctx_set_grad(ctx, 0);
    ug_tensor *ld, *xt = ug_tensor_from(ctx, 2, (int64_t[]){B, f->D}, x);
    flow_forward(f, ctx, xt, &ld, 1);
    ug_ctx_set_grad(ctx, old);
    ug_ctx_reset(ctx);
    return UG_OK;
}

static ug_status flow_loss(void *impl, ug_ctx *ctx, const float *x, int64_t B, uint64_t seed,
                           uint64_t first_stream, int64_t step, ug_tensor **loss) {
    flow *f = impl;
    (void)seed;
    (void)first_stream;
    (void)step;
    if (B < 1) return ug_fail(UG_ERR_INVALID_ARG, "flow: loss on %lld examples", (long long)B);
    ug_tensor *xt = ug_tensor_from(ctx, 2, (int64_t[]){B, f->D}, x);
    *loss = ug_affine(ctx, ug_mean_all(ctx, flow_logp(f, ctx, xt)), -1.0f, 0.0f);
    return UG_OK;
}

static ug_status flow_nll(void *impl, const ug_nll_cfg *c, int64_t n, const float *x,
                          double *nll) {
    flow *f = impl;
    (void)c;
    ug_ctx *ctx = f->ctx;
    int old = ug_ctx_set_grad(ctx, 0);
    int64_t T = f->tile, D = f->D;
    for (int64_t i0 = 0; i0 < n; i0 += T) {
        int64_t rows = n - i0 < T ? n - i0 : T;
        ug_tensor *xt = ug_tensor_zeros(ctx, 2, (int64_t[]){T, D});
        memcpy(xt->data, x + i0 * D, (size_t)(rows * D) * sizeof *x);
        ug_tensor *lp = flow_logp(f, ctx, xt);
        for (int64_t r = 0; r < rows; r++) nll[i0 + r] = -(double)lp->data[r];
        ug_ctx_reset(ctx);
    }
    ug_ctx_set_grad(ctx, old);
    return UG_OK;
}

static ug_status flow_sample(void *impl, int64_t n, double temperature, uint64_t seed,
                             uint64_t first_stream, float *out) {
    flow *f = impl;
    if (!(temperature > 0))
        return ug_fail(UG_ERR_INVALID_ARG, "sample: temperature %g, expected > 0", temperature);
    ug_ctx *ctx = f->ctx;
    int old = ug_ctx_set_grad(ctx, 0);
    int64_t T = f->tile, D = f->D;
    float tf = (float)temperature;
    for (int64_t i0 = 0; i0 < n; i0 += T) {
        int64_t rows = n - i0 < T ? n - i0 : T;
        ug_tensor *z = ug_tensor_zeros(ctx, 2, (int64_t[]){T, D});
        if (f->logistic) {
            for (int64_t r = 0; r < rows; r++) {
                ug_rng g = ug_rng_make(seed, first_stream + (uint64_t)(i0 + r), 0);
                float *zr = z->data + r * D;
                ug_rng_uniform(&g, zr, D);
                for (int64_t j = 0; j < D; j++) zr[j] = tf * logf(zr[j] / (1.0f - zr[j]));
            }
        } else {
            ug_rng_normal_rows(seed, first_stream + (uint64_t)i0, 0, z->data, rows, D);
            for (int64_t j = 0; j < rows * D; j++) z->data[j] *= tf;
        }
        ug_tensor *xt = flow_inverse(f, ctx, z);
        memcpy(out + i0 * D, xt->data, (size_t)(rows * D) * sizeof *out);
        ug_ctx_reset(ctx);
    }
    ug_ctx_set_grad(ctx, old);
    return UG_OK;
}

/* Same tiles as nll and sample: results never depend on n. */
ug_status ug_flow_encode(void *impl, int64_t n, const float *x, float *z, double *logdet) {
    flow *f = impl;
    ug_ctx *ctx = f->ctx;
    int old = ug_ctx_set_grad(ctx, 0);
    int64_t T = f->tile, D = f->D;
    for (int64_t i0 = 0; i0 < n; i0 += T) {
        int64_t rows = n - i0 < T ? n - i0 : T;
        ug_tensor *ld, *xt = ug_tensor_zeros(ctx, 2, (int64_t[]){T, D});
        memcpy(xt->data, x + i0 * D, (size_t)(rows * D) * sizeof *x);
        ug_tensor *zt = flow_forward(f, ctx, xt, &ld, 0);
        memcpy(z + i0 * D, zt->data, (size_t)(rows * D) * sizeof *z);
        for (int64_t r = 0; r < rows && logdet; r++) logdet[i0 + r] = ld->data[r];
        ug_ctx_reset(ctx);
    }
    ug_ctx_set_grad(ctx, old);
    return UG_OK;
}

ug_status ug_flow_decode(void *impl, int64_t n, const float *z, float *x) {
    flow *f = impl;
    ug_ctx *ctx = f->ctx;
    int64_t T = f->tile, D = f->D;
    for (int64_t i0 = 0; i0 < n; i0 += T) {
        int64_t rows = n - i0 < T ? n - i0 : T;
        ug_tensor *zt = ug_tensor_zeros(ctx, 2, (int64_t[]){T, D});
        memcpy(zt->data, z + i0 * D, (size_t)(rows * D) * sizeof *z);
        ug_tensor *xt = flow_inverse(f, ctx, zt);
        memcpy(x + i0 * D, xt->data, (size_t)(rows * D) * sizeof *x);
        ug_ctx_reset(ctx);
    }
    return UG_OK;
}

const ug_lfamily ug_flow_family = {
    .name = "flow",
    .models = "nice, nice-mnist, realnvp, glow",
    .declare = flow_declare,
    .init = flow_init,
    .data_init = flow_data_init,
    .loss = flow_loss,
    .nll = flow_nll,
    .sample = flow_sample,
    .free_impl = flow_free,
};
