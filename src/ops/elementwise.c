/* elementwise.c — activations, affine, reshape views and detach on the tape. */
#include "core/core.h"
#include "kernels/elementwise.h"

static void act_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    if (ug_grad_of(x)) {
        const int add = ug_grad_add(x);
        ug_k_act_backward((ug_act)n->i[0], x->grad, n->out->grad, x->data, n->out->data, x->numel,
                          add);
    }
}

static ug_tensor *act(ug_ctx *ctx, ug_tensor *x, ug_act a) {
    ug_tensor *out = ug_tensor_new(ctx, x->ndim, x->shape);
    ug_k_act_forward(a, out->data, x->data, x->numel);
    ug_node *n = ug_tape_record(ctx, ug_act_name(a), act_backward, out, 1, &x);
    if (n) {
        n->i[0] = a;
        n->first_write = 1u;   /* x's gradient: written whole when nothing is in it yet */
    }
    return out;
}

ug_tensor *ug_silu(ug_ctx *ctx, ug_tensor *x) { return act(ctx, x, UG_ACT_SILU); }

ug_tensor *ug_silu_inplace(ug_ctx *ctx, ug_tensor *x) {
    if (ug_any_requires_grad(ctx, 1, &x)) return act(ctx, x, UG_ACT_SILU);
    ug_k_act_forward(UG_ACT_SILU, x->data, x->data, x->numel);
    return x;
}
ug_tensor *ug_gelu(ug_ctx *ctx, ug_tensor *x) { return act(ctx, x, UG_ACT_GELU); }
ug_tensor *ug_relu(ug_ctx *ctx, ug_tensor *x) { return act(ctx, x, UG_ACT_RELU); }
ug_tensor *ug_tanh(ug_ctx *ctx, ug_tensor *x) { return act(ctx, x, UG_ACT_TANH); }
ug_tensor *ug_sigmoid(ug_ctx *ctx, ug_tensor *x) { return act(ctx, x, UG_ACT_SIGMOID); }
ug_tensor *ug_softplus(ug_ctx *ctx, ug_tensor *x) { return act(ctx, x, UG_ACT_SOFTPLUS); }
ug_tensor *ug_exp(ug_ctx *ctx, ug_tensor *x) { return act(ctx, x, UG_ACT_EXP); }
ug_tensor *ug_log(ug_ctx *ctx, ug_tensor *x) { return act(ctx, x, UG_ACT_LOG); }
ug_tensor *ug_square(ug_ctx *ctx, ug_tensor *x) { return act(ctx, x, UG_ACT_SQUARE); }
ug_tensor *ug_sqrt(ug_ctx *ctx, ug_tensor *x) { return act(ctx, x, UG_ACT_SQRT); }

static void affine_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    float a = (float)n->f[0];
    const float *dout = n->out->grad;
    if (!ug_grad_of(x)) return;
    for (int64_t i = 0; i < x->numel; i++) x->grad[i] += a * dout[i];
}

ug_tensor *ug_affine(ug_ctx *ctx, ug_tensor *x, float a, float b) {
    ug_tensor *out = ug_tensor_new(ctx, x->ndim, x->shape);
    ug_k_affine_forward(out->data, x->data, a, b, x->numel);
    ug_node *n = ug_tape_record(ctx, "affine", affine_backward, out, 1, &x);
    if (n) n->f[0] = a;
    return out;
}

ug_tensor *ug_reshape(ug_ctx *ctx, ug_tensor *x, int ndim, const int64_t *shape) {
    /* One -1 entry is inferred, as in PyTorch. */
    int64_t s[UG_MAX_DIMS], known = 1;
    int infer = -1;
    UG_CHECK(ndim >= 0 && ndim <= UG_MAX_DIMS, "reshape: ndim %d", ndim);
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1) {
            UG_CHECK(infer < 0, "reshape: more than one -1");
            infer = i;
        } else {
            known *= s[i];
        }
    }
    if (infer >= 0) {
        UG_CHECK(known > 0 && x->numel % known == 0, "reshape: cannot infer -1 for %lld elements",
                 (long long)x->numel);
        s[infer] = x->numel / known;
    }
    return ug_tensor_view(ctx, x, ndim, s);
}

ug_tensor *ug_detach(ug_ctx *ctx, ug_tensor *x) {
    int old = ug_ctx_set_grad(ctx, 0);
    ug_tensor *t = ug_tensor_view(ctx, x, x->ndim, x->shape);
    ug_ctx_set_grad(ctx, old);
    return t;
}
