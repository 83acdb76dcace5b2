/* embed.c — embedding lookup, sinusoidal embeddings and inverted dropout on the tape.
 * Embedding keeps a copy of the indices in the arena (the caller's array may change before
 * backward); dropout keeps its per-element scale (0 or 1/(1-p)) there. */
#include "core/core.h"
#include "embed_ops.h"
#include "kernels/embed.h"

static void embedding_backward(ug_node *n) {
    ug_tensor *w = n->in[0];
    if (w->requires_grad && w->grad)
        ug_k_embedding_backward(w->grad, n->out->grad, n->saved[0], n->i[0], w->shape[1]);
}

ug_tensor *ug_embedding(ug_ctx *ctx, ug_tensor *weight, const int32_t *idx, int64_t n) {
    char s[96];
    UG_CHECK(weight->ndim == 2 && n >= 0, "embedding: weight %s must be (V, D), n = %lld",
             ug_shape_str(weight, s, sizeof s), (long long)n);
    int64_t V = weight->shape[0], D = weight->shape[1];
    for (int64_t i = 0; i < n; i++)
        UG_CHECK(idx[i] >= 0 && idx[i] < V, "embedding: index %lld is %d, outside [0, %lld)",
                 (long long)i, idx[i], (long long)V);
    ug_tensor *out = ug_tensor_new(ctx, 2, (int64_t[]){n, D});
    ug_k_embedding_forward(out->data, weight->data, idx, n, D);
    ug_node *node = ug_tape_record(ctx, "embedding", embedding_backward, out, 1, &weight);
    if (node) {
        int32_t *copy = ug_ctx_alloc(ctx, (size_t)n * sizeof *copy);
        memcpy(copy, idx, (size_t)n * sizeof *copy);
        node->saved[0] = copy;
        node->i[0] = n;
    }
    return out;
}

/* i[0] = half, i[1] = cos_first, f[0] = log_fmax. */
static void sinusoidal_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    if (x->requires_grad && x->grad)
        ug_k_sinusoidal_backward(x->grad, n->out->grad, x->data, x->numel, n->i[0],
                                 (float)n->f[0], (int)n->i[1]);
}

ug_tensor *ug_sinusoidal(ug_ctx *ctx, ug_tensor *x, int dim, float log_fmax, int cos_first) {
    char s[96];
    UG_CHECK(x->ndim == 1, "sinusoidal: x %s must be (B)", ug_shape_str(x, s, sizeof s));
    UG_CHECK(dim >= 2 && dim % 2 == 0, "sinusoidal: dim %d must be even and >= 2", dim);
    int64_t B = x->shape[0], half = dim / 2;
    ug_tensor *out = ug_tensor_new(ctx, 2, (int64_t[]){B, dim});
    ug_k_sinusoidal_forward(out->data, x->data, B, half, log_fmax, cos_first);
    ug_node *n = ug_tape_record(ctx, "sinusoidal", sinusoidal_backward, out, 1, &x);
    if (n) {
        n->i[0] = half;
        n->i[1] = cos_first != 0;
        n->f[0] = log_fmax;
    }
    return out;
}

static void dropout_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    if (x->requires_grad && x->grad)
        ug_k_mul_mask_backward(x->grad, n->out->grad, n->saved[0], x->numel);
}

/* out = x * scale, recorded with scale (arena, numel floats) saved for backward. */
static ug_tensor *dropout_apply(ug_ctx *ctx, ug_tensor *x, float *scale) {
    ug_tensor *out = ug_tensor_new(ctx, x->ndim, x->shape);
    ug_k_mul_mask_forward(out->data, x->data, scale, x->numel);
    ug_node *n = ug_tape_record(ctx, "dropout", dropout_backward, out, 1, &x);
    if (n) n->saved[0] = scale;
    return out;
}

/* p = 0 and p = 1 draw nothing: every scale is 1 or 0. Returns 0 for other p. */
static int dropout_trivial(float p, float *scale, int64_t n) {
    if (p != 0.0f && p != 1.0f) return 0;
    float v = p == 0.0f ? 1.0f : 0.0f;
    for (int64_t i = 0; i < n; i++) scale[i] = v;
    return 1;
}

/* The mask is ug_rng_bernoulli(1 - p) from the caller's cursor, which advances; p = 0 and
 * p = 1 draw nothing (the cursor stays put): p = 0 is an identity copy, p = 1 drops everything
 * (zeros out and zero gradient, as torch.nn.functional.dropout with p = 1). */
ug_tensor *ug_dropout(ug_ctx *ctx, ug_tensor *x, float p, ug_rng *rng) {
    UG_CHECK(p >= 0.0f && p <= 1.0f, "dropout: p = %g outside [0, 1]", (double)p);
    float *scale = ug_ctx_alloc(ctx, (size_t)x->numel * sizeof(float));
    if (!dropout_trivial(p, scale, x->numel)) {
        float keep = 1.0f - p, inv = 1.0f / keep;
        ug_rng_bernoulli(rng, keep, scale, x->numel);
        for (int64_t i = 0; i < x->numel; i++) scale[i] *= inv;
    }
    return dropout_apply(ctx, x, scale);
}

ug_tensor *ug_dropout_rows(ug_ctx *ctx, ug_tensor *x, float p, uint64_t seed,
                           uint64_t first_stream, uint32_t sub) {
    char s[96];
    UG_CHECK(p >= 0.0f && p <= 1.0f, "dropout_rows: p = %g outside [0, 1]", (double)p);
    UG_CHECK(x->ndim >= 1 && x->shape[0] >= 1, "dropout_rows: x %s needs a batch axis",
             ug_shape_str(x, s, sizeof s));
    float *scale = ug_ctx_alloc(ctx, (size_t)x->numel * sizeof(float));
    if (!dropout_trivial(p, scale, x->numel)) {
        int64_t B = x->shape[0], row = x->numel / B;
        float keep = 1.0f - p, inv = 1.0f / keep;
        /* Each row is a pure function of its own stream: any split over threads is the same. */
#pragma omp parallel for schedule(static) if (x->numel >= UG_PAR_MIN)
        for (int64_t b = 0; b < B; b++) {
            ug_rng r = ug_rng_make(seed, first_stream + (uint64_t)b, sub);
            float *sc = scale + b * row;
            ug_rng_bernoulli(&r, keep, sc, row);
            for (int64_t i = 0; i < row; i++) sc[i] *= inv;
        }
    }
    return dropout_apply(ctx, x, scale);
}
