/* norm.c — group norm and layer norm on the tape; mean and rstd per slice are saved for the
 * backward pass (saved[0], saved[1]). */
#include "core/core.h"
#include "kernels/norm.h"

static void check_affine(const char *op, const ug_tensor *t, const char *what, int64_t n) {
    char s1[96];
    UG_CHECK(!t || (t->ndim == 1 && t->shape[0] == n), "%s: %s %s, expected (%lld)", op, what,
             t ? ug_shape_str(t, s1, sizeof s1) : "", (long long)n);
}

/* i[0..5] = N, C, S, G, silu, threads of the scratch (saved[2], fused op only); saved[3] the
 * per-(image, channel) sums the backward hands from dx to dw and db. */
static void group_norm_backward(ug_node *n) {
    ug_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    const int dx_add = ug_grad_add(x);
    ug_k_group_norm_backward(ug_grad_of(x), ug_grad_of(w), ug_grad_of(b), n->out->grad,
                             x->data, w ? w->data : NULL, b ? b->data : NULL, n->saved[0],
                             n->saved[1], n->i[0], n->i[1], n->i[2], n->i[3], (int)n->i[4],
                             n->saved[2], (int)n->i[5], n->saved[3], dx_add);
}

/* Group norm, and with silu the fused group norm + SiLU (kernels/norm.c): only x, mean and rstd
 * are kept, no normalized tensor, plus a per-thread scratch for the backward. */
static ug_tensor *group_norm_op(ug_ctx *ctx, const char *op, ug_tensor *x, ug_tensor *w,
                                ug_tensor *b, int groups, float eps, int silu) {
    char s1[96];
    UG_CHECK(x->ndim >= 2 && groups >= 1 && x->shape[1] % groups == 0,
             "%s: input %s (N, C, *) with %d groups", op, ug_shape_str(x, s1, sizeof s1), groups);
    int64_t N = x->shape[0], C = x->shape[1], S = 1;
    for (int d = 2; d < x->ndim; d++) S *= x->shape[d];
    check_affine(op, w, "weight", C);
    check_affine(op, b, "bias", C);
    ug_tensor *out = ug_tensor_new(ctx, x->ndim, x->shape);
    float *mean = ug_ctx_alloc(ctx, (size_t)(N * groups) * sizeof(float));
    float *rstd = ug_ctx_alloc(ctx, (size_t)(N * groups) * sizeof(float));
    ug_k_group_norm_forward(out->data, mean, rstd, x->data, w ? w->data : NULL,
                            b ? b->data : NULL, N, C, S, groups, eps, silu);
    ug_tensor *ins[3] = {x, w, b};
    ug_node *n = ug_tape_record(ctx, op, group_norm_backward, out, 3, ins);
    if (n) {
        int nthr = omp_get_max_threads();
        n->first_write = 1u;   /* x's gradient: written whole by the dx pass */
        n->saved[0] = mean;
        n->saved[1] = rstd;
        if (silu)
            n->saved[2] = ug_ctx_alloc(ctx, (size_t)nthr * (size_t)(C / groups * S) * sizeof(float));
        n->saved[3] = ug_ctx_alloc(ctx, (size_t)(2 * N * C) * sizeof(double));   /* dw/db sums */
        n->i[0] = N; n->i[1] = C; n->i[2] = S; n->i[3] = groups; n->i[4] = silu; n->i[5] = nthr;
    }
    return out;
}

ug_tensor *ug_group_norm(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b, int groups,
                         float eps) {
    return group_norm_op(ctx, "group_norm", x, w, b, groups, eps, 0);
}

ug_tensor *ug_group_norm_silu(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b, int groups,
                              float eps) {
    return group_norm_op(ctx, "group_norm_silu", x, w, b, groups, eps, 1);
}

/* i[0..1] = R (rows), D. */
static void layer_norm_backward(ug_node *n) {
    ug_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    ug_k_layer_norm_backward(ug_grad_of(x), ug_grad_of(w), ug_grad_of(b), n->out->grad,
                             x->data, w ? w->data : NULL, n->saved[0], n->saved[1], n->i[0],
                             n->i[1]);
}

ug_tensor *ug_layer_norm(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b, float eps) {
    char s1[96];
    UG_CHECK(x->ndim >= 1 && x->shape[x->ndim - 1] > 0, "layer_norm: input %s",
             ug_shape_str(x, s1, sizeof s1));
    int64_t D = x->shape[x->ndim - 1], R = x->numel / D;
    check_affine("layer_norm", w, "weight", D);
    check_affine("layer_norm", b, "bias", D);
    ug_tensor *out = ug_tensor_new(ctx, x->ndim, x->shape);
    float *mean = ug_ctx_alloc(ctx, (size_t)R * sizeof(float));
    float *rstd = ug_ctx_alloc(ctx, (size_t)R * sizeof(float));
    ug_k_layer_norm_forward(out->data, mean, rstd, x->data, w ? w->data : NULL,
                            b ? b->data : NULL, R, D, eps);
    ug_tensor *ins[3] = {x, w, b};
    ug_node *n = ug_tape_record(ctx, "layer_norm", layer_norm_backward, out, 3, ins);
    if (n) {
        n->saved[0] = mean;
        n->saved[1] = rstd;
        n->i[0] = R; n->i[1] = D;
    }
    return out;
}
