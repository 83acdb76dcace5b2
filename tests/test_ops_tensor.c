/* test_ops_tensor.c — softmax family, broadcasting binary ops, reductions, permute / concat /
 * split, embedding, sinusoidal, dropout and the per-sample losses: forward values against naive
 * double loops written here (independent of the kernels' loop structure), PyTorch edge-case
 * semantics (large logits stay finite), and finite-difference gradients of every
 * differentiable input. */
#include "test.h"
#include "core/core.h"
#include "ref/ops_tensor_ref.h"
#include "kernels/broadcast.h"

static ug_ctx *new_ctx(void) {
    ug_ctx *ctx = NULL;
    if (ug_ctx_create(&ctx, 0) != UG_OK) abort();
    return ctx;
}

static int same_shape(const ug_tensor *t, int nd, const int64_t *shape) {
    if (t->ndim != nd) return 0;
    for (int d = 0; d < nd; d++)
        if (t->shape[d] != shape[d]) return 0;
    return 1;
}

/* ================================================================ softmax family */
static double ref_lse(const float *x, int n) {
    double m = -INFINITY;
    for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - m);
    return m + log(s);
}

TEST(softmax_family_values) {
    ug_ctx *ctx = new_ctx();
    /* Rows: random, large (overflows a naive exp), -1e30 next to 0, all equal. */
    float xs[4][5] = {{0.3f, -1.2f, 2.0f, 0.0f, -0.7f},
                      {1000.0f, 1001.0f, 999.0f, 1000.5f, 998.0f},
                      {-1e30f, 0.0f, -1e30f, -1e30f, -1e30f},
                      {-3.0f, -3.0f, -3.0f, -3.0f, -3.0f}};
    ug_tensor *x = ug_tensor_from(ctx, 2, (int64_t[]){4, 5}, &xs[0][0]);
    ug_tensor *sm = ug_softmax(ctx, x), *ls = ug_log_softmax(ctx, x), *lse = ug_logsumexp(ctx, x);
    EXPECT(same_shape(lse, 1, (int64_t[]){4}), "logsumexp drops the last dim");
    float rsm[20], rls[20], rlse[4];
    for (int r = 0; r < 4; r++) {
        double l = ref_lse(xs[r], 5);
        rlse[r] = (float)l;
        for (int c = 0; c < 5; c++) {
            rls[r * 5 + c] = (float)(xs[r][c] - l);
            rsm[r * 5 + c] = (float)exp(xs[r][c] - l);
        }
    }
    EXPECT(ug_test_allclose("softmax", sm->data, rsm, 20, 1e-7, 1e-6), "softmax");
    EXPECT(ug_test_allclose("log_softmax", ls->data, rls, 20, 1e-6, 1e-6), "log_softmax");
    EXPECT(ug_test_allclose("logsumexp", lse->data, rlse, 4, 1e-6, 1e-6), "logsumexp");
    /* PyTorch: log_softmax([1000, 1001, ...]) is finite; lse([-1e30, 0, ...]) = 0 exactly. */
    int finite = 1;
    for (int i = 0; i < 20; i++) finite &= isfinite(ls->data[i]) && isfinite(sm->data[i]);
    EXPECT(finite, "softmax / log_softmax of large inputs not finite");
    EXPECT(lse->data[2] == 0.0f, "lse of [-1e30, 0] is %g", lse->data[2]);
    EXPECT(fabsf(lse->data[3] - (-3.0f + logf(5.0f))) < 1e-6f, "lse of equal entries");
    /* A row of -inf: lse = -inf (not NaN), as torch.logsumexp. */
    ug_tensor *ninf = ug_tensor_from(ctx, 1, (int64_t[]){2}, (float[]){-INFINITY, -INFINITY});
    ug_tensor *l2 = ug_logsumexp(ctx, ninf);
    EXPECT(l2->ndim == 0 && isinf(l2->data[0]) && l2->data[0] < 0, "lse(-inf, -inf) = %g",
           l2->data[0]);
    ug_ctx_free(ctx);
}

static ug_tensor *f_softmax(ug_ctx *ctx, ug_tensor **in, void *u) { return ug_softmax(ctx, in[0]); }
static ug_tensor *f_log_softmax(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_log_softmax(ctx, in[0]);
}
static ug_tensor *f_logsumexp(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_logsumexp(ctx, in[0]);
}

TEST(grad_softmax_family) {
    ug_tensor *x = ug_test_tensor(3, (int64_t[]){2, 3, 5}, 11, -3, 3);
    ug_gc_opts o = ug_gc_default();
    EXPECT(ug_gradcheck("softmax", f_softmax, NULL, &x, 1, o), "softmax");
    EXPECT(ug_gradcheck("log_softmax", f_log_softmax, NULL, &x, 1, o), "log_softmax");
    EXPECT(ug_gradcheck("logsumexp", f_logsumexp, NULL, &x, 1, o), "logsumexp");
    /* Large, shifted inputs: gradients depend only on differences, so they must still pass. */
    for (int64_t i = 0; i < x->numel; i++) x->data[i] += 500.0f;
    o.h = 2e-2;  /* float spacing at 500 is 3e-5: a larger step keeps the FD noise down */
    EXPECT(ug_gradcheck("log_softmax(+500)", f_log_softmax, NULL, &x, 1, o), "shifted");
    ug_test_tensor_free(x);
}

/* ================================================================ broadcasting */
typedef struct { int na, nb; int64_t as[4], bs[4]; } bc_case;

static const bc_case k_bc_cases[] = {
    {3, 2, {2, 3, 4}, {3, 1}},
    {3, 3, {2, 1, 4}, {1, 3, 1}},
    {4, 4, {2, 3, 2, 2}, {1, 3, 1, 1}},   /* per channel */
    {4, 4, {2, 3, 2, 2}, {2, 1, 1, 1}},   /* per sample */
    {2, 1, {2, 3}, {1}},                  /* scalar-like */
    {3, 3, {2, 3, 4}, {2, 3, 4}},         /* same shape */
    {2, 3, {3, 1}, {2, 3, 4}},            /* a is the broadcast one */
    {1, 2, {4}, {3, 1}},                  /* the output is larger than both */
    {2, 0, {2, 3}, {0}},                  /* 0-dim b */
    {3, 1, {2, 3, 4}, {4}},               /* row bias */
};
#define N_BC (int)(sizeof k_bc_cases / sizeof *k_bc_cases)

static double ref_op(int op, double a, double b) {
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    default: return a / b;
    }
}

/* Index of a (na dims, shape as) for out multi-index idx (nd dims), broadcasting rules. */
static int64_t ref_index(int nd, const int64_t *idx, int na, const int64_t *as) {
    int64_t k = 0;
    for (int d = 0; d < na; d++) {
        int64_t i = as[d] == 1 ? 0 : idx[d + nd - na];
        k = k * as[d] + i;
    }
    return k;
}

/* out = a op b by unravelling every output index; also the gradients of sum(out * g). */
static void ref_binary(int op, const ug_tensor *a, const ug_tensor *b, const float *g,
                       int *ond, int64_t *oshape, double *out, double *da, double *db) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < nd; d++) {
        int64_t x = d >= nd - a->ndim ? a->shape[d - (nd - a->ndim)] : 1;
        int64_t y = d >= nd - b->ndim ? b->shape[d - (nd - b->ndim)] : 1;
        oshape[d] = x == 1 ? y : x;
    }
    *ond = nd;
    int64_t n = ug_shape_numel(nd, oshape);
    if (da) memset(da, 0, (size_t)a->numel * sizeof *da);
    if (db) memset(db, 0, (size_t)b->numel * sizeof *db);
    for (int64_t e = 0; e < n; e++) {
        int64_t idx[UG_MAX_DIMS], r = e;
        for (int d = nd - 1; d >= 0; d--) { idx[d] = r % oshape[d]; r /= oshape[d]; }
        int64_t ia = ref_index(nd, idx, a->ndim, a->shape), ib = ref_index(nd, idx, b->ndim, b->shape);
        double av = a->data[ia], bv = b->data[ib];
        out[e] = ref_op(op, av, bv);
        if (g) {
            double ga[4] = {1, 1, bv, 1 / bv}, gb[4] = {1, -1, av, -av / (bv * bv)};
            if (da) da[ia] += g[e] * ga[op];
            if (db) db[ib] += g[e] * gb[op];
        }
    }
}

typedef ug_tensor *(*binop_fn)(ug_ctx *, ug_tensor *, ug_tensor *);
static const binop_fn k_binops[4] = {ug_add, ug_sub, ug_mul, ug_div};
static const char *const k_binop_names[4] = {"add", "sub", "mul", "div"};

static ug_tensor *f_binop(ug_ctx *ctx, ug_tensor **in, void *u) {
    return k_binops[(intptr_t)u](ctx, in[0], in[1]);
}

TEST(broadcast_values) {
    ug_ctx *ctx = new_ctx();
    for (int c = 0; c < N_BC; c++) {
        const bc_case *bc = &k_bc_cases[c];
        ug_tensor *a = ug_test_tensor(bc->na, bc->as, 30 + c, -2, 2);
        ug_tensor *b = ug_test_tensor(bc->nb, bc->bs, 60 + c, 0.5f, 2);
        for (int op = 0; op < 4; op++) {
            ug_tensor *out = k_binops[op](ctx, a, b);
            int nd;
            int64_t shape[UG_MAX_DIMS];
            double ref[64];
            ref_binary(op, a, b, NULL, &nd, shape, ref, NULL, NULL);
            char what[64];
            snprintf(what, sizeof what, "%s case %d", k_binop_names[op], c);
            EXPECT(same_shape(out, nd, shape), "%s: output shape", what);
            double got[64];
            for (int64_t i = 0; i < out->numel; i++) got[i] = out->data[i];
            EXPECT(ug_test_allclose_f64(what, got, ref, out->numel, 1e-6, 1e-6), "%s", what);
        }
        ug_test_tensor_free(a); ug_test_tensor_free(b);
    }
    ug_ctx_free(ctx);
}

TEST(grad_broadcast) {
    for (int c = 0; c < N_BC; c++) {
        const bc_case *bc = &k_bc_cases[c];
        for (int op = 0; op < 4; op++) {
            ug_tensor *a = ug_test_tensor(bc->na, bc->as, 90 + c, -2, 2);
            /* Denominators in [0.5, 2]: well away from 0. */
            ug_tensor *b = ug_test_tensor(bc->nb, bc->bs, 120 + c, 0.5f, 2);
            ug_tensor *ins[2] = {a, b};
            char what[64];
            snprintf(what, sizeof what, "%s case %d", k_binop_names[op], c);
            EXPECT(ug_gradcheck(what, f_binop, (void *)(intptr_t)op, ins, 2, ug_gc_default()),
                   "%s", what);
            ug_test_tensor_free(a); ug_test_tensor_free(b);
        }
    }
}

/* Only b requires grad (a's gradient must be skipped), and the same tensor on both sides. */
static ug_tensor *f_square_by_mul(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_mul(ctx, in[0], in[0]);
}

TEST(grad_broadcast_partial_and_aliased) {
    ug_tensor *a = ug_test_tensor(3, (int64_t[]){2, 3, 4}, 5, -1, 1);
    ug_tensor *b = ug_test_tensor(2, (int64_t[]){3, 1}, 6, 0.5f, 2);
    a->requires_grad = 0;
    ug_tensor *ins[2] = {a, b};
    EXPECT(ug_gradcheck("div (b only)", f_binop, (void *)(intptr_t)3, ins, 2, ug_gc_default()),
           "b only");
    int untouched = 1;
    for (int64_t i = 0; i < a->numel; i++) untouched &= a->grad[i] == 0.0f;
    EXPECT(untouched, "a gradient written for an input that does not require grad");
    a->requires_grad = 1;
    EXPECT(ug_gradcheck("x * x", f_square_by_mul, NULL, &a, 1, ug_gc_default()), "x * x");
    ug_test_tensor_free(a); ug_test_tensor_free(b);
}

/* Large enough for the threaded paths (chunks start mid-row); checks values and both
 * gradients against the naive reference. */
TEST(broadcast_large_threaded) {
    static const bc_case big[] = {
        {3, 3, {64, 32, 33}, {1, 32, 1}},
        {3, 3, {64, 32, 33}, {64, 1, 1}},
        {3, 3, {64, 32, 33}, {64, 32, 33}},
        {2, 3, {32, 1}, {64, 32, 33}},
    };
    for (int c = 0; c < 4; c++) {
        const bc_case *bc = &big[c];
        ug_ctx *ctx = new_ctx();
        ug_tensor *a = ug_test_tensor(bc->na, bc->as, 7 + c, -1, 1);
        ug_tensor *b = ug_test_tensor(bc->nb, bc->bs, 8 + c, 0.5f, 2);
        for (int op = 0; op < 4; op++) {
            memset(a->grad, 0, (size_t)a->numel * sizeof(float));
            memset(b->grad, 0, (size_t)b->numel * sizeof(float));
            ug_tensor *out = k_binops[op](ctx, a, b);
            int64_t n = out->numel;
            float *g = malloc((size_t)n * sizeof *g);
            ug_rng r = ug_rng_make(3, 4, 0);
            ug_rng_normal(&r, g, n);
            ASSERT_OK(ug_backward_seed(ctx, out, g));
            double *ref = malloc((size_t)n * sizeof *ref), *got = malloc((size_t)n * sizeof *got);
            double *da = malloc((size_t)a->numel * sizeof *da), *db = malloc((size_t)b->numel * sizeof *db);
            int nd;
            int64_t shape[UG_MAX_DIMS];
            ref_binary(op, a, b, g, &nd, shape, ref, da, db);
            char what[64];
            snprintf(what, sizeof what, "%s big case %d", k_binop_names[op], c);
            for (int64_t i = 0; i < n; i++) got[i] = out->data[i];
            EXPECT(ug_test_allclose_f64(what, got, ref, n, 1e-6, 1e-6), "%s forward", what);
            double *ga = malloc((size_t)a->numel * sizeof *ga), *gb = malloc((size_t)b->numel * sizeof *gb);
            for (int64_t i = 0; i < a->numel; i++) ga[i] = a->grad[i];
            for (int64_t i = 0; i < b->numel; i++) gb[i] = b->grad[i];
            EXPECT(ug_test_allclose_f64("da", ga, da, a->numel, 1e-4, 1e-4), "%s da", what);
            EXPECT(ug_test_allclose_f64("db", gb, db, b->numel, 1e-4, 1e-4), "%s db", what);
            free(g); free(ref); free(got); free(da); free(db); free(ga); free(gb);
            ug_ctx_reset(ctx);
        }
        ug_test_tensor_free(a); ug_test_tensor_free(b);
        ug_ctx_free(ctx);
    }
}

/* ================================================================ reductions */
TEST(reduce_values) {
    ug_ctx *ctx = new_ctx();
    ug_tensor *x = ug_test_tensor(3, (int64_t[]){2, 3, 4}, 3, -2, 2);
    for (int axis = -3; axis < 3; axis++) {
        int ax = axis < 0 ? axis + 3 : axis;
        for (int keep = 0; keep < 2; keep++) {
            for (int mean = 0; mean < 2; mean++) {
                ug_tensor *out = mean ? ug_mean(ctx, x, axis, keep) : ug_sum(ctx, x, axis, keep);
                int64_t shape[3];
                int nd = 0;
                for (int d = 0; d < 3; d++)
                    if (d != ax) shape[nd++] = x->shape[d];
                    else if (keep) shape[nd++] = 1;
                EXPECT(same_shape(out, nd, shape), "axis %d keep %d: shape", axis, keep);
                float ref[24];
                int64_t k = 0;
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 3; j++)
                        for (int l = 0; l < 4; l++) {
                            int id[3] = {i, j, l};
                            if (id[ax] != 0) continue;
                            double s = 0;
                            for (int t = 0; t < x->shape[ax]; t++) {
                                id[ax] = t;
                                s += x->data[(id[0] * 3 + id[1]) * 4 + id[2]];
                            }
                            ref[k++] = (float)(mean ? s / (double)x->shape[ax] : s);
                        }
                EXPECT(k == out->numel, "count");
                EXPECT(ug_test_allclose(mean ? "mean" : "sum", out->data, ref, k, 1e-6, 1e-6),
                       "axis %d keep %d mean %d", axis, keep, mean);
            }
        }
    }
    double s = 0;
    for (int64_t i = 0; i < x->numel; i++) s += x->data[i];
    ug_tensor *sa = ug_sum_all(ctx, x), *ma = ug_mean_all(ctx, x);
    EXPECT(sa->ndim == 0 && sa->numel == 1 && ma->ndim == 0 && ma->numel == 1, "0-dim outputs");
    EXPECT(fabs(sa->data[0] - s) < 1e-5 && fabs(ma->data[0] - s / 24) < 1e-6, "sum_all %g vs %g",
           sa->data[0], s);
    ug_test_tensor_free(x);
    /* A long sum in double: 1e6 + many small terms that float accumulation would drop. */
    int64_t n = 100000;
    ug_tensor *y = ug_tensor_new(ctx, 1, &n);
    for (int64_t i = 0; i < n; i++) y->data[i] = i == 0 ? 1e6f : 0.01f;
    double ref = 1e6 + (double)0.01f * (double)(n - 1);
    EXPECT(fabs(ug_sum_all(ctx, y)->data[0] - ref) < 0.07, "sum_all precision: %.3f vs %.3f",
           ug_sum_all(ctx, y)->data[0], ref);
    ug_ctx_free(ctx);
}

typedef struct { int axis, keep, mean; } red_case;
static ug_tensor *f_reduce(ug_ctx *ctx, ug_tensor **in, void *u) {
    const red_case *c = u;
    return c->mean ? ug_mean(ctx, in[0], c->axis, c->keep) : ug_sum(ctx, in[0], c->axis, c->keep);
}
static ug_tensor *f_sum_all(ug_ctx *ctx, ug_tensor **in, void *u) { return ug_sum_all(ctx, in[0]); }
static ug_tensor *f_mean_all(ug_ctx *ctx, ug_tensor **in, void *u) { return ug_mean_all(ctx, in[0]); }

TEST(grad_reduce) {
    ug_tensor *x = ug_test_tensor(3, (int64_t[]){2, 3, 4}, 4, -2, 2);
    for (int axis = -1; axis < 3; axis++)
        for (int keep = 0; keep < 2; keep++)
            for (int mean = 0; mean < 2; mean++) {
                red_case c = {axis, keep, mean};
                char what[64];
                snprintf(what, sizeof what, "%s axis %d keep %d", mean ? "mean" : "sum", axis, keep);
                EXPECT(ug_gradcheck(what, f_reduce, &c, &x, 1, ug_gc_default()), "%s", what);
            }
    EXPECT(ug_gradcheck("sum_all", f_sum_all, NULL, &x, 1, ug_gc_default()), "sum_all");
    EXPECT(ug_gradcheck("mean_all", f_mean_all, NULL, &x, 1, ug_gc_default()), "mean_all");
    ug_test_tensor_free(x);
}

TEST(sum_all_feeds_backward) {
    ug_ctx *ctx = new_ctx();
    ug_tensor *x = ug_test_tensor(2, (int64_t[]){2, 2}, 1, -1, 1);
    float x0[4] = {1, -2, 3, 0.5f};
    memcpy(x->data, x0, sizeof x0);
    ug_tensor *loss = ug_mean_all(ctx, ug_mul(ctx, x, x));
    EXPECT(loss->ndim == 0 && loss->numel == 1, "mean_all is a 0-dim scalar");
    ASSERT_OK(ug_backward(ctx, loss));
    float ref[4] = {0.5f, -1.0f, 1.5f, 0.25f};  /* d mean(x^2) = 2x / 4 */
    EXPECT(ug_test_allclose("d mean(x^2)", x->grad, ref, 4, 1e-7, 1e-6), "grad");
    /* A new step on a reset tape: gradients accumulate into x's buffer (+ 1 each). */
    ug_ctx_reset(ctx);
    ASSERT_OK(ug_backward(ctx, ug_sum_all(ctx, x)));
    float ref2[4] = {1.5f, 0.0f, 2.5f, 1.25f};
    EXPECT(ug_test_allclose("d sum(x) accumulated", x->grad, ref2, 4, 1e-7, 1e-6), "grad2");
    ug_test_tensor_free(x);
    ug_ctx_free(ctx);
}

/* ================================================================ permute / concat / split */
TEST(permute_values) {
    ug_ctx *ctx = new_ctx();
    ug_tensor *x = ug_test_tensor(4, (int64_t[]){2, 3, 4, 5}, 9, -1, 1);
    int perm[4] = {0, 2, 3, 1};
    ug_tensor *y = ug_permute(ctx, x, perm);
    EXPECT(same_shape(y, 4, (int64_t[]){2, 4, 5, 3}), "permute shape");
    int ok = 1;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 4; c++)
                for (int d = 0; d < 5; d++)
                    ok &= y->data[((a * 4 + c) * 5 + d) * 3 + b] == x->data[((a * 3 + b) * 4 + c) * 5 + d];
    EXPECT(ok, "permute (0, 2, 3, 1) moved an element wrongly");
    /* Negative entries count from the end; the identity is a copy. */
    ug_tensor *z = ug_permute(ctx, x, (int[]){0, -3, -2, -1});
    EXPECT(z->data != x->data && memcmp(z->data, x->data, 120 * sizeof(float)) == 0, "identity");
    ug_test_tensor_free(x);
    ug_ctx_free(ctx);
}

static ug_tensor *f_permute(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_permute(ctx, in[0], u);
}

TEST(grad_permute) {
    ug_tensor *x3 = ug_test_tensor(3, (int64_t[]){2, 3, 4}, 12, -1, 1);
    ug_tensor *x4 = ug_test_tensor(4, (int64_t[]){2, 3, 2, 4}, 13, -1, 1);
    int p3[3] = {2, 0, 1}, p4[4] = {0, 2, 3, 1}, p4b[4] = {3, 1, 0, 2};
    EXPECT(ug_gradcheck("permute 3-D", f_permute, p3, &x3, 1, ug_gc_default()), "3-D");
    EXPECT(ug_gradcheck("permute 4-D", f_permute, p4, &x4, 1, ug_gc_default()), "4-D");
    EXPECT(ug_gradcheck("permute 4-D b", f_permute, p4b, &x4, 1, ug_gc_default()), "4-D b");
    ug_test_tensor_free(x3); ug_test_tensor_free(x4);
}

static ug_tensor *f_concat(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_concat(ctx, in, 5, (int)(intptr_t)u);
}

static void make_concat_inputs(ug_tensor **xs, int axis) {
    for (int k = 0; k < 5; k++) {
        int64_t s[3] = {2, 3, 2};
        s[axis] = 1 + k % 3;   /* sizes 1, 2, 3, 1, 2 along the axis */
        xs[k] = ug_test_tensor(3, s, 40 + k, -1, 1);
    }
}

TEST(concat_values) {
    ug_ctx *ctx = new_ctx();
    for (int axis = 0; axis < 2; axis++) {
        ug_tensor *xs[5];
        make_concat_inputs(xs, axis);
        ug_tensor *y = ug_concat(ctx, xs, 5, axis);
        int64_t shape[3] = {2, 3, 2};
        shape[axis] = 9;
        EXPECT(same_shape(y, 3, shape), "concat axis %d shape", axis);
        /* Reference: element (i, j, l) comes from the input whose range holds its axis index. */
        int ok = 1;
        for (int i = 0; i < shape[0]; i++)
            for (int j = 0; j < shape[1]; j++)
                for (int l = 0; l < 2; l++) {
                    int id[3] = {i, j, l}, t = id[axis], k = 0;
                    while (t >= xs[k]->shape[axis]) t -= (int)xs[k++]->shape[axis];
                    id[axis] = t;
                    float want = xs[k]->data[(id[0] * xs[k]->shape[1] + id[1]) * 2 + id[2]];
                    ok &= y->data[(i * shape[1] + j) * 2 + l] == want;
                }
        EXPECT(ok, "concat axis %d misplaced an element", axis);
        for (int k = 0; k < 5; k++) ug_test_tensor_free(xs[k]);
    }
    ug_ctx_free(ctx);
}

TEST(grad_concat_five_inputs) {
    for (int axis = 0; axis < 2; axis++) {
        ug_tensor *xs[5];
        make_concat_inputs(xs, axis);
        EXPECT(ug_gradcheck("concat x5", f_concat, (void *)(intptr_t)axis, xs, 5, ug_gc_default()),
               "concat axis %d", axis);
        /* Only the fifth input needs grad: beyond a node's 4 slots, it must still be recorded
         * and the others left alone. */
        for (int k = 0; k < 4; k++) xs[k]->requires_grad = 0;
        memset(xs[0]->grad, 0, (size_t)xs[0]->numel * sizeof(float));
        EXPECT(ug_gradcheck("concat x5 (last only)", f_concat, (void *)(intptr_t)axis, xs, 5,
                            ug_gc_default()), "concat axis %d, last input only", axis);
        int untouched = 1;
        for (int64_t i = 0; i < xs[0]->numel; i++) untouched &= xs[0]->grad[i] == 0.0f;
        EXPECT(untouched, "gradient written into an input that does not require grad");
        for (int k = 0; k < 5; k++) ug_test_tensor_free(xs[k]);
    }
}

static const int64_t k_split_sizes[4] = {2, 0, 4, 1};

/* Splits along axis 1 and concatenates the parts in reverse order, so every element moves. */
static ug_tensor *f_split_reverse(ug_ctx *ctx, ug_tensor **in, void *u) {
    ug_tensor *parts[4], *rev[4];
    ug_split(ctx, in[0], 1, k_split_sizes, 4, parts);
    for (int k = 0; k < 4; k++) rev[k] = parts[3 - k];
    return ug_concat(ctx, rev, 4, 1);
}

static ug_tensor *f_split_one(ug_ctx *ctx, ug_tensor **in, void *u) {
    ug_tensor *parts[4];
    ug_split(ctx, in[0], -2, k_split_sizes, 4, parts);
    return parts[(intptr_t)u];
}

TEST(split_values_and_grad) {
    ug_ctx *ctx = new_ctx();
    ug_tensor *x = ug_test_tensor(3, (int64_t[]){2, 7, 3}, 21, -1, 1);
    ug_tensor *parts[4];
    ug_split(ctx, x, 1, k_split_sizes, 4, parts);
    int ok = 1, off = 0;
    for (int k = 0; k < 4; k++) {
        ok &= same_shape(parts[k], 3, (int64_t[]){2, k_split_sizes[k], 3});
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < k_split_sizes[k]; j++)
                for (int l = 0; l < 3; l++)
                    ok &= parts[k]->data[(i * k_split_sizes[k] + j) * 3 + l] ==
                          x->data[(i * 7 + off + j) * 3 + l];
        off += (int)k_split_sizes[k];
    }
    EXPECT(ok, "split parts wrong");
    EXPECT(ug_gradcheck("split reversed", f_split_reverse, NULL, &x, 1, ug_gc_default()), "split");
    EXPECT(ug_gradcheck("split part 2", f_split_one, (void *)(intptr_t)2, &x, 1, ug_gc_default()),
           "split one part");
    ug_test_tensor_free(x);
    ug_ctx_free(ctx);
}

/* ================================================================ embedding / sinusoidal / dropout */
static const int32_t k_idx[6] = {1, 3, 1, 0, 1, 3};

static ug_tensor *f_embedding(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_embedding(ctx, in[0], k_idx, 6);
}

TEST(embedding_values_and_grad) {
    ug_ctx *ctx = new_ctx();
    ug_tensor *w = ug_test_tensor(2, (int64_t[]){5, 3}, 31, -1, 1);
    ug_tensor *y = ug_embedding(ctx, w, k_idx, 6);
    EXPECT(same_shape(y, 2, (int64_t[]){6, 3}), "embedding shape");
    int ok = 1;
    for (int i = 0; i < 6; i++)
        for (int d = 0; d < 3; d++) ok &= y->data[i * 3 + d] == w->data[k_idx[i] * 3 + d];
    EXPECT(ok, "embedding rows");
    /* Repeated indices accumulate: row 1 is used three times, row 3 twice, rows 2 and 4 never. */
    EXPECT(ug_gradcheck("embedding", f_embedding, NULL, &w, 1, ug_gc_default()), "embedding");
    ug_ctx_reset(ctx);
    memset(w->grad, 0, 15 * sizeof(float));
    y = ug_embedding(ctx, w, k_idx, 6);
    float g[18];
    for (int i = 0; i < 18; i++) g[i] = (float)(i + 1);
    ASSERT_OK(ug_backward_seed(ctx, y, g));
    float ref[15] = {0};
    for (int i = 0; i < 6; i++)
        for (int d = 0; d < 3; d++) ref[k_idx[i] * 3 + d] += g[i * 3 + d];
    EXPECT(ug_test_allclose("d weight", w->grad, ref, 15, 0, 0), "accumulated rows");
    ug_test_tensor_free(w);
    ug_ctx_free(ctx);
}

typedef struct { int dim; float log_fmax; int cos_first; } sin_case;

static ug_tensor *f_sinusoidal(ug_ctx *ctx, ug_tensor **in, void *u) {
    const sin_case *c = u;
    return ug_sinusoidal(ctx, in[0], c->dim, c->log_fmax, c->cos_first);
}

TEST(sinusoidal_values_and_grad) {
    ug_ctx *ctx = new_ctx();
    sin_case cases[3] = {{8, logf(1000.0f), 0}, {10, -logf(10000.0f), 1}, {2, 1.0f, 0}};
    float xs[4] = {0.0f, 0.37f, -1.5f, 2.25f};
    ug_tensor *x = ug_tensor_from(ctx, 1, (int64_t[]){4}, xs);
    for (int c = 0; c < 3; c++) {
        int dim = cases[c].dim, half = dim / 2;
        ug_tensor *y = ug_sinusoidal(ctx, x, dim, cases[c].log_fmax, cases[c].cos_first);
        EXPECT(same_shape(y, 2, (int64_t[]){4, dim}), "sinusoidal shape");
        float ref[40];
        for (int b = 0; b < 4; b++)
            for (int k = 0; k < half; k++) {
                /* The documented formula in double; half = 1 has the single frequency 1. */
                double f = half > 1 ? exp((double)cases[c].log_fmax * k / (half - 1)) : 1.0;
                double sv = sin(xs[b] * f), cv = cos(xs[b] * f);
                ref[b * dim + (cases[c].cos_first ? half + k : k)] = (float)sv;
                ref[b * dim + (cases[c].cos_first ? k : half + k)] = (float)cv;
            }
        /* atol: float rounding of x f for f up to 1000 */
        EXPECT(ug_test_allclose("sinusoidal", y->data, ref, 4 * dim, 5e-4, 1e-5), "case %d", c);
    }
    /* Runs of equal rows (a sampler's batch: one noise level), long enough for the threads,
     * with +0 next to -0: every row has the bits of that value embedded alone. */
    {
        const int64_t B = 5000, dim = 16;
        const float vals[4] = {0.0f, -0.0f, 0.37f, -1.5f};
        ug_tensor *xr = ug_tensor_new(ctx, 1, (int64_t[]){B});
        for (int64_t b = 0; b < B; b++) xr->data[b] = vals[(b / 7) % 4];
        ug_tensor *yr = ug_sinusoidal(ctx, xr, (int)dim, logf(1000.0f), 0);
        int bad = 0;
        for (int v = 0; v < 4; v++) {
            ug_tensor *x1 = ug_tensor_from(ctx, 1, (int64_t[]){1}, &vals[v]);
            ug_tensor *y1 = ug_sinusoidal(ctx, x1, (int)dim, logf(1000.0f), 0);
            for (int64_t b = 0; b < B; b++)
                if ((b / 7) % 4 == v) bad += memcmp(yr->data + b * dim, y1->data, dim * sizeof(float)) != 0;
        }
        EXPECT(bad == 0, "sinusoidal: %d of %lld rows differ from their value embedded alone", bad,
               (long long)B);
    }
    /* Gradients with moderate frequencies (the FD step must resolve sin(x f)). */
    ug_tensor *xt = ug_test_tensor(1, (int64_t[]){5}, 17, -2, 2);
    sin_case g1 = {8, logf(10.0f), 0}, g2 = {10, -logf(10000.0f), 1};
    EXPECT(ug_gradcheck("sinusoidal", f_sinusoidal, &g1, &xt, 1, ug_gc_default()), "sin first");
    EXPECT(ug_gradcheck("sinusoidal cos_first", f_sinusoidal, &g2, &xt, 1, ug_gc_default()),
           "cos first");
    ug_test_tensor_free(xt);
    ug_ctx_free(ctx);
}

static ug_tensor *f_dropout(ug_ctx *ctx, ug_tensor **in, void *u) {
    /* A fresh cursor every evaluation: the mask is the same each time. */
    ug_rng r = ug_rng_make(99, 5, 0);
    return ug_dropout(ctx, in[0], *(const float *)u, &r);
}

TEST(dropout_values_and_grad) {
    ug_ctx *ctx = new_ctx();
    int64_t n = 4000;
    ug_tensor *x = ug_tensor_new(ctx, 1, &n);
    for (int64_t i = 0; i < n; i++) x->data[i] = 1.0f + (float)(i % 7);
    float p = 0.3f;
    ug_rng r = ug_rng_make(1, 2, 0), r0 = r;
    ug_tensor *y = ug_dropout(ctx, x, p, &r);
    EXPECT(r.block != r0.block, "dropout did not advance the cursor");
    int64_t kept = 0, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y->data[i] == 0.0f) continue;
        kept++;
        bad += fabsf(y->data[i] - x->data[i] / (1.0f - p)) > 1e-5f * fabsf(y->data[i]);
    }
    EXPECT(bad == 0, "%lld kept values not scaled by 1/(1-p)", (long long)bad);
    /* Binomial(4000, 0.7): sd ~ 29, so +-150 is a 5-sigma band. */
    EXPECT(llabs(kept - 2800) < 150, "kept %lld of 4000 at p = 0.3", (long long)kept);
    /* The same cursor gives the same mask. */
    ug_rng r2 = r0;
    ug_tensor *y2 = ug_dropout(ctx, x, p, &r2);
    EXPECT(memcmp(y->data, y2->data, (size_t)n * sizeof(float)) == 0, "mask not reproducible");
    /* p = 0: identity copy; p = 1: zeros. Neither moves the cursor. */
    ug_rng r3 = r0;
    ug_tensor *id = ug_dropout(ctx, x, 0.0f, &r3), *zero = ug_dropout(ctx, x, 1.0f, &r3);
    EXPECT(memcmp(id->data, x->data, (size_t)n * sizeof(float)) == 0 && id->data != x->data,
           "p = 0 is not an identity copy");
    int all0 = 1;
    for (int64_t i = 0; i < n; i++) all0 &= zero->data[i] == 0.0f;
    EXPECT(all0 && r3.block == r0.block, "p = 1: zeros, cursor unmoved");
    ug_ctx_free(ctx);

    ug_tensor *xt = ug_test_tensor(2, (int64_t[]){4, 6}, 19, -1, 1);
    float ps[3] = {0.5f, 0.0f, 1.0f};
    for (int k = 0; k < 3; k++) {
        if (ps[k] == 1.0f) {
            /* Everything dropped: the gradient is exactly zero (nothing to FD-check). */
            ug_ctx *c2 = new_ctx();
            memset(xt->grad, 0, 24 * sizeof(float));
            ug_tensor *o = f_dropout(c2, &xt, &ps[k]);
            float ones[24];
            for (int i = 0; i < 24; i++) ones[i] = 1.0f;
            ASSERT_OK(ug_backward_seed(c2, o, ones));
            float zeros[24] = {0};
            EXPECT(ug_test_allclose("d dropout(p=1)", xt->grad, zeros, 24, 0, 0), "p = 1 grad");
            ug_ctx_free(c2);
            continue;
        }
        char what[32];
        snprintf(what, sizeof what, "dropout p=%g", (double)ps[k]);
        EXPECT(ug_gradcheck(what, f_dropout, &ps[k], &xt, 1, ug_gc_default()), "%s", what);
    }
    ug_test_tensor_free(xt);
}

/* ================================================================ losses */
TEST(loss_values) {
    ug_ctx *ctx = new_ctx();
    int64_t sh[3] = {3, 2, 2};
    ug_tensor *x = ug_test_tensor(3, sh, 51, -2, 2), *y = ug_test_tensor(3, sh, 52, -2, 2);
    ug_tensor *lv = ug_test_tensor(3, sh, 53, -1, 1);
    ug_tensor *w = ug_tensor_from(ctx, 1, (int64_t[]){3}, (float[]){0.5f, 2.0f, 0.0f});
    float ref[3], ref_w[3], ref_g[3];
    for (int b = 0; b < 3; b++) {
        double s = 0, g = 0;
        for (int j = 0; j < 4; j++) {
            double d = (double)x->data[b * 4 + j] - y->data[b * 4 + j], l = lv->data[b * 4 + j];
            s += d * d;
            g += 0.5 * (log(2 * M_PI) + l + d * d / exp(l));
        }
        ref[b] = (float)(s / 4);
        ref_w[b] = (float)(w->data[b] * s / 4);
        ref_g[b] = (float)g;
    }
    ug_tensor *m1 = ug_mse(ctx, x, y, NULL), *m2 = ug_mse(ctx, x, y, w);
    EXPECT(same_shape(m1, 1, (int64_t[]){3}), "mse is per sample");
    EXPECT(ug_test_allclose("mse", m1->data, ref, 3, 1e-6, 1e-6), "mse");
    EXPECT(ug_test_allclose("mse weighted", m2->data, ref_w, 3, 1e-6, 1e-6), "weighted mse");
    EXPECT(ug_test_allclose("gaussian_nll", ug_gaussian_nll(ctx, x, y, lv)->data, ref_g, 3, 1e-5,
                            1e-6), "gaussian nll");

    /* BCE with logits including +-50 and targets 0, 1 and soft. */
    float z[8] = {50, -50, 50, -50, 0.3f, -1.2f, 3.0f, 0.0f};
    float t[8] = {1, 1, 0, 0, 0.25f, 1, 0, 0.5f};
    ug_tensor *zt = ug_tensor_from(ctx, 2, (int64_t[]){2, 4}, z);
    ug_tensor *tt = ug_tensor_from(ctx, 2, (int64_t[]){2, 4}, t);
    ug_tensor *bce = ug_bce_logits(ctx, zt, tt);
    float rb[2];
    for (int b = 0; b < 2; b++) {
        /* -t log s(z) - (1 - t) log(1 - s(z)) with log s(z) = -log1p(e^-z) computed per sign */
        double s = 0;
        for (int j = 0; j < 4; j++) {
            double zz = z[b * 4 + j], tv = t[b * 4 + j];
            double log_s = zz > 0 ? -log1p(exp(-zz)) : zz - log1p(exp(zz));
            double log_1ms = zz > 0 ? -zz - log1p(exp(-zz)) : -log1p(exp(zz));
            s += -tv * log_s - (1 - tv) * log_1ms;
        }
        rb[b] = (float)s;
    }
    EXPECT(isfinite(bce->data[0]) && isfinite(bce->data[1]), "bce with logits +-50 not finite");
    EXPECT(ug_test_allclose("bce_logits", bce->data, rb, 2, 1e-5, 1e-6), "bce values");
    EXPECT(fabsf(bce->data[0] - 100.0f) < 1e-4f, "bce row 0 = 100, got %g", bce->data[0]);

    /* Cross entropy, with a 1000-scale row. */
    float lg[3][4] = {{0.1f, 2.0f, -1.0f, 0.5f}, {1000, 999, 1001, 0}, {-2, -2, -2, -2}};
    int32_t labels[3] = {1, 0, 3};
    ug_tensor *lt = ug_tensor_from(ctx, 2, (int64_t[]){3, 4}, &lg[0][0]);
    ug_tensor *ce = ug_cross_entropy(ctx, lt, labels);
    float rc[3];
    for (int b = 0; b < 3; b++) rc[b] = (float)(ref_lse(lg[b], 4) - lg[b][labels[b]]);
    EXPECT(ug_test_allclose("cross_entropy", ce->data, rc, 3, 1e-5, 1e-6), "cross entropy");
    EXPECT(fabsf(ce->data[2] - logf(4.0f)) < 1e-6f, "uniform logits give ln K");
    ug_test_tensor_free(x); ug_test_tensor_free(y); ug_test_tensor_free(lv);
    ug_ctx_free(ctx);
}

static ug_tensor *f_mse(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_mse(ctx, in[0], in[1], u ? in[2] : NULL);
}
static ug_tensor *f_bce(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_bce_logits(ctx, in[0], in[1]);
}
static const int32_t k_labels[3] = {2, 0, 4};
static ug_tensor *f_ce(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_cross_entropy(ctx, in[0], k_labels);
}
static ug_tensor *f_gnll(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_gaussian_nll(ctx, in[0], in[1], in[2]);
}

TEST(grad_losses) {
    int64_t sh[3] = {3, 2, 3};
    ug_tensor *x = ug_test_tensor(3, sh, 61, -2, 2), *y = ug_test_tensor(3, sh, 62, -2, 2);
    ug_tensor *w = ug_test_tensor(1, (int64_t[]){3}, 63, 0.2f, 2);
    w->requires_grad = 0;  /* weights are not differentiated */
    ug_tensor *ins[3] = {x, y, w};
    EXPECT(ug_gradcheck("mse", f_mse, NULL, ins, 2, ug_gc_default()), "mse");
    EXPECT(ug_gradcheck("mse weighted", f_mse, (void *)1, ins, 3, ug_gc_default()), "mse w");

    ug_tensor *z = ug_test_tensor(3, sh, 64, -4, 4), *t = ug_test_tensor(3, sh, 65, 0, 1);
    ug_tensor *bins[2] = {z, t};
    EXPECT(ug_gradcheck("bce_logits", f_bce, NULL, bins, 2, ug_gc_default()), "bce");

    ug_tensor *lg = ug_test_tensor(2, (int64_t[]){3, 5}, 66, -3, 3);
    EXPECT(ug_gradcheck("cross_entropy", f_ce, NULL, &lg, 1, ug_gc_default()), "ce");

    ug_tensor *lv = ug_test_tensor(3, sh, 67, -1, 1);
    ug_tensor *gins[3] = {x, y, lv};
    EXPECT(ug_gradcheck("gaussian_nll", f_gnll, NULL, gins, 3, ug_gc_default()), "gnll");
    ug_test_tensor_free(x); ug_test_tensor_free(y); ug_test_tensor_free(w);
    ug_test_tensor_free(z); ug_test_tensor_free(t); ug_test_tensor_free(lg);
    ug_test_tensor_free(lv);
}

/* Losses chained into a scalar as a training step does: mean over samples, then backward. */
TEST(loss_mean_backward) {
    ug_ctx *ctx = new_ctx();
    ug_tensor *x = ug_tensor_from(ctx, 2, (int64_t[]){2, 2}, (float[]){1, 2, 3, 4});
    ug_tensor *y = ug_tensor_from(ctx, 2, (int64_t[]){2, 2}, (float[]){0, 0, 1, 1});
    ug_tensor_requires_grad(ctx, x);
    ASSERT_OK(ug_backward(ctx, ug_mean_all(ctx, ug_mse(ctx, x, y, NULL))));
    /* d/dx mean_b mean_j (x - y)^2 = 2 (x - y) / (B F) */
    float ref[4] = {0.5f, 1.0f, 1.0f, 1.5f};
    EXPECT(ug_test_allclose("d mse", x->grad, ref, 4, 1e-7, 1e-6), "mse through mean_all");
    ug_ctx_free(ctx);
}

/* ================================================================ accumulation */
/* Backward kernels must ADD into gradients (residuals, reused tensors): a second backward on a
 * new tape, without zeroing, must double every gradient. */
static int doubles_grads(const char *name, ug_gc_fn f, void *user, ug_tensor **ins, int nin) {
    ug_ctx *ctx = new_ctx();
    float *first[4] = {0};
    int ok = 1;
    for (int k = 0; k < nin; k++)
        if (ins[k]->requires_grad) memset(ins[k]->grad, 0, (size_t)ins[k]->numel * sizeof(float));
    for (int pass = 0; pass < 2 && ok; pass++) {
        ug_ctx_reset(ctx);
        ug_tensor *out = f(ctx, ins, user);
        float *g = malloc((size_t)out->numel * sizeof *g);
        ug_rng r = ug_rng_make(8, 9, 0);
        ug_rng_normal(&r, g, out->numel);
        ok = ug_backward_seed(ctx, out, g) == UG_OK;
        free(g);
        for (int k = 0; k < nin && ok; k++) {
            if (!ins[k]->requires_grad) continue;
            size_t bytes = (size_t)ins[k]->numel * sizeof(float);
            if (pass == 0) {
                first[k] = malloc(bytes);
                memcpy(first[k], ins[k]->grad, bytes);
            } else {
                for (int64_t i = 0; i < ins[k]->numel; i++) first[k][i] *= 2;
                char what[64];
                snprintf(what, sizeof what, "%s input %d", name, k);
                ok = ug_test_allclose(what, ins[k]->grad, first[k], ins[k]->numel, 1e-6, 1e-5);
            }
        }
    }
    for (int k = 0; k < 4; k++) free(first[k]);
    ug_ctx_free(ctx);
    return ok;
}

TEST(backward_accumulates) {
    ug_tensor *a = ug_test_tensor(3, (int64_t[]){2, 3, 4}, 71, -1, 1);
    ug_tensor *b = ug_test_tensor(2, (int64_t[]){3, 1}, 72, 0.5f, 2);
    ug_tensor *c = ug_test_tensor(3, (int64_t[]){2, 3, 4}, 73, 0.5f, 2);
    ug_tensor *ab[2] = {a, b}, *ac[2] = {a, c}, *abc[3] = {a, c, c};
    EXPECT(doubles_grads("div broadcast", f_binop, (void *)(intptr_t)3, ab, 2), "div bcast");
    EXPECT(doubles_grads("mul same shape", f_binop, (void *)(intptr_t)2, ac, 2), "mul");
    EXPECT(doubles_grads("softmax", f_softmax, NULL, &a, 1), "softmax");
    EXPECT(doubles_grads("log_softmax", f_log_softmax, NULL, &a, 1), "log_softmax");
    EXPECT(doubles_grads("logsumexp", f_logsumexp, NULL, &a, 1), "logsumexp");
    red_case rc = {1, 0, 1};
    EXPECT(doubles_grads("mean axis", f_reduce, &rc, &a, 1), "mean axis");
    EXPECT(doubles_grads("sum_all", f_sum_all, NULL, &a, 1), "sum_all");
    int p3[3] = {2, 0, 1};
    EXPECT(doubles_grads("permute", f_permute, p3, &a, 1), "permute");
    ug_tensor *xs[5];
    make_concat_inputs(xs, 1);
    EXPECT(doubles_grads("concat", f_concat, (void *)(intptr_t)1, xs, 4), "concat");
    for (int k = 0; k < 5; k++) ug_test_tensor_free(xs[k]);
    ug_tensor *s = ug_test_tensor(3, (int64_t[]){2, 7, 3}, 74, -1, 1);
    EXPECT(doubles_grads("split", f_split_reverse, NULL, &s, 1), "split");
    ug_tensor *w = ug_test_tensor(2, (int64_t[]){5, 3}, 75, -1, 1);
    EXPECT(doubles_grads("embedding", f_embedding, NULL, &w, 1), "embedding");
    ug_tensor *tx = ug_test_tensor(1, (int64_t[]){4}, 76, -1, 1);
    sin_case sc = {6, 1.0f, 0};
    EXPECT(doubles_grads("sinusoidal", f_sinusoidal, &sc, &tx, 1), "sinusoidal");
    float p = 0.5f;
    EXPECT(doubles_grads("dropout", f_dropout, &p, &a, 1), "dropout");
    EXPECT(doubles_grads("mse", f_mse, NULL, ac, 2), "mse");
    EXPECT(doubles_grads("bce", f_bce, NULL, ac, 2), "bce");
    ug_tensor *lg = ug_test_tensor(2, (int64_t[]){3, 5}, 77, -2, 2);
    EXPECT(doubles_grads("cross_entropy", f_ce, NULL, &lg, 1), "ce");
    EXPECT(doubles_grads("gaussian_nll", f_gnll, NULL, abc, 3), "gnll");
    ug_test_tensor_free(a); ug_test_tensor_free(b); ug_test_tensor_free(c);
    ug_test_tensor_free(s); ug_test_tensor_free(w); ug_test_tensor_free(tx);
    ug_test_tensor_free(lg);
}

/* ================================================================ PyTorch fixtures */
/* tests/ref/gen_ops_tensor.py: torch.softmax / log_softmax / logsumexp, BCEWithLogits,
 * cross_entropy, gaussian_nll_loss(full=True) and DDPM's get_timestep_embedding. */
TEST(ops_match_pytorch) {
    ug_ctx *ctx = new_ctx();
    ug_tensor *x = ug_tensor_from(ctx, 2, (int64_t[]){3, 5}, ref_sm_x);
    EXPECT(ug_test_allclose("softmax", ug_softmax(ctx, x)->data, ref_softmax, 15, 1e-7, 1e-5),
           "softmax");
    EXPECT(ug_test_allclose("log_softmax", ug_log_softmax(ctx, x)->data, ref_log_softmax, 15, 1e-6,
                            1e-6), "log_softmax");
    EXPECT(ug_test_allclose("logsumexp", ug_logsumexp(ctx, x)->data, ref_logsumexp, 3, 1e-6, 1e-6),
           "logsumexp");
    ug_tensor *z = ug_tensor_from(ctx, 2, (int64_t[]){2, 4}, ref_bce_z);
    ug_tensor *t = ug_tensor_from(ctx, 2, (int64_t[]){2, 4}, ref_bce_t);
    EXPECT(ug_test_allclose("bce", ug_bce_logits(ctx, z, t)->data, ref_bce, 2, 1e-5, 1e-6), "bce");
    ug_tensor *lg = ug_tensor_from(ctx, 2, (int64_t[]){3, 4}, ref_ce_logits);
    EXPECT(ug_test_allclose("ce", ug_cross_entropy(ctx, lg, ref_ce_labels)->data, ref_ce, 3, 1e-5,
                            1e-6), "cross entropy");
    ug_tensor *gx = ug_tensor_from(ctx, 2, (int64_t[]){2, 3}, ref_gn_x);
    ug_tensor *gm = ug_tensor_from(ctx, 2, (int64_t[]){2, 3}, ref_gn_mean);
    ug_tensor *gl = ug_tensor_from(ctx, 2, (int64_t[]){2, 3}, ref_gn_logvar);
    EXPECT(ug_test_allclose("gnll", ug_gaussian_nll(ctx, gx, gm, gl)->data, ref_gnll, 2, 1e-5,
                            1e-6), "gaussian nll");
    ug_tensor *ts = ug_tensor_from(ctx, 1, (int64_t[]){4}, ref_ddpm_t);
    ug_tensor *emb = ug_sinusoidal(ctx, ts, 8, -logf(10000.0f), 0);
    /* t = 999 times f: float products agree, sin/cos of ~1e3 differ by libm ulps only */
    EXPECT(ug_test_allclose("ddpm emb", emb->data, ref_ddpm_emb, 32, 2e-5, 1e-5), "ddpm");
    ug_ctx_free(ctx);
}

/* Permute and axis sums above UG_PAR_MIN, so thread chunks start mid-row. */
TEST(permute_and_sum_large_threaded) {
    ug_ctx *ctx = new_ctx();
    int64_t A = 40, Bd = 33, C = 31;
    ug_tensor *x = ug_test_tensor(3, (int64_t[]){A, Bd, C}, 81, -1, 1);
    ug_tensor *y = ug_permute(ctx, x, (int[]){2, 0, 1});
    int ok = 1;
    for (int64_t i = 0; i < A; i++)
        for (int64_t j = 0; j < Bd; j++)
            for (int64_t k = 0; k < C; k++)
                ok &= y->data[(k * A + i) * Bd + j] == x->data[(i * Bd + j) * C + k];
    EXPECT(ok, "large permute misplaced an element");
    /* Backward of permute is the inverse permutation: seed with y's own values. */
    memset(x->grad, 0, (size_t)x->numel * sizeof(float));
    ASSERT_OK(ug_backward_seed(ctx, y, y->data));
    EXPECT(memcmp(x->grad, x->data, (size_t)x->numel * sizeof(float)) == 0, "permute backward");
    ug_tensor *s = ug_sum(ctx, x, 1, 0);
    float *ref = malloc((size_t)(A * C) * sizeof *ref);
    for (int64_t i = 0; i < A; i++)
        for (int64_t k = 0; k < C; k++) {
            double acc = 0;
            for (int64_t j = 0; j < Bd; j++) acc += x->data[(i * Bd + j) * C + k];
            ref[i * C + k] = (float)acc;
        }
    EXPECT(ug_test_allclose("large sum", s->data, ref, A * C, 1e-6, 1e-6), "large sum axis 1");
    free(ref);
    ug_test_tensor_free(x);
    ug_ctx_free(ctx);
}

/* The binary backward's writing form (a gradient buffer not yet written, da_add / db_add 0)
 * against adding into zeros: the same bits, over NaN-filled buffers (nothing old is read), for
 * the four ops, same shapes and both operands broadcast (the reduction writes too). */
TEST(tensor_binary_backward_writes_as_zero_plus) {
    const int64_t sa[3] = {3, 4, 5}, sb[3] = {3, 1, 5}, sc[1] = {5}, sg[1] = {60};
    const int64_t *shapes[3] = {sa, sb, sc};
    const int nds[3] = {3, 3, 1};
    ug_tensor *g = ug_test_tensor(1, sg, 51, -1, 1);
    for (int pair = 0; pair < 3; pair++) {   /* b: same shape, (3, 1, 5), (5) */
        ug_bcast plan;
        int64_t os[UG_MAX_DIMS];
        int ond;
        ASSERT(ug_bcast_plan(&plan, 3, sa, nds[pair], shapes[pair], os, &ond), "plan");
        int64_t nb = 1;
        for (int d = 0; d < nds[pair]; d++) nb *= shapes[pair][d];
        const int64_t sbn[1] = {nb};
        ug_tensor *a = ug_test_tensor(1, sg, 52, 0.5f, 2), *b = ug_test_tensor(1, sbn, 53, 0.5f, 2);
        float *da0 = calloc(60, sizeof(float)), *db0 = calloc((size_t)nb, sizeof(float)),
              *da1 = malloc(60 * sizeof(float)), *db1 = malloc((size_t)nb * sizeof(float));
        for (int op = 0; op < UG_BIN_COUNT; op++) {
            memset(da0, 0, 60 * sizeof(float));
            memset(db0, 0, (size_t)nb * sizeof(float));
            for (int i = 0; i < 60; i++) da1[i] = NAN;
            for (int64_t i = 0; i < nb; i++) db1[i] = NAN;
            ug_k_binary_backward((ug_binop)op, da0, db0, g->data, a->data, b->data, &plan, 1, 1);
            ug_k_binary_backward((ug_binop)op, da1, db1, g->data, a->data, b->data, &plan, 0, 0);
            EXPECT(!memcmp(da0, da1, 60 * sizeof(float)), "%s, b %d: da", ug_binop_name(op), pair);
            EXPECT(!memcmp(db0, db1, (size_t)nb * sizeof(float)), "%s, b %d: db",
                   ug_binop_name(op), pair);
        }
        free(da0); free(db0); free(da1); free(db1);
        ug_test_tensor_free(a); ug_test_tensor_free(b);
    }
    ug_test_tensor_free(g);
}
