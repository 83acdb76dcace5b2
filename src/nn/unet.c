/* unet.c — the DDPM-style U-Net (see unet.h; ../shared/peers/unet.py is the reference).
 * ResBlock(a -> b):  h = Conv3(SiLU(GN(x))); h += Linear(SiLU(temb))[:, :, None, None];
 *                    h = Conv3(SiLU(GN(h)));  out = skip(x) + h  (skip = Conv1x1 if a != b).
 * Attention:         x + proj(softmax(q k^T / sqrt(C/heads)) v), q, k, v = Linear(GN(x) tokens).
 * Parameter names and declaration order follow the PyTorch module's state_dict. */
#include "unet.h"
#include "core/core.h"
#include <math.h>

ug_unet_cfg ug_unet_fmnist_cfg(int channels, int height, int width) {
    ug_unet_cfg c = {channels, height, width, {32, 64, 64}, 8, 32, 128, 1,
                     -9.210340371976184 /* -ln 10000 */, 0};
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

static int resblock_params(ug_params *ps, const char *name, int in, int out, int temb,
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
    return ok;
}

ug_status ug_unet_declare(ug_unet *u, ug_params *ps, const ug_unet_cfg *c) {
    memset(u, 0, sizeof *u);
    int c0 = c->ch[0], c1 = c->ch[1], c2 = c->ch[2], g = c->groups, T = c->temb_dim;
    if (c->in_channels < 1 || c->height < 4 || c->width < 4 || c->height % 4 || c->width % 4)
        return ug_fail(UG_ERR_INVALID_ARG,
                       "unet: image (%d, %d, %d): expected channels >= 1 and height, width "
                       "positive multiples of 4 (two stride-2 downsamplings)",
                       c->in_channels, c->height, c->width);
    if (c0 < 1 || c1 < 1 || c2 < 1 || g < 1 || c0 % g || c1 % g || c2 % g)
        return ug_fail(UG_ERR_INVALID_ARG,
                       "unet: widths %d/%d/%d must be positive multiples of groups %d", c0, c1,
                       c2, g);
    if (c->emb_dim < 4 || c->emb_dim % 2 || T < 1)
        return ug_fail(UG_ERR_INVALID_ARG,
                       "unet: emb_dim %d (even, >= 4), temb_dim %d (>= 1): out of range",
                       c->emb_dim, T);
    if (c->attn_heads < 1 || c2 % c->attn_heads)
        return ug_fail(UG_ERR_INVALID_ARG, "unet: %d attention heads do not divide width %d",
                       c->attn_heads, c2);
    if (c->num_classes < 0)
        return ug_fail(UG_ERR_INVALID_ARG, "unet: num_classes %d < 0", c->num_classes);
    u->cfg = *c;
    int ok = 1;
    ok &= linear_params(ps, "t1", c->emb_dim, T, &u->t1w, &u->t1b);
    ok &= linear_params(ps, "t2", T, T, &u->t2w, &u->t2b);
    ok &= conv_params(ps, "conv_in", c->in_channels, c0, 3, &u->cinw, &u->cinb);
    /* down path; the skip stack holds c0, c0, c0, c1, c1, c2 channels */
    ok &= resblock_params(ps, "d0", c0, c0, T, &u->d0);
    ok &= conv_params(ps, "ds0.conv", c0, c0, 3, &u->ds0w, &u->ds0b);
    ok &= resblock_params(ps, "d1", c0, c1, T, &u->d1);
    ok &= conv_params(ps, "ds1.conv", c1, c1, 3, &u->ds1w, &u->ds1b);
    ok &= resblock_params(ps, "d2", c1, c2, T, &u->d2);
    /* middle */
    ok &= resblock_params(ps, "m1", c2, c2, T, &u->m1);
    ok &= norm_params(ps, "attn.norm", c2, &u->anw, &u->anb);
    ok &= linear_params(ps, "attn.q", c2, c2, &u->aqw, &u->aqb);
    ok &= linear_params(ps, "attn.k", c2, c2, &u->akw, &u->akb);
    ok &= linear_params(ps, "attn.v", c2, c2, &u->avw, &u->avb);
    ok &= linear_params(ps, "attn.proj", c2, c2, &u->apw, &u->apb);
    ok &= resblock_params(ps, "m2", c2, c2, T, &u->m2);
    /* up path: each ResBlock takes (current, popped skip) */
    ok &= resblock_params(ps, "u2a", c2 + c2, c2, T, &u->u2a);
    ok &= resblock_params(ps, "u2b", c2 + c1, c2, T, &u->u2b);
    ok &= conv_params(ps, "us2.conv", c2, c2, 3, &u->us2w, &u->us2b);
    ok &= resblock_params(ps, "u1a", c2 + c1, c1, T, &u->u1a);
    ok &= resblock_params(ps, "u1b", c1 + c0, c1, T, &u->u1b);
    ok &= conv_params(ps, "us1.conv", c1, c1, 3, &u->us1w, &u->us1b);
    ok &= resblock_params(ps, "u0a", c1 + c0, c0, T, &u->u0a);
    ok &= resblock_params(ps, "u0b", c0 + c0, c0, T, &u->u0b);
    ok &= norm_params(ps, "norm_out", c0, &u->now, &u->nob);
    ok &= conv_params(ps, "conv_out", c0, c->in_channels, 3, &u->coutw, &u->coutb);
    if (c->num_classes) {
        u->label_emb = ug_params_add(ps, "label_emb.weight", 2,
                                     (int64_t[]){c->num_classes + 1, T});
        ok &= u->label_emb != NULL;
    }
    /* ug_params_add has set the message (duplicate name, finalized params). */
    return ok ? UG_OK : UG_ERR_INVALID_ARG;
}

static ug_tensor *gn_silu(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b, int groups) {
    return ug_silu(ctx, ug_group_norm(ctx, x, w, b, groups, 1e-5f));
}

/* silu_temb = SiLU(temb) (B, T), shared by every block. */
static ug_tensor *resblock(ug_ctx *ctx, const ug_resblock *r, ug_tensor *x, ug_tensor *silu_temb,
                           int groups) {
    int64_t B = x->shape[0], O = r->c1w->shape[0];
    ug_tensor *h = ug_conv2d(ctx, gn_silu(ctx, x, r->n1w, r->n1b, groups), r->c1w, r->c1b, 1, 1);
    ug_tensor *t = ug_linear(ctx, silu_temb, r->tw, r->tb);
    h = ug_add(ctx, h, ug_reshape(ctx, t, 4, (int64_t[]){B, O, 1, 1}));
    h = ug_conv2d(ctx, gn_silu(ctx, h, r->n2w, r->n2b, groups), r->c2w, r->c2b, 1, 1);
    ug_tensor *s = r->skw ? ug_conv2d(ctx, x, r->skw, r->skb, 1, 0) : x;
    return ug_add(ctx, s, h);
}

static ug_tensor *attn_block(ug_ctx *ctx, const ug_unet *u, ug_tensor *x) {
    int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    ug_tensor *h = ug_group_norm(ctx, x, u->anw, u->anb, u->cfg.groups, 1e-5f);
    h = ug_reshape(ctx, h, 3, (int64_t[]){B, C, H * W});
    h = ug_permute(ctx, h, (int[]){0, 2, 1});                      /* (B, HW, C) */
    ug_tensor *q = ug_linear(ctx, h, u->aqw, u->aqb);
    ug_tensor *k = ug_linear(ctx, h, u->akw, u->akb);
    ug_tensor *v = ug_linear(ctx, h, u->avw, u->avb);
    ug_tensor *o = ug_linear(ctx, ug_attention(ctx, q, k, v, u->cfg.attn_heads), u->apw, u->apb);
    o = ug_permute(ctx, o, (int[]){0, 2, 1});                      /* (B, C, HW) */
    return ug_add(ctx, x, ug_reshape(ctx, o, 4, x->shape));
}

static ug_tensor *cat2(ug_ctx *ctx, ug_tensor *a, ug_tensor *b) {
    ug_tensor *xs[2] = {a, b};
    return ug_concat(ctx, xs, 2, 1);
}

ug_tensor *ug_unet_forward(ug_ctx *ctx, const ug_unet *u, ug_tensor *x, ug_tensor *c_noise,
                           const int32_t *labels) {
    const ug_unet_cfg *c = &u->cfg;
    char s[96];
    UG_CHECK(x->ndim == 4 && x->shape[1] == c->in_channels && x->shape[2] == c->height &&
                 x->shape[3] == c->width,
             "unet: x %s, expected (B, %d, %d, %d)", ug_shape_str(x, s, sizeof s),
             c->in_channels, c->height, c->width);
    int64_t B = x->shape[0];
    UG_CHECK(c_noise->numel == B, "unet: c_noise %s, expected (%lld)",
             ug_shape_str(c_noise, s, sizeof s), (long long)B);
    int g = c->groups;
    ug_tensor *e = ug_sinusoidal(ctx, c_noise, c->emb_dim, (float)c->emb_log_fmax, 0);
    ug_tensor *temb = ug_linear(ctx, ug_silu(ctx, ug_linear(ctx, e, u->t1w, u->t1b)), u->t2w, u->t2b);
    if (c->num_classes) {
        UG_CHECK(labels, "unet: a class-conditional network needs labels");
        temb = ug_add(ctx, temb, ug_embedding(ctx, u->label_emb, labels, B));
    }
    ug_tensor *st = ug_silu(ctx, temb);
    ug_tensor *hs[6];
    hs[0] = ug_conv2d(ctx, x, u->cinw, u->cinb, 1, 1);
    hs[1] = resblock(ctx, &u->d0, hs[0], st, g);
    hs[2] = ug_conv2d(ctx, hs[1], u->ds0w, u->ds0b, 2, 1);
    hs[3] = resblock(ctx, &u->d1, hs[2], st, g);
    hs[4] = ug_conv2d(ctx, hs[3], u->ds1w, u->ds1b, 2, 1);
    hs[5] = resblock(ctx, &u->d2, hs[4], st, g);
    ug_tensor *h = resblock(ctx, &u->m1, hs[5], st, g);
    h = attn_block(ctx, u, h);
    h = resblock(ctx, &u->m2, h, st, g);
    h = resblock(ctx, &u->u2a, cat2(ctx, h, hs[5]), st, g);
    h = resblock(ctx, &u->u2b, cat2(ctx, h, hs[4]), st, g);
    h = ug_conv2d(ctx, ug_upsample2x(ctx, h), u->us2w, u->us2b, 1, 1);
    h = resblock(ctx, &u->u1a, cat2(ctx, h, hs[3]), st, g);
    h = resblock(ctx, &u->u1b, cat2(ctx, h, hs[2]), st, g);
    h = ug_conv2d(ctx, ug_upsample2x(ctx, h), u->us1w, u->us1b, 1, 1);
    h = resblock(ctx, &u->u0a, cat2(ctx, h, hs[1]), st, g);
    h = resblock(ctx, &u->u0b, cat2(ctx, h, hs[0]), st, g);
    return ug_conv2d(ctx, gn_silu(ctx, h, u->now, u->nob, g), u->coutw, u->coutb, 1, 1);
}

static ug_tensor *unet_net_forward(ug_ctx *ctx, const ug_net *n, ug_tensor *x_in,
                                   ug_tensor *c_noise, const int32_t *labels) {
    const ug_unet *u = n->impl;
    const ug_unet_cfg *c = &u->cfg;
    int64_t B = x_in->shape[0];
    char s[96];
    UG_CHECK(x_in->ndim == 2 && x_in->shape[1] == n->data_dim,
             "unet: x_in %s, expected (B, %d) = (B, %d * %d * %d)",
             ug_shape_str(x_in, s, sizeof s), n->data_dim, c->in_channels, c->height, c->width);
    ug_tensor *x = ug_reshape(ctx, x_in, 4, (int64_t[]){B, c->in_channels, c->height, c->width});
    ug_tensor *F = ug_unet_forward(ctx, u, x, c_noise, labels);
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
