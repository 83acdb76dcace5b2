/* linear.c — linear, masked linear (MADE) and batched matmul on the tape. */
#include "core/core.h"
#include "kernels/linear.h"

static void check_linear(const char *op, const ug_tensor *x, const ug_tensor *w,
                         const ug_tensor *b) {
    char s1[96], s2[96];
    UG_CHECK(w->ndim == 2 && x->ndim >= 1 && x->shape[x->ndim - 1] == w->shape[1],
             "%s: input %s does not fit weight %s (out, in)", op, ug_shape_str(x, s1, sizeof s1),
             ug_shape_str(w, s2, sizeof s2));
    UG_CHECK(!b || (b->ndim == 1 && b->shape[0] == w->shape[0]), "%s: bias %s, expected (%lld)",
             op, ug_shape_str(b, s1, sizeof s1), (long long)w->shape[0]);
}

static ug_tensor *linear_out(ug_ctx *ctx, const ug_tensor *x, int64_t O) {
    int64_t shape[UG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = O;
    return ug_tensor_new(ctx, x->ndim, shape);
}

static void linear_backward(ug_node *n) {
    ug_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int64_t Din = w->shape[1], O = w->shape[0], N = x->numel / Din;
    const unsigned add = (ug_grad_add(x) ? UG_ADD_DX : 0u) | (ug_grad_add(w) ? UG_ADD_DW : 0u) |
                         (!b || ug_grad_add(b) ? UG_ADD_DB : 0u);
    ug_k_linear_backward(ug_grad_of(x), ug_grad_of(w), ug_grad_of(b), n->out->grad, x->data,
                         w->data, N, Din, O, add);
}

ug_tensor *ug_linear(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b) {
    check_linear("linear", x, w, b);
    int64_t Din = w->shape[1], O = w->shape[0], N = x->numel / Din;
    ug_tensor *out = linear_out(ctx, x, O);
    ug_k_linear_forward(out->data, x->data, w->data, b ? b->data : NULL, N, Din, O);
    ug_tensor *ins[3] = {x, w, b};
    ug_node *n = ug_tape_record(ctx, "linear", linear_backward, out, 3, ins);
    if (n) n->first_write = 7u;   /* every gradient: written whole when nothing is in it yet */
    return out;
}

/* Masked linear: the forward multiplies by W * M (computed once into the arena). The weight
 * gradient dY^T X is accumulated straight into w->grad and then masked in place, so the masked
 * entries of a masked weight's gradient are zero (they never move, whatever else reads w). */
static void masked_linear_backward(ug_node *n) {
    ug_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    const float *wm = n->saved[0], *mask = n->saved[1];
    int64_t Din = w->shape[1], O = w->shape[0], N = x->numel / Din;
    const unsigned add =
        (ug_grad_add(x) ? UG_ADD_DX : 0u) | (!b || ug_grad_add(b) ? UG_ADD_DB : 0u);
    ug_k_linear_backward(ug_grad_of(x), NULL, ug_grad_of(b), n->out->grad, x->data, wm, N, Din, O,
                         add);
    if (ug_grad_of(w)) {
        ug_k_gemm(1, 0, O, Din, N, n->out->grad, x->data, ug_grad_add(w) ? 1.0f : 0.0f, w->grad);
        ug_k_mask_inplace(w->grad, mask, O * Din);
    }
}

ug_tensor *ug_masked_linear(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, const float *mask,
                            ug_tensor *b) {
    check_linear("masked_linear", x, w, b);
    int64_t Din = w->shape[1], O = w->shape[0], N = x->numel / Din;
    float *wm = ug_ctx_alloc(ctx, (size_t)(O * Din) * sizeof(float));
    ug_k_mask_mul(wm, w->data, mask, O * Din);
    ug_tensor *out = linear_out(ctx, x, O);
    ug_k_linear_forward(out->data, x->data, wm, b ? b->data : NULL, N, Din, O);
    ug_tensor *ins[3] = {x, w, b};
    ug_node *n = ug_tape_record(ctx, "masked_linear", masked_linear_backward, out, 3, ins);
    if (n) {
        n->saved[0] = wm;
        n->saved[1] = (void *)mask;
        n->first_write = 7u;   /* every gradient: written whole when nothing is in it yet */
    }
    return out;
}

/* Prefix linear: the packed weight Wp (sorted rows, prefix columns) is built once into the
 * arena; the backward computes dWp per panel into a second buffer (allocated only when w needs
 * a gradient) and scatters it back to w's layout, so w's masked entries get exactly zero. */
static void prefix_linear_backward(ug_node *n) {
    ug_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int64_t Din = w->shape[1], O = w->shape[0], N = x->numel / Din;
    const int32_t *const *ix = (const int32_t *const *)n->saved[2];
    ug_k_prefix_backward(ug_grad_of(x), ug_grad_of(w), ug_grad_of(b), n->out->grad, x->data,
                         n->saved[0], n->saved[1], ix[0], ix[1], ix[2], N, Din, O, n->saved[3]);
}

static void check_perm(const char *what, const int32_t *idx, int64_t n, unsigned char *seen) {
    memset(seen, 0, (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        UG_CHECK(idx[i] >= 0 && idx[i] < n && !seen[idx[i]],
                 "prefix_linear: %s[%lld] = %d, expected a permutation of 0..%lld", what,
                 (long long)i, idx[i], (long long)(n - 1));
        seen[idx[i]] = 1;
    }
}

ug_tensor *ug_prefix_linear(ug_ctx *ctx, ug_tensor *x, ug_tensor *w, ug_tensor *b,
                            const int32_t *rows, const int32_t *cols, const int32_t *len) {
    check_linear("prefix_linear", x, w, b);
    int64_t Din = w->shape[1], O = w->shape[0], N = x->numel / Din;
    /* The indices: permutations (the backward scatters rows in parallel) and a staircase. */
    unsigned char *seen = ug_ctx_alloc(ctx, (size_t)(O > Din ? O : Din));
    check_perm("rows", rows, O, seen);
    check_perm("cols", cols, Din, seen);
    for (int64_t r = 0; r < O; r++)
        UG_CHECK(len[r] >= (r ? len[r - 1] : 0) && len[r] <= Din,
                 "prefix_linear: len[%lld] = %d, expected nondecreasing in [0, %lld]",
                 (long long)r, len[r], (long long)Din);
    ug_prefix_plan *pl = ug_ctx_alloc(ctx, sizeof *pl);
    ug_k_prefix_plan(pl, len, O);
    float *wp = ug_ctx_alloc(ctx, (size_t)(O * Din) * sizeof(float));
    ug_k_prefix_pack(wp, w->data, Din, rows, cols, len, pl);
    ug_tensor *out = linear_out(ctx, x, O);
    ug_k_prefix_forward(out->data, x->data, wp, b ? b->data : NULL, rows, N, Din, O, pl);
    ug_tensor *ins[3] = {x, w, b};
    ug_node *n = ug_tape_record(ctx, "prefix_linear", prefix_linear_backward, out, 3, ins);
    if (n) {
        const int32_t **ix = ug_ctx_alloc(ctx, 3 * sizeof *ix);
        ix[0] = rows;
        ix[1] = cols;
        ix[2] = len;
        n->saved[0] = wp;
        n->saved[1] = ug_grad_of(w) ? ug_ctx_alloc(ctx, (size_t)(O * Din) * sizeof(float)) : NULL;
        n->saved[2] = (void *)ix;
        n->saved[3] = pl;
    }
    return out;
}

/* Batched matmul. i[0..4] = B, M, N, K, (ta | tb << 1). */
static void matmul_backward(ug_node *n) {
    ug_tensor *a = n->in[0], *b = n->in[1];
    int64_t B = n->i[0], M = n->i[1], N = n->i[2], K = n->i[3];
    int ta = (int)(n->i[4] & 1), tb = (int)(n->i[4] >> 1);
    const float *dc = n->out->grad;
    for (int64_t i = 0; i < B; i++) {
        const float *ai = a->data + i * M * K, *bi = b->data + i * K * N, *dci = dc + i * M * N;
        /* C = op(A) op(B): dop(A) = dC op(B)^T, dop(B) = op(A)^T dC; transposes map back. */
        if (ug_grad_of(a)) {
            float *dai = a->grad + i * M * K;
            if (!ta) ug_k_gemm(0, !tb, M, K, N, dci, bi, 1.0f, dai);      /* dA (M,K) */
            else ug_k_gemm(tb, 1, K, M, N, bi, dci, 1.0f, dai);           /* dA (K,M) = op(B) dC^T */
        }
        if (ug_grad_of(b)) {
            float *dbi = b->grad + i * K * N;
            if (!tb) ug_k_gemm(!ta, 0, K, N, M, ai, dci, 1.0f, dbi);      /* dB (K,N) */
            else ug_k_gemm(1, ta, N, K, M, dci, ai, 1.0f, dbi);           /* dB (N,K) = dC^T op(A) */
        }
    }
}

ug_tensor *ug_matmul(ug_ctx *ctx, ug_tensor *a, ug_tensor *b, int ta, int tb) {
    char s1[96], s2[96];
    UG_CHECK((a->ndim == 2 || a->ndim == 3) && a->ndim == b->ndim,
             "matmul: operands %s and %s must both be 2-D or 3-D", ug_shape_str(a, s1, sizeof s1),
             ug_shape_str(b, s2, sizeof s2));
    int o = a->ndim - 2;
    int64_t B = a->ndim == 3 ? a->shape[0] : 1;
    int64_t M = ta ? a->shape[o + 1] : a->shape[o], K = ta ? a->shape[o] : a->shape[o + 1];
    int64_t Kb = tb ? b->shape[o + 1] : b->shape[o], N = tb ? b->shape[o] : b->shape[o + 1];
    UG_CHECK(K == Kb && (a->ndim == 2 || b->shape[0] == B),
             "matmul: %s x %s (ta=%d, tb=%d) do not fit", ug_shape_str(a, s1, sizeof s1),
             ug_shape_str(b, s2, sizeof s2), ta, tb);
    int64_t shape[3] = {B, M, N};
    ug_tensor *out = ug_tensor_new(ctx, a->ndim, a->ndim == 3 ? shape : shape + 1);
    for (int64_t i = 0; i < B; i++)
        ug_k_gemm(ta, tb, M, N, K, a->data + i * M * K, b->data + i * K * N, 0.0f,
                  out->data + i * M * N);
    ug_tensor *ins[2] = {a, b};
    ug_node *n = ug_tape_record(ctx, "matmul", matmul_backward, out, 2, ins);
    if (n) {
        n->i[0] = B; n->i[1] = M; n->i[2] = N; n->i[3] = K;
        n->i[4] = (ta ? 1 : 0) | (tb ? 2 : 0);
    }
    return out;
}
