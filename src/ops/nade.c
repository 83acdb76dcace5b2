/* nade.c — NADE's fused logits op and sampler on the tape (kernels/nade.c holds the formulas;
 * Larochelle & Murray 2011). W is transposed once per call so each step reads a contiguous
 * column. */
#include "ops/ar_ops.h"
#include "kernels/nade.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static void check_nade(const ug_tensor *x, const ug_tensor *w, const ug_tensor *c,
                       const ug_tensor *v) {
    char s1[96], s2[96], s3[96], s4[96];
    int ok = x->ndim == 2 && w->ndim == 2 && c->ndim == 1 && v->ndim == 2;
    int64_t d = ok ? x->shape[1] : 0, H = ok ? w->shape[0] : 0;
    ok = ok && w->shape[1] == d && c->shape[0] == H && v->shape[0] == d && v->shape[1] == H;
    UG_CHECK(ok, "nade_logits: x %s, W %s, c %s, V %s: expected (B, d), (H, d), (H), (d, H)",
             ug_shape_str(x, s1, sizeof s1), ug_shape_str(w, s2, sizeof s2),
             ug_shape_str(c, s3, sizeof s3), ug_shape_str(v, s4, sizeof s4));
}

static float *transpose(ug_ctx *ctx, const ug_tensor *w) {
    int64_t H = w->shape[0], d = w->shape[1];
    float *wt = ug_ctx_alloc(ctx, (size_t)(d * H) * sizeof *wt);
    for (int64_t k = 0; k < H; k++)
        for (int64_t i = 0; i < d; i++) wt[i * H + k] = w->data[k * d + i];
    return wt;
}

/* saved: wt (d, H), aend (B, H), backward scratch; i[0] = threads the scratch was sized for. */
static void nade_backward(ug_node *n) {
    ug_tensor *x = n->in[0], *w = n->in[1], *c = n->in[2], *v = n->in[3];
    int64_t B = x->shape[0], d = x->shape[1], H = w->shape[0];
    ug_k_nade_backward(ug_grad_of(x), ug_grad_of(w), ug_grad_of(c), ug_grad_of(v), NULL,
                       n->out->grad, x->data, n->saved[1], n->saved[0], v->data, n->saved[2],
                       (int)n->i[0], B, d, H);
}

ug_tensor *ug_nade_logits(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *c, ug_tensor *v) {
    check_nade(x, w, c, v);
    int64_t B = x->shape[0], d = x->shape[1], H = w->shape[0];
    int nt = max_threads();
    float *wt = transpose(ctx, w);
    ug_tensor *out = ug_tensor_new(ctx, 2, (int64_t[]){B, d});
    ug_tensor *ins[4] = {x, w, c, v};
    int rec = ug_any_requires_grad(ctx, 4, ins);
    float *aend = rec ? ug_ctx_alloc(ctx, (size_t)(B * H) * sizeof *aend) : NULL;
    float *scratch = ug_ctx_alloc(ctx, (size_t)ug_k_nade_forward_scratch(nt, H) * sizeof *scratch);
    ug_k_nade_forward(out->data, aend, x->data, NULL, wt, c->data, v->data, NULL, scratch, nt, B,
                      d, H);
    ug_node *n = ug_tape_record(ctx, "nade_logits", nade_backward, out, 4, ins);
    if (n) {
        n->saved[0] = wt;
        n->saved[1] = aend;
        n->saved[2] = ug_ctx_alloc(ctx, (size_t)ug_k_nade_backward_scratch(nt, B, d, H) *
                                            sizeof(float));
        n->i[0] = nt;
    }
    return out;
}

void ug_nade_sample(ug_ctx *ctx, float *x, const float *u, int64_t n, const ug_tensor *w,
                    const ug_tensor *c, const ug_tensor *v, const ug_tensor *b) {
    int64_t d = w->shape[1], H = w->shape[0];
    int nt = max_threads();
    float *wt = transpose(ctx, w);
    float *logits = ug_ctx_alloc(ctx, (size_t)(n * d) * sizeof *logits);
    float *scratch = ug_ctx_alloc(ctx, (size_t)ug_k_nade_forward_scratch(nt, H) * sizeof *scratch);
    ug_k_nade_forward(logits, NULL, x, u, wt, c->data, v->data, b->data, scratch, nt, n, d, H);
}
