/* unet.c — the configurable DDPM-style U-Net (see unet.h for the layout and the names;
 * ../shared/peers/unet.py is the preset's reference, tests/ref/gen_unet_ref.py the general one).
 * ResBlock(a -> b):  h = Conv3(SiLU(GN(x))); h += Linear(SiLU(temb))[:, :, None, None];
 *                    h = Conv3(Dropout(SiLU(GN(h))));  out = skip(x) + h  (skip = Conv1x1 if a != b).
 * Attention:         x + proj(softmax(q k^T / sqrt(C/heads)) v), q, k, v = Linear(GN(x) tokens).
 * Declaration and forward walk the levels in the same two loops around one skip stack, so the
 * parameter order is the PyTorch module's state_dict order. */
#include "unet.h"
#include "core/core.h"
#include "ops/embed_ops.h"
#include <math.h>

ug_unet_cfg ug_unet_fmnist_cfg(int channels, int height, int width) {
    ug_unet_cfg c = {.in_channels = channels, .height = height, .width = width, .base = 32,
                     .mult = {1, 2, 2}, .levels = 3, .blocks = 1, .n_attn = 0, .dropout = 0,
                     .groups = 8, .emb_dim = 32, .temb_dim = 128, .attn_heads = 1,
                     .emb_log_fmax = -9.210340371976184 /* -ln 10000 */, .num_classes = 0};
    return c;
}

static ug_tensor *add_param(ug_params *ps, const char *prefix, const char *leaf, int ndim,
                            const int64_t *shape) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", prefix, leaf);
    return ug_params_add(ps, name, ndim, shape);
}

/* Conv2d(in, out, k) weight (out, in, k, k) and bias (out) under prefix. */
static int conv_params(ug_params *ps, const char *prefix, int in, int out, int k, ug_tensor **w,
                       ug_tensor **b) {
    *w = add_param(ps, prefix, "weight", 4, (int64_t[]){out, in, k, k});
    *b = add_param(ps, prefix, "bias", 1, (int64_t[]){out});
    return *w && *b;
}

static int linear_params(ug_params *ps, const char *prefix, int in, int out, ug_tensor **w,
                         ug_tensor **b) {
    *w = add_param(ps, prefix, "weight", 2, (int64_t[]){out, in});
    *b = add_param(ps, prefix, "bias", 1, (int64_t[]){out});
    return *w && *b;
}

static int norm_params(ug_params *ps, const char *prefix, int c, ug_tensor **w, ug_tensor **b) {
    *w = add_param(ps, prefix, "weight", 1, (int64_t[]){c});
    *b = add_param(ps, prefix, "bias", 1, (int64_t[]){c});
    return *w && *b;
}

static int attn_params(ug_params *ps, const char *prefix, int c, ug_unet_attn *a) {
    char p[64];
    int ok = 1;
    snprintf(p, sizeof p, "%s.norm", prefix);
    ok &= norm_params(ps, p, c, &a->nw, &a->nb);
    snprintf(p, sizeof p, "%s.q", prefix);
    ok &= linear_params(ps, p, c, c, &a->qw, &a->qb);
    snprintf(p, sizeof p, "%s.k", prefix);
    ok &= linear_params(ps, p, c, c, &a->kw, &a->kb);
    snprintf(p, sizeof p, "%s.v", prefix);
    ok &= linear_params(ps, p, c, c, &a->vw, &a->vb);
    snprintf(p, sizeof p, "%s.proj", prefix);
    ok &= linear_params(ps, p, c, c, &a->pw, &a->pb);
    return ok;
}

/* ResBlock `name` (in -> out), followed by attention `name`.attn when attn is set. */
static int resblock_params(ug_params *ps, const char *name, int in, int out, int temb, int attn,
                           ug_resblock *r) {
    char p[64];
    int ok = 1;
    snprintf(p, sizeof p, "%s.norm1", name);
    ok &= norm_params(ps, p, in, &r->n1w, &r->n1b);
    snprintf(p, sizeof p, "%s.conv1", name);
    ok &= conv_params(ps, p, in, out, 3, &r->c1w, &r->c1b);
    snprintf(p, sizeof p, "%s.temb", name);
    ok &= linear_params(ps, p, temb, out, &r->tw, &r->tb);
    snprintf(p, sizeof p, "%s.norm2", name);
    ok &= norm_params(ps, p, out, &r->n2w, &r->n2b);
    snprintf(p, sizeof p, "%s.conv2", name);
    ok &= conv_params(ps, p, out, out, 3, &r->c2w, &r->c2b);
    r->skw = r->skb = NULL;
    if (in != out) {
        snprintf(p, sizeof p, "%s.skip", name);
        ok &= conv_params(ps, p, in, out, 1, &r->skw, &r->skb);
    }
    r->has_attn = attn;
    if (attn) {
        snprintf(p, sizeof p, "%s.attn", name);
        ok &= attn_params(ps, p, out, &r->attn);
    }
    return ok;
}

static int level_width(const ug_unet_cfg *c, int l) { return c->base * c->mult[l]; }

/* Attention after the ResBlocks of level l: its feature-map height H / 2^l is listed. */
static int level_has_attn(const ug_unet_cfg *c, int l) {
    for (int a = 0; a < c->n_attn; a++)
        if (c->attn_res[a] == c->height >> l) return 1;
    return 0;
}

/* Block i of level l: down d{l}, d{l}b, d{l}c, ...; up u{l}a, u{l}b, ... (unet.h). */
static void block_name(char *s, size_t n, int up, int l, int i) {
    if (up) snprintf(s, n, "u%d%c", l, 'a' + i);
    else if (i == 0) snprintf(s, n, "d%d", l);
    else snprintf(s, n, "d%d%c", l, 'a' + i);
}

static ug_status check_cfg(const ug_unet_cfg *c) {
    int L = c->levels, g = c->groups;
    if (L < 1 || L > UG_UNET_MAX_LEVELS)
        return ug_fail(UG_ERR_INVALID_ARG, "unet: %d levels (channel multipliers), expected 1 to %d",
                       L, UG_UNET_MAX_LEVELS);
    int f = 1 << (L - 1);
    if (c->in_channels < 1 || c->height < 1 || c->width < 1 || c->height % f || c->width % f)
        return ug_fail(UG_ERR_INVALID_ARG,
                       "unet: image (%d, %d, %d): expected channels >= 1 and height, width "
                       "divisible by %d = 2^(levels - 1) (%d levels, %d stride-2 downsamplings)",
                       c->in_channels, c->height, c->width, f, L, L - 1);
    if (g < 1 || c->base < 1 || c->base > (1 << 16) || c->base % g)
        return ug_fail(UG_ERR_INVALID_ARG,
                       "unet: base width %d must be a positive multiple of groups %d (at most 65536)",
                       c->base, g);
    for (int l = 0; l < L; l++)
        if (c->mult[l] < 1 || c->mult[l] > 64 || level_width(c, l) % g)
            return ug_fail(UG_ERR_INVALID_ARG,
                           "unet: level %d width base %d x multiplier %d must be a positive "
                           "multiple of groups %d (multiplier 1 .. 64)", l, c->base, c->mult[l], g);
    if (c->blocks < 1 || c->blocks > UG_UNET_MAX_BLOCKS)
        return ug_fail(UG_ERR_INVALID_ARG, "unet: %d ResBlocks per level, expected 1 to %d",
                       c->blocks, UG_UNET_MAX_BLOCKS);
    if (c->n_attn < 0 || c->n_attn > UG_UNET_MAX_LEVELS)
        return ug_fail(UG_ERR_INVALID_ARG, "unet: %d attention resolutions, expected 0 to %d",
                       c->n_attn, UG_UNET_MAX_LEVELS);
    for (int a = 0; a < c->n_attn; a++) {
        int found = 0;
        for (int l = 0; l < L; l++) found |= c->attn_res[a] == c->height >> l;
        if (!found)
            return ug_fail(UG_ERR_INVALID_ARG,
                           "unet: attention resolution %d is not a feature-map height of this "
                           "network (%d at level 0 down to %d at level %d)",
                           c->attn_res[a], c->height, c->height >> (L - 1), L - 1);
    }
    if (c->attn_heads < 1)
        return ug_fail(UG_ERR_INVALID_ARG, "unet: %d attention heads, expected >= 1", c->attn_heads);
    for (int l = 0; l < L; l++)
        if ((l == L - 1 || level_has_attn(c, l)) && level_width(c, l) % c->attn_heads)
            return ug_fail(UG_ERR_INVALID_ARG,
                           "unet: %d attention heads do not divide width %d (level %d)",
                           c->attn_heads, level_width(c, l), l);
    if (c->emb_dim < 4 || c->emb_dim % 2 || c->temb_dim < 1)
        return ug_fail(UG_ERR_INVALID_ARG,
                       "unet: emb_dim %d (even, >= 4), temb_dim %d (>= 1): out of range",
                       c->emb_dim, c->temb_dim);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return ug_fail(UG_ERR_INVALID_ARG, "unet: dropout %g, expected in [0, 1)", c->dropout);
    if (c->num_classes < 0)
        return ug_fail(UG_ERR_INVALID_ARG, "unet: num_classes %d < 0", c->num_classes);
    return UG_OK;
}

/* Widths pushed on the skip stack: conv_in, every down ResBlock, every downsampling. */
enum { MAX_SKIPS = 1 + UG_UNET_MAX_LEVELS * (UG_UNET_MAX_BLOCKS + 1) };

ug_status ug_unet_declare(ug_unet *u, ug_params *ps, const ug_unet_cfg *c) {
    memset(u, 0, sizeof *u);
    ug_status st = check_cfg(c);
    if (st) return st;
    u->cfg = *c;
    int T = c->temb_dim, L = c->levels, ch = c->base, ok = 1;
    int skip_ch[MAX_SKIPS], ns = 0;
    char name[32];
    ok &= linear_params(ps, "t1", c->emb_dim, T, &u->t1w, &u->t1b);
    ok &= linear_params(ps, "t2", T, T, &u->t2w, &u->t2b);
    ok &= conv_params(ps, "conv_in", c->in_channels, ch, 3, &u->cinw, &u->cinb);
    skip_ch[ns++] = ch;
    for (int l = 0; l < L; l++) {
        for (int i = 0; i < c->blocks; i++) {
            block_name(name, sizeof name, 0, l, i);
            ok &= resblock_params(ps, name, ch, level_width(c, l), T, level_has_attn(c, l),
                                  &u->down[l][i]);
            ch = level_width(c, l);
            skip_ch[ns++] = ch;
        }
        if (l < L - 1) {
            snprintf(name, sizeof name, "ds%d.conv", l);
            ok &= conv_params(ps, name, ch, ch, 3, &u->dsw[l], &u->dsb[l]);
            skip_ch[ns++] = ch;
        }
    }
    ok &= resblock_params(ps, "m1", ch, ch, T, 0, &u->m1);
    ok &= attn_params(ps, "attn", ch, &u->mid_attn);
    ok &= resblock_params(ps, "m2", ch, ch, T, 0, &u->m2);
    for (int l = L - 1; l >= 0; l--) {
        for (int i = 0; i <= c->blocks; i++) {
            block_name(name, sizeof name, 1, l, i);
            ok &= resblock_params(ps, name, ch + skip_ch[--ns], level_width(c, l), T,
                                  level_has_attn(c, l), &u->up[l][i]);
            ch = level_width(c, l);
        }
        if (l > 0) {
            snprintf(name, sizeof name, "us%d.conv", l);
            ok &= conv_params(ps, name, ch, ch, 3, &u->usw[l], &u->usb[l]);
        }
    }
    ok &= norm_params(ps, "norm_out", ch, &u->now, &u->nob);
    ok &= conv_params(ps, "conv_out", ch, c->in_channels, 3, &u->coutw, &u->coutb);
    if (c->num_classes) {
        u->label_emb = ug_params_add(ps, "label_emb.weight", 2,
                                     (int64_t[]){c->num_classes + 1, T});
        ok &= u->label_emb != NULL;
    }
    /* ug_params_add has set the message (duplicate name, finalized params). */
    return ok ? UG_OK : UG_ERR_INVALID_ARG;
}

/* What every block of one forward call shares. */
typedef struct {
    ug_ctx *ctx;
    ug_tensor *silu_temb;          /* SiLU(temb) (B, T) */
    int groups, heads;
    float p;                       /* dropout: 0 in evaluation calls */
    const ug_net_train *train;     /* non-NULL when p > 0 */
    uint32_t k;                    /* ResBlocks run so far; block k's masks: sub-stream sub + k */
} unet_run;

static ug_tensor *gn_silu(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b, int groups) {
    return ug_group_norm_silu(ctx, x, w, b, groups, 1e-5f);
}

static ug_tensor *attn_block(unet_run *r, const ug_unet_attn *a, ug_tensor *x) {
    ug_ctx *ctx = r->ctx;
    int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    ug_tensor *h = ug_group_norm(ctx, x, a->nw, a->nb, r->groups, 1e-5f);
    h = ug_reshape(ctx, h, 3, (int64_t[]){B, C, H * W});
    h = ug_permute(ctx, h, (int[]){0, 2, 1});                      /* (B, HW, C) */
    ug_tensor *q = ug_linear(ctx, h, a->qw, a->qb);
    ug_tensor *k = ug_linear(ctx, h, a->kw, a->kb);
    ug_tensor *v = ug_linear(ctx, h, a->vw, a->vb);
    ug_tensor *o = ug_linear(ctx, ug_attention(ctx, q, k, v, r->heads), a->pw, a->pb);
    o = ug_permute(ctx, o, (int[]){0, 2, 1});                      /* (B, C, HW) */
    return ug_add(ctx, x, ug_reshape(ctx, o, 4, x->shape));
}

static ug_tensor *resblock(unet_run *r, const ug_resblock *b, ug_tensor *x) {
    ug_ctx *ctx = r->ctx;
    /* conv1 + the time embedding's (B, O), one pass; conv2 + the skip, one pass. */
    ug_tensor *t = ug_linear(ctx, r->silu_temb, b->tw, b->tb);
    ug_tensor *h = ug_conv2d_add(ctx, gn_silu(ctx, x, b->n1w, b->n1b, r->groups), b->c1w, b->c1b,
                                 1, 1, t, NULL);
    h = gn_silu(ctx, h, b->n2w, b->n2b, r->groups);
    if (r->p > 0)
        h = ug_dropout_rows(ctx, h, r->p, r->train->seed, r->train->first_stream, r->train->sub + r->k);
    r->k++;
    ug_tensor *s = b->skw ? ug_conv2d(ctx, x, b->skw, b->skb, 1, 0) : x;
    ug_tensor *out = ug_conv2d_add(ctx, h, b->c2w, b->c2b, 1, 1, NULL, s);
    return b->has_attn ? attn_block(r, &b->attn, out) : out;
}

static ug_tensor *cat2(ug_ctx *ctx, ug_tensor *a, ug_tensor *b) {
    ug_tensor *xs[2] = {a, b};
    return ug_concat(ctx, xs, 2, 1);
}

ug_tensor *ug_unet_forward_train(ug_ctx *ctx, const ug_unet *u, ug_tensor *x,
                                 ug_tensor *c_noise, const int32_t *labels,
                                 const ug_net_train *train) {
    const ug_unet_cfg *c = &u->cfg;
    char s[96];
    UG_CHECK(x->ndim == 4 && x->shape[1] == c->in_channels && x->shape[2] == c->height &&
                 x->shape[3] == c->width,
             "unet: x %s, expected (B, %d, %d, %d)", ug_shape_str(x, s, sizeof s),
             c->in_channels, c->height, c->width);
    int64_t B = x->shape[0];
    UG_CHECK(c_noise->numel == B, "unet: c_noise %s, expected (%lld)",
             ug_shape_str(c_noise, s, sizeof s), (long long)B);
    ug_tensor *e = ug_sinusoidal(ctx, c_noise, c->emb_dim, (float)c->emb_log_fmax, 0);
    ug_tensor *temb = ug_linear(ctx, ug_silu(ctx, ug_linear(ctx, e, u->t1w, u->t1b)), u->t2w, u->t2b);
    if (c->num_classes) {
        UG_CHECK(labels, "unet: a class-conditional network needs labels");
        temb = ug_add(ctx, temb, ug_embedding(ctx, u->label_emb, labels, B));
    }
    unet_run r = {ctx, ug_silu(ctx, temb), c->groups, c->attn_heads,
                  train ? (float)c->dropout : 0.0f, train, 0};
    ug_tensor *skips[MAX_SKIPS];
    int ns = 0, L = c->levels;
    ug_tensor *h = ug_conv2d(ctx, x, u->cinw, u->cinb, 1, 1);
    skips[ns++] = h;
    for (int l = 0; l < L; l++) {
        for (int i = 0; i < c->blocks; i++) skips[ns++] = h = resblock(&r, &u->down[l][i], h);
        if (l < L - 1) skips[ns++] = h = ug_conv2d(ctx, h, u->dsw[l], u->dsb[l], 2, 1);
    }
    h = resblock(&r, &u->m1, h);
    h = attn_block(&r, &u->mid_attn, h);
    h = resblock(&r, &u->m2, h);
    for (int l = L - 1; l >= 0; l--) {
        for (int i = 0; i <= c->blocks; i++) h = resblock(&r, &u->up[l][i], cat2(ctx, h, skips[--ns]));
        if (l > 0) h = ug_conv2d(ctx, ug_upsample2x(ctx, h), u->usw[l], u->usb[l], 1, 1);
    }
    return ug_conv2d(ctx, gn_silu(ctx, h, u->now, u->nob, c->groups), u->coutw, u->coutb, 1, 1);
}

ug_tensor *ug_unet_forward(ug_ctx *ctx, const ug_unet *u, ug_tensor *x, ug_tensor *c_noise,
                           const int32_t *labels) {
    return ug_unet_forward_train(ctx, u, x, c_noise, labels, NULL);
}

static ug_tensor *unet_net_forward(ug_ctx *ctx, const ug_net *n, ug_tensor *x_in,
                                   ug_tensor *c_noise, const int32_t *labels,
                                   const ug_net_train *train) {
    const ug_unet *u = n->impl;
    const ug_unet_cfg *c = &u->cfg;
    int64_t B = x_in->shape[0];
    char s[96];
    UG_CHECK(x_in->ndim == 2 && x_in->shape[1] == n->data_dim,
             "unet: x_in %s, expected (B, %d) = (B, %d * %d * %d)",
             ug_shape_str(x_in, s, sizeof s), n->data_dim, c->in_channels, c->height, c->width);
    ug_tensor *x = ug_reshape(ctx, x_in, 4, (int64_t[]){B, c->in_channels, c->height, c->width});
    ug_tensor *F = ug_unet_forward_train(ctx, u, x, c_noise, labels, train);
    return ug_reshape(ctx, F, 2, (int64_t[]){B, n->data_dim});
}

ug_status ug_net_from_unet(ug_net *n, const ug_unet *u) {
    memset(n, 0, sizeof *n);
    ug_unet *copy = malloc(sizeof *copy);
    if (!copy) return ug_fail(UG_ERR_NOMEM, "unet: out of memory");
    *copy = *u;
    n->kind = UG_NET_UNET;
    n->data_dim = u->cfg.in_channels * u->cfg.height * u->cfg.width;
    n->num_classes = u->cfg.num_classes;
    n->impl = copy;
    n->free_impl = free;
    n->forward = unet_net_forward;
    n->row_tile = 16;
    return UG_OK;
}
