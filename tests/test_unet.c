/* test_unet.c — the U-Net of the image diffusion models (src/nn/unet.c) against PyTorch
 * (tests/ref/gen_unet_ref.py -> unet_ref.h, the architecture of ../shared/peers/unet.py):
 * the peer preset has exactly 1,062,497 parameters with the state_dict's names, order and
 * shapes; a reduced network (widths 8/16/16, groups 4, 3 classes, 1x12x12, batch 2) with
 * formula weights matches PyTorch's float64 output, input gradient and parameter gradients;
 * finite differences agree with backward; a few Adam steps through ug_model (vp / eps) lower
 * the DDPM loss; ug_model_create resolves "auto" and refuses shapes the U-Net cannot take. */
#include "test.h"
#include "core/core.h"
#include "models/diffusion.h"
#include "nn/unet.h"
#include "ref/unet_ref.h"

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
    int ng = (int)(sizeof unet_ref_small_grads / sizeof unet_ref_small_grads[0]);
    for (int k = 0; k < ng; k++) {
        ug_tensor *p = ug_params_find(s.ps, unet_ref_small_grads[k].name);
        ASSERT(p && p->numel == unet_ref_small_grads[k].n, "%s", unet_ref_small_grads[k].name);
        EXPECT(ug_test_allclose(p->name, p->grad, unet_ref_small_grads[k].g, p->numel, 1e-4, 1e-3),
               "d/d %s", p->name);
    }
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
