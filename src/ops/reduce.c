/* reduce.c — sum and mean over one axis (keepdim as in PyTorch) or over everything (-> a 0-dim
 * tensor with one element, which ug_backward accepts as a loss). */
#include "core/core.h"
#include "kernels/reduce.h"
#include <math.h>

/* i[0..2] = outer, n, inner; f[0] = scale (1 or 1/n). */
static void sum_axis_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    if (x->requires_grad && x->grad)
        ug_k_sum_axis_backward(x->grad, n->out->grad, n->i[0], n->i[1], n->i[2], n->f[0]);
}

static ug_tensor *sum_axis(ug_ctx *ctx, ug_tensor *x, int axis, int keepdim, int mean) {
    const char *op = mean ? "mean" : "sum";
    char s[96];
    UG_CHECK(axis >= -x->ndim && axis < x->ndim, "%s: axis %d outside a tensor of shape %s", op,
             axis, ug_shape_str(x, s, sizeof s));
    if (axis < 0) axis += x->ndim;
    int64_t outer = ug_shape_numel(axis, x->shape), len = x->shape[axis];
    int64_t inner = ug_shape_numel(x->ndim - axis - 1, x->shape + axis + 1);
    int64_t shape[UG_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d != axis) shape[nd++] = x->shape[d];
        else if (keepdim) shape[nd++] = 1;
    }
    /* The mean of nothing is NaN, as in PyTorch. */
    double scale = mean ? (len ? 1.0 / (double)len : NAN) : 1.0;
    ug_tensor *out = ug_tensor_new(ctx, nd, shape);
    ug_k_sum_axis_forward(out->data, x->data, outer, len, inner, scale);
    ug_node *n = ug_tape_record(ctx, op, sum_axis_backward, out, 1, &x);
    if (n) {
        n->i[0] = outer; n->i[1] = len; n->i[2] = inner;
        n->f[0] = scale;
    }
    return out;
}

ug_tensor *ug_sum(ug_ctx *ctx, ug_tensor *x, int axis, int keepdim) {
    return sum_axis(ctx, x, axis, keepdim, 0);
}

ug_tensor *ug_mean(ug_ctx *ctx, ug_tensor *x, int axis, int keepdim) {
    return sum_axis(ctx, x, axis, keepdim, 1);
}

static void sum_all_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    if (x->requires_grad && x->grad)
        ug_k_add_scalar(x->grad, (float)(n->f[0] * n->out->grad[0]), x->numel);
}

static ug_tensor *sum_all(ug_ctx *ctx, ug_tensor *x, int mean) {
    double scale = mean ? (x->numel ? 1.0 / (double)x->numel : NAN) : 1.0;
    ug_tensor *out = ug_tensor_new(ctx, 0, x->shape);
    out->data[0] = (float)(ug_k_sum_all(x->data, x->numel) * scale);
    ug_node *n = ug_tape_record(ctx, mean ? "mean_all" : "sum_all", sum_all_backward, out, 1, &x);
    if (n) n->f[0] = scale;
    return out;
}

ug_tensor *ug_sum_all(ug_ctx *ctx, ug_tensor *x) { return sum_all(ctx, x, 0); }
ug_tensor *ug_mean_all(ug_ctx *ctx, ug_tensor *x) { return sum_all(ctx, x, 1); }
