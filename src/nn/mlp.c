/* mlp.c — the MLP denoiser network (see mlp.h). Parameter names follow the PyTorch module
 * layout nn.Sequential(Linear, SiLU, ...) so checkpoints load in Python unchanged. */
#include "mlp.h"
#include "core/core.h"
#include "kernels/linear.h"
#include <math.h>

ug_mlp_cfg ug_mlp_toy_cfg(int data_dim) {
    ug_mlp_cfg c = {data_dim, 256, 3, 32, 6.907755278982137 /* ln 1000 */, 0, 0};
    return c;
}

ug_status ug_mlp_declare(ug_mlp *m, ug_params *ps, const ug_mlp_cfg *cfg) {
    memset(m, 0, sizeof *m);
    if (cfg->data_dim < 1 || cfg->hidden < 1 || cfg->depth < 1 ||
        cfg->depth > UG_MLP_MAX_LAYERS - 1 || cfg->emb_dim < 2 || cfg->emb_dim % 2 ||
        cfg->num_classes < 0 || (cfg->num_classes > 0 && cfg->label_dim < 1))
        return ug_fail(UG_ERR_INVALID_ARG,
                       "mlp: data_dim %d, hidden %d, depth %d (1..%d), emb_dim %d (even >= 2), "
                       "num_classes %d, label_dim %d: out of range",
                       cfg->data_dim, cfg->hidden, cfg->depth, UG_MLP_MAX_LAYERS - 1, cfg->emb_dim,
                       cfg->num_classes, cfg->label_dim);
    m->cfg = *cfg;
    int in = cfg->data_dim + cfg->emb_dim + (cfg->num_classes ? cfg->label_dim : 0);
    m->nlayers = cfg->depth + 1;
    char name[64];
    for (int l = 0; l < m->nlayers; l++) {
        int out = l == m->nlayers - 1 ? cfg->data_dim : cfg->hidden;
        /* Sequential index: Linear layers sit at 0, 2, 4, ... with SiLU in between. */
        snprintf(name, sizeof name, "net.%d.weight", 2 * l);
        m->w[l] = ug_params_add(ps, name, 2, (int64_t[]){out, in});
        snprintf(name, sizeof name, "net.%d.bias", 2 * l);
        m->b[l] = ug_params_add(ps, name, 1, (int64_t[]){out});
        if (!m->w[l] || !m->b[l]) return UG_ERR_INVALID_ARG;
        in = out;
    }
    if (cfg->num_classes) {
        m->label_emb = ug_params_add(ps, "label_emb.weight", 2,
                                     (int64_t[]){cfg->num_classes + 1, cfg->label_dim});
        if (!m->label_emb) return UG_ERR_INVALID_ARG;
    }
    return UG_OK;
}

/* 1 when every row has the same noise level and label (or none): a sampler's call. */
static int rows_share_conditioning(const ug_tensor *c_noise, const int32_t *labels, int64_t B) {
    for (int64_t b = 1; b < B; b++)
        if (c_noise->data[b] != c_noise->data[0] || (labels && labels[b] != labels[0])) return 0;
    return 1;
}

typedef struct { const float *w; int64_t ldw, O, K; } fm_pack_arg;
static void fm_pack(float *dst, const void *arg) {
    const fm_pack_arg *a = arg;
    ug_k_fm_pack(dst, a->w, a->ldw, a->O, a->K);
}

/* w's columns [c0, c0 + K) packed for ug_k_fm_forward: the sampler's cached copy, or the
 * arena's. */
static const float *fm_weights(ug_ctx *ctx, const ug_tensor *w, int64_t c0, int64_t K) {
    const int64_t O = w->shape[0], n = ug_k_fm_packed_size(O, K);
    const fm_pack_arg a = {w->data + c0, w->shape[1], O, K};
    const int tag = c0 ? UG_PACK_TAG_FM_COL : UG_PACK_TAG_FM;
    const float *p = ug_pack_cache_get(ctx->packs, w->data, tag, n, fm_pack, &a);
    if (p) return p;
    float *d = ug_ctx_alloc(ctx, (size_t)n * sizeof *d);
    fm_pack(d, &a);
    return d;
}

/* t (K, Bp) = the first B rows of x (B, K) transposed, the other columns zero. */
static float *transposed(ug_ctx *ctx, const float *x, int64_t B, int64_t K, int64_t Bp) {
    float *t = ug_ctx_alloc(ctx, (size_t)(K * Bp) * sizeof *t);
    for (int64_t k = 0; k < K; k++)
        for (int64_t r = 0; r < Bp; r++) t[k * Bp + r] = r < B ? x[r * K + k] : 0.0f;
    return t;
}

/* The conditioning inputs of n rows, appended to parts: sinusoidal(c) [, label embedding]. */
static int cond_parts(ug_ctx *ctx, const ug_mlp *m, ug_tensor *c, const int32_t *labels,
                      int64_t n, ug_tensor **parts) {
    int np = 0;
    parts[np++] = ug_sinusoidal(ctx, c, m->cfg.emb_dim, (float)m->cfg.emb_log_fmax, 0);
    if (m->cfg.num_classes) parts[np++] = ug_embedding(ctx, m->label_emb, labels, n);
    return np;
}

/* A call without a tape (a sampler's, an evaluation's): the layers run feature-major
 * (ug_k_fm_forward: bias and SiLU in registers, no packing of the activations; W1's sampling
 * 0.53-0.57 -> 0.48-0.50 s against OpenBLAS's sgemm and a SiLU pass, bench/NOTES.md, session
 * 21), every row computed alone. The first layer splits as W_0 [x, e] + b_0 = W_x x +
 * (W_e e + b_0): when every row shares its noise level and label (a sampler's call), the second
 * part is one column, computed once (the toy MLP then skips 32 of the first layer's 34 inputs,
 * 5.8 % of a sampling step's multiply-adds); otherwise one per row, by the same kernel, so a
 * row's value is the same bits either way and whatever else shares its call. Equal to the taped
 * path to rounding. */
static ug_tensor *forward_eval(ug_ctx *ctx, const ug_mlp *m, ug_tensor *x_in,
                               ug_tensor *c_noise, const int32_t *labels) {
    const int64_t B = x_in->shape[0], dd = m->cfg.data_dim, in = m->w[0]->shape[1],
                  H0 = m->w[0]->shape[0], shared = rows_share_conditioning(c_noise, labels, B),
                  Be = shared ? 1 : B, Bpe = ug_k_fm_cols(Be), Bp = ug_k_fm_cols(B);
    ug_tensor *parts[2], *c = c_noise;
    if (shared) {
        c = ug_tensor_new(ctx, 1, (int64_t[]){1});
        c->data[0] = c_noise->data[0];
    }
    const int np = cond_parts(ctx, m, c, labels, Be, parts);
    const ug_tensor *e = np == 1 ? parts[0] : ug_concat(ctx, parts, np, 1);
    /* E (H0, Bpe) = W_e e + b_0, one column per row or one for all */
    float *E = ug_ctx_alloc(ctx, (size_t)(H0 * Bpe) * sizeof *E);
    ug_k_fm_forward(E, transposed(ctx, e->data, Be, in - dd, Bpe), Bpe,
                    fm_weights(ctx, m->w[0], dd, in - dd), m->b[0]->data, NULL, in - dd, H0, 0);
    float *bias0 = NULL;
    if (shared) {
        bias0 = ug_ctx_alloc(ctx, (size_t)H0 * sizeof *bias0);
        for (int64_t o = 0; o < H0; o++) bias0[o] = E[o * Bpe];
    }
    float *h = transposed(ctx, x_in->data, B, dd, Bp);
    int64_t K = dd;
    for (int l = 0; l < m->nlayers; l++) {
        const int64_t O = m->w[l]->shape[0];
        float *y = ug_ctx_alloc(ctx, (size_t)(O * Bp) * sizeof *y);
        ug_k_fm_forward(y, h, Bp, fm_weights(ctx, m->w[l], 0, K), l ? m->b[l]->data : bias0,
                        l || shared ? NULL : E, K, O, l < m->nlayers - 1);
        h = y;
        K = O;
    }
    ug_tensor *out = ug_tensor_new(ctx, 2, (int64_t[]){B, K});
    for (int64_t r = 0; r < B; r++)
        for (int64_t k = 0; k < K; k++) out->data[r * K + k] = h[k * Bp + r];
    return out;
}

ug_tensor *ug_mlp_forward(ug_ctx *ctx, const ug_mlp *m, ug_tensor *x_in, ug_tensor *c_noise,
                          const int32_t *labels) {
    int64_t B = x_in->shape[0];
    UG_CHECK(labels || !m->cfg.num_classes, "mlp: a class-conditional network needs labels");
    if (!ug_ctx_grad_enabled(ctx)) return forward_eval(ctx, m, x_in, c_noise, labels);
    ug_tensor *parts[3] = {x_in};
    const int np = 1 + cond_parts(ctx, m, c_noise, labels, B, parts + 1);
    ug_tensor *h = ug_linear(ctx, ug_concat(ctx, parts, np, 1), m->w[0], m->b[0]);
    for (int l = 1; l < m->nlayers; l++) h = ug_linear(ctx, ug_silu(ctx, h), m->w[l], m->b[l]);
    return h;
}
