/* attention.c — fused multi-head attention on the tape. The probabilities P (B, heads, T, T)
 * are saved (saved[0]); a row of dP per (batch, head) is scratch for backward (saved[1]). */
#include "core/core.h"
#include "kernels/attention.h"

static void attention_backward(ug_node *n) {
    ug_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    ug_k_attention_backward(ug_grad_of(q), ug_grad_of(k), ug_grad_of(v), n->saved[1], n->out->grad, q->data,
                            k->data, v->data, n->saved[0], q->shape[0], q->shape[1],
                            q->shape[2], n->i[0]);
}

ug_tensor *ug_attention(ug_ctx *ctx, ug_tensor *q, ug_tensor *k, ug_tensor *v, int heads) {
    char s1[96], s2[96], s3[96];
    UG_CHECK(q->ndim == 3 && ug_tensor_same_shape(q, k) && ug_tensor_same_shape(q, v),
             "attention: q %s, k %s, v %s must all be (B, T, C)", ug_shape_str(q, s1, sizeof s1),
             ug_shape_str(k, s2, sizeof s2), ug_shape_str(v, s3, sizeof s3));
    UG_CHECK(heads >= 1 && q->shape[2] % heads == 0, "attention: %d heads do not divide C in %s",
             heads, ug_shape_str(q, s1, sizeof s1));
    int64_t B = q->shape[0], T = q->shape[1], C = q->shape[2];
    ug_tensor *out = ug_tensor_new(ctx, 3, q->shape);
    float *P = ug_ctx_alloc(ctx, (size_t)(B * heads * T * T) * sizeof(float));
    ug_k_attention_forward(out->data, P, q->data, k->data, v->data, B, T, C, heads);
    ug_tensor *ins[3] = {q, k, v};
    ug_node *n = ug_tape_record(ctx, "attention", attention_backward, out, 3, ins);
    if (n) {
        n->saved[0] = P;
        n->saved[1] = ug_ctx_alloc(ctx, (size_t)(B * heads * T) * sizeof(float));
        n->i[0] = heads;
    }
    return out;
}
