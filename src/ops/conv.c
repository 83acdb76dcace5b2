/* conv.c — conv2d, nearest 2x upsampling and average pooling on the tape. conv2d keeps its
 * workers' column scratch (saved[0], workers in i[2]) and recomputes the columns per image in
 * backward. */
#include "core/core.h"
#include "kernels/conv.h"

static ug_conv_geom conv_geom(const ug_tensor *x, const ug_tensor *w, int64_t stride,
                              int64_t pad) {
    ug_conv_geom g = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0],
                      w->shape[2], w->shape[3], stride, pad, 0, 0};
    return g;
}

static void conv2d_backward(ug_node *n) {
    ug_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *ib = n->in[3], *r = n->in[4];
    ug_conv_geom g = conv_geom(x, w, n->i[0], n->i[1]);
    ug_conv_geom_init(&g);
    /* In this order: x and r may be one tensor (its first use writes, the second adds). */
    const int dx_add = ug_grad_add(x);
    ug_k_conv2d_backward(ug_grad_of(x), ug_grad_of(w), ug_grad_of(b), n->saved[0], (int)n->i[2],
                         n->out->grad, x->data, w->data, &g, dx_add);
    float *dr = ug_grad_of(r);
    const int dr_add = dr ? ug_grad_add(r) : 1;
    ug_k_conv2d_epi_backward(ug_grad_of(ib), dr, dr_add, n->out->grad, g.N, g.O, g.Ho * g.Wo);
}

/* ctx->packs entries of the forward's packed weights: the layout depends on the path. */
typedef struct { const float *w; const ug_conv_geom *g; } conv_pack_arg;
static void conv_pack(float *dst, const void *arg) {
    const conv_pack_arg *a = arg;
    ug_k_conv2d_pack(dst, a->w, a->g);
}
static int conv_pack_tag(const ug_conv_geom *g) {
    return ug_conv_is_winograd(g) ? UG_PACK_TAG_WINO : UG_PACK_TAG_DIRECT;
}

ug_tensor *ug_conv2d(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b, int stride, int pad) {
    return ug_conv2d_add(ctx, x, w, b, stride, pad, NULL, NULL);
}

ug_tensor *ug_conv2d_add(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b, int stride,
                         int pad, ug_tensor *ib, ug_tensor *r) {
    char s1[96], s2[96];
    UG_CHECK(x->ndim == 4 && w->ndim == 4 && x->shape[1] == w->shape[1],
             "conv2d: input %s (N, C, H, W) does not fit weight %s (O, C, kh, kw)",
             ug_shape_str(x, s1, sizeof s1), ug_shape_str(w, s2, sizeof s2));
    UG_CHECK(!b || (b->ndim == 1 && b->shape[0] == w->shape[0]), "conv2d: bias %s, expected (%lld)",
             ug_shape_str(b, s1, sizeof s1), (long long)w->shape[0]);
    ug_conv_geom g = conv_geom(x, w, stride, pad);
    UG_CHECK(ug_conv_geom_init(&g),
             "conv2d: kernel %s with stride %d, pad %d does not fit input %s",
             ug_shape_str(w, s1, sizeof s1), stride, pad, ug_shape_str(x, s2, sizeof s2));
    UG_CHECK(!ib || (ib->ndim == 2 && ib->shape[0] == g.N && ib->shape[1] == g.O),
             "conv2d: per-image bias %s, expected (%lld, %lld)", ug_shape_str(ib, s1, sizeof s1),
             (long long)g.N, (long long)g.O);
    UG_CHECK(!r || (r->ndim == 4 && r->shape[0] == g.N && r->shape[1] == g.O &&
                    r->shape[2] == g.Ho && r->shape[3] == g.Wo),
             "conv2d: added tensor %s, expected (%lld, %lld, %lld, %lld)",
             ug_shape_str(r, s1, sizeof s1), (long long)g.N, (long long)g.O, (long long)g.Ho,
             (long long)g.Wo);
    ug_tensor *out = ug_tensor_new(ctx, 4, (int64_t[]){g.N, g.O, g.Ho, g.Wo});
    int workers = ug_conv_workers(&g);
    /* The dw accumulators only when the tape keeps the node for a backward pass. */
    int64_t nscr = ug_conv_scratch_size(&g, workers, ctx->grad_enabled);
    float *col = nscr ? ug_ctx_alloc(ctx, (size_t)nscr * sizeof(float)) : NULL;
    /* Weights that cannot change (a sampling run): packed once, kept in ctx->packs. Only a
     * parameter's (named, in the parameters' buffer): a weight computed in the arena could
     * come back at the same address with other values. */
    const float *packed = NULL;
    int64_t npk = ctx->packs && !ctx->grad_enabled && w->name ? ug_conv_packed_size(&g, workers)
                                                              : 0;
    if (npk) {
        conv_pack_arg a = {w->data, &g};
        packed = ug_pack_cache_get(ctx->packs, w->data, conv_pack_tag(&g), npk, conv_pack, &a);
    }
    const ug_conv_epi e = {b ? b->data : NULL, ib ? ib->data : NULL, r ? r->data : NULL};
    ug_k_conv2d_forward(out->data, col, workers, x->data, w->data, &e, &g, packed);
    ug_tensor *ins[5] = {x, w, b, ib, r};
    ug_node *n = ug_tape_record(ctx, "conv2d", conv2d_backward, out, ib || r ? 5 : 3, ins);
    if (n) {
        n->first_write = 1u | 1u << 4;   /* x's and r's gradients: written whole (add 0) */
        n->saved[0] = col;
        n->i[0] = stride;
        n->i[1] = pad;
        n->i[2] = workers;
    }
    return out;
}

static void upsample2x_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    if (ug_grad_of(x))
        ug_k_upsample2x_backward(x->grad, n->out->grad, x->shape[0] * x->shape[1], x->shape[2],
                                 x->shape[3]);
}

ug_tensor *ug_upsample2x(ug_ctx *ctx, ug_tensor *x) {
    char s1[96];
    UG_CHECK(x->ndim == 4, "upsample2x: input %s, expected (N, C, H, W)",
             ug_shape_str(x, s1, sizeof s1));
    ug_tensor *out = ug_tensor_new(
        ctx, 4, (int64_t[]){x->shape[0], x->shape[1], 2 * x->shape[2], 2 * x->shape[3]});
    ug_k_upsample2x_forward(out->data, x->data, x->shape[0] * x->shape[1], x->shape[2],
                            x->shape[3]);
    ug_tape_record(ctx, "upsample2x", upsample2x_backward, out, 1, &x);
    return out;
}

static void avg_pool2d_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    if (ug_grad_of(x))
        ug_k_avg_pool2d_backward(x->grad, n->out->grad, x->shape[0] * x->shape[1], x->shape[2],
                                 x->shape[3], n->i[0]);
}

ug_tensor *ug_avg_pool2d(ug_ctx *ctx, ug_tensor *x, int k) {
    char s1[96];
    UG_CHECK(x->ndim == 4 && k >= 1 && x->shape[2] >= k && x->shape[3] >= k,
             "avg_pool2d: input %s (N, C, H, W) with kernel %d", ug_shape_str(x, s1, sizeof s1), k);
    ug_tensor *out = ug_tensor_new(
        ctx, 4, (int64_t[]){x->shape[0], x->shape[1], x->shape[2] / k, x->shape[3] / k});
    ug_k_avg_pool2d_forward(out->data, x->data, x->shape[0] * x->shape[1], x->shape[2],
                            x->shape[3], k);
    ug_node *n = ug_tape_record(ctx, "avg_pool2d", avg_pool2d_backward, out, 1, &x);
    if (n) n->i[0] = k;
    return out;
}
