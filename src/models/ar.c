/* ar.c — the ar family: autoregressive models of binary vectors (SPEC section 8),
 *   p(x) = prod_i p(x_i | x_<i),  p(x_i = 1 | x_<i) = sigmoid(logit_i(x_<i)),
 *   NLL(x) = sum_i BCE(logit_i, x_i) = sum_i softplus(logit_i) - x_i logit_i  (nats).
 *
 * FVSBN:  logit_i = b_i + sum_{j<i} W_ij x_j: one masked linear layer, strictly lower-triangular
 *         mask, run as a prefix linear (row i sees columns 0..i-1). Parameters fc.weight (d, d),
 *         fc.bias (d).
 * NADE (Larochelle & Murray 2011): a_0 = c, logit_i = b_i + V_i . sigmoid(a_i),
 *         a_{i+1} = a_i + W[:, i] x_i, O(d H) per example through the fused op in ops/nade.c
 *         (training, evaluation and sampling alike). Parameters in.weight = W (H, d),
 *         in.bias = c (H), out.weight = V (d, H), out.bias = b (d). hidden default 500.
 * MADE (Germain et al. 2015): a masked MLP, ReLU between layers, hidden_list widths (default
 *         hidden, default 500). Parameters fc1.weight (H1, d), fc1.bias, fc2 ... fc{L+1}.weight
 *         (d, H_L), fc{L+1}.bias (d): one hidden layer is exactly ../shared/peers/made.py's
 *         fc1 / fc2. direct = 1 adds direct.weight (d, d) (no bias: fc{L+1}.bias is one).
 *   Degrees: inputs and outputs m_0(j) = position of variable j in the ordering (1..d); hidden
 *   layer l draws m_l(k) uniformly from {min_k' m_{l-1}(k'), ..., d-1}; masks
 *   hidden 1[m_l(k) >= m_{l-1}(k')], output 1[m_0(j) > m_L(k)], direct 1[m_0(j) > m_0(i)].
 *   Mask k (0..K-1) is a pure function of the configuration and k (Philox with a fixed key,
 *   AR_MASK_SEED, streams 2k (the order) and 2k + 1 (sub l: layer l's degrees)), so a
 *   checkpoint rebuilds its masks from its configuration alone, whatever seed initialized it.
 *   Mask 0 with the natural order (order_random 0) uses the deterministic degrees of
 *   peers/made.py, m_l(k) = 1 + floor(k (d - 1) / H_l), in every hidden layer: masks 1, one
 *   layer and no direct connections give the peer's network exactly. order_random 1 draws a
 *   random ordering (Fisher-Yates) for every mask, mask 0 included.
 *   Training step s uses mask s mod K (mask_cycle 1) or floor(u K) with u the uniform at
 *   Philox (AR_MASK_SEED, stream AR_PICK_STREAM + s) (mask_cycle 0: resampled per minibatch,
 *   among the same K masks, so the ensemble evaluates the masks that were trained).
 *   dropout p > 0: inverted dropout on every hidden layer's ReLU output in the training loss
 *   only (evaluation and sampling use the whole network).
 *   Every layer runs as a prefix linear (ops/linear.c): the inputs in position order and each
 *   hidden layer's units sorted by degree (stable), so that each masked weight row is a prefix
 *   of the previous layer's sorted units, and the GEMMs skip the masked-out half. Sampling uses
 *   the same packed layers; only ug_ar_made_mask builds float masks.
 *   nll is the ensemble -log((1/K) sum_k p_k(x)) over K = ug_nll_cfg.ensemble (0: the model's
 *   masks; at most them), the logsumexp in double. Sampling draws the mixture: example i picks
 *   its mask from stream first_stream + i (sub 1), then samples ancestrally in its ordering.
 *
 * Every model samples ancestrally: example i's uniforms u (d) are Philox (seed,
 * first_stream + i, sub 0), x_j = 1[u_j < sigmoid(logit_j)]. Temperature is ignored.
 * Evaluation runs the network on tiles of AR_TILE rows (the last padded) and MADE's sampling
 * runs each row on its own, so an example's result never depends on the other rows of the call. */
#include "models/ar.h"
#include "ops/ar_ops.h"
#include "ops/embed_ops.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/shape.h"
#include <math.h>

#define AR_MAX_LAYERS 8                 /* MADE hidden layers */
#define AR_TILE 64                      /* rows per evaluation network call */
#define AR_NLL_CHUNK 4096               /* rows evaluated per MADE mask pack */
#define AR_MASK_SEED 0x4D414445ull      /* "MADE" */
#define AR_PICK_STREAM (1ull << 40)     /* per-step mask choice, apart from the 2k, 2k+1 streams */
#define AR_DEFAULT_HIDDEN 500

typedef enum { AR_FVSBN, AR_NADE, AR_MADE } ar_kind;

/* One MADE connectivity. Training and evaluation run every layer as a prefix linear: the units
 * of each layer sorted by degree (inputs and outputs by position), so that every masked weight
 * row is a prefix of the previous layer's sorted units. The float masks (out, in) are built only
 * for ug_ar_made_mask (the tests' view of a mask), into buffers allocated on first use. */
typedef struct made_maskset {
    int k;                              /* the connectivity held (-1: none yet) */
    int fk;                             /* the one whose float masks m[], direct hold (-1: none) */
    float *m[AR_MAX_LAYERS + 1];        /* layer l: (out, in) */
    float *direct;                      /* (d, d) or NULL */
    int64_t *order;                     /* (d): order[p] = the variable at position p */
    int32_t *ord32;                     /* (d): the same, the rows and columns of the prefix layers */
    int32_t *pos32;                     /* (d): pos32[order[p]] = p */
    int32_t *perm[AR_MAX_LAYERS];       /* hidden layer l's units by degree (stable) */
    int32_t *sdeg[AR_MAX_LAYERS];       /* their degrees, nondecreasing */
    int32_t *len[AR_MAX_LAYERS + 2];    /* prefix lengths of layer l's sorted rows (l = nl: the
                                         * outputs by position; nl + 1: direct, len[p] = p) */
} made_maskset;

typedef struct ar_impl {
    ar_kind kind;
    int d;
    int nl;                             /* made: hidden layers */
    int width[AR_MAX_LAYERS];           /* made: hidden widths; nade: width[0] = H */
    int K, cycle, order_random, direct;
    float dropout;                      /* made: dropout on the hidden units while training */
    /* fvsbn: w[0], b[0]; nade: w[0] = W, b[0] = c, w[1] = V, b[1] = b; made: layers 0..nl */
    ug_tensor *w[AR_MAX_LAYERS + 1], *b[AR_MAX_LAYERS + 1];
    ug_tensor *wd;                      /* made: direct.weight */
    int32_t *tri;                       /* fvsbn: rows = columns = 0..d-1, then len[i] = i: the
                                         * strictly lower triangle as a prefix linear */
    int64_t *natural;                   /* (d) identity ordering */
    made_maskset train, eval;           /* training keeps its mask while eval builds others */
    int32_t *deg;                       /* (d + sum widths) degrees while building a mask */
    int32_t *cnt;                       /* (d + 1) degree histogram while building a mask */
    ug_ctx *ctx;                        /* evaluation and sampling */
} ar_impl;

/* ---------------------------------------------------------------- MADE's masks */
/* Connectivity k's ordering (ord, d) and degrees: deg = m_0 (d, by variable), then each hidden
 * layer's (width[l], by unit). */
static void made_degrees(const ar_impl *a, int k, int64_t *ord, int32_t *deg) {
    int64_t d = a->d;
    if (a->order_random) {
        ug_data_permutation(ord, d, AR_MASK_SEED, 2 * (uint64_t)k);
    } else {
        for (int64_t p = 0; p < d; p++) ord[p] = p;
    }
    int32_t *cur = deg + d;
    for (int64_t p = 0; p < d; p++) deg[ord[p]] = (int32_t)(p + 1);
    int32_t prev_min = 1;
    for (int l = 0; l < a->nl; l++) {
        int64_t H = a->width[l];
        if (!a->order_random && k == 0) {
            for (int64_t j = 0; j < H; j++) cur[j] = (int32_t)(1 + j * (d - 1) / H);
        } else {
            /* Uniform on {lo, ..., d - 1}; d = 1 leaves no valid degree: 0 (sees nothing). */
            int64_t lo = prev_min, hi = d - 1;
            ug_rng r = ug_rng_make(AR_MASK_SEED, 2 * (uint64_t)k + 1, (uint32_t)l);
            double u[64];
            for (int64_t j0 = 0; j0 < H; j0 += 64) {
                int64_t n = H - j0 < 64 ? H - j0 : 64;
                ug_rng_uniform_f64(&r, u, n);
                for (int64_t j = 0; j < n; j++)
                    cur[j0 + j] = hi < lo ? (int32_t)(hi > 0 ? hi : 0)
                                          : (int32_t)(lo + (int64_t)(u[j] * (double)(hi - lo + 1)));
            }
        }
        prev_min = cur[0];
        for (int64_t j = 0; j < H; j++)
            if (cur[j] < prev_min) prev_min = cur[j];
        cur += H;
    }
}

/* cnt[v] = the number of units of deg[0..n) with degree <= v, v = 0..d. */
static void degree_cdf(int32_t *cnt, const int32_t *deg, int64_t n, int64_t d) {
    memset(cnt, 0, (size_t)(d + 1) * sizeof *cnt);
    for (int64_t j = 0; j < n; j++) cnt[deg[j]]++;
    for (int64_t v = 1; v <= d; v++) cnt[v] += cnt[v - 1];
}

/* The prefix layers of connectivity k: a layer's row r (its units sorted by degree) sees the
 * previous layer's units of degree <= its own (hidden) or < its own (outputs, direct), which
 * are the first len[r] of that layer's sorted units. */
static void made_build(const ar_impl *a, made_maskset *ms, int k) {
    if (ms->k == k) return;
    int64_t d = a->d;
    made_degrees(a, k, ms->order, a->deg);
    for (int64_t p = 0; p < d; p++) {
        ms->ord32[p] = (int32_t)ms->order[p];
        ms->pos32[ms->order[p]] = (int32_t)p;
    }
    const int32_t *prev = a->deg, *cur = a->deg + d;
    int64_t nprev = d;
    int32_t *cnt = a->cnt;
    for (int l = 0; l < a->nl; l++) {
        int64_t H = a->width[l];
        degree_cdf(cnt, prev, nprev, d);
        for (int64_t j = 0; j < H; j++) ms->len[l][j] = cnt[cur[j]];
        /* Sort the units by degree (counting sort, stable) and their lengths with them. */
        degree_cdf(cnt, cur, H, d);
        int32_t *perm = ms->perm[l], *len = ms->len[l], *tmp = a->cnt + d + 1;
        for (int64_t j = H - 1; j >= 0; j--) {
            int32_t r = --cnt[cur[j]];
            perm[r] = (int32_t)j;
            ms->sdeg[l][r] = cur[j];
            tmp[r] = len[j];
        }
        memcpy(len, tmp, (size_t)H * sizeof *len);
        prev = cur;
        cur += H;
        nprev = H;
    }
    degree_cdf(cnt, prev, nprev, d);
    for (int64_t p = 0; p < d; p++) ms->len[a->nl][p] = cnt[p];      /* degree < p + 1 */
    if (a->direct)
        for (int64_t p = 0; p < d; p++) ms->len[a->nl + 1][p] = (int32_t)p;
    ms->k = k;
}

/* One row of a float mask: dst[i] = 1[dj >= deg[i]] (strict: dj > deg[i]). Branch-free, so it
 * vectorizes: with `? 1.0f : 0.0f` GCC emitted a compare and a branch per entry. */
static inline void mask_row(float *restrict dst, int32_t dj, const int32_t *restrict deg,
                            int64_t n, const int strict) {
    if (strict) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) dst[i] = (float)(dj > deg[i]);
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) dst[i] = (float)(dj >= deg[i]);
    }
}

/* The float masks of connectivity k (ug_ar_made_mask), allocated on first use. */
static ug_status made_build_float(const ar_impl *a, made_maskset *ms, int k) {
    made_build(a, ms, k);
    if (ms->fk == k) return UG_OK;
    int64_t d = a->d, in = d;
    for (int l = 0; l <= a->nl; l++) {
        int64_t out = l < a->nl ? a->width[l] : d;
        if (!ms->m[l] && !(ms->m[l] = malloc((size_t)(out * in) * sizeof(float))))
            return ug_fail(UG_ERR_NOMEM, "made: out of memory for a (%lld, %lld) mask",
                           (long long)out, (long long)in);
        in = out;
    }
    if (a->direct && !ms->direct && !(ms->direct = malloc((size_t)(d * d) * sizeof(float))))
        return ug_fail(UG_ERR_NOMEM, "made: out of memory for the direct mask");
    made_degrees(a, k, ms->order, a->deg);
    const int32_t *m0 = a->deg, *prev = m0, *cur = a->deg + d;
    int64_t nprev = d;
    for (int l = 0; l < a->nl; l++) {
        int64_t H = a->width[l];
        float *m = ms->m[l];
#pragma omp parallel for schedule(static) if (H * nprev >= UG_PAR_MIN)
        for (int64_t j = 0; j < H; j++) mask_row(m + j * nprev, cur[j], prev, nprev, 0);
        prev = cur;
        cur += H;
        nprev = H;
    }
    float *mo = ms->m[a->nl];
#pragma omp parallel for schedule(static) if (d * nprev >= UG_PAR_MIN)
    for (int64_t j = 0; j < d; j++) mask_row(mo + j * nprev, m0[j], prev, nprev, 1);
    if (a->direct)
#pragma omp parallel for schedule(static) if (d * d >= UG_PAR_MIN)
        for (int64_t j = 0; j < d; j++) mask_row(ms->direct + j * d, m0[j], m0, d, 1);
    ms->fk = k;
    return UG_OK;
}

int ug_ar_step_mask(const void *impl, int64_t step) {
    const ar_impl *a = impl;
    if (a->kind != AR_MADE || a->K == 1) return 0;
    if (a->cycle) return (int)(((uint64_t)step) % (uint64_t)a->K);
    ug_rng r = ug_rng_make(AR_MASK_SEED, AR_PICK_STREAM + (uint64_t)step, 0);
    double u;
    ug_rng_uniform_f64(&r, &u, 1);
    int k = (int)(u * a->K);
    return k < a->K ? k : a->K - 1;
}

/* ---------------------------------------------------------------- the networks */
/* Training's dropout on MADE's hidden units: each example's masks come from its own stream
 * (first_stream + row), sub-stream l + 1 for hidden layer l, so a batch split over threads or
 * MPI ranks drops the same units. NULL in evaluation and sampling. */
typedef struct { float p; uint64_t seed, first_stream; } ar_dropout;

static ug_tensor *forward(ar_impl *a, ug_ctx *ctx, ug_tensor *x, const made_maskset *ms,
                          const ar_dropout *dr) {
    switch (a->kind) {
    case AR_FVSBN:
        return ug_prefix_linear(ctx, x, a->w[0], a->b[0], a->tri, a->tri, a->tri + a->d);
    case AR_NADE:
        return ug_add(ctx, ug_nade_logits(ctx, x, a->w[0], a->b[0], a->w[1]), a->b[1]);
    case AR_MADE:
    default: {
        /* In position order: the inputs, every hidden layer's units by degree, the logits. */
        int64_t d = a->d;
        ug_tensor *xs = a->order_random ? ug_gather_cols(ctx, x, ms->ord32, d) : x, *h = xs;
        const int32_t *cols = ms->ord32;
        for (int l = 0; l < a->nl; l++) {
            h = ug_relu(ctx, ug_prefix_linear(ctx, h, a->w[l], a->b[l], ms->perm[l], cols,
                                              ms->len[l]));
            if (dr && dr->p > 0)
                h = ug_dropout_rows(ctx, h, dr->p, dr->seed, dr->first_stream, (uint32_t)l + 1);
            cols = ms->perm[l];
        }
        ug_tensor *out = ug_prefix_linear(ctx, h, a->w[a->nl], a->b[a->nl], ms->ord32, cols,
                                          ms->len[a->nl]);
        if (a->direct)
            out = ug_add(ctx, out, ug_prefix_linear(ctx, xs, a->wd, NULL, ms->ord32, ms->ord32,
                                                    ms->len[a->nl + 1]));
        return a->order_random ? ug_gather_cols(ctx, out, ms->pos32, d) : out;
    }
    }
}

ug_tensor *ug_ar_logits(void *impl, ug_ctx *ctx, ug_tensor *x, int mask) {
    ar_impl *a = impl;
    if (a->kind == AR_MADE) made_build(a, &a->eval, mask);
    return forward(a, ctx, x, &a->eval, NULL);
}

const int64_t *ug_ar_order(void *impl, int mask) {
    ar_impl *a = impl;
    if (a->kind != AR_MADE) return a->natural;
    made_build(a, &a->eval, mask);
    return a->eval.order;
}

const float *ug_ar_made_mask(void *impl, int mask, int layer) {
    ar_impl *a = impl;
    if (a->kind != AR_MADE || layer < -1 || layer > a->nl) return NULL;
    if (made_build_float(a, &a->eval, mask)) return NULL;
    return layer < 0 ? a->eval.direct : a->eval.m[layer];
}

/* ---------------------------------------------------------------- the family table */
static ug_status check_binary(const char *what, const float *x, int64_t n, int64_t d) {
    /* A branch-free count first (it runs every training step); the loop below only names the
     * culprit. */
    int64_t bad = 0;
#pragma omp simd reduction(+ : bad)
    for (int64_t j = 0; j < n * d; j++) bad += (x[j] != 0.0f) & (x[j] != 1.0f);
    for (int64_t j = 0; bad && j < n * d; j++)
        if (x[j] != 0.0f && x[j] != 1.0f)
            return ug_fail(UG_ERR_INVALID_ARG, "%s: example %lld, dimension %lld is %g; the ar "
                           "family models binary vectors (0 or 1: binarize the data)", what,
                           (long long)(j / d), (long long)(j % d), (double)x[j]);
    return UG_OK;
}

static ug_status add_param(ug_params *ps, ug_tensor **t, const char *mod, const char *what,
                           int ndim, int64_t d0, int64_t d1) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", mod, what);
    *t = ug_params_add(ps, name, ndim, (int64_t[]){d0, d1});
    return *t ? UG_OK : UG_ERR_INVALID_ARG;   /* ug_params_add set the message */
}

static void ar_free(void *impl) {
    ar_impl *a = impl;
    if (!a) return;
    made_maskset *sets[2] = {&a->train, &a->eval};
    for (int s = 0; s < 2; s++) {
        for (int l = 0; l <= AR_MAX_LAYERS; l++) free(sets[s]->m[l]);
        for (int l = 0; l < AR_MAX_LAYERS; l++) free(sets[s]->perm[l]);
        for (int l = 0; l < AR_MAX_LAYERS; l++) free(sets[s]->sdeg[l]);
        for (int l = 0; l < AR_MAX_LAYERS + 2; l++) free(sets[s]->len[l]);
        free(sets[s]->direct);
        free(sets[s]->order);
        free(sets[s]->ord32);
        free(sets[s]->pos32);
    }
    free(a->tri);
    free(a->natural);
    free(a->deg);
    free(a->cnt);
    ug_ctx_free(a->ctx);
    free(a);
}

static ug_status alloc_maskset(const ar_impl *a, made_maskset *ms) {
    int64_t d = a->d;
    ms->k = ms->fk = -1;
    for (int l = 0; l <= a->nl + 1; l++) {
        int64_t n = l < a->nl ? a->width[l] : d;
        if (!(ms->len[l] = malloc((size_t)n * sizeof(int32_t)))) return UG_ERR_NOMEM;
        if (l < a->nl && (!(ms->perm[l] = malloc((size_t)n * sizeof(int32_t))) ||
                          !(ms->sdeg[l] = malloc((size_t)n * sizeof(int32_t)))))
            return UG_ERR_NOMEM;
    }
    if (!(ms->order = malloc((size_t)d * sizeof(int64_t)))) return UG_ERR_NOMEM;
    if (!(ms->ord32 = malloc((size_t)d * sizeof(int32_t)))) return UG_ERR_NOMEM;
    if (!(ms->pos32 = malloc((size_t)d * sizeof(int32_t)))) return UG_ERR_NOMEM;
    return UG_OK;
}

static ug_status ar_declare(const ug_model_cfg *cfg, ug_params *ps, void **impl) {
    *impl = NULL;
    ar_kind kind;
    if (!strcmp(cfg->net, "fvsbn")) kind = AR_FVSBN;
    else if (!strcmp(cfg->net, "nade")) kind = AR_NADE;
    else if (!strcmp(cfg->net, "made")) kind = AR_MADE;
    else
        return ug_fail(UG_ERR_INVALID_ARG, "model: net '%s' is not an ar model, expected fvsbn, "
                       "nade or made", cfg->net);
    int64_t d = cfg->data_dim;
    if (d < 1) return ug_fail(UG_ERR_INVALID_ARG, "model: data_dim %lld, expected >= 1", (long long)d);
    if (cfg->masks < 0)
        return ug_fail(UG_ERR_INVALID_ARG, "model: masks %d, expected >= 1 (0: 1)", cfg->masks);
    if (kind != AR_MADE && (cfg->masks > 1 || cfg->order_random || cfg->direct))
        return ug_fail(UG_ERR_INVALID_ARG, "model: masks %d, order_random %d, direct %d: only made "
                       "takes them (%s has one fixed natural order)", cfg->masks,
                       cfg->order_random, cfg->direct, cfg->net);
    if (cfg->dropout != 0 && kind != AR_MADE)
        return ug_fail(UG_ERR_INVALID_ARG, "model: dropout %g: of the ar models only made takes it",
                       cfg->dropout);
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return ug_fail(UG_ERR_INVALID_ARG, "model: dropout %g, expected in [0, 1)", cfg->dropout);
    ar_impl *a = calloc(1, sizeof *a);
    if (!a) return ug_fail(UG_ERR_NOMEM, "model: out of memory");
    a->kind = kind;
    a->d = (int)d;
    a->K = cfg->masks > 0 ? cfg->masks : 1;
    a->cycle = cfg->mask_cycle != 0;
    a->order_random = cfg->order_random != 0;
    a->direct = cfg->direct != 0;
    a->dropout = (float)cfg->dropout;
    ug_status st = UG_OK;
    if (kind != AR_FVSBN) {
        int dflt = cfg->hidden > 0 ? cfg->hidden : AR_DEFAULT_HIDDEN;
        st = ug_parse_widths("model: hidden_list", cfg->hidden_list, dflt, a->width, AR_MAX_LAYERS,
                             &a->nl);
        if (!st && kind == AR_NADE && a->nl != 1)
            st = ug_fail(UG_ERR_INVALID_ARG, "model: hidden_list '%s': nade has one hidden layer",
                         cfg->hidden_list);
    }
    a->natural = malloc((size_t)d * sizeof *a->natural);
    if (!st && !a->natural) st = ug_fail(UG_ERR_NOMEM, "model: out of memory");
    for (int64_t j = 0; !st && j < d; j++) a->natural[j] = j;
    if (!st && kind == AR_FVSBN) {
        st = add_param(ps, &a->w[0], "fc", "weight", 2, d, d);
        if (!st) st = add_param(ps, &a->b[0], "fc", "bias", 1, d, 0);
        a->tri = malloc((size_t)(2 * d) * sizeof *a->tri);
        if (!st && !a->tri) st = ug_fail(UG_ERR_NOMEM, "model: out of memory");
        for (int64_t j = 0; !st && j < d; j++) a->tri[j] = a->tri[d + j] = (int32_t)j;
    } else if (!st && kind == AR_NADE) {
        int64_t H = a->width[0];
        st = add_param(ps, &a->w[0], "in", "weight", 2, H, d);
        if (!st) st = add_param(ps, &a->b[0], "in", "bias", 1, H, 0);
        if (!st) st = add_param(ps, &a->w[1], "out", "weight", 2, d, H);
        if (!st) st = add_param(ps, &a->b[1], "out", "bias", 1, d, 0);
    } else if (!st) {
        int64_t in = d, sum = d;
        char mod[16];
        for (int l = 0; l <= a->nl && !st; l++) {
            int64_t out = l < a->nl ? a->width[l] : d;
            snprintf(mod, sizeof mod, "fc%d", l + 1);
            st = add_param(ps, &a->w[l], mod, "weight", 2, out, in);
            if (!st) st = add_param(ps, &a->b[l], mod, "bias", 1, out, 0);
            if (l < a->nl) sum += out;
            in = out;
        }
        if (!st && a->direct) st = add_param(ps, &a->wd, "direct", "weight", 2, d, d);
        if (!st) st = alloc_maskset(a, &a->train);
        if (!st) st = alloc_maskset(a, &a->eval);
        if (!st && !(a->deg = malloc((size_t)sum * sizeof *a->deg))) st = UG_ERR_NOMEM;
        int64_t wmax = 0;
        for (int l = 0; l < a->nl; l++) wmax = a->width[l] > wmax ? a->width[l] : wmax;
        if (!st && !(a->cnt = malloc((size_t)(d + 1 + wmax) * sizeof *a->cnt))) st = UG_ERR_NOMEM;
        if (st == UG_ERR_NOMEM) ug_fail(st, "model: out of memory for made's masks");
    }
    if (st) {
        ar_free(a);
        return st;
    }
    *impl = a;
    return UG_OK;
}

static ug_status ar_loss(void *impl, ug_ctx *ctx, const float *x, int64_t B, uint64_t seed,
                         uint64_t first_stream, int64_t step, ug_tensor **loss) {
    ar_impl *a = impl;   /* the exact NLL; seed and first_stream only draw made's dropout */
    if (B < 1) return ug_fail(UG_ERR_INVALID_ARG, "loss: batch of %lld rows, expected >= 1", (long long)B);
    ug_status st = check_binary("loss", x, B, a->d);
    if (st) return st;
    if (a->kind == AR_MADE) made_build(a, &a->train, ug_ar_step_mask(a, step));
    ug_tensor *xt = ug_tensor_from(ctx, 2, (int64_t[]){B, a->d}, x);
    const ar_dropout dr = {a->dropout, seed, first_stream};
    ug_tensor *logits = forward(a, ctx, xt, &a->train, &dr);
    *loss = ug_mean_all(ctx, ug_bce_logits(ctx, logits, xt));
    return UG_OK;
}

/* ---------------------------------------------------------------- MADE's packed layers */
/* Every layer of one connectivity packed once (rows sorted by degree, each row a prefix of the
 * previous layer's sorted units), as the prefix_linear op packs them per call: evaluation runs
 * all its tiles and sampling all its rows through one pack per mask. */
typedef struct made_packed {
    float *wp[AR_MAX_LAYERS + 1];       /* packed fc1 ... fc{L+1}.weight (rows, in) */
    float *wdp;                         /* packed direct.weight (d, d) or NULL */
    ug_prefix_plan pl[AR_MAX_LAYERS + 2];   /* their panels (nl + 1: direct) */
    float *buf;                         /* the one allocation behind wp and wdp */
} made_packed;

static ug_status made_packed_alloc(const ar_impl *a, made_packed *pk) {
    memset(pk, 0, sizeof *pk);
    int64_t wsize = a->direct ? (int64_t)a->d * a->d : 0, in = a->d;
    for (int l = 0; l <= a->nl; l++) {
        int64_t o = l < a->nl ? a->width[l] : a->d;
        wsize += o * in;
        in = o;
    }
    if (!(pk->buf = malloc((size_t)wsize * sizeof *pk->buf)))
        return ug_fail(UG_ERR_NOMEM, "made: out of memory for the packed layers (%lld floats)",
                       (long long)wsize);
    float *p = pk->buf;
    in = a->d;
    for (int l = 0; l <= a->nl; l++) {
        int64_t o = l < a->nl ? a->width[l] : a->d;
        pk->wp[l] = p;
        p += o * in;
        in = o;
    }
    if (a->direct) pk->wdp = p;
    return UG_OK;
}

/* Packs the layers of connectivity ms (built). */
static void made_pack(const ar_impl *a, const made_maskset *ms, made_packed *pk) {
    const int32_t *cols = ms->ord32;
    int64_t in = a->d;
    for (int l = 0; l <= a->nl; l++) {
        int64_t o = l < a->nl ? a->width[l] : a->d;
        const int32_t *rws = l < a->nl ? ms->perm[l] : ms->ord32;
        ug_k_prefix_plan(&pk->pl[l], ms->len[l], o);
        ug_k_prefix_pack(pk->wp[l], a->w[l]->data, in, rws, cols, ms->len[l], &pk->pl[l]);
        cols = rws;
        in = o;
    }
    if (a->direct) {
        ug_k_prefix_plan(&pk->pl[a->nl + 1], ms->len[a->nl + 1], a->d);
        ug_k_prefix_pack(pk->wdp, a->wd->data, a->d, ms->ord32, ms->ord32, ms->len[a->nl + 1],
                         &pk->pl[a->nl + 1]);
    }
}

/* The logits (T, d) of x (T, d) through the packed layers: forward()'s MADE branch without the
 * tape, kernel for kernel (the gathers, the prefix products, ReLU in place, the direct term
 * added), so the values are bit for bit ug_ar_logits'. work: made_work_floats(a, T). */
static int64_t made_max_width(const ar_impl *a) {
    int64_t wmax = 0;
    for (int l = 0; l < a->nl; l++) wmax = a->width[l] > wmax ? a->width[l] : wmax;
    return wmax;
}

static int64_t made_work_floats(const ar_impl *a, int64_t T) {
    return T * (3 * (int64_t)a->d + 2 * made_max_width(a));
}

static void made_packed_logits(const ar_impl *a, const made_maskset *ms, const made_packed *pk,
                               const float *x, int64_t T, float *work, float *logits) {
    int64_t d = a->d, wmax = made_max_width(a);
    float *xs = work, *out = xs + T * d, *dir = out + T * d, *hb[2] = {dir + T * d, dir + T * d + T * wmax};
    if (a->order_random) ug_k_gather_cols_forward(xs, x, ms->ord32, T, d, d);
    const float *xin = a->order_random ? xs : x, *h = xin;
    int64_t in = d;
    for (int l = 0; l < a->nl; l++) {
        int64_t H = a->width[l];
        float *y = hb[l % 2];
        ug_k_prefix_forward(y, h, pk->wp[l], a->b[l]->data, ms->perm[l], T, in, H, &pk->pl[l]);
        ug_k_act_forward(UG_ACT_RELU, y, y, T * H);
        h = y;
        in = H;
    }
    float *o = a->order_random ? out : logits;
    ug_k_prefix_forward(o, h, pk->wp[a->nl], a->b[a->nl]->data, ms->ord32, T, in, d, &pk->pl[a->nl]);
    if (a->direct) {
        ug_k_prefix_forward(dir, xin, pk->wdp, NULL, ms->ord32, T, d, d, &pk->pl[a->nl + 1]);
        for (int64_t j = 0; j < T * d; j++) o[j] = o[j] + dir[j];
    }
    if (a->order_random) ug_k_gather_cols_forward(logits, out, ms->pos32, T, d, d);
}

static ug_status need_ctx(ar_impl *a) { return a->ctx ? UG_OK : ug_ctx_create(&a->ctx, 0); }

/* log p(x) of the rows of one tile, in double from the float logits. */
static void tile_logp(const float *logits, const float *x, int64_t rows, int64_t d, double *lp,
                      int64_t stride) {
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++) {
            double z = logits[r * d + j], t = x[r * d + j];
            s += (z > 0 ? z : 0) - z * t + log1p(exp(-fabs(z)));
        }
        lp[r * stride] = -s;
    }
}

static ug_status ar_nll(void *impl, const ug_nll_cfg *c, int64_t n, const float *x, double *nll) {
    ar_impl *a = impl;
    int64_t d = a->d, T = AR_TILE;
    int E = a->kind == AR_MADE ? (c->ensemble > 0 ? c->ensemble : a->K) : 1;
    if (a->kind == AR_MADE && E > a->K)
        return ug_fail(UG_ERR_INVALID_ARG, "nll: ensemble %d, the model was trained over %d masks "
                       "(expected 1..%d)", E, a->K, a->K);
    if (n < 0) return ug_fail(UG_ERR_INVALID_ARG, "nll: n = %lld", (long long)n);
    ug_status st = check_binary("nll", x, n, d);
    if (!st) st = need_ctx(a);
    if (st) return st;
    /* MADE: mask by mask over chunks of rows, each mask's layers packed once per chunk (a pack
     * per tile and mask was most of the time of a big model's ensemble). */
    const int64_t chunk = a->kind == AR_MADE ? AR_NLL_CHUNK : T;
    double *lp = malloc((size_t)(chunk * E) * sizeof *lp);
    float *xt = malloc((size_t)(2 * T * d) * sizeof *xt), *lg = xt ? xt + T * d : NULL, *work = NULL;
    made_packed pk = {0};
    if (!lp || !xt) st = ug_fail(UG_ERR_NOMEM, "nll: out of memory");
    if (!st && a->kind == AR_MADE) {
        st = made_packed_alloc(a, &pk);
        if (!st && !(work = malloc((size_t)made_work_floats(a, T) * sizeof *work)))
            st = ug_fail(UG_ERR_NOMEM, "nll: out of memory");
    }
    ug_ctx *ctx = a->ctx;
    int old = ug_ctx_set_grad(ctx, 0);
    for (int64_t c0 = 0; !st && c0 < n; c0 += chunk) {
        int64_t cn = n - c0 < chunk ? n - c0 : chunk;
        for (int e = 0; e < E; e++) {
            if (a->kind == AR_MADE) {
                made_build(a, &a->eval, e);
                made_pack(a, &a->eval, &pk);
            }
            /* Tiles of exactly T rows, the last zero-padded. */
            for (int64_t i0 = 0; i0 < cn; i0 += T) {
                int64_t rows = cn - i0 < T ? cn - i0 : T;
                memcpy(xt, x + (c0 + i0) * d, (size_t)(rows * d) * sizeof *x);
                memset(xt + rows * d, 0, (size_t)((T - rows) * d) * sizeof *xt);
                if (a->kind == AR_MADE) {
                    made_packed_logits(a, &a->eval, &pk, xt, T, work, lg);
                    tile_logp(lg, xt, rows, d, lp + i0 * E + e, E);
                } else {
                    ug_tensor *l = ug_ar_logits(a, ctx, ug_tensor_from(ctx, 2, (int64_t[]){T, d}, xt), e);
                    tile_logp(l->data, xt, rows, d, lp + i0 * E + e, E);
                    ug_ctx_reset(ctx);
                }
            }
        }
        for (int64_t r = 0; r < cn; r++) {
            /* -log((1/E) sum_e p_e(x)) = log E - logsumexp_e log p_e(x). */
            const double *l = lp + r * E;
            double mx = l[0], s = 0;
            for (int e = 1; e < E; e++) mx = fmax(mx, l[e]);
            for (int e = 0; e < E; e++) s += exp(l[e] - mx);
            nll[c0 + r] = log((double)E) - mx - log(s);
        }
    }
    ug_ctx_set_grad(ctx, old);
    free(lp);
    free(xt);
    free(work);
    free(pk.buf);
    if (st) return st;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(nll[i]))
            return ug_fail(UG_ERR_NUMERIC, "nll: example %lld has NLL %g", (long long)i, nll[i]);
    return UG_OK;
}

static inline double sigmoid_d(double z) { return 1.0 / (1.0 + exp(-z)); }

/* FVSBN: x_i = 1[u_i < sigmoid(b_i + sum_{j<i} W_ij x_j)], O(d^2) per example. */
static void sample_fvsbn(const ar_impl *a, int64_t n, const float *u, float *out) {
    int64_t d = a->d;
    const float *w = a->w[0]->data, *b = a->b[0]->data;
#pragma omp parallel for schedule(static) if (n * d * d >= UG_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        float *x = out + r * d;
        for (int64_t i = 0; i < d; i++) {
            double z = b[i];
            for (int64_t j = 0; j < i; j++) z += (double)w[i * d + j] * x[j];
            x[i] = u[r * d + i] < sigmoid_d(z) ? 1.0f : 0.0f;
        }
    }
}

/* MADE sampling, mask by mask, in the layout training runs: every layer's weights packed once
 * (rows sorted by degree, each row a prefix of the previous layer's sorted units). A hidden unit
 * of degree m depends on the variables at positions 1..m only, so each row computes it once,
 * as soon as position m is drawn, and the logit of position p + 1 (0-based p) needs only the
 * last layer's units of degree <= p: one network evaluation per sample, whatever the depth,
 * where recomputing the deeper layers at every position cost d of them. Hidden units are float
 * dot products, the logit is summed in double. Rows go in blocks of AR_SAMPLE_ROWS with the
 * positions outermost, so each packed weight row read serves the block, and every row runs on
 * its own: a sample never depends on the other rows of the call. */
#define AR_SAMPLE_ROWS 16

static inline float dot_f(const float *restrict w, const float *restrict h, int64_t n) {
    float z = 0.0f;
#pragma omp simd reduction(+ : z)
    for (int64_t q = 0; q < n; q++) z += w[q] * h[q];
    return z;
}

/* m rows: u (m, d) and x (m, d) by variable; work (m, row), row = the floats of one row's
 * work: xs (d) and every h_l. */
static void made_sample_block(const ar_impl *a, const made_packed *s, int64_t row,
                              const made_maskset *ms, int64_t m, const float *u, float *x,
                              float *work) {
    int64_t d = a->d, next[AR_MAX_LAYERS] = {0}, off[AR_MAX_LAYERS + 1];
    off[0] = 0;                                           /* xs: the sample in position order */
    for (int l = 0; l < a->nl; l++) off[l + 1] = off[l] + (l ? a->width[l - 1] : d);
    const float *bo = a->b[a->nl]->data;
    int64_t HL = a->width[a->nl - 1];
    for (int64_t p = 0; p < d; p++) {
        for (int l = 0; l < a->nl; l++) {
            int64_t H = a->width[l], in = l ? a->width[l - 1] : d;
            const float *bl = a->b[l]->data;
            for (; next[l] < H && ms->sdeg[l][next[l]] <= p; next[l]++) {
                int64_t r = next[l], len = ms->len[l][r];
                const float *wr = s->wp[l] + r * in;
                float bias = bl[ms->perm[l][r]];
                for (int64_t i = 0; i < m; i++) {
                    float *w = work + i * row;
                    float z = dot_f(wr, w + off[l], len) + bias;
                    w[off[l + 1] + r] = z > 0.0f ? z : 0.0f;
                }
            }
        }
        int64_t j = ms->order[p], len = ms->len[a->nl][p];
        const float *wo = s->wp[a->nl] + p * HL, *wd = s->wdp ? s->wdp + p * d : NULL;
        for (int64_t i = 0; i < m; i++) {
            float *w = work + i * row;
            const float *hl = w + off[a->nl];
            double z = bo[j];
            for (int64_t q = 0; q < len; q++) z += (double)wo[q] * hl[q];
            if (wd)
                for (int64_t q = 0; q < p; q++) z += (double)wd[q] * w[q];
            w[p] = u[i * d + j] < sigmoid_d(z) ? 1.0f : 0.0f;
            x[i * d + j] = w[p];
        }
    }
}

static ug_status sample_made(ar_impl *a, int64_t n, uint64_t seed, uint64_t first_stream,
                             const float *u, float *out) {
    int64_t d = a->d, row = d;
    for (int l = 0; l < a->nl; l++) row += a->width[l];
    made_packed s;
    int *mk = malloc((size_t)(n > 0 ? n : 1) * sizeof *mk);
    int64_t *rows = malloc((size_t)(n > 0 ? n : 1) * sizeof *rows);
    ug_status st = made_packed_alloc(a, &s);
    if (!st && (!mk || !rows)) st = ug_fail(UG_ERR_NOMEM, "sample: out of memory");
    for (int64_t i = 0; !st && i < n; i++) {
        mk[i] = 0;
        if (a->K > 1) {
            ug_rng r = ug_rng_make(seed, first_stream + (uint64_t)i, 1);
            double v;
            ug_rng_uniform_f64(&r, &v, 1);
            mk[i] = (int)(v * a->K) < a->K ? (int)(v * a->K) : a->K - 1;
        }
    }
    int failed = 0;
    for (int k = 0; !st && k < a->K; k++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (mk[i] == k) rows[m++] = i;
        if (!m) continue;
        made_build(a, &a->eval, k);
        const made_maskset *ms = &a->eval;
        made_pack(a, ms, &s);
        int64_t nb = (m + AR_SAMPLE_ROWS - 1) / AR_SAMPLE_ROWS;
#pragma omp parallel if (nb > 1)
        {
            float *work = malloc((size_t)(AR_SAMPLE_ROWS * (row + 2 * d)) * sizeof *work);
            float *xb = work ? work + AR_SAMPLE_ROWS * row : NULL, *ub = xb ? xb + AR_SAMPLE_ROWS * d : NULL;
            if (!work) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(dynamic)
            for (int64_t b = 0; b < nb; b++) {
                if (!work) continue;
                int64_t r0 = b * AR_SAMPLE_ROWS, mb = m - r0 < AR_SAMPLE_ROWS ? m - r0 : AR_SAMPLE_ROWS;
                for (int64_t r = 0; r < mb; r++)
                    memcpy(ub + r * d, u + rows[r0 + r] * d, (size_t)d * sizeof *u);
                made_sample_block(a, &s, row, ms, mb, ub, xb, work);
                for (int64_t r = 0; r < mb; r++)
                    memcpy(out + rows[r0 + r] * d, xb + r * d, (size_t)d * sizeof *xb);
            }
            free(work);
        }
        if (failed) st = ug_fail(UG_ERR_NOMEM, "sample: out of memory for the row buffers");
    }
    free(mk);
    free(rows);
    free(s.buf);
    return st;
}

static ug_status ar_sample(void *impl, int64_t n, double temperature, uint64_t seed,
                           uint64_t first_stream, float *out) {
    (void)temperature;   /* an autoregressive model samples its own conditionals */
    ar_impl *a = impl;
    int64_t d = a->d;
    if (n < 0) return ug_fail(UG_ERR_INVALID_ARG, "sample: n = %lld", (long long)n);
    ug_status st = need_ctx(a);
    if (st) return st;
    float *u = malloc((size_t)(n * d > 0 ? n * d : 1) * sizeof *u);
    if (!u) return ug_fail(UG_ERR_NOMEM, "sample: out of memory for %lld uniforms", (long long)(n * d));
    for (int64_t i = 0; i < n; i++) {
        ug_rng r = ug_rng_make(seed, first_stream + (uint64_t)i, 0);
        ug_rng_uniform(&r, u + i * d, d);
    }
    if (a->kind == AR_FVSBN) {
        sample_fvsbn(a, n, u, out);
    } else if (a->kind == AR_NADE) {
        ug_nade_sample(a->ctx, out, u, n, a->w[0], a->b[0], a->w[1], a->b[1]);
        ug_ctx_reset(a->ctx);
    } else {
        st = sample_made(a, n, seed, first_stream, u, out);
    }
    free(u);
    return st;
}

const ug_lfamily ug_ar_family = {
    .name = "ar",
    .models = "fvsbn, nade, made",
    .declare = ar_declare,
    .loss = ar_loss,
    .nll = ar_nll,
    .sample = ar_sample,
    .free_impl = ar_free,
};
