/* softmax.c — softmax, log_softmax and logsumexp over the last dimension on the tape.
 * softmax and log_softmax backward from their saved output; logsumexp from x and lse. */
#include "core/core.h"
#include "kernels/softmax.h"

static void rows_of(const char *op, const ug_tensor *x, int64_t *N, int64_t *C) {
    char s[96];
    UG_CHECK(x->ndim >= 1, "%s: input %s needs at least one dim", op, ug_shape_str(x, s, sizeof s));
    *C = x->shape[x->ndim - 1];
    *N = ug_shape_numel(x->ndim - 1, x->shape);  /* rows, even when C = 0 */
}

static void softmax_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    if (x->requires_grad && x->grad)
        ug_k_softmax_backward(x->grad, n->out->grad, n->out->data, n->i[0], n->i[1]);
}

static void log_softmax_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    if (x->requires_grad && x->grad)
        ug_k_log_softmax_backward(x->grad, n->out->grad, n->out->data, n->i[0], n->i[1]);
}

static void logsumexp_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    if (x->requires_grad && x->grad)
        ug_k_logsumexp_backward(x->grad, n->out->grad, x->data, n->out->data, n->i[0], n->i[1]);
}

ug_tensor *ug_softmax(ug_ctx *ctx, ug_tensor *x) {
    int64_t N, C;
    rows_of("softmax", x, &N, &C);
    ug_tensor *out = ug_tensor_new(ctx, x->ndim, x->shape);
    ug_k_softmax_forward(out->data, x->data, N, C);
    ug_node *n = ug_tape_record(ctx, "softmax", softmax_backward, out, 1, &x);
    if (n) { n->i[0] = N; n->i[1] = C; }
    return out;
}

ug_tensor *ug_log_softmax(ug_ctx *ctx, ug_tensor *x) {
    int64_t N, C;
    rows_of("log_softmax", x, &N, &C);
    ug_tensor *out = ug_tensor_new(ctx, x->ndim, x->shape);
    ug_k_log_softmax_forward(out->data, x->data, N, C);
    ug_node *n = ug_tape_record(ctx, "log_softmax", log_softmax_backward, out, 1, &x);
    if (n) { n->i[0] = N; n->i[1] = C; }
    return out;
}

ug_tensor *ug_logsumexp(ug_ctx *ctx, ug_tensor *x) {
    int64_t N, C;
    rows_of("logsumexp", x, &N, &C);
    ug_tensor *out = ug_tensor_new(ctx, x->ndim - 1, x->shape);
    ug_k_logsumexp_forward(out->data, x->data, N, C);
    ug_node *n = ug_tape_record(ctx, "logsumexp", logsumexp_backward, out, 1, &x);
    if (n) { n->i[0] = N; n->i[1] = C; }
    return out;
}
