/* test_unet.c — the U-Net of the image diffusion models (src/nn/unet.c) against PyTorch
 * (tests/ref/gen_unet_ref.py -> unet_ref.h, the architecture of ../shared/peers/unet.py):
 * the peer preset has exactly 1,062,497 parameters with the state_dict's names, order and
 * shapes; a reduced network (widths 8/16/16, groups 4, 3 classes, 1x12x12, batch 2) with
 * formula weights matches PyTorch's float64 output, input gradient and parameter gradients;
 * finite differences agree with backward; a few Adam steps through ug_model (vp / eps) lower
 * the DDPM loss; ug_model_create resolves "auto" and refuses shapes the U-Net cannot take.
 * The configurable U-Net (tests/ref/gen_unet_cfg_ref.py -> unet_cfg_ref.h): a non-preset
 * network's names, shapes, count, output and gradients against PyTorch, finite differences
 * in training mode, dropout (off in evaluation, per-example Philox streams), config errors. */
#include "test.h"
#include "core/core.h"
#include "models/diffusion.h"
#include "nn/unet.h"
#include "ops/embed_ops.h"
#include "ref/unet_cfg_ref.h"
#include "ref/unet_peer_ref.h"

/* Every parameter gradient of a PyTorch fixture table {name, g, n} against the computed one. */
#define EXPECT_FIXTURE_GRADS(ps, table)                                                          \
    for (int k_ = 0; k_ < (int)(sizeof(table) / sizeof(table)[0]); k_++) {                       \
        ug_tensor *p_ = ug_params_find((ps), (table)[k_].name);                                 \
        ASSERT(p_ && p_->numel == (table)[k_].n, "%s", (table)[k_].name);                        \
        EXPECT(ug_test_allclose(p_->name, p_->grad, (table)[k_].g, p_->numel, 1e-4, 1e-3),       \
               "d/d %s", p_->name);                                                              \
    }

static int same_list(const char *what, ug_params *ps, const unet_ref_param *ref, int n,
                     long long count) {
    int ok = 1;
    if (ug_params_num_tensors(ps) != n) {
        printf("    %s: %d tensors, PyTorch has %d\n", what, ug_params_num_tensors(ps), n);
        return 0;
    }
    for (int i = 0; i < n && ok; i++) {
        ug_tensor *t = ug_params_tensor(ps, i);
        int same = !strcmp(t->name, ref[i].name) && t->ndim == ref[i].ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == ref[i].shape[d];
        if (!same) {
            printf("    %s: tensor %d is %s (ndim %d), PyTorch's is %s (ndim %d)\n", what, i,
                   t->name, t->ndim, ref[i].name, ref[i].ndim);
            ok = 0;
        }
    }
    if (ug_params_count(ps) != count) {
        printf("    %s: %lld parameters, PyTorch has %lld\n", what,
               (long long)ug_params_count(ps), count);
        ok = 0;
    }
    return ok;
}

TEST(unet_fmnist_is_the_peer_network) {
    for (int cond = 0; cond < 2; cond++) {
        ug_params *ps;
        ASSERT_OK(ug_params_create(&ps));
        ug_unet_cfg c = ug_unet_fmnist_cfg(1, 28, 28);
        c.num_classes = cond ? 10 : 0;
        ug_unet u;
        ASSERT_OK(ug_unet_declare(&u, ps, &c));
        ASSERT_OK(ug_params_finalize(ps));
        if (cond)
            EXPECT(same_list("fmnist c10", ps, unet_ref_fmnist_c10, 153, UNET_REF_FMNIST_C10_COUNT),
                   "10-class U-Net differs from PyTorch's");
        else
            EXPECT(same_list("fmnist", ps, unet_ref_fmnist, 152, UNET_REF_FMNIST_COUNT) &&
                       ug_params_count(ps) == 1062497,
                   "the U-Net differs from peers/unet.py's");
        ug_params_free(ps);
    }
}

/* gen_unet_ref.py's formula: 2 frac(43758.5453 sin(12.9898 j + 78.233 i + 1)) - 1. */
static float hash_val(int i, int64_t j) {
    double a = sin(12.9898 * (double)j + 78.233 * i + 1.0) * 43758.5453;
    return (float)(2.0 * (a - floor(a)) - 1.0);
}

static ug_unet_cfg small_cfg(void) {
    ug_unet_cfg c = ug_unet_fmnist_cfg(1, 12, 12);
    c.base = 8;   /* widths 8/16/16 with the preset's multipliers 1, 2, 2 */
    c.groups = 4;
    c.emb_dim = 16;
    c.temb_dim = 32;
    c.num_classes = 3;
    return c;
}

static void fill_formula(ug_params *ps) {
    for (int i = 0; i < ug_params_num_tensors(ps); i++) {
        ug_tensor *t = ug_params_tensor(ps, i);
        double fan_in = t->ndim >= 2 ? (double)(t->numel / t->shape[0]) : 1;
        int norm_w = strstr(t->name, "norm") && strstr(t->name, ".weight");
        for (int64_t j = 0; j < t->numel; j++) {
            double h = hash_val(i, j);
            double v = t->ndim >= 2 ? 1.5 * h / sqrt(fan_in) : norm_w ? 1.0 + 0.2 * h : 0.2 * h;
            t->data[j] = (float)v;
        }
    }
}

typedef struct {
    ug_params *ps;
    ug_unet u;
} small_net;

static int small_net_make(small_net *s) {
    ug_unet_cfg c = small_cfg();
    if (ug_params_create(&s->ps)) return 0;
    if (ug_unet_declare(&s->u, s->ps, &c) || ug_params_finalize(s->ps)) return 0;
    fill_formula(s->ps);
    return 1;
}

static const float k_t[2] = {37.0f, 812.0f};
static const int32_t k_labels[2] = {2, 3};   /* 3 = the null label */

static ug_tensor *small_forward(ug_ctx *ctx, ug_tensor **in, void *user) {
    small_net *s = user;
    ug_tensor *t = ug_tensor_from(ctx, 1, (int64_t[]){2}, k_t);
    return ug_unet_forward(ctx, &s->u, in[0], t, k_labels);
}

TEST(unet_small_matches_pytorch_forward_backward) {
    small_net s;
    ASSERT(small_net_make(&s), "declare: %s", ug_last_error());
    EXPECT(same_list("small", s.ps, unet_ref_small, 153, UNET_REF_SMALL_COUNT), "layout");
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    const int64_t shape[4] = {2, 1, 12, 12};
    ug_tensor *x = ug_tensor_new(ctx, 4, shape);
    float dy[288];
    for (int64_t j = 0; j < 288; j++) {
        x->data[j] = hash_val(1000, j);
        dy[j] = hash_val(2000, j);
    }
    ug_tensor_requires_grad(ctx, x);
    ug_params_zero_grad(s.ps);
    ug_tensor *in[1] = {x};
    ug_tensor *y = small_forward(ctx, in, &s);
    ASSERT(y->numel == 288 && y->ndim == 4 && y->shape[1] == 1 && y->shape[3] == 12, "shape");
    ASSERT_OK(ug_backward_seed(ctx, y, dy));
    EXPECT(ug_test_allclose("unet out", y->data, unet_ref_small_out, 288, 1e-4, 1e-3), "output");
    EXPECT(ug_test_allclose("unet dx", x->grad, unet_ref_small_dx, 288, 1e-4, 1e-3), "d/dx");
    EXPECT_FIXTURE_GRADS(s.ps, unet_ref_small_grads);
    ug_ctx_free(ctx);
    ug_params_free(s.ps);
}

/* Finite differences through the whole network: the input and parameters of every kind of
 * block (time MLP, conv, 1x1 skip, attention k, group norm, label embedding). */
TEST(unet_small_gradcheck) {
    small_net s;
    ASSERT(small_net_make(&s), "declare: %s", ug_last_error());
    ug_tensor *x = ug_test_tensor(4, (int64_t[]){2, 1, 12, 12}, 5, -1, 1);
    const char *names[] = {"t1.bias", "conv_in.weight", "d1.skip.weight", "attn.k.weight",
                           "u1b.norm2.weight", "us2.conv.bias", "label_emb.weight"};
    ug_tensor *ins[8] = {x};
    for (int k = 0; k < 7; k++) {
        ins[k + 1] = ug_params_find(s.ps, names[k]);
        ASSERT(ins[k + 1], "%s", names[k]);
    }
    ug_gc_opts o = ug_gc_default();
    o.max_elems = 6;
    o.h = 1e-2;
    EXPECT(ug_gradcheck("unet", small_forward, &s, ins, 8, o), "finite differences");
    ug_test_tensor_free(x);
    ug_params_free(s.ps);
}

static ug_model_cfg image_cfg(const char *net, int C, int H, int W) {
    ug_model_cfg mc = ug_model_cfg_default();
    strcpy(mc.net, net);
    mc.channels = C;
    mc.height = H;
    mc.width = W;
    mc.data_dim = C * H * W;
    mc.formulation = UG_FORM_VP;
    mc.param = UG_PARAM_EPS;
    return mc;
}

/* The peer network on 1x12x12 noise images: Adam steps on one batch with fixed DDPM draws
 * (same seed and streams every step) must lower that batch's loss. */
TEST(unet_model_adam_lowers_ddpm_loss) {
    ug_model_cfg mc = image_cfg("unet-fmnist", 1, 12, 12);
    ug_model *m;
    ASSERT_OK(ug_model_create(&mc, 3, &m));
    EXPECT(ug_params_count(ug_model_params(m)) == 1062497, "params %lld",
           (long long)ug_params_count(ug_model_params(m)));
    const int64_t B = 2, d = 144;
    float x[2 * 144];
    ug_rng r = ug_rng_make(8, 0, 0);
    ug_rng_uniform(&r, x, B * d);
    ug_data_scale_pm1(x, B * d);
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_adam opt;
    ASSERT_OK(ug_adam_init(&opt, ug_model_params(m), ug_adam_default()));
    double first = 0, last = 0;
    for (int s = 0; s < 5; s++) {
        ug_tensor *loss;
        ASSERT_OK(ug_model_loss(m, ctx, x, B, NULL, 17, 0, &loss));
        if (s == 0) first = loss->data[0];
        last = loss->data[0];
        ug_params_zero_grad(ug_model_params(m));
        ASSERT_OK(ug_backward(ctx, loss));
        ug_adam_step(&opt, ug_model_params(m), 1e-3f);
        ug_ctx_reset(ctx);
    }
    printf("    DDPM loss %.4f -> %.4f after 4 Adam steps\n", first, last);
    EXPECT(isfinite(last) && last < 0.8 * first, "loss %.4f -> %.4f", first, last);
    ug_adam_free(&opt);
    ug_ctx_free(ctx);
    ug_model_free(m);
}

/* The sampler's denoiser runs several row tiles side by side, one per thread, each with serial
 * kernels in its own arena. Every row must come out bit for bit as when its tile runs alone
 * with threaded kernels (2 threads) or on 1 thread: a sample's value depends on nothing but
 * itself (to float rounding where the sgemm's rows depend on their place in the call,
 * ug_test_gemm_rows_invariant). The U-Net (tiles of 16) and the MLP (tiles of 512), n = 2.5 tiles;
 * the MLP's rows also in calls of 37 and 1000 rows, bit for bit. */
static void tiles_side_by_side(ug_model *m, int64_t n, double sigma) {
    const ug_diffusion *dm = ug_model_diffusion(m);
    const int64_t d = dm->data_dim, tile = dm->net.row_tile;
    double *x = malloc((size_t)(n * d) * sizeof *x), *par = malloc((size_t)(n * d) * sizeof *par),
           *one = malloc((size_t)(n * d) * sizeof *one);
    float *nz = malloc((size_t)(n * d) * sizeof *nz);
    ug_rng_normal_rows(5, 0, 0, nz, n, d);
    for (int64_t j = 0; j < n * d; j++) x[j] = sigma * nz[j];
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_denoiser dn;
    void *st;
    ASSERT_OK(ug_diffusion_denoiser(dm, ctx, NULL, &dn, &st));
    omp_set_num_threads(2);
    ASSERT_OK(dn.fn(dn.self, n, x, sigma, par));
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        for (int64_t i = 0; i < n; i += tile) {
            int64_t k = n - i < tile ? n - i : tile;
            ASSERT_OK(dn.fn(dn.self, k, x + i * d, sigma, one + i * d));
        }
        EXPECT(ug_test_same_rows_f64("one tile at a time", one, par, n * d, 1e-6, 1e-5),
               "%s: tiles side by side differ from one tile at a time on %d thread(s)",
               dm->net.kind == UG_NET_UNET ? "unet" : "mlp", threads);
    }
    /* Rows computed alone (the MLP's untaped path, net.rows_alone): calls of any size, the
     * same bits, the last call not padded. */
    for (int64_t chunk = 37; dm->net.rows_alone && chunk <= n; chunk += chunk < 1000 ? 963 : n) {
        for (int64_t i = 0; i < n; i += chunk) {
            int64_t k = n - i < chunk ? n - i : chunk;
            ASSERT_OK(dn.fn(dn.self, k, x + i * d, sigma, one + i * d));
        }
        EXPECT(!memcmp(one, par, (size_t)(n * d) * sizeof *one),
               "mlp: calls of %lld rows differ from the whole call", (long long)chunk);
    }
    ug_set_threads(0);
    ug_diffusion_denoiser_free(st);
    ug_ctx_free(ctx);
    free(x); free(par); free(one); free(nz);
}

TEST(denoiser_tiles_side_by_side_bitwise) {
    ug_model *m;
    ug_model_cfg mc = image_cfg("unet-fmnist", 1, 12, 12);
    mc.formulation = UG_FORM_EDM;
    mc.param = UG_PARAM_EDM;
    ASSERT_OK(ug_model_create(&mc, 3, &m));
    tiles_side_by_side(m, 40, 2.0);
    ug_model_free(m);
    mc = ug_model_cfg_default();
    strcpy(mc.net, "mlp-toy");
    mc.data_dim = 2;
    ASSERT_OK(ug_model_create(&mc, 3, &m));
    tiles_side_by_side(m, 1280, 2.0);
    ug_model_free(m);
}

TEST(unet_model_config_errors_and_auto) {
    ug_model *m = NULL;
    struct { const char *net; int C, H, W; const char *msg; } bad[] = {
        {"unet-fmnist", 3, 12, 12, "1 channel"},
        {"unet-fmnist", 1, 14, 14, "divisible by 4"},
        {"unet", 2, 12, 10, "divisible by 4"},
        {"unet-fmnist", 0, 0, 0, "image examples"},
    };
    for (int k = 0; k < 4; k++) {
        ug_model_cfg mc = image_cfg(bad[k].net, bad[k].C, bad[k].H, bad[k].W);
        if (!bad[k].C) mc.data_dim = 144;
        ug_status st = ug_model_create(&mc, 1, &m);
        EXPECT(st == UG_ERR_INVALID_ARG && !m && strstr(ug_last_error(), bad[k].msg),
               "%s %dx%dx%d: %s", bad[k].net, bad[k].C, bad[k].H, bad[k].W, ug_last_error());
        ug_model_free(m);
        m = NULL;
    }
    ug_model_cfg mc = image_cfg("unet-fmnist", 1, 12, 12);
    mc.data_dim = 145;
    EXPECT(ug_model_create(&mc, 1, &m) == UG_ERR_INVALID_ARG && strstr(ug_last_error(), "145"),
           "data_dim mismatch: %s", ug_last_error());
    ug_model_free(m);
    m = NULL;
    /* auto: images get the U-Net (any channel count through "unet"), vectors the toy MLP. */
    mc = image_cfg("auto", 1, 8, 8);
    ASSERT_OK(ug_model_create(&mc, 1, &m));
    EXPECT(!strcmp(ug_model_config(m)->net, "unet-fmnist") &&
               ug_params_find(ug_model_params(m), "u0b.conv2.weight"),
           "auto on images: %s", ug_model_config(m)->net);
    ug_model_free(m);
    mc = image_cfg("unet", 3, 8, 8);
    mc.num_classes = 4;
    ASSERT_OK(ug_model_create(&mc, 1, &m));
    ug_tensor *le = ug_params_find(ug_model_params(m), "label_emb.weight");
    ug_tensor *ci = ug_params_find(ug_model_params(m), "conv_in.weight");
    EXPECT(le && le->shape[0] == 5 && le->shape[1] == 128 && ci && ci->shape[1] == 3,
           "3-channel conditional U-Net");
    ug_model_free(m);
    mc = ug_model_cfg_default();
    strcpy(mc.net, "auto");
    ASSERT_OK(ug_model_create(&mc, 1, &m));
    EXPECT(!strcmp(ug_model_config(m)->net, "mlp-toy"), "auto on vectors: %s",
           ug_model_config(m)->net);
    ug_model_free(m);
}

/* The U-Net behind ug_net: the diffusion family's flattened (B, d) in and out. */
TEST(unet_net_interface_flattens) {
    small_net s;
    ASSERT(small_net_make(&s), "declare: %s", ug_last_error());
    ug_net n;
    ASSERT_OK(ug_net_from_unet(&n, &s.u));
    EXPECT(n.kind == UG_NET_UNET && n.data_dim == 144 && n.num_classes == 3, "net fields");
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_ctx_set_grad(ctx, 0);
    ug_tensor *x = ug_tensor_new(ctx, 2, (int64_t[]){2, 144});
    for (int64_t j = 0; j < 288; j++) x->data[j] = hash_val(1000, j);
    ug_tensor *t = ug_tensor_from(ctx, 1, (int64_t[]){2}, k_t);
    ug_tensor *y = ug_net_forward(ctx, &n, x, t, k_labels);
    EXPECT(y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 144, "flattened output");
    EXPECT(ug_test_allclose("net out", y->data, unet_ref_small_out, 288, 1e-4, 1e-3), "values");
    ug_net_free(&n);
    ug_ctx_free(ctx);
    ug_params_free(s.ps);
}

/* ================================================================ configurable U-Net
 * tests/ref/gen_unet_cfg_ref.py -> unet_cfg_ref.h: a non-preset network (3x8x8, base 8,
 * multipliers 1,2,3, 2 blocks per level, attention at 4 and 2 with 2 heads) built in PyTorch
 * from the same rule (that script first checks that its defaults are peers/unet.py's network). */

static ug_unet_cfg gen_cfg(void) {
    ug_unet_cfg c = ug_unet_fmnist_cfg(3, 8, 8);
    c.base = 8;
    c.mult[2] = 3;
    c.blocks = 2;
    c.attn_res[0] = 4;
    c.attn_res[1] = 2;
    c.n_attn = 2;
    c.groups = 4;
    c.emb_dim = 8;
    c.temb_dim = 16;
    c.attn_heads = 2;
    return c;
}

typedef struct {
    ug_params *ps;
    ug_unet u;
    const ug_net_train *train;   /* gradcheck in training mode when set */
} gen_net;

static int gen_net_make(gen_net *s, double dropout) {
    ug_unet_cfg c = gen_cfg();
    c.dropout = dropout;
    s->train = NULL;
    if (ug_params_create(&s->ps)) return 0;
    if (ug_unet_declare(&s->u, s->ps, &c) || ug_params_finalize(s->ps)) return 0;
    fill_formula(s->ps);
    return 1;
}

static const float k_t4[4] = {37.0f, 812.0f, 3.0f, 500.0f};

/* x (B, 3, 8, 8): rows first_row .. of the hash input (B <= 4). */
static ug_tensor *gen_input(ug_ctx *ctx, int64_t B, int64_t first_row) {
    ug_tensor *x = ug_tensor_new(ctx, 4, (int64_t[]){B, 3, 8, 8});
    for (int64_t j = 0; j < B * 192; j++) x->data[j] = hash_val(1000, first_row * 192 + j);
    return x;
}

static ug_tensor *gen_forward(ug_ctx *ctx, ug_tensor **in, void *user) {
    gen_net *s = user;
    ug_tensor *t = ug_tensor_from(ctx, 1, (int64_t[]){in[0]->shape[0]}, k_t4);
    return ug_unet_forward_train(ctx, &s->u, in[0], t, NULL, s->train);
}

TEST(unet_cfg_matches_pytorch) {
    gen_net s;
    ASSERT(gen_net_make(&s, 0), "declare: %s", ug_last_error());
    int n = (int)(sizeof unet_cfg_ref_params / sizeof unet_cfg_ref_params[0]);
    EXPECT(same_list("cfg", s.ps, unet_cfg_ref_params, n, UNET_CFG_REF_PARAMS_COUNT),
           "layout differs from gen_unet_cfg_ref.py's");
    printf("    %d tensors, %lld parameters (PyTorch: %lld)\n", ug_params_num_tensors(s.ps),
           (long long)ug_params_count(s.ps), UNET_CFG_REF_PARAMS_COUNT);
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_tensor *x = gen_input(ctx, 2, 0);
    float dy[384];
    for (int64_t j = 0; j < 384; j++) dy[j] = hash_val(2000, j);
    ug_tensor_requires_grad(ctx, x);
    ug_params_zero_grad(s.ps);
    ug_tensor *y = gen_forward(ctx, &x, &s);
    ASSERT(y->numel == 384 && y->shape[1] == 3, "shape");
    ASSERT_OK(ug_backward_seed(ctx, y, dy));
    EXPECT(ug_test_allclose("cfg out", y->data, unet_cfg_ref_out, 384, 1e-4, 1e-3), "output");
    EXPECT(ug_test_allclose("cfg dx", x->grad, unet_cfg_ref_dx, 384, 1e-4, 1e-3), "d/dx");
    EXPECT_FIXTURE_GRADS(s.ps, unet_cfg_ref_grads);
    ug_ctx_free(ctx);
    ug_params_free(s.ps);
}

/* Finite differences through the whole configurable network in training mode (dropout 0.25
 * with fixed masks: the same seed every call): input, level attention, extra down block,
 * downsampling, 1x1 skip of an up block, middle attention, time MLP. */
TEST(unet_cfg_gradcheck_with_dropout) {
    gen_net s;
    ASSERT(gen_net_make(&s, 0.25), "declare: %s", ug_last_error());
    ug_net_train tr = {5, 40, 1};
    s.train = &tr;
    ug_tensor *x = ug_test_tensor(4, (int64_t[]){2, 3, 8, 8}, 5, -1, 1);
    const char *names[] = {"d1.attn.q.weight", "d0b.conv2.weight", "ds1.conv.bias",
                           "u1b.skip.weight", "u2c.attn.proj.bias", "attn.v.weight", "t1.weight"};
    ug_tensor *ins[8] = {x};
    for (int k = 0; k < 7; k++) {
        ins[k + 1] = ug_params_find(s.ps, names[k]);
        ASSERT(ins[k + 1], "%s", names[k]);
    }
    ug_gc_opts o = ug_gc_default();
    o.max_elems = 6;
    o.h = 1e-2;
    EXPECT(ug_gradcheck("unet cfg", gen_forward, &s, ins, 8, o), "finite differences");
    ug_test_tensor_free(x);
    ug_params_free(s.ps);
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = ug_test_worst(m, fabs((double)a[i] - b[i]));
    return m;
}

/* Output of gen_forward for rows first_row .. first_row + B - 1 into out. */
static void gen_run(gen_net *s, int64_t B, int64_t first_row, const ug_net_train *tr, float *out) {
    ug_ctx *ctx;
    if (ug_ctx_create(&ctx, 0)) return;
    ug_ctx_set_grad(ctx, 0);
    s->train = tr;
    ug_tensor *x = gen_input(ctx, B, first_row);
    ug_tensor *t = ug_tensor_from(ctx, 1, (int64_t[]){B}, k_t4 + first_row);
    ug_tensor *y = ug_unet_forward_train(ctx, &s->u, x, t, NULL, tr);
    memcpy(out, y->data, (size_t)y->numel * sizeof(float));
    ug_ctx_free(ctx);
}

/* Dropout: p = 0 and evaluation calls are bit-identical to the network without dropout; p > 0
 * changes training calls only; example b's masks come from stream first_stream + b, whatever
 * the batch split and the thread count. */
TEST(unet_cfg_dropout_modes_and_streams) {
    gen_net s;
    ASSERT(gen_net_make(&s, 0), "declare: %s", ug_last_error());
    static float ref[768], a[768], b[768];
    ug_net_train tr = {9, 50, 1};
    gen_run(&s, 4, 0, NULL, ref);
    gen_run(&s, 4, 0, &tr, a);
    EXPECT(!memcmp(ref, a, sizeof a), "p = 0: training call differs from evaluation");
    s.u.cfg.dropout = 0.3;
    gen_run(&s, 4, 0, NULL, a);
    EXPECT(!memcmp(ref, a, sizeof a), "p = 0.3: an evaluation call differs from p = 0");
    gen_run(&s, 4, 0, &tr, a);
    double d = max_abs_diff(ref, a, 768);
    printf("    p = 0.3: training output moves by up to %.3g from evaluation\n", d);
    EXPECT(d > 1e-2, "dropout did nothing (%g)", d);
    /* rows 0-1 with streams 50, 51 and rows 2-3 with streams 52, 53 = the batch of 4 */
    ug_net_train t0 = {9, 50, 1}, t2 = {9, 52, 1};
    gen_run(&s, 2, 0, &t0, b);
    gen_run(&s, 2, 2, &t2, b + 384);
    EXPECT(ug_test_allclose("split batch", b, a, 768, 1e-5, 1e-5), "masks depend on the split");
    ug_net_train other = {10, 50, 1};
    gen_run(&s, 4, 0, &other, b);
    EXPECT(max_abs_diff(a, b, 768) > 1e-2, "another seed gave the same masks");
    /* the per-row op: bit-identical masks over splits and thread counts */
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    int threads = ug_get_threads();
    const int64_t B = 4, row = 16384;   /* 65536 values: over UG_PAR_MIN, threaded */
    ug_tensor *x = ug_tensor_new(ctx, 2, (int64_t[]){B, row});
    for (int64_t j = 0; j < B * row; j++) x->data[j] = 1.0f;
    ug_set_threads(1);
    ug_tensor *y1 = ug_dropout_rows(ctx, x, 0.5f, 3, 100, 2);
    ug_set_threads(3);
    ug_tensor *y3 = ug_dropout_rows(ctx, x, 0.5f, 3, 100, 2);
    ug_set_threads(threads);
    ug_tensor *xs = ug_tensor_new(ctx, 2, (int64_t[]){1, row});
    memcpy(xs->data, x->data, (size_t)row * sizeof(float));
    ug_tensor *ys = ug_dropout_rows(ctx, xs, 0.5f, 3, 102, 2);   /* row 2 alone */
    int64_t kept = 0;
    for (int64_t j = 0; j < B * row; j++) kept += y1->data[j] != 0;
    EXPECT(!memcmp(y1->data, y3->data, (size_t)(B * row) * sizeof(float)), "1 vs 3 threads");
    EXPECT(!memcmp(ys->data, y1->data + 2 * row, (size_t)row * sizeof(float)), "row 2 alone");
    EXPECT(fabs((double)kept / (double)(B * row) - 0.5) < 0.01 && y1->data[0] != 0.5f,
           "kept share %lld / %lld", (long long)kept, (long long)(B * row));
    ug_ctx_free(ctx);
    ug_params_free(s.ps);
}

static ug_tensor *f_dropout_rows(ug_ctx *ctx, ug_tensor **in, void *user) {
    return ug_dropout_rows(ctx, in[0], *(const float *)user, 7, 3, 1);
}

TEST(dropout_rows_grad) {
    ug_tensor *x = ug_test_tensor(3, (int64_t[]){3, 4, 5}, 2, -1, 1);
    float ps[3] = {0.0f, 0.4f, 1.0f};
    for (int k = 0; k < 3; k++) {
        char what[32];
        snprintf(what, sizeof what, "dropout_rows p=%g", (double)ps[k]);
        EXPECT(ug_gradcheck(what, f_dropout_rows, &ps[k], &x, 1, ug_gc_default()), "%s", what);
    }
    ug_test_tensor_free(x);
}

static ug_model_cfg small_unet_model(double dropout) {
    ug_model_cfg mc = image_cfg("unet", 1, 8, 8);
    mc.unet_ch = 8;
    strcpy(mc.unet_mult, "1,2");
    strcpy(mc.unet_attn, "4");
    mc.dropout = dropout;
    return mc;
}

/* Through the model: dropout changes the training loss, not the denoiser that sampling,
 * likelihoods and guidance call; the loss's backward runs through the masks. */
TEST(unet_cfg_model_dropout_trains_not_samples) {
    ug_model *m0, *m1;
    ug_model_cfg c0 = small_unet_model(0), c1 = small_unet_model(0.2);
    ASSERT_OK(ug_model_create(&c0, 4, &m0));
    ASSERT_OK(ug_model_create(&c1, 4, &m1));
    EXPECT(ug_params_find(ug_model_params(m1), "d1.attn.q.weight") &&
               !ug_params_find(ug_model_params(m1), "d0.attn.q.weight") &&
               ug_params_find(ug_model_params(m1), "u1b.attn.proj.bias") &&
               !ug_params_find(ug_model_params(m1), "ds1.conv.weight"),
           "attention at 4 only, two levels");
    float x[2 * 64];
    for (int j = 0; j < 128; j++) x[j] = hash_val(3000, j);
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_tensor *loss;
    ASSERT_OK(ug_model_loss(m0, ctx, x, 2, NULL, 11, 0, &loss));
    float l0 = loss->data[0];
    ASSERT_OK(ug_model_loss(m1, ctx, x, 2, NULL, 11, 0, &loss));
    float l1 = loss->data[0];
    ug_params_zero_grad(ug_model_params(m1));
    ASSERT_OK(ug_backward(ctx, loss));
    ug_ctx_reset(ctx);
    ASSERT_OK(ug_model_loss(m1, ctx, x, 2, NULL, 11, 0, &loss));
    float l1b = loss->data[0];
    printf("    loss %.6f without dropout, %.6f with p = 0.2\n", l0, l1);
    EXPECT(l0 != l1 && l1 == l1b, "loss %g (p 0), %g and %g (p 0.2, same seed)", l0, l1, l1b);
    ug_tensor *c = ug_params_find(ug_model_params(m1), "d0.conv2.weight");
    double gn = 0;
    for (int64_t j = 0; j < c->numel; j++) gn += fabs(c->grad[j]);
    EXPECT(gn > 0 && isfinite(gn), "no gradient through the dropped block (%g)", gn);
    ug_ctx_reset(ctx);
    ug_ctx_set_grad(ctx, 0);
    ug_tensor *xt = ug_tensor_from(ctx, 2, (int64_t[]){2, 64}, x);
    ug_tensor *d0 = ug_diffusion_denoise(ctx, ug_model_diffusion(m0), xt, 3.0, NULL);
    ug_tensor *d1 = ug_diffusion_denoise(ctx, ug_model_diffusion(m1), xt, 3.0, NULL);
    EXPECT(!memcmp(d0->data, d1->data, 128 * sizeof(float)), "the denoiser saw dropout");
    ug_ctx_free(ctx);
    ug_model_free(m0);
    ug_model_free(m1);
}

TEST(unet_cfg_errors_and_defaults) {
    struct { const char *field; int v; const char *msg; } bad[] = {
        {"levels", 0, "levels"}, {"levels", 6, "expected 1 to 5"},
        {"height", 12, "divisible by 8"}, {"mult1", 0, "multiplier 0"},
        {"base", 6, "multiple of groups 4"}, {"blocks", 0, "ResBlocks per level"},
        {"blocks", 9, "expected 1 to 8"}, {"attn", 3, "attention resolution 3"},
        {"heads", 3, "3 attention heads do not divide"}, {"dropout", 1, "dropout 1"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ug_unet_cfg c = gen_cfg();
        if (!strcmp(bad[k].field, "levels")) c.levels = bad[k].v;
        if (!strcmp(bad[k].field, "mult1")) c.mult[1] = bad[k].v;
        if (!strcmp(bad[k].field, "base")) c.base = bad[k].v;
        if (!strcmp(bad[k].field, "blocks")) c.blocks = bad[k].v;
        if (!strcmp(bad[k].field, "attn")) c.attn_res[1] = bad[k].v;
        if (!strcmp(bad[k].field, "heads")) c.attn_heads = bad[k].v;
        if (!strcmp(bad[k].field, "dropout")) c.dropout = bad[k].v;
        if (!strcmp(bad[k].field, "height")) {   /* 12 x 12 with 4 levels */
            c.height = c.width = bad[k].v;
            c.mult[3] = 1;
            c.levels = 4;
        }
        ug_params *ps;
        ASSERT_OK(ug_params_create(&ps));
        ug_unet u;
        ug_status st = ug_unet_declare(&u, ps, &c);
        EXPECT(st == UG_ERR_INVALID_ARG && strstr(ug_last_error(), bad[k].msg) &&
                   ug_params_num_tensors(ps) == 0,
               "%s = %d: %s", bad[k].field, bad[k].v, ug_last_error());
        ug_params_free(ps);
    }
    /* model options: the preset's structure is fixed, the U-Net options belong to the U-Net */
    struct { const char *net; const char *field; const char *val; const char *msg; } mbad[] = {
        {"unet-fmnist", "ch", "64", "fixed peer network"},
        {"unet-small", "attn", "7", "fixed peer network"},
        {"mlp-toy", "dropout", "0.1", "for the U-Net"},
        {"unet", "mult", "1,x", "unet_mult '1,x'"},
        {"unet", "mult", "1,2,2,2", "divisible by 8"},
        {"unet", "attn", "5", "attention resolution 5"},
        {"unet", "blocks", "9", "ResBlocks per level"},
    };
    for (size_t k = 0; k < sizeof mbad / sizeof mbad[0]; k++) {
        ug_model_cfg mc = image_cfg(mbad[k].net, 1, 12, 12);
        if (!strcmp(mbad[k].net, "mlp-toy")) mc = ug_model_cfg_default();
        if (!strcmp(mbad[k].field, "ch")) mc.unet_ch = atoi(mbad[k].val);
        if (!strcmp(mbad[k].field, "blocks")) mc.unet_blocks = atoi(mbad[k].val);
        if (!strcmp(mbad[k].field, "dropout")) mc.dropout = atof(mbad[k].val);
        if (!strcmp(mbad[k].field, "mult")) strcpy(mc.unet_mult, mbad[k].val);
        if (!strcmp(mbad[k].field, "attn")) strcpy(mc.unet_attn, mbad[k].val);
        ug_model *m = NULL;
        ug_status st = ug_model_create(&mc, 1, &m);
        EXPECT(st == UG_ERR_INVALID_ARG && !m && strstr(ug_last_error(), mbad[k].msg),
               "%s %s %s: %s", mbad[k].net, mbad[k].field, mbad[k].val, ug_last_error());
        ug_model_free(m);
    }
    ug_model_cfg mc = ug_model_cfg_default();
    mc.family = UG_FAMILY_FLOW;
    mc.unet_blocks = 2;
    ug_model *m = NULL;
    EXPECT(ug_model_create(&mc, 1, &m) == UG_ERR_INVALID_ARG && strstr(ug_last_error(), "not family flow"),
           "flow with unet_blocks: %s", ug_last_error());
    ug_model_free(m);
    /* "unet" with every option unset, or set to the preset's values, is the preset; the preset
     * takes dropout; "auto" with a U-Net option set means "unet". */
    for (int k = 0; k < 3; k++) {
        mc = image_cfg(k == 1 ? "unet" : k == 2 ? "unet-small" : "unet", 1, 28, 28);
        if (k == 1) {
            mc.unet_ch = 32;
            strcpy(mc.unet_mult, "1,2,2");
            mc.unet_blocks = 1;
            strcpy(mc.unet_attn, "none");
            mc.unet_heads = 1;
        }
        if (k == 2) mc.dropout = 0.1;
        ASSERT_OK(ug_model_create(&mc, 1, &m));
        EXPECT(same_list("unet defaults", ug_model_params(m), unet_ref_fmnist, 152,
                         UNET_REF_FMNIST_COUNT), "case %d: not the preset", k);
        ug_model_free(m);
    }
    mc = image_cfg("auto", 3, 16, 16);
    mc.unet_ch = 16;
    ASSERT_OK(ug_model_create(&mc, 1, &m));
    EXPECT(!strcmp(ug_model_config(m)->net, "unet") &&
               ug_params_find(ug_model_params(m), "conv_in.weight")->shape[0] == 16 &&
               ug_params_find(ug_model_params(m), "t2.weight")->shape[0] == 64,
           "auto with --unet-ch: %s", ug_model_config(m)->net);
    ug_model_free(m);
}

/* The CLI: U-Net options are range-checked (exit 2) and the preset refuses them (exit 1). */
TEST(unet_cfg_cli_errors) {
    char out[4096];
    const char *base = "train --data fashion-mnist --n 64 --steps 1 --threads 1 "
                       "--out /tmp/unigen-unetcfg-never";
    int rc = ug_test_sh(out, sizeof out, "%s %s --model unet-small --unet-ch 64", ug_test_cli(), base);
    EXPECT(rc == 1 && strstr(out, "fixed peer network") && strstr(out, "unet_ch 64"),
           "unet-small --unet-ch 64: rc %d %s", rc, out);
    rc = ug_test_sh(out, sizeof out, "%s %s --model unet --dropout 1", ug_test_cli(), base);
    EXPECT(rc == 2 && strstr(out, "--dropout 1: expected a number in [0, 1)"), "dropout 1: %s", out);
    rc = ug_test_sh(out, sizeof out, "%s %s --model unet --unet-blocks 9", ug_test_cli(), base);
    EXPECT(rc == 2 && strstr(out, "--unet-blocks 9"), "blocks 9: %s", out);
    rc = ug_test_sh(out, sizeof out, "%s %s --model unet --unet-attn 5", ug_test_cli(), base);
    EXPECT(rc == 1 && strstr(out, "attention resolution 5"), "attn 5: %s", out);
}

/* Issue 7: a state dict of ../shared/peers/unet.py's network (PyTorch's own initialization,
 * saved with torch.save and converted by tests/ref/convert_state_dict.py; gen_unet_peer.py)
 * loads into unet-small tensor by tensor under the same names, and the network's output on the
 * same input matches PyTorch's float32 output within 1e-4 relative. */
TEST(unet_small_loads_pytorch_state_dict) {
    ug_unet_cfg c = ug_unet_fmnist_cfg(1, 28, 28);
    ug_params *ps;
    ug_unet u;
    ASSERT_OK(ug_params_create(&ps));
    ASSERT_OK(ug_unet_declare(&u, ps, &c));
    ASSERT_OK(ug_params_finalize(ps));
    ug_st_file *f;
    ASSERT_OK(ug_st_open("ref/unet_peer.safetensors", &f));
    EXPECT(ug_st_count(f) == ug_params_num_tensors(ps), "%d tensors in the file, %d in unet-small",
           ug_st_count(f), ug_params_num_tensors(ps));
    for (int i = 0; i < ug_params_num_tensors(ps); i++) {
        ug_tensor *p = ug_params_tensor(ps, i);
        EXPECT(!strcmp(ug_st_name(f, i), p->name), "tensor %d: %s in the file, %s here", i,
               ug_st_name(f, i), p->name);
        ASSERT(ug_st_numel(f, p->name) == p->numel, "%s: %lld values in the file, %lld here",
               p->name, (long long)ug_st_numel(f, p->name), (long long)p->numel);
        ASSERT_OK(ug_st_read_f32(f, p->name, p->data, p->numel));
    }
    ug_st_close(f);
    EXPECT(ug_params_count(ps) == 1062497, "%lld parameters", (long long)ug_params_count(ps));
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_ctx_set_grad(ctx, 0);
    ug_tensor *x = ug_tensor_new(ctx, 4, (int64_t[]){2, 1, 28, 28});
    for (int64_t j = 0; j < 2 * 784; j++) x->data[j] = hash_val(1000, j);
    const float t[2] = {37.0f, 812.0f};
    ug_tensor *y = ug_unet_forward(ctx, &u, x, ug_tensor_from(ctx, 1, (int64_t[]){2}, t), NULL);
    double amax = 0;
    for (int64_t j = 0; j < 2 * 784; j++) amax = fmax(amax, fabs(unet_peer_out[j]));
    /* 1e-4 relative to each value, with a floor of 1e-4 of the largest for values near 0. */
    EXPECT(ug_test_allclose("unet-small vs PyTorch", y->data, unet_peer_out, 2 * 784, 1e-4 * amax, 1e-4),
           "output");
    ug_ctx_free(ctx);
    ug_params_free(ps);
}

/* ug_model_loss_backward on 2 threads (the batch split between a model and its replica)
 * against 1 thread (one batch): the same mean loss and gradient up to float summation order,
 * for a class-conditional MLP with label dropout, a U-Net with dropout (per-example masks from
 * the examples' streams) and a noisy classifier. Thread 0 keeps only its rows' activations, so
 * the caller's arena holds about half of what one batch needs: the split really ran. */
static void split_matches_one_thread(const char *what, ug_model_cfg *mc, int64_t B,
                                     const int32_t *y) {
    ug_model *m;
    ASSERT_OK(ug_model_create(mc, 11, &m));
    ug_params *ps = ug_model_params(m);
    const int64_t d = mc->data_dim, np = ug_params_count(ps);
    float *x = malloc((size_t)(B * d) * sizeof *x), *g1 = malloc((size_t)np * sizeof *g1);
    ASSERT(x && g1, "out of memory");
    ug_rng r = ug_rng_make(3, 0, 0);
    ug_rng_normal(&r, x, B * d);
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    double l1, l2;
    size_t used1, used2;
    int threads = ug_get_threads();
    ug_set_threads(1);
    ug_params_zero_grad(ps);
    ASSERT_OK(ug_model_loss_backward(m, ctx, x, B, y, 9, 500, &l1));
    used1 = ug_ctx_arena_used(ctx);
    memcpy(g1, ug_params_grad(ps), (size_t)np * sizeof *g1);
    ug_ctx_reset(ctx);
    ug_set_threads(2);
    for (int rep = 0; rep < 2; rep++) {   /* twice: the replica's gradients restart at zero */
        ug_params_zero_grad(ps);
        ASSERT_OK(ug_model_loss_backward(m, ctx, x, B, y, 9, 500, &l2));
        used2 = ug_ctx_arena_used(ctx);
        ug_ctx_reset(ctx);
        const float *g2 = ug_params_grad(ps);
        double gmax = 0, dmax = 0;
        for (int64_t j = 0; j < np; j++) {
            gmax = fmax(gmax, fabs(g1[j]));
            dmax = ug_test_worst(dmax, fabs((double)g1[j] - g2[j]));
        }
        EXPECT(fabs(l1 - l2) <= 1e-5 * fabs(l1), "%s: loss %.9g (1 thread) vs %.9g (2)", what, l1, l2);
        EXPECT(gmax > 0 && dmax <= 2e-5 * gmax, "%s: gradients differ by %g (largest %g)", what,
               dmax, gmax);
        EXPECT((double)used2 < 0.75 * (double)used1, "%s: thread 0's arena %zu bytes, one batch %zu",
               what, used2, used1);
    }
    ug_set_threads(threads);
    ug_ctx_free(ctx);
    ug_model_free(m);
    free(x);
    free(g1);
}

TEST(model_loss_backward_split_matches_one_thread) {
    int32_t y[96];
    for (int b = 0; b < 96; b++) y[b] = (b * 7) % 3;
    ug_model_cfg mlp = ug_model_cfg_default();   /* edm / edm, mlp-toy on 2-D points */
    mlp.num_classes = 3;
    mlp.p_uncond = 0.3;
    split_matches_one_thread("mlp-toy, labels", &mlp, 96, y);
    ug_model_cfg un = small_unet_model(0.2);
    split_matches_one_thread("unet, dropout", &un, 64, NULL);
    ug_model_cfg cl = ug_model_cfg_default();
    cl.family = UG_FAMILY_CLASSIFIER;
    cl.data_dim = 5;
    cl.num_classes = 3;
    cl.noisy = 1;
    split_matches_one_thread("noisy classifier", &cl, 96, y);
}

/* A bad label fails with a message naming its row of the whole batch (on the split path too),
 * for a classifier and a class-conditional diffusion model alike. */
TEST(model_loss_backward_rejects_bad_labels) {
    ug_model_cfg mlp = ug_model_cfg_default();
    mlp.num_classes = 3;
    ug_model_cfg cl = ug_model_cfg_default();
    cl.family = UG_FAMILY_CLASSIFIER;
    cl.num_classes = 3;
    ug_model_cfg *cfgs[2] = {&mlp, &cl};
    float x[2 * 96] = {0};
    int32_t y[96] = {0};
    y[80] = 3;
    int threads = ug_get_threads();
    for (int k = 0; k < 2; k++)
        for (int nt = 1; nt <= 2; nt++) {
            ug_model *m;
            ug_ctx *ctx;
            double l;
            ug_tensor *t;
            ASSERT_OK(ug_model_create(cfgs[k], 1, &m));
            ASSERT_OK(ug_ctx_create(&ctx, 0));
            ug_set_threads(nt);
            EXPECT(ug_model_loss_backward(m, ctx, x, 96, y, 0, 0, &l) == UG_ERR_INVALID_ARG &&
                       strstr(ug_last_error(), "label 3 of example 80 outside [0, 3)"),
                   "model %d, %d threads: %s", k, nt, ug_last_error());
            EXPECT(ug_model_loss(m, ctx, x, 96, NULL, 0, 0, &t) == UG_ERR_INVALID_ARG &&
                       strstr(ug_last_error(), "needs labels"), "model %d: %s", k, ug_last_error());
            ug_set_threads(threads);
            ug_ctx_free(ctx);
            ug_model_free(m);
        }
}
