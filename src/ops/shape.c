/* shape.c — permute (a copy), concat and split along one axis, on the tape.
 * Permute's backward is the inverse permutation, done as the same strided walk scattering
 * into dx. Concat / split view every tensor as (outer, size along axis * inner) rows, so both
 * are row-block copies one way and accumulations the other. */
#include "core/core.h"
#include "kernels/shape.h"

static void contiguous_strides(int nd, const int64_t *shape, int64_t *st) {
    int64_t c = 1;
    for (int d = nd - 1; d >= 0; d--) {
        st[d] = c;
        c *= shape[d];
    }
}

/* ---------------------------------------------------------------- permute */
/* i[0..nd) = x's stride for each output dim. */
static void permute_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    if (x->requires_grad && x->grad)
        ug_k_permute_backward(x->grad, n->out->grad, n->out->ndim, n->out->shape, n->i);
}

ug_tensor *ug_permute(ug_ctx *ctx, ug_tensor *x, const int *perm) {
    char s[96];
    int nd = x->ndim, seen[UG_MAX_DIMS] = {0};
    int64_t xst[UG_MAX_DIMS], shape[UG_MAX_DIMS] = {0}, st[UG_MAX_DIMS] = {0};
    contiguous_strides(nd, x->shape, xst);
    for (int d = 0; d < nd; d++) {
        int p = perm[d] < 0 ? perm[d] + nd : perm[d];
        UG_CHECK(p >= 0 && p < nd && !seen[p],
                 "permute: entry %d (%d) of the permutation of %s is out of range or repeated", d,
                 perm[d], ug_shape_str(x, s, sizeof s));
        seen[p] = 1;
        shape[d] = x->shape[p];
        st[d] = xst[p];
    }
    ug_tensor *out = ug_tensor_new(ctx, nd, shape);
    ug_k_permute_forward(out->data, x->data, nd, shape, st);
    ug_node *n = ug_tape_record(ctx, "permute", permute_backward, out, 1, &x);
    if (n)
        for (int d = 0; d < nd; d++) n->i[d] = st[d];
    return out;
}

/* ---------------------------------------------------------------- concat */
/* more = the n input pointers; i[0] = n, i[1] = outer, i[2] = inner, i[3] = axis. */
static void concat_backward(ug_node *n) {
    ug_tensor **xs = n->more;
    int64_t cnt = n->i[0], outer = n->i[1], inner = n->i[2];
    int axis = (int)n->i[3];
    int64_t row = n->out->shape[axis] * inner, off = 0;
    for (int64_t k = 0; k < cnt; k++) {
        int64_t len = xs[k]->shape[axis] * inner;
        if (xs[k]->requires_grad && xs[k]->grad)   /* (2: written, 0 + dout, see ug_grad_add) */
            ug_k_copy_rows(xs[k]->grad, len, 0, n->out->grad, row, off, len, outer,
                           ug_grad_add(xs[k]) ? 1 : 2);
        off += len;
    }
}

ug_tensor *ug_concat(ug_ctx *ctx, ug_tensor *const *xs, int n, int axis) {
    char s1[96], s2[96];
    UG_CHECK(n >= 1, "concat: %d inputs", n);
    const ug_tensor *x0 = xs[0];
    int nd = x0->ndim;
    UG_CHECK(axis >= -nd && axis < nd, "concat: axis %d outside %s", axis,
             ug_shape_str(x0, s1, sizeof s1));
    if (axis < 0) axis += nd;
    int64_t shape[UG_MAX_DIMS];
    memcpy(shape, x0->shape, sizeof shape);
    shape[axis] = 0;
    for (int k = 0; k < n; k++) {
        int fits = xs[k]->ndim == nd;
        for (int d = 0; d < nd && fits; d++) fits = d == axis || xs[k]->shape[d] == x0->shape[d];
        UG_CHECK(fits, "concat: input %d %s does not match input 0 %s outside axis %d", k,
                 ug_shape_str(xs[k], s1, sizeof s1), ug_shape_str(x0, s2, sizeof s2), axis);
        shape[axis] += xs[k]->shape[axis];
    }
    int64_t outer = ug_shape_numel(axis, shape), inner = ug_shape_numel(nd - axis - 1, shape + axis + 1);
    ug_tensor *out = ug_tensor_new(ctx, nd, shape);
    int64_t row = shape[axis] * inner, off = 0;
    for (int k = 0; k < n; k++) {
        int64_t len = xs[k]->shape[axis] * inner;
        ug_k_copy_rows(out->data, row, off, xs[k]->data, len, 0, len, outer, 0);
        off += len;
    }
    /* A node holds at most UG_NODE_MAX_IN inputs and concat takes any number. The whole list
     * decides whether to record; the node is then recorded through one input that requires
     * grad (ug_tape_record's own test passes on it); the full list lives in the arena as the
     * node's more[] (the backward gives those inputs their gradient buffers too). */
    if (!ug_any_requires_grad(ctx, n, xs)) return out;
    int first = 0;
    while (!xs[first]->requires_grad) first++;
    ug_node *node = ug_tape_record(ctx, "concat", concat_backward, out, 1, &xs[first]);
    ug_tensor **saved = ug_ctx_alloc(ctx, (size_t)n * sizeof *saved);
    memcpy(saved, xs, (size_t)n * sizeof *saved);
    node->more = saved;
    node->nmore = n;
    node->first_write = 1u;   /* in[0] is one of more[]: every input's gradient is written whole */
    node->more_first_write = 1;
    node->i[0] = n;
    node->i[1] = outer;
    node->i[2] = inner;
    node->i[3] = axis;
    return out;
}

/* ---------------------------------------------------------------- split */
/* One node per part: i[0] = outer, i[1] = x's row length, i[2] = the part's offset in it. */
static void split_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    int64_t len = n->out->numel / (n->i[0] ? n->i[0] : 1);
    if (x->requires_grad && x->grad)
        ug_k_copy_rows(x->grad, n->i[1], n->i[2], n->out->grad, len, 0, len, n->i[0], 1);
}

void ug_split(ug_ctx *ctx, ug_tensor *x, int axis, const int64_t *sizes, int n, ug_tensor **outs) {
    char s[96];
    int nd = x->ndim;
    UG_CHECK(axis >= -nd && axis < nd, "split: axis %d outside %s", axis,
             ug_shape_str(x, s, sizeof s));
    if (axis < 0) axis += nd;
    int64_t total = 0;
    for (int k = 0; k < n; k++) {
        UG_CHECK(sizes[k] >= 0, "split: size %d is %lld", k, (long long)sizes[k]);
        total += sizes[k];
    }
    UG_CHECK(n >= 1 && total == x->shape[axis],
             "split: %d sizes sum to %lld, axis %d of %s has %lld", n, (long long)total, axis,
             ug_shape_str(x, s, sizeof s), (long long)x->shape[axis]);
    int64_t outer = ug_shape_numel(axis, x->shape);
    int64_t inner = ug_shape_numel(nd - axis - 1, x->shape + axis + 1);
    int64_t row = x->shape[axis] * inner, off = 0, shape[UG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    for (int k = 0; k < n; k++) {
        shape[axis] = sizes[k];
        int64_t len = sizes[k] * inner;
        ug_tensor *out = ug_tensor_new(ctx, nd, shape);
        ug_k_copy_rows(out->data, len, 0, x->data, row, off, len, outer, 0);
        ug_node *node = ug_tape_record(ctx, "split", split_backward, out, 1, &x);
        if (node) {
            node->i[0] = outer;
            node->i[1] = row;
            node->i[2] = off;
        }
        outs[k] = out;
        off += len;
    }
}

/* ---------------------------------------------------------------- gather_cols */
static void gather_cols_backward(ug_node *n) {
    ug_tensor *x = n->in[0];
    int64_t len = x->shape[x->ndim - 1], m = n->out->shape[n->out->ndim - 1];
    if (ug_grad_of(x))
        ug_k_gather_cols_backward(x->grad, n->out->grad, n->saved[0], x->numel / (len ? len : 1),
                                  len, m);
}

ug_tensor *ug_gather_cols(ug_ctx *ctx, ug_tensor *x, const int32_t *idx, int64_t m) {
    char s[96];
    UG_CHECK(x->ndim >= 1 && m >= 0, "gather_cols: %s, %lld indices", ug_shape_str(x, s, sizeof s),
             (long long)m);
    int64_t len = x->shape[x->ndim - 1], shape[UG_MAX_DIMS];
    for (int64_t j = 0; j < m; j++)
        UG_CHECK(idx[j] >= 0 && idx[j] < len, "gather_cols: index %lld is %d, expected in [0, %lld)",
                 (long long)j, idx[j], (long long)len);
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = m;
    ug_tensor *out = ug_tensor_new(ctx, x->ndim, shape);
    ug_k_gather_cols_forward(out->data, x->data, idx, len ? x->numel / len : 0, len, m);
    ug_node *node = ug_tape_record(ctx, "gather_cols", gather_cols_backward, out, 1, &x);
    if (node) node->saved[0] = (void *)idx;
    return out;
}
