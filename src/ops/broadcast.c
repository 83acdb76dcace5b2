/* broadcast.c — add, sub, mul, div with NumPy/PyTorch broadcasting on the tape.
 * Shapes are right-aligned and size-1 dims stretch; the output has the larger ndim. The plan
 * (kernels/broadcast.h) is kept in the arena for backward, which reduces each operand's
 * gradient over the dims it was broadcast along. */
#include "core/core.h"
#include "kernels/broadcast.h"

static void binary_backward(ug_node *n) {
    ug_tensor *a = n->in[0], *b = n->in[1];
    float *da = ug_grad_of(a), *db = ug_grad_of(b);
    /* In this order: a and b may be one tensor (its first use writes, the second adds). */
    const int da_add = ug_grad_add(a);
    const int db_add = ug_grad_add(b);
    ug_k_binary_backward((ug_binop)n->i[0], da, db, n->out->grad, a->data, b->data, n->saved[0],
                         da_add, db_add);
}

static ug_tensor *binary(ug_ctx *ctx, ug_tensor *a, ug_tensor *b, ug_binop op) {
    char s1[96], s2[96];
    ug_bcast plan;
    int64_t shape[UG_MAX_DIMS];
    int nd;
    UG_CHECK(ug_bcast_plan(&plan, a->ndim, a->shape, b->ndim, b->shape, shape, &nd),
             "%s: shapes %s and %s do not broadcast", ug_binop_name(op),
             ug_shape_str(a, s1, sizeof s1), ug_shape_str(b, s2, sizeof s2));
    ug_tensor *out = ug_tensor_new(ctx, nd, shape);
    ug_k_binary_forward(op, out->data, a->data, b->data, &plan);
    ug_tensor *ins[2] = {a, b};
    ug_node *n = ug_tape_record(ctx, ug_binop_name(op), binary_backward, out, 2, ins);
    if (n) {
        ug_bcast *saved = ug_ctx_alloc(ctx, sizeof plan);
        *saved = plan;
        n->saved[0] = saved;
        n->i[0] = op;
        n->first_write = 3u;   /* both gradients: written (or zeroed by grad_one) */
    }
    return out;
}

ug_tensor *ug_add(ug_ctx *ctx, ug_tensor *a, ug_tensor *b) { return binary(ctx, a, b, UG_BIN_ADD); }
ug_tensor *ug_sub(ug_ctx *ctx, ug_tensor *a, ug_tensor *b) { return binary(ctx, a, b, UG_BIN_SUB); }
ug_tensor *ug_mul(ug_ctx *ctx, ug_tensor *a, ug_tensor *b) { return binary(ctx, a, b, UG_BIN_MUL); }
ug_tensor *ug_div(ug_ctx *ctx, ug_tensor *a, ug_tensor *b) { return binary(ctx, a, b, UG_BIN_DIV); }
