/* flow.c — the flow ops of flow_ops.h on the tape: shape checks, kernel call, record. */
#include "ops/flow_ops.h"
#include "kernels/flow.h"

static int64_t per_example(const ug_tensor *x) { return x->ndim ? x->numel / x->shape[0] : 0; }

static void gather_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    if (ug_grad_of(x))
        ug_k_scatter_cols(x->grad, n->out->grad, n->saved[0], x->shape[0], per_example(x),
                          n->i[0], 1);
}

ug_tensor *ug_flow_gather(ug_ctx *ctx, ug_tensor *x, const int32_t *idx, int64_t m) {
    char s[96];
    UG_CHECK(x->ndim >= 2 && m >= 0 && m <= per_example(x),
             "flow_gather: input %s (N, ...), %lld columns", ug_shape_str(x, s, sizeof s),
             (long long)m);
    int64_t N = x->shape[0], D = per_example(x);
    for (int64_t j = 0; j < m; j++)
        UG_CHECK(idx[j] >= 0 && idx[j] < D, "flow_gather: index %d at %lld outside [0, %lld)",
                 idx[j], (long long)j, (long long)D);
    ug_tensor *out = ug_tensor_new(ctx, 2, (int64_t[]){N, m});
    ug_k_gather_cols(out->data, x->data, idx, N, D, m, 0);
    ug_node *n = ug_tape_record(ctx, "flow_gather", gather_backward, out, 1, &x);
    if (n) {
        n->saved[0] = (void *)idx;
        n->i[0] = m;
    }
    return out;
}

static void merge_backward(ug_node *n) {
    int64_t N = n->out->shape[0], D = n->out->shape[1];
    for (int k = 0; k < 2; k++) {
        ug_tensor *t = n->in[k];
        if (ug_grad_of(t))
            ug_k_gather_cols(t->grad, n->out->grad, n->saved[k], N, D, t->shape[1], 1);
    }
}

ug_tensor *ug_flow_merge(ug_ctx *ctx, ug_tensor *a, const int32_t *ia, ug_tensor *b,
                         const int32_t *ib) {
    char s1[96], s2[96];
    UG_CHECK(a->ndim == 2 && b->ndim == 2 && a->shape[0] == b->shape[0],
             "flow_merge: halves %s and %s, expected (N, ma) and (N, mb)",
             ug_shape_str(a, s1, sizeof s1), ug_shape_str(b, s2, sizeof s2));
    int64_t N = a->shape[0], D = a->shape[1] + b->shape[1];
    ug_tensor *out = ug_tensor_new(ctx, 2, (int64_t[]){N, D});
    ug_k_scatter_cols(out->data, a->data, ia, N, D, a->shape[1], 0);
    ug_k_scatter_cols(out->data, b->data, ib, N, D, b->shape[1], 0);
    ug_tensor *ins[2] = {a, b};
    ug_node *n = ug_tape_record(ctx, "flow_merge", merge_backward, out, 2, ins);
    if (n) {
        n->saved[0] = (void *)ia;
        n->saved[1] = (void *)ib;
    }
    return out;
}

static void check_affine(const char *op, const ug_tensor *x, const ug_tensor *h) {
    char s1[96], s2[96];
    UG_CHECK(x->ndim >= 1 && h->ndim >= 1 && x->shape[0] == h->shape[0] &&
                 per_example(h) == 2 * per_example(x),
             "%s: x %s and h %s: h must hold 2 values (s, t) per value of x",
             op, ug_shape_str(x, s1, sizeof s1), ug_shape_str(h, s2, sizeof s2));
}

static void affine_backward(ug_node *n) {
    ug_tensor *x = n->in[0], *h = n->in[1];
    ug_k_coupling_backward(ug_grad_of(x), ug_grad_of(h), n->out->grad, x->data, h->data,
                         n->saved[0], (float)n->f[0], x->shape[0], per_example(x));
}

ug_tensor *ug_flow_affine(ug_ctx *ctx, ug_tensor *x, ug_tensor *h, const float *mask, float c) {
    check_affine("flow_affine", x, h);
    ug_tensor *out = ug_tensor_new(ctx, x->ndim, x->shape);
    ug_k_coupling_forward(out->data, x->data, h->data, mask, c, x->shape[0], per_example(x));
    ug_tensor *ins[2] = {x, h};
    ug_node *n = ug_tape_record(ctx, "flow_affine", affine_backward, out, 2, ins);
    if (n) {
        n->saved[0] = (void *)mask;
        n->f[0] = c;
    }
    return out;
}

ug_tensor *ug_flow_affine_inverse(ug_ctx *ctx, ug_tensor *y, ug_tensor *h, const float *mask,
                                  float c) {
    check_affine("flow_affine_inverse", y, h);
    ug_tensor *out = ug_tensor_new(ctx, y->ndim, y->shape);
    ug_k_coupling_inverse(out->data, y->data, h->data, mask, c, y->shape[0], per_example(y));
    return out;
}

static void affine_logdet_backward(ug_node *n) {
    ug_tensor *h = n->in[0];
    if (ug_grad_of(h))
        ug_k_coupling_logdet_backward(h->grad, n->out->grad, h->data, n->saved[0], (float)n->f[0],
                                    h->shape[0], per_example(h) / 2);
}

ug_tensor *ug_flow_affine_logdet(ug_ctx *ctx, ug_tensor *h, const float *mask, float c) {
    char s[96];
    UG_CHECK(h->ndim >= 2 && per_example(h) % 2 == 0,
             "flow_affine_logdet: h %s, expected (N, ...) with an even count per example",
             ug_shape_str(h, s, sizeof s));
    ug_tensor *out = ug_tensor_new(ctx, 1, h->shape);
    ug_k_coupling_logdet_forward(out->data, h->data, mask, c, h->shape[0], per_example(h) / 2);
    ug_node *n = ug_tape_record(ctx, "flow_affine_logdet", affine_logdet_backward, out, 1, &h);
    if (n) {
        n->saved[0] = (void *)mask;
        n->f[0] = c;
    }
    return out;
}

static void prior_backward(ug_node *n) {
    ug_tensor *z = n->in[0];
    if (ug_grad_of(z))
        ug_k_prior_logp_backward(z->grad, n->out->grad, z->data, (int)n->i[0], z->shape[0],
                                 per_example(z));
}

ug_tensor *ug_flow_prior_logp(ug_ctx *ctx, ug_tensor *z, int logistic) {
    char s[96];
    UG_CHECK(z->ndim >= 1, "flow_prior_logp: z %s, expected (N, ...)", ug_shape_str(z, s, sizeof s));
    ug_tensor *out = ug_tensor_new(ctx, 1, z->shape);
    ug_k_prior_logp_forward(out->data, z->data, logistic != 0, z->shape[0], per_example(z));
    ug_node *n = ug_tape_record(ctx, "flow_prior_logp", prior_backward, out, 1, &z);
    if (n) n->i[0] = logistic != 0;
    return out;
}

static void lu_weight_backward(ug_node *n) {
    ug_tensor *l = n->in[0], *u = n->in[1], *logs = n->in[2];
    ug_k_lu_weight_backward(ug_grad_of(l), ug_grad_of(u), ug_grad_of(logs), n->out->grad, l->data,
                            u->data, logs->data, n->saved[0], n->saved[1], logs->shape[0]);
}

ug_tensor *ug_flow_lu_weight(ug_ctx *ctx, ug_tensor *l, ug_tensor *u, ug_tensor *logs,
                             const int32_t *perm, const float *sign) {
    char s1[96], s2[96], s3[96];
    int64_t C = logs->shape[0];
    UG_CHECK(logs->ndim == 1 && l->ndim == 2 && u->ndim == 2 && l->shape[0] == C &&
                 l->shape[1] == C && u->shape[0] == C && u->shape[1] == C,
             "flow_lu_weight: l %s, u %s, logs %s: expected (C, C), (C, C), (C)",
             ug_shape_str(l, s1, sizeof s1), ug_shape_str(u, s2, sizeof s2),
             ug_shape_str(logs, s3, sizeof s3));
    ug_tensor *out = ug_tensor_new(ctx, 2, (int64_t[]){C, C});
    ug_k_lu_weight_forward(out->data, l->data, u->data, logs->data, perm, sign, C);
    ug_tensor *ins[3] = {l, u, logs};
    ug_node *n = ug_tape_record(ctx, "flow_lu_weight", lu_weight_backward, out, 3, ins);
    if (n) {
        n->saved[0] = (void *)perm;
        n->saved[1] = (void *)sign;
    }
    return out;
}
