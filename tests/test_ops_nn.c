/* test_ops_nn.c — conv2d, upsample2x, avg_pool2d, group_norm, layer_norm and attention:
 * values and input gradients against PyTorch fixtures (tests/ref/gen_nn_ref.py -> ref/nn_ref.h),
 * finite-difference checks of every input's gradient, gradient accumulation (+=) next to
 * inputs that do not require grad, and sizes large enough to take the OpenMP paths. */
#include "test.h"
#include "core/core.h"
#include "ref/nn_ref.h"
#include "kernels/attention.h"
#include "kernels/linear.h"
#include "kernels/norm.h"

#define ATOL 1e-5
#define RTOL 1e-4
#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Arena tensor holding a fixture, marked as requiring grad (NULL stays NULL). */
static ug_tensor *from_ref(ug_ctx *ctx, int ndim, const int64_t *shape, const float *data) {
    if (!data) return NULL;
    ug_tensor *t = ug_tensor_from(ctx, ndim, shape, data);
    ug_tensor_requires_grad(ctx, t);
    return t;
}

static int shape_is(const ug_tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return 0;
    return 1;
}

/* Compares the output y with ref_y, then seeds backward with dy and compares each input's
 * gradient with PyTorch's autograd (inputs and refs may be NULL together). */
static void expect_matches(ug_ctx *ctx, const char *op, const char *cfg, ug_tensor *y,
                           const float *ref_y, const float *dy, ug_tensor *const *ins,
                           const float *const *ref_g, const char *const *names, int nin) {
    char what[96];
    snprintf(what, sizeof what, "%s %s: forward", op, cfg);
    EXPECT(ug_test_allclose(what, y->data, ref_y, y->numel, ATOL, RTOL), "%s", what);
    ug_status st = ug_backward_seed(ctx, y, dy);
    EXPECT(st == UG_OK, "%s %s: backward: %s", op, cfg, ug_last_error());
    for (int i = 0; i < nin && st == UG_OK; i++) {
        if (!ins[i]) continue;
        snprintf(what, sizeof what, "%s %s: d%s", op, cfg, names[i]);
        EXPECT(ug_test_allclose(what, ins[i]->grad, ref_g[i], ins[i]->numel, ATOL, RTOL), "%s",
               what);
    }
}

/* ---------------------------------------------------------------- values and gradients vs PyTorch */
TEST(nn_conv2d_matches_torch) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    for (int i = 0; i < NELEM(nn_ref_convs); i++) {
        const nn_ref_conv *r = &nn_ref_convs[i];
        ug_tensor *x = from_ref(ctx, 4, (int64_t[]){r->N, r->C, r->H, r->W}, r->x);
        ug_tensor *w = from_ref(ctx, 4, (int64_t[]){r->O, r->C, r->kh, r->kw}, r->w);
        ug_tensor *b = from_ref(ctx, 1, (int64_t[]){r->O}, r->b);
        ug_tensor *y = ug_conv2d(ctx, x, w, b, r->stride, r->pad);
        ASSERT(shape_is(y, 4, (int64_t[]){r->N, r->O, r->Ho, r->Wo}), "conv %s: output shape",
               r->name);
        expect_matches(ctx, "conv2d", r->name, y, r->y, r->dy, (ug_tensor *[]){x, w, b},
                       (const float *[]){r->dx, r->dw, r->db}, (const char *[]){"x", "w", "b"}, 3);
        ug_ctx_reset(ctx);
    }
    ug_ctx_free(ctx);
}

TEST(nn_upsample_avg_pool_match_torch) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_tensor *x = from_ref(ctx, 4, (int64_t[]){2, 3, 2, 3}, upsample_x);
    ug_tensor *y = ug_upsample2x(ctx, x);
    ASSERT(shape_is(y, 4, (int64_t[]){2, 3, 4, 6}), "upsample2x: output shape");
    expect_matches(ctx, "upsample2x", "", y, upsample_y, upsample_dy, &x,
                   (const float *[]){upsample_dx}, (const char *[]){"x"}, 1);
    for (int i = 0; i < NELEM(nn_ref_pools); i++) {
        const nn_ref_pool *r = &nn_ref_pools[i];
        ug_ctx_reset(ctx);
        ug_tensor *xp = from_ref(ctx, 4, (int64_t[]){r->N, r->C, r->H, r->W}, r->x);
        ug_tensor *yp = ug_avg_pool2d(ctx, xp, r->k);
        ASSERT(shape_is(yp, 4, (int64_t[]){r->N, r->C, r->H / r->k, r->W / r->k}),
               "avg_pool2d %s: output shape", r->name);
        expect_matches(ctx, "avg_pool2d", r->name, yp, r->y, r->dy, &xp,
                       (const float *[]){r->dx}, (const char *[]){"x"}, 1);
    }
    ug_ctx_free(ctx);
}

TEST(nn_group_norm_matches_torch) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    for (int i = 0; i < NELEM(nn_ref_gns); i++) {
        const nn_ref_gn *r = &nn_ref_gns[i];
        int64_t shape[4] = {r->shape[0], r->shape[1], r->shape[2], r->shape[3]};
        ug_tensor *x = from_ref(ctx, r->ndim, shape, r->x);
        ug_tensor *w = from_ref(ctx, 1, shape + 1, r->w), *b = from_ref(ctx, 1, shape + 1, r->b);
        ug_tensor *y = ug_group_norm(ctx, x, w, b, r->groups, (float)r->eps);
        ASSERT(shape_is(y, r->ndim, shape), "group_norm %s: output shape", r->name);
        expect_matches(ctx, "group_norm", r->name, y, r->y, r->dy, (ug_tensor *[]){x, w, b},
                       (const float *[]){r->dx, r->dw, r->db}, (const char *[]){"x", "w", "b"}, 3);
        ug_ctx_reset(ctx);
    }
    ug_ctx_free(ctx);
}

TEST(nn_layer_norm_matches_torch) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    for (int i = 0; i < NELEM(nn_ref_lns); i++) {
        const nn_ref_ln *r = &nn_ref_lns[i];
        int64_t shape[4] = {r->shape[0], r->shape[1], r->shape[2], r->shape[3]};
        ug_tensor *x = from_ref(ctx, r->ndim, shape, r->x);
        ug_tensor *w = from_ref(ctx, 1, shape + r->ndim - 1, r->w);
        ug_tensor *b = from_ref(ctx, 1, shape + r->ndim - 1, r->b);
        ug_tensor *y = ug_layer_norm(ctx, x, w, b, (float)r->eps);
        ASSERT(shape_is(y, r->ndim, shape), "layer_norm %s: output shape", r->name);
        expect_matches(ctx, "layer_norm", r->name, y, r->y, r->dy, (ug_tensor *[]){x, w, b},
                       (const float *[]){r->dx, r->dw, r->db}, (const char *[]){"x", "w", "b"}, 3);
        ug_ctx_reset(ctx);
    }
    ug_ctx_free(ctx);
}

TEST(nn_attention_matches_torch) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    for (int i = 0; i < NELEM(nn_ref_attns); i++) {
        const nn_ref_attn *r = &nn_ref_attns[i];
        int64_t shape[3] = {r->B, r->T, r->C};
        ug_tensor *q = from_ref(ctx, 3, shape, r->q), *k = from_ref(ctx, 3, shape, r->k);
        ug_tensor *v = from_ref(ctx, 3, shape, r->v);
        ug_tensor *y = ug_attention(ctx, q, k, v, r->heads);
        ASSERT(shape_is(y, 3, shape), "attention %s: output shape", r->name);
        expect_matches(ctx, "attention", r->name, y, r->y, r->dy, (ug_tensor *[]){q, k, v},
                       (const float *[]){r->dq, r->dk, r->dv}, (const char *[]){"q", "k", "v"}, 3);
        ug_ctx_reset(ctx);
    }
    ug_ctx_free(ctx);
}

/* ---------------------------------------------------------------- gradient checks */
typedef struct { int stride, pad, bias; } conv_args;

static ug_tensor *f_conv(ug_ctx *ctx, ug_tensor **in, void *u) {
    const conv_args *a = u;
    return ug_conv2d(ctx, in[0], in[1], a->bias ? in[2] : NULL, a->stride, a->pad);
}

TEST(nn_grad_conv2d) {
    static const struct { int N, C, H, W, O, kh, kw, stride, pad, bias; } cfg[] = {
        {2, 3, 5, 6, 4, 3, 3, 1, 1, 1}, {2, 3, 6, 5, 4, 3, 3, 2, 1, 1},
        {1, 2, 7, 7, 3, 3, 3, 2, 0, 0}, {2, 3, 5, 5, 2, 3, 3, 1, 0, 1},
        {2, 5, 3, 4, 3, 1, 1, 1, 0, 1}, {1, 3, 5, 5, 2, 1, 1, 2, 0, 0},
        {1, 2, 4, 5, 3, 1, 3, 1, 1, 1}, {2, 2, 4, 4, 3, 1, 1, 1, 1, 1},
    };
    for (int i = 0; i < NELEM(cfg); i++) {
        ug_tensor *x = ug_test_tensor(4, (int64_t[]){cfg[i].N, cfg[i].C, cfg[i].H, cfg[i].W},
                                      100 + i, -1, 1);
        ug_tensor *w = ug_test_tensor(
            4, (int64_t[]){cfg[i].O, cfg[i].C, cfg[i].kh, cfg[i].kw}, 200 + i, -1, 1);
        ug_tensor *b = ug_test_tensor(1, (int64_t[]){cfg[i].O}, 300 + i, -1, 1);
        conv_args a = {cfg[i].stride, cfg[i].pad, cfg[i].bias};
        ug_tensor *ins[3] = {x, w, b};
        char name[64];
        snprintf(name, sizeof name, "conv2d k%dx%d s%d p%d%s", cfg[i].kh, cfg[i].kw,
                 cfg[i].stride, cfg[i].pad, cfg[i].bias ? "" : " nobias");
        EXPECT(ug_gradcheck(name, f_conv, &a, ins, a.bias ? 3 : 2, ug_gc_default()), "%s", name);
        ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(b);
    }
}

/* ug_conv2d_add: in = {x, w, b, ib, r}; r_is_x: the residual is x itself (one tensor, two
 * uses: its gradient written once, then added). */
typedef struct { int stride, pad, r_is_x; } conv_add_args;

static ug_tensor *f_conv_add(ug_ctx *ctx, ug_tensor **in, void *u) {
    const conv_add_args *a = u;
    return ug_conv2d_add(ctx, in[0], in[1], in[2], a->stride, a->pad, in[3],
                         a->r_is_x ? in[0] : in[4]);
}

TEST(nn_grad_conv2d_add) {
    /* 3x3 stride 1 pad 1 over 2 images: the direct path with 2 threads; stride 2: the columns;
     * 1x1; and a residual that is the input. */
    static const struct { int N, C, H, W, O, k, stride, pad, r_is_x; } cfg[] = {
        {2, 3, 5, 6, 4, 3, 1, 1, 0}, {2, 3, 6, 5, 4, 3, 2, 1, 0},
        {3, 5, 3, 4, 3, 1, 1, 0, 0}, {2, 3, 4, 5, 3, 3, 1, 1, 1},
    };
    for (int i = 0; i < NELEM(cfg); i++) {
        const int N = cfg[i].N, O = cfg[i].O,
                  Ho = (cfg[i].H + 2 * cfg[i].pad - cfg[i].k) / cfg[i].stride + 1,
                  Wo = (cfg[i].W + 2 * cfg[i].pad - cfg[i].k) / cfg[i].stride + 1;
        ug_tensor *ins[5] = {
            ug_test_tensor(4, (int64_t[]){N, cfg[i].C, cfg[i].H, cfg[i].W}, 110 + i, -1, 1),
            ug_test_tensor(4, (int64_t[]){O, cfg[i].C, cfg[i].k, cfg[i].k}, 210 + i, -1, 1),
            ug_test_tensor(1, (int64_t[]){O}, 310 + i, -1, 1),
            ug_test_tensor(2, (int64_t[]){N, O}, 410 + i, -1, 1),
            ug_test_tensor(4, (int64_t[]){N, O, Ho, Wo}, 510 + i, -1, 1)};
        conv_add_args a = {cfg[i].stride, cfg[i].pad, cfg[i].r_is_x};
        char name[64];
        snprintf(name, sizeof name, "conv2d_add k%d s%d p%d%s", cfg[i].k, cfg[i].stride,
                 cfg[i].pad, cfg[i].r_is_x ? " r = x" : "");
        EXPECT(ug_gradcheck(name, f_conv_add, &a, ins, a.r_is_x ? 4 : 5, ug_gc_default()), "%s",
               name);
        for (int k = 0; k < 5; k++) ug_test_tensor_free(ins[k]);
    }
}

TEST(nn_conv2d_add_equals_adds) {
    /* The fused terms give the bits of the separate adds, forward and every gradient, on the
     * columns' path (stride 2), the direct path (3x3, 7 x 7) and Winograd (48 -> 48 at 8 x 8). */
    static const struct { int N, C, H, O, stride, pad; } cfg[] = {
        {2, 4, 7, 5, 2, 1}, {3, 4, 7, 5, 1, 1}, {2, 48, 8, 48, 1, 1}};
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    for (int i = 0; i < NELEM(cfg); i++) {
        const int N = cfg[i].N, O = cfg[i].O,
                  Ho = (cfg[i].H + 2 * cfg[i].pad - 3) / cfg[i].stride + 1;
        ug_tensor *x = ug_test_tensor(4, (int64_t[]){N, cfg[i].C, cfg[i].H, cfg[i].H}, 7 + i, -1,
                                      1),
                  *w = ug_test_tensor(4, (int64_t[]){O, cfg[i].C, 3, 3}, 17 + i, -1, 1),
                  *b = ug_test_tensor(1, (int64_t[]){O}, 27 + i, -1, 1),
                  *ib = ug_test_tensor(2, (int64_t[]){N, O}, 37 + i, -1, 1),
                  *r = ug_test_tensor(4, (int64_t[]){N, O, Ho, Ho}, 47 + i, -1, 1),
                  *dy = ug_test_tensor(4, (int64_t[]){N, O, Ho, Ho}, 57 + i, -1, 1);
        ug_tensor *all[5] = {x, w, b, ib, r};
        float *got[5], *got_y = NULL;
        for (int pass = 0; pass < 2; pass++) {
            for (int k = 0; k < 5; k++)
                memset(all[k]->grad, 0, (size_t)all[k]->numel * sizeof(float));
            ug_tensor *y = pass == 0
                ? ug_conv2d_add(ctx, x, w, b, cfg[i].stride, cfg[i].pad, ib, r)
                : ug_add(ctx, ug_add(ctx, ug_conv2d(ctx, x, w, b, cfg[i].stride, cfg[i].pad),
                                     ug_reshape(ctx, ib, 4, (int64_t[]){N, O, 1, 1})), r);
            ASSERT(y, "conv %d pass %d: %s", i, pass, ug_last_error());
            ASSERT_OK(ug_backward_seed(ctx, y, dy->data));
            if (pass == 0) {
                got_y = malloc((size_t)y->numel * sizeof *got_y);
                memcpy(got_y, y->data, (size_t)y->numel * sizeof *got_y);
                for (int k = 0; k < 5; k++) {
                    got[k] = malloc((size_t)all[k]->numel * sizeof(float));
                    memcpy(got[k], all[k]->grad, (size_t)all[k]->numel * sizeof(float));
                }
            } else {
                EXPECT(!memcmp(got_y, y->data, (size_t)y->numel * sizeof *got_y),
                       "conv %d: forward differs from the adds", i);
                for (int k = 0; k < 5; k++)
                    EXPECT(!memcmp(got[k], all[k]->grad, (size_t)all[k]->numel * sizeof(float)),
                           "conv %d: gradient of input %d differs from the adds", i, k);
            }
            ug_ctx_reset(ctx);
        }
        free(got_y);
        for (int k = 0; k < 5; k++) {
            free(got[k]);
            ug_test_tensor_free(all[k]);
        }
        ug_test_tensor_free(dy);
    }
    ug_ctx_free(ctx);
}

static ug_tensor *f_upsample(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_upsample2x(ctx, in[0]);
}

static ug_tensor *f_pool(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_avg_pool2d(ctx, in[0], (int)(intptr_t)u);
}

TEST(nn_grad_upsample_avg_pool) {
    ug_tensor *x = ug_test_tensor(4, (int64_t[]){2, 3, 3, 4}, 7, -1, 1);
    EXPECT(ug_gradcheck("upsample2x", f_upsample, NULL, &x, 1, ug_gc_default()), "upsample2x");
    ug_test_tensor_free(x);
    x = ug_test_tensor(4, (int64_t[]){2, 2, 4, 6}, 8, -1, 1);
    EXPECT(ug_gradcheck("avg_pool2d k2", f_pool, (void *)2, &x, 1, ug_gc_default()), "pool k2");
    ug_test_tensor_free(x);
    x = ug_test_tensor(4, (int64_t[]){1, 3, 7, 8}, 9, -1, 1);   /* floor: last row/col dropped */
    EXPECT(ug_gradcheck("avg_pool2d k3", f_pool, (void *)3, &x, 1, ug_gc_default()), "pool k3");
    ug_test_tensor_free(x);
}

typedef struct { int groups, w, b; } norm_args;

static ug_tensor *f_gn(ug_ctx *ctx, ug_tensor **in, void *u) {
    const norm_args *a = u;
    return ug_group_norm(ctx, in[0], a->w ? in[1] : NULL, a->b ? in[2] : NULL, a->groups, 1e-5f);
}

static ug_tensor *f_gns(ug_ctx *ctx, ug_tensor **in, void *u) {
    const norm_args *a = u;
    return ug_group_norm_silu(ctx, in[0], a->w ? in[1] : NULL, a->b ? in[2] : NULL, a->groups,
                              1e-5f);
}

static ug_tensor *f_ln(ug_ctx *ctx, ug_tensor **in, void *u) {
    const norm_args *a = u;
    return ug_layer_norm(ctx, in[0], a->w ? in[1] : NULL, a->b ? in[2] : NULL, 1e-5f);
}

/* Checks x, and whichever of w, b are in use (a missing w leaves b at index 1). */
static int norm_check(const char *name, ug_gc_fn f, const norm_args *a, ug_tensor *x,
                      ug_tensor *w, ug_tensor *b) {
    ug_tensor *ins[3] = {x, w, b};
    int nin = a->b ? 3 : a->w ? 2 : 1;
    /* A bias without a weight: keep slot 1 but stop it from being probed. */
    int wr = w->requires_grad;
    if (!a->w) w->requires_grad = 0;
    int ok = ug_gradcheck(name, f, (void *)a, ins, nin, ug_gc_default());
    w->requires_grad = wr;
    return ok;
}

TEST(nn_grad_group_norm) {
    static const struct { int ndim; int64_t shape[4]; norm_args a; } cfg[] = {
        {4, {2, 4, 3, 3}, {1, 1, 1}}, {4, {2, 4, 3, 3}, {2, 1, 1}}, {4, {2, 4, 3, 3}, {4, 1, 1}},
        {3, {2, 6, 5, 1}, {3, 1, 0}}, {4, {2, 4, 2, 3}, {2, 0, 0}}, {4, {1, 6, 2, 2}, {6, 0, 1}},
        {2, {3, 4, 1, 1}, {2, 1, 1}},
    };
    for (int i = 0; i < NELEM(cfg); i++) {
        int64_t C = cfg[i].shape[1];
        ug_tensor *x = ug_test_tensor(cfg[i].ndim, cfg[i].shape, 400 + i, -1, 1);
        ug_tensor *w = ug_test_tensor(1, &C, 500 + i, 0.5f, 1.5f);
        ug_tensor *b = ug_test_tensor(1, &C, 600 + i, -1, 1);
        char name[64];
        snprintf(name, sizeof name, "group_norm ndim %d G=%d w=%d b=%d", cfg[i].ndim,
                 cfg[i].a.groups, cfg[i].a.w, cfg[i].a.b);
        EXPECT(norm_check(name, f_gn, &cfg[i].a, x, w, b), "%s", name);
        snprintf(name, sizeof name, "group_norm_silu ndim %d G=%d w=%d b=%d", cfg[i].ndim,
                 cfg[i].a.groups, cfg[i].a.w, cfg[i].a.b);
        EXPECT(norm_check(name, f_gns, &cfg[i].a, x, w, b), "%s", name);
        ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(b);
    }
}

/* The fused group norm + SiLU against the pair it replaces: output and the gradients of x, w
 * and b bit for bit, on a tensor large enough for the threaded paths, on 1 and 2 threads. */
TEST(nn_group_norm_silu_matches_the_pair_bitwise) {
    const int64_t shape[4] = {4, 32, 20, 20}, C = 32, n = 4 * 32 * 400;
    ug_tensor *x = ug_test_tensor(4, shape, 11, -3, 3), *w = ug_test_tensor(1, &C, 12, 0.5f, 1.5f),
              *b = ug_test_tensor(1, &C, 13, -1, 1), *r = ug_test_tensor(4, shape, 14, -1, 1);
    r->requires_grad = 0;
    float *res[2][5];
    int threads0 = ug_get_threads(), ok = 1;
    for (int th = 1; th <= 2; th++) {
        ug_set_threads(th);
        for (int fused = 0; fused < 2; fused++) {
            ug_ctx *ctx;
            ASSERT_OK(ug_ctx_create(&ctx, 0));
            memset(x->grad, 0, (size_t)n * sizeof(float));
            memset(w->grad, 0, (size_t)C * sizeof(float));
            memset(b->grad, 0, (size_t)C * sizeof(float));
            ug_tensor *z = fused ? ug_group_norm_silu(ctx, x, w, b, 8, 1e-5f)
                                 : ug_silu(ctx, ug_group_norm(ctx, x, w, b, 8, 1e-5f));
            ASSERT_OK(ug_backward(ctx, ug_sum_all(ctx, ug_mul(ctx, z, r))));
            float *keep[5] = {z->data, x->grad, w->grad, b->grad, NULL};
            int64_t len[4] = {n, n, C, C};
            for (int k = 0; k < 4; k++) {
                res[fused][k] = malloc((size_t)len[k] * sizeof(float));
                memcpy(res[fused][k], keep[k], (size_t)len[k] * sizeof(float));
            }
            ug_ctx_free(ctx);
        }
        const char *what[4] = {"output", "dx", "dw", "db"};
        int64_t len[4] = {n, n, C, C};
        for (int k = 0; k < 4; k++) {
            int same = !memcmp(res[0][k], res[1][k], (size_t)len[k] * sizeof(float));
            EXPECT(same, "%d thread(s): fused %s differs from group_norm then silu", th, what[k]);
            ok &= same;
            free(res[0][k]);
            free(res[1][k]);
        }
    }
    ug_set_threads(threads0);
    EXPECT(ok, "fused group norm + SiLU");
    ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(b); ug_test_tensor_free(r);
}

/* The group norm backward hands each (image, channel)'s sums from its dx pass to dw and db
 * (tot) instead of a second pass over dy and x: dw and db must be bit for bit those of the
 * second pass (tot NULL, or no dx wanted), plain and fused with SiLU, on 1 and 2 threads. */
TEST(nn_group_norm_backward_sums_from_dx_bitwise) {
    enum { N = 5, C = 24, S = 50, G = 6 };
    const int64_t sh[3] = {N, C, S}, sc = C;
    ug_tensor *x = ug_test_tensor(3, sh, 31, -2, 2), *dy = ug_test_tensor(3, sh, 32, -1, 1),
              *w = ug_test_tensor(1, &sc, 33, 0.5f, 1.5f), *b = ug_test_tensor(1, &sc, 34, -1, 1);
    float mean[N * G], rstd[N * G], *out = malloc(sizeof(float) * N * C * S);
    float *scratch = malloc(sizeof(float) * 2 * (C / G) * S), *dx = calloc(N * C * S, sizeof(float));
    double *tot = malloc(sizeof(double) * 2 * N * C);
    int threads0 = ug_get_threads();
    for (int th = 1; th <= 2; th++) {
        ug_set_threads(th);
        for (int silu = 0; silu < 2; silu++) {
            ug_k_group_norm_forward(out, mean, rstd, x->data, w->data, b->data, N, C, S, G, 1e-5f, silu);
            float dw[3][C], db[3][C];
            for (int mode = 0; mode < 3; mode++) {   /* tot, tot NULL, no dx */
                memset(dw[mode], 0, sizeof dw[mode]);
                memset(db[mode], 0, sizeof db[mode]);
                ug_k_group_norm_backward(mode == 2 ? NULL : dx, dw[mode], db[mode], dy->data, x->data,
                                         w->data, b->data, mean, rstd, N, C, S, G, silu, scratch,
                                         2, mode == 0 ? tot : NULL, 1);
            }
            for (int mode = 1; mode < 3; mode++)
                EXPECT(!memcmp(dw[0], dw[mode], sizeof dw[0]) && !memcmp(db[0], db[mode], sizeof db[0]),
                       "%d thread(s), silu %d: dw / db from the dx pass differ from pass %d",
                       th, silu, mode);
            double m = 0;
            for (int c = 0; c < C; c++) m = fmax(m, fabs(dw[0][c]) + fabs(db[0][c]));
            EXPECT(m > 0, "silu %d: dw and db are all zero", silu);
        }
    }
    ug_set_threads(threads0);
    free(out); free(scratch); free(dx); free(tot);
    ug_test_tensor_free(x); ug_test_tensor_free(dy); ug_test_tensor_free(w); ug_test_tensor_free(b);
}

/* The linear backward's two GEMMs, which run side by side on two threads for a layer this
 * large: dx += dout w and dw += dout^T x (accumulating into non-zero buffers) against the sums in
 * double, on 1 and 2 threads, and on 2 threads called from inside a parallel region (as the
 * sampler's tiles call the network), where the pair's team has one thread. */
TEST(nn_linear_backward_pair_matches_double) {   /* and the forward */
    enum { N = 64, D = 256, O = 330 };   /* N D O = 5.4M multiply-adds: above the pair's floor */
    const int64_t sx[2] = {N, D}, sw[2] = {O, D}, sd[2] = {N, O};
    ug_tensor *x = ug_test_tensor(2, sx, 21, -1, 1), *w = ug_test_tensor(2, sw, 22, -1, 1),
              *dy = ug_test_tensor(2, sd, 23, -1, 1), *dx0 = ug_test_tensor(2, sx, 24, -1, 1),
              *dw0 = ug_test_tensor(2, sw, 25, -1, 1);
    float *dx = malloc(sizeof(float) * N * D), *dw = malloc(sizeof(float) * O * D),
          *db = calloc(O, sizeof(float));
    int threads0 = ug_get_threads();
    /* Modes 3 and 4 (1 and 2 threads): the three gradients written (add 0) over NaNs, none of
     * them read; modes 5 and 6: dx and db added, dw written. */
    for (int mode = 0; mode < 7; mode++) {
        int th = mode == 0 || mode == 3 || mode == 5 ? 1 : 2;
        unsigned add = mode < 3 ? 7u : mode < 5 ? 0u : UG_ADD_DX | UG_ADD_DB;
        int dx_add = (add & UG_ADD_DX) != 0;
        ug_set_threads(th);
        memcpy(dx, dx0->data, sizeof(float) * N * D);
        if (!dx_add)
            for (int i = 0; i < N * D; i++) dx[i] = NAN;
        memcpy(dw, dw0->data, sizeof(float) * O * D);
        if (!(add & UG_ADD_DW))
            for (int i = 0; i < O * D; i++) dw[i] = NAN;
        for (int o = 0; o < O; o++) db[o] = add & UG_ADD_DB ? 0.0f : NAN;
        if (mode != 2) {
            ug_k_linear_backward(dx, dw, db, dy->data, x->data, w->data, N, D, O, add);
        } else {
#pragma omp parallel num_threads(2)
            {
                if (ug_omp_tid() == 0)
                    ug_k_linear_backward(dx, dw, db, dy->data, x->data, w->data, N, D, O, add);
            }
        }
        double ex = 0, ew = 0, eb = 0;
        for (int n = 0; n < N; n++)
            for (int d = 0; d < D; d++) {
                double r = dx_add ? dx0->data[n * D + d] : 0.0;
                for (int o = 0; o < O; o++) r += (double)dy->data[n * O + o] * w->data[o * D + d];
                ex = ug_test_worst(ex, fabs(dx[n * D + d] - r));
            }
        for (int o = 0; o < O; o++) {
            double rb = 0;
            for (int n = 0; n < N; n++) rb += dy->data[n * O + o];
            eb = ug_test_worst(eb, fabs(db[o] - rb));
            for (int d = 0; d < D; d++) {
                double r = add & UG_ADD_DW ? dw0->data[o * D + d] : 0.0;
                for (int n = 0; n < N; n++) r += (double)dy->data[n * O + o] * x->data[n * D + d];
                ew = ug_test_worst(ew, fabs(dw[o * D + d] - r));
            }
        }
        /* The forward of the same layer (64 rows < 330 outputs: the outputs split among the threads,
         * at column 160, a whole number of 16-column panels, and not at the middle). */
        float *y = malloc(sizeof(float) * N * O);
        if (mode != 2) {
            ug_k_linear_forward(y, x->data, w->data, dw0->data, N, D, O);
        } else {
#pragma omp parallel num_threads(2)
            {
                if (ug_omp_tid() == 0) ug_k_linear_forward(y, x->data, w->data, dw0->data, N, D, O);
            }
        }
        double ey = 0;
        for (int n = 0; n < N; n++)
            for (int o = 0; o < O; o++) {
                double r = dw0->data[o];
                for (int d = 0; d < D; d++) r += (double)x->data[n * D + d] * w->data[o * D + d];
                ey = ug_test_worst(ey, fabs(y[n * O + o] - r));
            }
        free(y);
        EXPECT(ey < 2e-5, "%d thread(s)%s: forward max error %.3g", th,
               mode == 2 ? " inside a parallel region" : "", ey);
        /* Sums of 330 (dx) and 64 (dw, db) products of magnitude <= 1: float rounding is ~1e-5. */
        EXPECT(ex < 2e-5 && ew < 1e-5 && eb < 1e-5,
               "%d thread(s)%s, add %u: max error dx %.3g dw %.3g db %.3g", th,
               mode == 2 ? " inside a parallel region" : "", add, ex, ew, eb);
    }
    ug_set_threads(threads0);
    free(dx); free(dw); free(db);
    ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(dy);
    ug_test_tensor_free(dx0); ug_test_tensor_free(dw0);
}

/* The feature-major layer (the MLP's untaped path) against double: O = 21 (the last register
 * block partial) from K = 37, bias and add in each combination, SiLU or none; a packed block of
 * a wider matrix's columns (ldw 41, from column 4); 100 columns (Bp 128 with AVX-512: whole
 * blocks, the last partly padding) on 1 and 2 threads, and 16384 columns (above the kernel's
 * own split) on 2, every column the same bits as the same column computed alone. */
TEST(nn_fm_linear_matches_double) {
    enum { O = 21, K = 37, LD = 41, C0 = 4 };
    const int64_t sw[2] = {O, LD}, sb[1] = {O};
    ug_tensor *w = ug_test_tensor(2, sw, 31, -1, 1), *b = ug_test_tensor(1, sb, 32, -1, 1);
    float *wpk = malloc(sizeof(float) * ug_k_fm_packed_size(O, K));
    ug_k_fm_pack(wpk, w->data + C0, LD, O, K);
    int threads0 = ug_get_threads();
    const int64_t w1 = ug_k_fm_cols(1);   /* one register block's columns (32 with AVX-512) */
    for (int big = 0; big < 2; big++) {
        const int64_t B = big ? 16384 : 100, Bp = ug_k_fm_cols(B), sx[2] = {K, Bp},
                      sa[2] = {O, Bp};
        EXPECT(Bp >= B && Bp - B < w1 && Bp % w1 == 0, "Bp %lld for B %lld (blocks of %lld)",
               (long long)Bp, (long long)B, (long long)w1);
        ug_tensor *x = ug_test_tensor(2, sx, 33 + big, -2, 2),
                  *a = ug_test_tensor(2, sa, 35, -1, 1);
        float *y = malloc(sizeof(float) * O * Bp), *y1 = malloc(sizeof(float) * O * w1),
              *x1 = calloc((size_t)(K * w1), sizeof(float)),
              *a1 = calloc((size_t)(O * w1), sizeof(float));
        for (int mode = 0; mode < 8; mode++) {
            const int hb = mode & 1, ha = mode >> 1 & 1, silu = mode >> 2 & 1;
            ug_set_threads(big || mode % 2 ? 2 : 1);
            ug_k_fm_forward(y, x->data, Bp, wpk, hb ? b->data : NULL, ha ? a->data : NULL, K, O,
                            silu);
            double err = 0;
            int alone = 1;
            for (int64_t c = 0; c < B; c += big ? 997 : 1) {
                /* column c alone, in a call of one register block */
                for (int64_t k = 0; k < K; k++) x1[k * w1] = x->data[k * Bp + c];
                for (int64_t o = 0; o < O; o++) a1[o * w1] = a->data[o * Bp + c];
                ug_k_fm_forward(y1, x1, w1, wpk, hb ? b->data : NULL, ha ? a1 : NULL, K, O, silu);
                for (int64_t o = 0; o < O; o++) {
                    double r = 0;
                    for (int64_t k = 0; k < K; k++)
                        r += (double)w->data[o * LD + C0 + k] * x->data[k * Bp + c];
                    if (hb) r += b->data[o];
                    if (ha) r += a->data[o * Bp + c];
                    if (silu) r = r / (1 + exp(-r));
                    err = ug_test_worst(err, fabs(y[o * Bp + c] - r));
                    alone &= y1[o * w1] == y[o * Bp + c];
                }
            }
            /* Sums of 37 products of magnitude <= 2 (+ 2 terms): float rounding ~1e-5. */
            EXPECT(err < 3e-5, "B %lld, bias %d add %d silu %d: max error %.3g", (long long)B, hb,
                   ha, silu, err);
            EXPECT(alone, "B %lld, bias %d add %d silu %d: a column alone differs", (long long)B,
                   hb, ha, silu);
        }
        free(y); free(y1); free(x1); free(a1);
        ug_test_tensor_free(x); ug_test_tensor_free(a);
    }
    ug_set_threads(threads0);
    free(wpk);
    ug_test_tensor_free(w); ug_test_tensor_free(b);
}

/* The prefix linear (MADE's sorted layers) against the masked layer in double: values, all three
 * gradients accumulated onto nonzero buffers, exact zeros at w's masked entries, over 4 panels
 * (first rows of length 0, last of the full width), shuffled and in-order columns, on one
 * thread and on two. */
TEST(nn_prefix_linear_matches_double) {
    enum { N = 100, D = 150, O = 200 };
    const int64_t sx[2] = {N, D}, sw[2] = {O, D}, sb[1] = {O}, sd[2] = {N, O};
    ug_tensor *x = ug_test_tensor(2, sx, 31, -1, 1), *w = ug_test_tensor(2, sw, 32, -1, 1),
              *b = ug_test_tensor(1, sb, 33, -1, 1), *dy = ug_test_tensor(2, sd, 34, -1, 1);
    int32_t rows[O], cols[D], len[O];
    int64_t perm[O > D ? O : D];
    ug_data_permutation(perm, O, 5, 0);
    for (int r = 0; r < O; r++) rows[r] = (int32_t)perm[r];
    ug_data_permutation(perm, D, 5, 1);
    for (int c = 0; c < D; c++) cols[c] = (int32_t)perm[c];
    float u[O];
    ug_rng g = ug_rng_make(5, 2, 0);
    ug_rng_uniform(&g, u, O);
    for (int r = 0; r < O; r++) {
        int l = r < 7 ? 0 : r >= O - 9 ? D : (r - 7) * D / (O - 16) + (int)(u[r] * 7) - 3;
        l = l < 0 ? 0 : l > D ? D : l;
        len[r] = r && l < len[r - 1] ? len[r - 1] : l;
    }
    ug_prefix_plan pl;
    ug_k_prefix_plan(&pl, len, O);
    EXPECT(pl.np == 4 && ug_k_prefix_macs(&pl) < (int64_t)O * D * 3 / 4,
           "plan: %d panels, %lld multiply-adds a row (dense %d)", pl.np,
           (long long)ug_k_prefix_macs(&pl), O * D);
    int threads0 = ug_get_threads();
    for (int mode = 0; mode < 4; mode++) {
        int th = 1 + (mode & 1);
        if (mode == 2)   /* columns in w's own order: the copy-and-add path */
            for (int c = 0; c < D; c++) cols[c] = c;
        ug_set_threads(th);
        ug_ctx *ctx;
        ASSERT_OK(ug_ctx_create(&ctx, 0));
        for (int i = 0; i < N * D; i++) x->grad[i] = 0.5f;
        for (int i = 0; i < O * D; i++) w->grad[i] = 0.25f;
        for (int i = 0; i < O; i++) b->grad[i] = -1.0f;
        ug_tensor *y = ug_prefix_linear(ctx, x, w, b, rows, cols, len);
        ASSERT_OK(ug_backward_seed(ctx, y, dy->data));
        double ey = 0, ex = 0, ew = 0, eb = 0;
        int64_t leak = 0;
        for (int n = 0; n < N; n++)
            for (int r = 0; r < O; r++) {
                double ref = b->data[rows[r]];
                for (int c = 0; c < len[r]; c++)
                    ref += (double)x->data[n * D + c] * w->data[rows[r] * D + cols[c]];
                ey = ug_test_worst(ey, fabs(y->data[n * O + r] - ref));
            }
        for (int n = 0; n < N; n++)
            for (int c = 0; c < D; c++) {
                double ref = 0.5;
                for (int r = 0; r < O; r++)
                    if (c < len[r]) ref += (double)dy->data[n * O + r] * w->data[rows[r] * D + cols[c]];
                ex = ug_test_worst(ex, fabs(x->grad[n * D + c] - ref));
            }
        for (int r = 0; r < O; r++) {
            double rb = -1.0;
            for (int n = 0; n < N; n++) rb += dy->data[n * O + r];
            eb = ug_test_worst(eb, fabs(b->grad[rows[r]] - rb));
            for (int c = 0; c < D; c++) {
                double ref = 0.25;
                if (c < len[r])
                    for (int n = 0; n < N; n++) ref += (double)dy->data[n * O + r] * x->data[n * D + c];
                float got = w->grad[rows[r] * D + cols[c]];
                ew = ug_test_worst(ew, fabs(got - ref));
                leak += c >= len[r] && got != 0.25f;
            }
        }
        EXPECT(ey < 2e-5 && ex < 2e-5 && ew < 1e-5 && eb < 1e-5 && leak == 0,
               "%d thread(s), %s columns: max error y %.3g dx %.3g dw %.3g db %.3g; %lld masked "
               "weights moved", th, mode < 2 ? "shuffled" : "in order", ey, ex, ew, eb, (long long)leak);
        ug_ctx_free(ctx);
    }
    ug_set_threads(threads0);
    ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(b); ug_test_tensor_free(dy);
}

TEST(nn_grad_layer_norm) {
    static const struct { int ndim; int64_t shape[3]; norm_args a; } cfg[] = {
        {3, {2, 3, 6}, {0, 1, 1}}, {2, {4, 5, 0}, {0, 1, 0}}, {2, {3, 7, 0}, {0, 0, 0}},
        {1, {8, 0, 0}, {0, 0, 1}},
    };
    for (int i = 0; i < NELEM(cfg); i++) {
        int64_t D = cfg[i].shape[cfg[i].ndim - 1];
        ug_tensor *x = ug_test_tensor(cfg[i].ndim, cfg[i].shape, 700 + i, -1, 1);
        ug_tensor *w = ug_test_tensor(1, &D, 800 + i, 0.5f, 1.5f);
        ug_tensor *b = ug_test_tensor(1, &D, 900 + i, -1, 1);
        char name[64];
        snprintf(name, sizeof name, "layer_norm ndim %d w=%d b=%d", cfg[i].ndim, cfg[i].a.w,
                 cfg[i].a.b);
        EXPECT(norm_check(name, f_ln, &cfg[i].a, x, w, b), "%s", name);
        ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(b);
    }
}

static ug_tensor *f_attn(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_attention(ctx, in[0], in[1], in[2], (int)(intptr_t)u);
}

TEST(nn_grad_attention) {
    static const int cfg[][4] = {{2, 5, 4, 1}, {2, 3, 6, 2}, {1, 6, 4, 2}, {2, 4, 8, 4}};
    for (int i = 0; i < NELEM(cfg); i++) {
        int64_t shape[3] = {cfg[i][0], cfg[i][1], cfg[i][2]};
        ug_tensor *q = ug_test_tensor(3, shape, 1000 + i, -1.5f, 1.5f);
        ug_tensor *k = ug_test_tensor(3, shape, 1100 + i, -1.5f, 1.5f);
        ug_tensor *v = ug_test_tensor(3, shape, 1200 + i, -1, 1);
        ug_tensor *ins[3] = {q, k, v};
        char name[64];
        snprintf(name, sizeof name, "attention B%d T%d C%d heads %d", cfg[i][0], cfg[i][1],
                 cfg[i][2], cfg[i][3]);
        EXPECT(ug_gradcheck(name, f_attn, (void *)(intptr_t)cfg[i][3], ins, 3, ug_gc_default()),
               "%s", name);
        ug_test_tensor_free(q); ug_test_tensor_free(k); ug_test_tensor_free(v);
    }
}

/* ---------------------------------------------------------------- accumulation, no-grad inputs */
/* Runs f once with all grads zero and once with them pre-filled with 1 and with in[skip] not
 * requiring grad (grad NULL): the other gradients must be the first ones plus one. */
static int check_accumulates(const char *name, ug_gc_fn f, void *u, ug_tensor **ins, int nin,
                             int skip) {
    ug_ctx *ctx;
    if (ug_ctx_create(&ctx, 0) != UG_OK) return 0;
    int ok = 1;
    float *first[4] = {0};
    for (int k = 0; k < nin; k++) memset(ins[k]->grad, 0, (size_t)ins[k]->numel * sizeof(float));
    ug_tensor *out = f(ctx, ins, u);
    float *R = malloc((size_t)out->numel * sizeof *R);
    ug_rng rr = ug_rng_make(5, 6, 0);
    ug_rng_normal(&rr, R, out->numel);
    ok &= ug_backward_seed(ctx, out, R) == UG_OK;
    for (int k = 0; k < nin; k++) {
        if (k == skip) continue;
        first[k] = malloc((size_t)ins[k]->numel * sizeof(float));
        memcpy(first[k], ins[k]->grad, (size_t)ins[k]->numel * sizeof(float));
        for (int64_t j = 0; j < ins[k]->numel; j++) ins[k]->grad[j] = 1.0f;
    }
    ug_ctx_reset(ctx);
    float *g0 = ins[skip]->grad;
    ins[skip]->grad = NULL;
    ins[skip]->requires_grad = 0;
    out = f(ctx, ins, u);
    ok &= ug_backward_seed(ctx, out, R) == UG_OK;
    ins[skip]->grad = g0;
    ins[skip]->requires_grad = 1;
    for (int k = 0; k < nin; k++) {
        if (k == skip) continue;
        for (int64_t j = 0; j < ins[k]->numel; j++) first[k][j] += 1.0f;
        char what[96];
        snprintf(what, sizeof what, "%s: grad of input %d accumulates", name, k);
        ok &= ug_test_allclose(what, ins[k]->grad, first[k], ins[k]->numel, 1e-5, 1e-5);
        free(first[k]);
    }
    free(R);
    ug_ctx_free(ctx);
    return ok;
}

TEST(nn_backward_accumulates_and_skips_no_grad_inputs) {
    ug_tensor *x = ug_test_tensor(4, (int64_t[]){2, 4, 5, 5}, 31, -1, 1);
    ug_tensor *w3 = ug_test_tensor(4, (int64_t[]){3, 4, 3, 3}, 32, -1, 1);
    ug_tensor *w1 = ug_test_tensor(4, (int64_t[]){3, 4, 1, 1}, 33, -1, 1);
    ug_tensor *b = ug_test_tensor(1, (int64_t[]){3}, 34, -1, 1);
    conv_args a3 = {2, 1, 1}, a1 = {1, 0, 1};
    ug_tensor *ins[3] = {x, w3, b};
    EXPECT(check_accumulates("conv2d 3x3", f_conv, &a3, ins, 3, 0), "conv2d 3x3");
    EXPECT(check_accumulates("conv2d 3x3 frozen w", f_conv, &a3, ins, 3, 1), "conv2d 3x3 w");
    ins[1] = w1;
    EXPECT(check_accumulates("conv2d 1x1", f_conv, &a1, ins, 3, 0), "conv2d 1x1");
    EXPECT(check_accumulates("conv2d 1x1 frozen w", f_conv, &a1, ins, 3, 1), "conv2d 1x1 w");
    ug_tensor *gw = ug_test_tensor(1, (int64_t[]){4}, 35, -1, 1);
    ug_tensor *gb = ug_test_tensor(1, (int64_t[]){4}, 36, -1, 1);
    norm_args na = {2, 1, 1};
    ug_tensor *gins[3] = {x, gw, gb};
    EXPECT(check_accumulates("group_norm", f_gn, &na, gins, 3, 0), "group_norm");
    EXPECT(check_accumulates("group_norm frozen w", f_gn, &na, gins, 3, 1), "group_norm w");
    ug_tensor *lw = ug_test_tensor(1, (int64_t[]){5}, 37, -1, 1);
    ug_tensor *lb = ug_test_tensor(1, (int64_t[]){5}, 38, -1, 1);
    ug_tensor *lins[3] = {x, lw, lb};
    EXPECT(check_accumulates("layer_norm", f_ln, &na, lins, 3, 0), "layer_norm");
    ug_tensor *q = ug_test_tensor(3, (int64_t[]){2, 5, 4}, 39, -1, 1);
    ug_tensor *k = ug_test_tensor(3, (int64_t[]){2, 5, 4}, 40, -1, 1);
    ug_tensor *v = ug_test_tensor(3, (int64_t[]){2, 5, 4}, 41, -1, 1);
    ug_tensor *ains[3] = {q, k, v};
    for (int skip = 0; skip < 3; skip++) {
        char name[32];
        snprintf(name, sizeof name, "attention frozen %c", "qkv"[skip]);
        EXPECT(check_accumulates(name, f_attn, (void *)2, ains, 3, skip), "%s", name);
    }
    ug_tensor *all[] = {x, w3, w1, b, gw, gb, lw, lb, q, k, v};
    for (int i = 0; i < NELEM(all); i++) ug_test_tensor_free(all[i]);
}

/* ---------------------------------------------------------------- sizes on the OpenMP paths */
/* Naive double-precision convolution, forward and the two input gradients for dout = R. */
static void naive_conv(double *y, double *dx, double *dw, const float *x, const float *w,
                       const float *R, int N, int C, int H, int W, int O, int k, int s, int p,
                       int Ho, int Wo) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    int64_t yi = (((int64_t)n * O + o) * Ho + oh) * Wo + ow;
                    double acc = 0;
                    for (int c = 0; c < C; c++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int ih = oh * s - p + ki, iw = ow * s - p + kj;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                int64_t xi = (((int64_t)n * C + c) * H + ih) * W + iw;
                                int64_t wi = (((int64_t)o * C + c) * k + ki) * k + kj;
                                acc += (double)x[xi] * w[wi];
                                dx[xi] += (double)R[yi] * w[wi];
                                dw[wi] += (double)R[yi] * x[xi];
                            }
                    y[yi] = acc;
                }
}

TEST(nn_conv2d_large_matches_naive) {
    /* 8 3 3 24 24 = 41472 column entries per image: im2col and col2im run threaded. */
    const int N = 2, C = 8, H = 24, W = 24, O = 6, k = 3;
    for (int s = 1; s <= 2; s++) {
        int p = 1, Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
        ug_tensor *x = ug_test_tensor(4, (int64_t[]){N, C, H, W}, 51, -1, 1);
        ug_tensor *w = ug_test_tensor(4, (int64_t[]){O, C, k, k}, 52, -1, 1);
        int64_t ny = (int64_t)N * O * Ho * Wo;
        float *R = malloc((size_t)ny * sizeof *R);
        ug_rng rr = ug_rng_make(53, 0, 0);
        ug_rng_normal(&rr, R, ny);
        double *y = calloc((size_t)ny, sizeof *y), *dx = calloc((size_t)x->numel, sizeof *dx);
        double *dw = calloc((size_t)w->numel, sizeof *dw);
        naive_conv(y, dx, dw, x->data, w->data, R, N, C, H, W, O, k, s, p, Ho, Wo);
        ug_ctx *ctx;
        ASSERT_OK(ug_ctx_create(&ctx, 0));
        memset(x->grad, 0, (size_t)x->numel * sizeof(float));
        memset(w->grad, 0, (size_t)w->numel * sizeof(float));
        ug_tensor *out = ug_conv2d(ctx, x, w, NULL, s, p);
        ASSERT_OK(ug_backward_seed(ctx, out, R));
        double *got = malloc((size_t)(ny > x->numel ? ny : x->numel) * sizeof *got);
        for (int64_t i = 0; i < ny; i++) got[i] = out->data[i];
        EXPECT(ug_test_allclose_f64("conv2d large forward", got, y, ny, 1e-4, 1e-4), "fwd s%d", s);
        for (int64_t i = 0; i < x->numel; i++) got[i] = x->grad[i];
        EXPECT(ug_test_allclose_f64("conv2d large dx", got, dx, x->numel, 1e-4, 1e-4), "dx s%d", s);
        for (int64_t i = 0; i < w->numel; i++) got[i] = w->grad[i];
        EXPECT(ug_test_allclose_f64("conv2d large dw", got, dw, w->numel, 1e-3, 1e-4), "dw s%d", s);
        free(got); free(y); free(dx); free(dw); free(R);
        ug_ctx_free(ctx);
        ug_test_tensor_free(x); ug_test_tensor_free(w);
    }
}

TEST(nn_grad_large_threaded) {
    ug_gc_opts o = ug_gc_default();
    o.max_elems = 48;
    o.h = 1e-2;
    /* group norm: 2 16 32 32 = 32768 elements, groups of 4096. */
    ug_tensor *x = ug_test_tensor(4, (int64_t[]){2, 16, 32, 32}, 61, -1, 1);
    ug_tensor *w = ug_test_tensor(1, (int64_t[]){16}, 62, 0.5f, 1.5f);
    ug_tensor *b = ug_test_tensor(1, (int64_t[]){16}, 63, -1, 1);
    norm_args na = {8, 1, 1};
    ug_tensor *ins[3] = {x, w, b};
    EXPECT(ug_gradcheck("group_norm large", f_gn, &na, ins, 3, o), "group_norm large");
    ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(b);
    /* layer norm: 1024 rows of 32. */
    x = ug_test_tensor(3, (int64_t[]){32, 32, 32}, 64, -1, 1);
    w = ug_test_tensor(1, (int64_t[]){32}, 65, 0.5f, 1.5f);
    b = ug_test_tensor(1, (int64_t[]){32}, 66, -1, 1);
    ins[0] = x; ins[1] = w; ins[2] = b;
    EXPECT(ug_gradcheck("layer_norm large", f_ln, &na, ins, 3, o), "layer_norm large");
    ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(b);
    /* attention: B heads T T Dh = 4 2 16 16 16 = 32768. */
    ug_tensor *q = ug_test_tensor(3, (int64_t[]){4, 16, 32}, 67, -1, 1);
    ug_tensor *k = ug_test_tensor(3, (int64_t[]){4, 16, 32}, 68, -1, 1);
    ug_tensor *v = ug_test_tensor(3, (int64_t[]){4, 16, 32}, 69, -1, 1);
    ug_tensor *ains[3] = {q, k, v};
    EXPECT(ug_gradcheck("attention large", f_attn, (void *)2, ains, 3, o), "attention large");
    ug_test_tensor_free(q); ug_test_tensor_free(k); ug_test_tensor_free(v);
    /* upsample / pool: 2 4 64 64 = 32768 input elements for pooling. */
    x = ug_test_tensor(4, (int64_t[]){2, 4, 64, 64}, 70, -1, 1);
    EXPECT(ug_gradcheck("avg_pool2d large", f_pool, (void *)2, &x, 1, o), "pool large");
    ug_test_tensor_free(x);
    x = ug_test_tensor(4, (int64_t[]){2, 4, 32, 32}, 71, -1, 1);
    EXPECT(ug_gradcheck("upsample2x large", f_upsample, NULL, &x, 1, o), "upsample large");
    ug_test_tensor_free(x);
}

/* The attention kernels against the plain formulas in their first form (one sequential dot per
 * score and per dP entry): every output bit for bit, on the U-Net's head (T 49, Dh 64, through
 * the transposed head) and on one too large for the per-thread buffer (T 260, Dh 64). */
static float att_dot(const float *a, const float *b, int64_t n) {
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

TEST(nn_attention_dots_bitwise_plain_order) {
    const int64_t cfg[2][4] = {{3, 49, 128, 2}, {1, 260, 64, 1}};   /* B T C heads */
    for (int c = 0; c < 2; c++) {
        const int64_t B = cfg[c][0], T = cfg[c][1], C = cfg[c][2], H = cfg[c][3], Dh = C / H,
                      sh[1] = {B * T * C};
        const float scale = 1.0f / sqrtf((float)Dh);
        ug_tensor *q = ug_test_tensor(1, sh, 31, -2, 2), *k = ug_test_tensor(1, sh, 32, -2, 2),
                  *v = ug_test_tensor(1, sh, 33, -1, 1), *dy = ug_test_tensor(1, sh, 34, -1, 1);
        const size_t nx = (size_t)(B * T * C), np = (size_t)(B * H * T * T);
        float *out = malloc(nx * sizeof(float)), *P = malloc(np * sizeof(float)),
              *ro = calloc(nx, sizeof(float)), *rP = malloc(np * sizeof(float)),
              *g = calloc(6 * nx, sizeof(float)), *scr = malloc((size_t)(B * H * T) * sizeof(float)),
              *ds = malloc((size_t)T * sizeof(float));
        ug_k_attention_forward(out, P, q->data, k->data, v->data, B, T, C, H);
        ug_k_attention_backward(g, g + nx, g + 2 * nx, scr, dy->data, q->data, k->data, v->data,
                                P, B, T, C, H);
        float *rq = g + 3 * nx, *rk = g + 4 * nx, *rv = g + 5 * nx;
        for (int64_t bh = 0; bh < B * H; bh++) {
            const int64_t off = (bh / H) * T * C + (bh % H) * Dh;
            for (int64_t i = 0; i < T; i++) {
                float *p = rP + (bh * T + i) * T, mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < T; j++) {
                    p[j] = scale * att_dot(q->data + off + i * C, k->data + off + j * C, Dh);
                    if (p[j] > mx) mx = p[j];
                }
                for (int64_t j = 0; j < T; j++) sum += (p[j] = expf(p[j] - mx));
                const float inv = 1.0f / sum;
                for (int64_t j = 0; j < T; j++) {
                    p[j] *= inv;
                    for (int64_t d = 0; d < Dh; d++)
                        ro[off + i * C + d] += p[j] * v->data[off + j * C + d];
                }
                const float *doi = dy->data + off + i * C;
                float rs = 0;
                for (int64_t j = 0; j < T; j++) {
                    for (int64_t d = 0; d < Dh; d++) rv[off + j * C + d] += p[j] * doi[d];
                    ds[j] = att_dot(doi, v->data + off + j * C, Dh);
                    rs += ds[j] * p[j];
                }
                for (int64_t j = 0; j < T; j++) ds[j] = scale * p[j] * (ds[j] - rs);
                for (int64_t j = 0; j < T; j++)
                    for (int64_t d = 0; d < Dh; d++) {
                        rq[off + i * C + d] += ds[j] * k->data[off + j * C + d];
                        rk[off + j * C + d] += ds[j] * q->data[off + i * C + d];
                    }
            }
        }
        EXPECT(!memcmp(P, rP, np * sizeof(float)), "T %lld: probabilities", (long long)T);
        EXPECT(!memcmp(out, ro, nx * sizeof(float)), "T %lld: output", (long long)T);
        EXPECT(!memcmp(g, rq, nx * sizeof(float)), "T %lld: dq", (long long)T);
        EXPECT(!memcmp(g + nx, rk, nx * sizeof(float)), "T %lld: dk", (long long)T);
        EXPECT(!memcmp(g + 2 * nx, rv, nx * sizeof(float)), "T %lld: dv", (long long)T);
        free(out); free(P); free(ro); free(rP); free(g); free(scr); free(ds);
        ug_test_tensor_free(q); ug_test_tensor_free(k); ug_test_tensor_free(v); ug_test_tensor_free(dy);
    }
}

/* Gradient buffers are handed out unzeroed, and the first backward to reach one writes it
 * (conv2d's and group norm's dx) or the core zeroes it first (any other op, and any view). y
 * here feeds a group norm and a conv (the conv's backward runs first and writes, the norm then
 * adds), and in the second graph also a group norm through a view (reshape) and a concat of y
 * with itself, which run first: x's gradient through the whole graph must equal the sum of its
 * gradients through each branch alone, each from its own backward pass. */
static float *branch_grad(const float *xd, const float *wd, const float *w2d, const float *cd,
                          int branches, int with_view) {
    ug_ctx *ctx;
    float *g = malloc(288 * sizeof(float));
    if (!g || ug_ctx_create(&ctx, 0)) {
        free(g);
        return NULL;
    }
    memset(g, 0xff, 288 * sizeof(float));   /* NaNs unless a backward succeeds */
    const int64_t sx[4] = {2, 4, 6, 6}, sw[4] = {4, 4, 3, 3}, sc[1] = {4}, sr[3] = {2, 4, 36};
    /* Twice: the second step's buffers come from the arena the first one dirtied. */
    for (int step = 0; step < 2; step++) {
        ug_tensor *x = ug_tensor_from(ctx, 4, sx, xd), *w = ug_tensor_from(ctx, 4, sw, wd),
                  *w2 = ug_tensor_from(ctx, 4, sw, w2d), *c = ug_tensor_from(ctx, 4, sx, cd);
        ug_tensor *gw = ug_tensor_from(ctx, 1, sc, cd), *gb = ug_tensor_from(ctx, 1, sc, cd + 4);
        ug_tensor_requires_grad(ctx, x);
        ug_tensor_requires_grad(ctx, w);
        ug_tensor *y = ug_conv2d(ctx, x, w, NULL, 1, 1), *loss = NULL;
        if (branches & 1) {
            ug_tensor *a = ug_group_norm_silu(ctx, y, gw, gb, 2, 1e-5f);
            loss = ug_sum_all(ctx, ug_mul(ctx, a, c));
        }
        if (branches & 2) {
            ug_tensor *l = ug_sum_all(ctx, ug_mul(ctx, ug_conv2d(ctx, y, w2, NULL, 1, 1), c));
            loss = loss ? ug_add(ctx, loss, l) : l;
        }
        if (with_view && (branches & 4)) {
            ug_tensor *r = ug_group_norm_silu(ctx, ug_reshape(ctx, y, 3, sr), gw, gb, 4, 1e-5f);
            ug_tensor *l = ug_sum_all(ctx, ug_mul(ctx, r, ug_reshape(ctx, c, 3, sr)));
            loss = loss ? ug_add(ctx, loss, l) : l;
        }
        if (branches & 8) {   /* branch 4 without the view: the same sums */
            ug_tensor *r = ug_group_norm_silu(ctx, y, gw, gb, 4, 1e-5f);
            loss = ug_sum_all(ctx, ug_mul(ctx, r, c));
        }
        if (branches & 16) {   /* concat, y twice: its first copy writes, the second adds */
            ug_tensor *yy = ug_concat(ctx, (ug_tensor *[]){y, y}, 2, 1),
                      *cc = ug_concat(ctx, (ug_tensor *[]){c, c}, 2, 1);
            ug_tensor *l = ug_sum_all(ctx, ug_mul(ctx, yy, cc));
            loss = loss ? ug_add(ctx, loss, l) : l;
        }
        if (branches & 32) loss = ug_sum_all(ctx, ug_mul(ctx, y, c));   /* half of branch 16 */
        if (loss && ug_backward(ctx, loss) == UG_OK && step == 1)
            memcpy(g, x->grad, 288 * sizeof(float));
        ug_ctx_reset(ctx);
    }
    ug_ctx_free(ctx);
    return g;
}

TEST(autograd_first_write_matches_branch_sums) {
    const int64_t sx[1] = {288}, sw[1] = {144};
    ug_tensor *x = ug_test_tensor(1, sx, 41, -1, 1), *w = ug_test_tensor(1, sw, 42, -0.3f, 0.3f),
              *w2 = ug_test_tensor(1, sw, 43, -0.3f, 0.3f), *c = ug_test_tensor(1, sx, 44, -1, 1);
    for (int with_view = 0; with_view < 2; with_view++) {
        const int all = with_view ? 1 | 2 | 4 | 16 : 1 | 2;
        float *whole = branch_grad(x->data, w->data, w2->data, c->data, all, with_view);
        float *sum = calloc(288, sizeof(float));
        ASSERT(whole && sum, "out of memory");
        for (int b = 1; b <= all; b <<= 1) {
            if (!(all & b)) continue;
            float *part = branch_grad(x->data, w->data, w2->data, c->data, b, with_view);
            ASSERT(part, "out of memory");
            for (int i = 0; i < 288; i++) sum[i] += part[i];
            if (b == 4) {   /* the view's branch alone, against the same without the view */
                float *ref = branch_grad(x->data, w->data, w2->data, c->data, 8, 0);
                ASSERT(ref, "out of memory");
                EXPECT(!memcmp(part, ref, 288 * sizeof(float)), "group norm through a view");
                free(ref);
            }
            if (b == 16) {   /* concat's two copies of y: twice the gradient of one */
                float *ref = branch_grad(x->data, w->data, w2->data, c->data, 32, 0);
                ASSERT(ref, "out of memory");
                for (int i = 0; i < 288; i++) ref[i] *= 2.0f;
                EXPECT(ug_test_allclose("concat, y twice", part, ref, 288, 1e-5, 1e-4),
                       "concat, y twice");
                free(ref);
            }
            free(part);
        }
        char what[64];
        snprintf(what, sizeof what, "first-write graph%s", with_view ? " with a view" : "");
        EXPECT(ug_test_allclose(what, whole, sum, 288, 1e-5, 1e-4), "%s", what);
        free(whole);
        free(sum);
    }
    ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(w2); ug_test_tensor_free(c);
}

/* ug_silu_inplace: with the tape recording, ug_silu (a new tensor, x untouched, the same
 * gradient); without (grad off, or x needing none), x itself overwritten with the same bits.
 * (Not through ug_gradcheck: its numeric side runs off the tape, where x would change.) */

TEST(nn_silu_inplace_only_off_the_tape) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_tensor *x = ug_test_tensor(2, (int64_t[]){7, 37}, 41, -9, 9);
    float *x0 = malloc((size_t)x->numel * sizeof *x0);
    memcpy(x0, x->data, (size_t)x->numel * sizeof *x0);
    ug_tensor *ref = ug_silu(ctx, x), *y = ug_silu_inplace(ctx, x);
    EXPECT(y != x && !memcmp(x->data, x0, (size_t)x->numel * sizeof *x0),
           "recorded: x was written");
    EXPECT(!memcmp(y->data, ref->data, (size_t)x->numel * sizeof *x0), "recorded: values differ");
    float *g0 = malloc((size_t)x->numel * sizeof *g0);
    for (int k = 0; k < 2; k++) {
        ug_ctx_reset(ctx);
        memset(x->grad, 0, (size_t)x->numel * sizeof *x0);
        ug_tensor *t = ug_mul(ctx, k ? ug_silu_inplace(ctx, x) : ug_silu(ctx, x), x);
        ASSERT_OK(ug_backward(ctx, ug_sum_all(ctx, t)));
        if (!k) memcpy(g0, x->grad, (size_t)x->numel * sizeof *g0);
    }
    EXPECT(!memcmp(g0, x->grad, (size_t)x->numel * sizeof *g0) && g0[0] != 0,
           "recorded: gradients differ");
    EXPECT(!memcmp(x->data, x0, (size_t)x->numel * sizeof *x0), "recorded: x was written");
    free(g0);
    for (int mode = 0; mode < 2; mode++) {   /* grad off; grad on but x needs none */
        ug_ctx_reset(ctx);
        ug_ctx_set_grad(ctx, mode);
        x->requires_grad = !mode;
        ref = ug_silu(ctx, x);
        y = ug_silu_inplace(ctx, x);
        EXPECT(y == x && !memcmp(x->data, ref->data, (size_t)x->numel * sizeof *x0),
               "mode %d: not in place, or values differ", mode);
        memcpy(x->data, x0, (size_t)x->numel * sizeof *x0);
    }
    free(x0);
    ug_test_tensor_free(x);
    ug_ctx_free(ctx);
}
