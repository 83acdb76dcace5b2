/* loss.c — per-sample losses on the tape: sample b is x->shape[0]'s index, its features are
 * everything else, and the output is (B). ug_mean_all turns it into a scalar loss. */
#include "core/core.h"
#include "kernels/loss.h"


static void batch_of(const char *op, const ug_tensor *x, int64_t *B, int64_t *F) {
    char s[96];
    UG_CHECK(x->ndim >= 1, "%s: input %s needs a batch dim", op, ug_shape_str(x, s, sizeof s));
    *B = x->shape[0];
    *F = ug_shape_numel(x->ndim - 1, x->shape + 1);
}

static void check_same(const char *op, const char *what, const ug_tensor *x, const ug_tensor *y) {
    char s1[96], s2[96];
    UG_CHECK(ug_tensor_same_shape(x, y), "%s: %s %s does not match input %s", op, what,
             ug_shape_str(y, s1, sizeof s1), ug_shape_str(x, s2, sizeof s2));
}

/* ---------------------------------------------------------------- mse */
/* in[0..1] = x, y; saved[0] = w's data (not differentiated) or NULL; i[0..1] = B, F. */
static void mse_backward(ug_node *n) {
    ug_k_mse_backward(ug_grad_of(n->in[0]), ug_grad_of(n->in[1]), n->out->grad, n->in[0]->data,
                      n->in[1]->data, n->saved[0], n->i[0], n->i[1]);
}

ug_tensor *ug_mse(ug_ctx *ctx, ug_tensor *x, ug_tensor *y, ug_tensor *w) {
    char s1[96];
    int64_t B, F;
    batch_of("mse", x, &B, &F);
    check_same("mse", "target", x, y);
    UG_CHECK(!w || (w->ndim == 1 && w->shape[0] == B), "mse: weight %s, expected (%lld)",
             w ? ug_shape_str(w, s1, sizeof s1) : "", (long long)B);
    ug_tensor *out = ug_tensor_new(ctx, 1, &B);
    ug_k_mse_forward(out->data, x->data, y->data, w ? w->data : NULL, B, F);
    ug_tensor *ins[2] = {x, y};
    ug_node *n = ug_tape_record(ctx, "mse", mse_backward, out, 2, ins);
    if (n) {
        n->saved[0] = w ? w->data : NULL;
        n->i[0] = B; n->i[1] = F;
    }
    return out;
}

/* ---------------------------------------------------------------- bce with logits */
static void bce_backward(ug_node *n) {
    ug_k_bce_logits_backward(ug_grad_of(n->in[0]), ug_grad_of(n->in[1]), n->out->grad, n->in[0]->data,
                             n->in[1]->data, n->i[0], n->i[1]);
}

ug_tensor *ug_bce_logits(ug_ctx *ctx, ug_tensor *logits, ug_tensor *targets) {
    int64_t B, F;
    batch_of("bce_logits", logits, &B, &F);
    check_same("bce_logits", "targets", logits, targets);
    ug_tensor *out = ug_tensor_new(ctx, 1, &B);
    ug_k_bce_logits_forward(out->data, logits->data, targets->data, B, F);
    ug_tensor *ins[2] = {logits, targets};
    ug_node *n = ug_tape_record(ctx, "bce_logits", bce_backward, out, 2, ins);
    if (n) { n->i[0] = B; n->i[1] = F; }
    return out;
}

/* ---------------------------------------------------------------- cross entropy */
/* saved[0] = lse (B), saved[1] = labels (arena copy); i[0..1] = B, K. */
static void ce_backward(ug_node *n) {
    float *dz = ug_grad_of(n->in[0]);
    if (dz)
        ug_k_cross_entropy_backward(dz, n->out->grad, n->in[0]->data, n->saved[0], n->saved[1],
                                    n->i[0], n->i[1]);
}

ug_tensor *ug_cross_entropy(ug_ctx *ctx, ug_tensor *logits, const int32_t *labels) {
    char s[96];
    UG_CHECK(logits->ndim == 2, "cross_entropy: logits %s must be (B, K)",
             ug_shape_str(logits, s, sizeof s));
    int64_t B = logits->shape[0], K = logits->shape[1];
    for (int64_t b = 0; b < B; b++)
        UG_CHECK(labels[b] >= 0 && labels[b] < K, "cross_entropy: label %lld is %d, outside [0, %lld)",
                 (long long)b, labels[b], (long long)K);
    ug_tensor *out = ug_tensor_new(ctx, 1, &B);
    float *lse = ug_ctx_alloc(ctx, (size_t)B * sizeof(float));
    ug_k_cross_entropy_forward(out->data, lse, logits->data, labels, B, K);
    ug_node *n = ug_tape_record(ctx, "cross_entropy", ce_backward, out, 1, &logits);
    if (n) {
        int32_t *copy = ug_ctx_alloc(ctx, (size_t)B * sizeof *copy);
        memcpy(copy, labels, (size_t)B * sizeof *copy);
        n->saved[0] = lse;
        n->saved[1] = copy;
        n->i[0] = B; n->i[1] = K;
    }
    return out;
}

/* ---------------------------------------------------------------- Gaussian NLL */
static void gnll_backward(ug_node *n) {
    ug_k_gaussian_nll_backward(ug_grad_of(n->in[0]), ug_grad_of(n->in[1]), ug_grad_of(n->in[2]),
                               n->out->grad, n->in[0]->data, n->in[1]->data, n->in[2]->data,
                               n->i[0], n->i[1]);
}

ug_tensor *ug_gaussian_nll(ug_ctx *ctx, ug_tensor *x, ug_tensor *mean, ug_tensor *logvar) {
    int64_t B, F;
    batch_of("gaussian_nll", x, &B, &F);
    check_same("gaussian_nll", "mean", x, mean);
    check_same("gaussian_nll", "logvar", x, logvar);
    ug_tensor *out = ug_tensor_new(ctx, 1, &B);
    ug_k_gaussian_nll_forward(out->data, x->data, mean->data, logvar->data, B, F);
    ug_tensor *ins[3] = {x, mean, logvar};
    ug_node *n = ug_tape_record(ctx, "gaussian_nll", gnll_backward, out, 3, ins);
    if (n) { n->i[0] = B; n->i[1] = F; }
    return out;
}
