/* test_core.c — arena, parameters, tape, and gradients of linear, matmul and activations. */
#include "test.h"
#include "core/core.h"

TEST(arena_steady_state_allocates_nothing) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    int64_t after_warmup = 0;
    for (int step = 0; step < 6; step++) {
        for (int k = 0; k < 40; k++) {
            ug_tensor *t = ug_tensor_new(ctx, 2, (int64_t[]){256, 257});
            t->data[0] = 1;
            EXPECT(((uintptr_t)t->data & 63) == 0, "arena data not 64-byte aligned");
        }
        ug_ctx_reset(ctx);
        if (step == 1) after_warmup = ug_ctx_arena_mallocs(ctx);
    }
    EXPECT(ug_ctx_arena_mallocs(ctx) == after_warmup,
           "arena kept allocating after warm-up: %lld then %lld",
           (long long)after_warmup, (long long)ug_ctx_arena_mallocs(ctx));
    EXPECT(ug_ctx_arena_capacity(ctx) >= 40 * 256 * 257 * 4, "capacity below one step");
    ug_ctx_free(ctx);
}

TEST(params_flat_buffer_and_names) {
    ug_params *ps;
    ASSERT_OK(ug_params_create(&ps));
    ug_tensor *w = ug_params_add(ps, "fc.weight", 2, (int64_t[]){4, 3});
    ug_tensor *b = ug_params_add(ps, "fc.bias", 1, (int64_t[]){4});
    /* Many more adds force the entry table to grow: w and b must stay valid. */
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "n%d.norm.weight", i);
        ASSERT(ug_params_add(ps, name, 1, (int64_t[]){2}), "add %s", name);
    }
    EXPECT(ug_params_add(ps, "fc.bias", 1, (int64_t[]){4}) == NULL, "duplicate name accepted");
    EXPECT(strstr(ug_last_error(), "fc.bias") != NULL, "error does not name the parameter");
    ASSERT_OK(ug_params_finalize(ps));
    EXPECT(ug_params_count(ps) == 12 + 4 + 200, "count %lld", (long long)ug_params_count(ps));
    EXPECT(w->data == ug_params_data(ps) && b->data == ug_params_data(ps) + 12, "layout");
    EXPECT(b->grad == ug_params_grad(ps) + 12, "grad layout");
    EXPECT(ug_params_find(ps, "fc.bias") == b, "find");
    ug_params_init_uniform(ps, 1);
    float bound = 1.0f / sqrtf(3.0f);
    int in_range = 1;
    for (int i = 0; i < 12; i++) in_range &= fabsf(w->data[i]) <= bound;
    for (int i = 0; i < 4; i++) in_range &= fabsf(b->data[i]) <= bound;
    EXPECT(in_range, "init outside U(-1/sqrt(fan_in), 1/sqrt(fan_in))");
    EXPECT(ug_params_find(ps, "n7.norm.weight")->data[1] == 1.0f, "norm weight init is 1");
    ug_params_free(ps);
}

TEST(backward_requires_scalar_and_grad) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_tensor *x = ug_tensor_zeros(ctx, 1, (int64_t[]){3});
    ug_tensor *y = ug_exp(ctx, x);
    EXPECT(ug_backward(ctx, y) == UG_ERR_SHAPE, "non-scalar loss accepted");
    ug_tensor *s = ug_reshape(ctx, ug_exp(ctx, ug_tensor_zeros(ctx, 1, (int64_t[]){1})), 1,
                              (int64_t[]){1});
    EXPECT(ug_backward(ctx, s) == UG_ERR_STATE, "loss without grad accepted");
    /* No-grad mode records nothing. */
    ug_tensor_requires_grad(ctx, x);
    ug_ctx_set_grad(ctx, 0);
    ug_tensor *z = ug_exp(ctx, x);
    EXPECT(!z->requires_grad && ctx->nnodes == 0, "no-grad mode recorded a node");
    ug_ctx_set_grad(ctx, 1);
    ug_ctx_free(ctx);
}

/* Op outputs get pooled gradient buffers in the backward: y = exp(x), z = reshape(y) * 3,
 * loss = sum(z), and a dead branch exp(y) that the loss does not read. d loss/dx = 3 e^x; a
 * gradient asked for on y (ug_tensor_requires_grad) stays readable after the backward, pooled
 * ones are detached; the steady state allocates nothing. */
TEST(backward_pooled_gradients) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    int64_t after_warmup = 0;
    for (int step = 0; step < 4; step++) {
        ug_tensor *x = ug_tensor_from(ctx, 1, (int64_t[]){6}, (float[]){-1, -0.5f, 0, 0.5f, 1, 2});
        ug_tensor_requires_grad(ctx, x);
        ug_tensor *y = ug_exp(ctx, x);
        if (step == 0) ug_tensor_requires_grad(ctx, y);
        ug_tensor *dead = ug_exp(ctx, y);   /* recorded, but nothing reads it */
        ug_tensor *z = ug_mul(ctx, ug_reshape(ctx, y, 2, (int64_t[]){2, 3}),
                              ug_tensor_from(ctx, 1, (int64_t[]){1}, (float[]){3}));
        EXPECT(dead->grad == NULL && z->grad == NULL, "an op's output got a buffer at record");
        ASSERT_OK(ug_backward(ctx, ug_sum_all(ctx, z)));
        int ok = 1;
        for (int j = 0; j < 6; j++) ok &= fabsf(x->grad[j] - 3 * expf(x->data[j])) <= 1e-6f * 3 * expf(x->data[j]);
        EXPECT(ok, "step %d: d sum(3 exp(x)) / dx wrong", step);
        if (step == 0) {
            ok = y->grad != NULL;
            for (int j = 0; ok && j < 6; j++) ok &= y->grad[j] == 3.0f;
            EXPECT(ok, "the gradient asked for on an intermediate is not kept");
        } else {
            EXPECT(y->grad == NULL && z->grad == NULL, "pooled gradients still attached");
        }
        ug_ctx_reset(ctx);
        if (step == 1) after_warmup = ug_ctx_arena_mallocs(ctx);
    }
    EXPECT(ug_ctx_arena_mallocs(ctx) == after_warmup, "the pool kept allocating after warm-up");
    ug_ctx_free(ctx);
}

/* ---------------------------------------------------------------- gradient checks */
static ug_tensor *f_linear(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_linear(ctx, in[0], in[1], u ? NULL : in[2]);
}

TEST(grad_linear) {
    ug_tensor *x = ug_test_tensor(3, (int64_t[]){2, 3, 5}, 1, -1, 1);
    ug_tensor *w = ug_test_tensor(2, (int64_t[]){4, 5}, 2, -1, 1);
    ug_tensor *b = ug_test_tensor(1, (int64_t[]){4}, 3, -1, 1);
    ug_tensor *ins[3] = {x, w, b};
    EXPECT(ug_gradcheck("linear", f_linear, NULL, ins, 3, ug_gc_default()), "linear");
    EXPECT(ug_gradcheck("linear(no bias)", f_linear, (void *)1, ins, 2, ug_gc_default()),
           "linear without bias");
    ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(b);
}

static float g_mask[4 * 5];
static ug_tensor *f_masked(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_masked_linear(ctx, in[0], in[1], g_mask, in[2]);
}

TEST(grad_masked_linear) {
    ug_tensor *x = ug_test_tensor(2, (int64_t[]){3, 5}, 4, -1, 1);
    ug_tensor *w = ug_test_tensor(2, (int64_t[]){4, 5}, 5, -1, 1);
    ug_tensor *b = ug_test_tensor(1, (int64_t[]){4}, 6, -1, 1);
    for (int i = 0; i < 20; i++) g_mask[i] = (float)((i * 7 + i / 5) % 2);
    ug_tensor *ins[3] = {x, w, b};
    EXPECT(ug_gradcheck("masked_linear", f_masked, NULL, ins, 3, ug_gc_default()), "masked");
    /* Masked weights receive exactly zero gradient. */
    int zero = 1;
    for (int i = 0; i < 20; i++)
        if (g_mask[i] == 0) zero &= w->grad[i] == 0.0f;
    EXPECT(zero, "a masked weight received gradient");
    ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(b);
}

/* Prefix linear over 2 panels' worth of rows would be too slow to probe; one panel, rows of
 * length 0 to the full width, shuffled rows and columns. */
static const int32_t g_prows[5] = {3, 0, 4, 1, 2}, g_pcols[6] = {5, 2, 0, 4, 1, 3},
                     g_plen[5] = {0, 2, 2, 5, 6};
static ug_tensor *f_prefix(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_prefix_linear(ctx, in[0], in[1], u ? NULL : in[2], g_prows, g_pcols, g_plen);
}

TEST(grad_prefix_linear) {
    ug_tensor *x = ug_test_tensor(3, (int64_t[]){2, 3, 6}, 7, -1, 1);
    ug_tensor *w = ug_test_tensor(2, (int64_t[]){5, 6}, 8, -1, 1);
    ug_tensor *b = ug_test_tensor(1, (int64_t[]){5}, 9, -1, 1);
    ug_tensor *ins[3] = {x, w, b};
    EXPECT(ug_gradcheck("prefix_linear", f_prefix, NULL, ins, 3, ug_gc_default()), "prefix");
    EXPECT(ug_gradcheck("prefix_linear(no bias)", f_prefix, (void *)1, ins, 2, ug_gc_default()),
           "prefix without bias");
    /* w's entries outside the prefixes receive exactly zero gradient. */
    int64_t moved = 0;
    for (int r = 0; r < 5; r++)
        for (int c = g_plen[r]; c < 6; c++) moved += w->grad[g_prows[r] * 6 + g_pcols[c]] != 0.0f;
    EXPECT(moved == 0, "%lld masked weights received gradient", (long long)moved);
    ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(b);
}

static const int32_t g_gidx[7] = {4, 0, 0, 3, 1, 4, 2};
static ug_tensor *f_gather(ug_ctx *ctx, ug_tensor **in, void *u) {
    (void)u;
    return ug_gather_cols(ctx, in[0], g_gidx, 7);
}

TEST(grad_gather_cols) {
    ug_tensor *x = ug_test_tensor(3, (int64_t[]){2, 3, 5}, 10, -1, 1);
    ug_tensor *ins[1] = {x};
    EXPECT(ug_gradcheck("gather_cols", f_gather, NULL, ins, 1, ug_gc_default()), "gather_cols");
    ug_test_tensor_free(x);
}

static ug_tensor *f_matmul(ug_ctx *ctx, ug_tensor **in, void *u) {
    int t = (int)(intptr_t)u;
    return ug_matmul(ctx, in[0], in[1], t & 1, t >> 1);
}

TEST(grad_matmul_all_transposes) {
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        int64_t B = 2, M = 3, K = 4, N = 5;
        int64_t sa[3] = {B, ta ? K : M, ta ? M : K}, sb[3] = {B, tb ? N : K, tb ? K : N};
        ug_tensor *a = ug_test_tensor(3, sa, 10 + t, -1, 1);
        ug_tensor *b = ug_test_tensor(3, sb, 20 + t, -1, 1);
        ug_tensor *ins[2] = {a, b};
        char name[32];
        snprintf(name, sizeof name, "matmul ta=%d tb=%d", ta, tb);
        EXPECT(ug_gradcheck(name, f_matmul, (void *)(intptr_t)t, ins, 2, ug_gc_default()), "%s",
               name);
        ug_test_tensor_free(a); ug_test_tensor_free(b);
    }
}

TEST(matmul_matches_naive) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_tensor *a = ug_test_tensor(2, (int64_t[]){3, 4}, 1, -1, 1);
    ug_tensor *b = ug_test_tensor(2, (int64_t[]){4, 2}, 2, -1, 1);
    ug_tensor *c = ug_matmul(ctx, a, b, 0, 0);
    float ref[6];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) {
            double s = 0;
            for (int k = 0; k < 4; k++) s += (double)a->data[i * 4 + k] * b->data[k * 2 + j];
            ref[i * 2 + j] = (float)s;
        }
    EXPECT(c->ndim == 2 && c->shape[0] == 3 && c->shape[1] == 2, "shape");
    EXPECT(ug_test_allclose("matmul", c->data, ref, 6, 1e-6, 1e-5), "values");
    ug_test_tensor_free(a); ug_test_tensor_free(b);
    ug_ctx_free(ctx);
}

typedef struct { ug_tensor *(*fn)(ug_ctx *, ug_tensor *); const char *name; float lo, hi; int kink; } act_case;

static ug_tensor *f_act(ug_ctx *ctx, ug_tensor **in, void *u) {
    const act_case *c = u;
    return c->fn(ctx, in[0]);
}

static ug_tensor *affine_fn(ug_ctx *ctx, ug_tensor *x) { return ug_affine(ctx, x, -1.5f, 0.25f); }

TEST(grad_activations) {
    act_case cases[] = {
        {ug_silu, "silu", -4, 4, 0},     {ug_gelu, "gelu", -4, 4, 0},
        {ug_relu, "relu", -2, 2, 1},     {ug_tanh, "tanh", -3, 3, 0},
        {ug_sigmoid, "sigmoid", -5, 5, 0}, {ug_softplus, "softplus", -6, 6, 0},
        {ug_exp, "exp", -2, 2, 0},       {ug_log, "log", 0.2f, 3, 0},
        {ug_square, "square", -2, 2, 0}, {ug_sqrt, "sqrt", 0.2f, 3, 0},
        {affine_fn, "affine", -2, 2, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ug_tensor *x = ug_test_tensor(2, (int64_t[]){3, 7}, 100 + i, cases[i].lo, cases[i].hi);
        ug_gc_opts o = ug_gc_default();
        o.skip_kinks = cases[i].kink;
        EXPECT(ug_gradcheck(cases[i].name, f_act, &cases[i], &x, 1, o), "%s", cases[i].name);
        ug_test_tensor_free(x);
    }
}

TEST(activation_values) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    float xs[5] = {-30.0f, -1.0f, 0.0f, 0.5f, 30.0f};
    ug_tensor *x = ug_tensor_from(ctx, 1, (int64_t[]){5}, xs);
    /* References from double-precision formulas (torch agrees to float rounding). */
    float sp[5], ge[5], si[5];
    for (int i = 0; i < 5; i++) {
        double v = xs[i];
        sp[i] = (float)(v > 0 ? v + log1p(exp(-v)) : log1p(exp(v)));
        ge[i] = (float)(0.5 * v * (1 + erf(v / sqrt(2.0))));
        si[i] = (float)(v / (1 + exp(-v)));
    }
    EXPECT(ug_test_allclose("softplus", ug_softplus(ctx, x)->data, sp, 5, 1e-7, 1e-6), "softplus");
    EXPECT(ug_test_allclose("gelu", ug_gelu(ctx, x)->data, ge, 5, 1e-7, 1e-6), "gelu");
    EXPECT(ug_test_allclose("silu", ug_silu(ctx, x)->data, si, 5, 1e-7, 1e-6), "silu");
    ug_ctx_free(ctx);
}

/* The same weight used twice: catches backward kernels that overwrite instead of accumulate. */
static ug_tensor *f_linear_twice(ug_ctx *ctx, ug_tensor **in, void *u) {
    return ug_linear(ctx, ug_tanh(ctx, ug_linear(ctx, in[0], in[1], in[2])), in[1], in[2]);
}

TEST(grad_linear_shared_weight_accumulates) {
    ug_tensor *x = ug_test_tensor(2, (int64_t[]){3, 4}, 7, -1, 1);
    ug_tensor *w = ug_test_tensor(2, (int64_t[]){4, 4}, 8, -1, 1);
    ug_tensor *b = ug_test_tensor(1, (int64_t[]){4}, 9, -1, 1);
    ug_tensor *ins[3] = {x, w, b};
    EXPECT(ug_gradcheck("linear twice", f_linear_twice, NULL, ins, 3, ug_gc_default()), "shared");
    ug_test_tensor_free(x); ug_test_tensor_free(w); ug_test_tensor_free(b);
}

/* zero_grad is lazy (params.c): the first backward write to a parameter replaces whatever the
 * buffer held (linear's and masked linear's gradients written by sgemm with beta 0), an op that
 * only adds gets its parameter zeroed by the core first, and ug_params_grad zeroes a parameter
 * no backward reached. Checked against the same backward into an explicitly zeroed buffer, with
 * NaNs left in the buffer before zero_grad: none may survive. */
static ug_tensor *lazy_net(ug_ctx *ctx, ug_params *ps, const float *xv) {
    ug_tensor *x = ug_tensor_from(ctx, 2, (int64_t[]){3, 4}, xv);
    ug_tensor *w1 = ug_params_find(ps, "a.weight"), *b1 = ug_params_find(ps, "a.bias");
    static const float mask[16] = {1, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1};
    ug_tensor *h = ug_linear(ctx, ug_tanh(ctx, ug_linear(ctx, x, w1, b1)), w1, NULL);
    h = ug_add(ctx, h, ug_masked_linear(ctx, x, ug_params_find(ps, "m.weight"), mask,
                                       ug_params_find(ps, "m.bias")));
    h = ug_mul(ctx, h, ug_params_find(ps, "s"));   /* adds into its gradients */
    return ug_sum_all(ctx, ug_tanh(ctx, h));
}

TEST(params_zero_grad_lazy) {
    ug_params *ps;
    ASSERT_OK(ug_params_create(&ps));
    ug_params_add(ps, "a.weight", 2, (int64_t[]){4, 4});
    ug_params_add(ps, "a.bias", 1, (int64_t[]){4});
    ug_params_add(ps, "unused.weight", 2, (int64_t[]){5, 2});
    ug_params_add(ps, "m.weight", 2, (int64_t[]){4, 4});
    ug_params_add(ps, "m.bias", 1, (int64_t[]){4});
    ug_params_add(ps, "s", 2, (int64_t[]){3, 4});
    ASSERT_OK(ug_params_finalize(ps));
    ug_params_init_uniform(ps, 3);
    const int64_t np = ug_params_count(ps);
    float xv[12], *ref = malloc(sizeof(float) * np), *twice = malloc(sizeof(float) * np);
    for (int i = 0; i < 12; i++) xv[i] = 0.3f * (float)i - 1.7f;
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    /* Reference: the buffer zeroed by hand, every backward adding. */
    memset(ug_params_grad(ps), 0, sizeof(float) * np);
    ASSERT_OK(ug_backward(ctx, lazy_net(ctx, ps, xv)));
    memcpy(ref, ug_params_grad(ps), sizeof(float) * np);
    ug_ctx_reset(ctx);
    for (int round = 0; round < 2; round++) {
        float *g = ug_params_grad(ps);
        for (int64_t j = 0; j < np; j++) g[j] = NAN;
        ug_params_zero_grad(ps);
        ASSERT_OK(ug_backward(ctx, lazy_net(ctx, ps, xv)));
        ug_ctx_reset(ctx);
        g = ug_params_grad(ps);
        int64_t bad = -1;
        for (int64_t j = 0; j < np && bad < 0; j++)
            if (memcmp(&g[j], &ref[j], sizeof(float)) != 0) bad = j;
        EXPECT(bad < 0, "round %d: gradient %lld is %g, expected %g", round, (long long)bad,
               bad < 0 ? 0.0 : g[bad], bad < 0 ? 0.0 : ref[bad]);
    }
    /* Without zero_grad a second backward adds to the first. */
    ASSERT_OK(ug_backward(ctx, lazy_net(ctx, ps, xv)));
    ug_ctx_reset(ctx);
    memcpy(twice, ug_params_grad(ps), sizeof(float) * np);
    double e = 0, m = 0;
    for (int64_t j = 0; j < np; j++) {
        e = ug_test_worst(e, fabs(twice[j] - 2.0 * ref[j]));
        m = fmax(m, fabs(ref[j]));
    }
    EXPECT(e <= 1e-6 * m && m > 0, "accumulated: error %.3g (largest gradient %.3g)", e, m);
    /* The zeroed-by-hand reference has the unused parameter at zero and the others not. */
    const ug_tensor *u = ug_params_find(ps, "unused.weight");
    float *gu = ref + (u->grad - ug_params_grad(ps));
    int used_nonzero = ref[0] != 0.0f && ref[np - 1] != 0.0f, unused_zero = 1;
    for (int64_t j = 0; j < u->numel; j++) unused_zero &= gu[j] == 0.0f;
    EXPECT(used_nonzero && unused_zero, "reference: used %d, unused zero %d", used_nonzero,
           unused_zero);
    free(ref); free(twice);
    ug_ctx_free(ctx);
    ug_params_free(ps);
}
