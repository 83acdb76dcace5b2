/* test_flow.c — normalizing flows (SPEC section 7): finite-difference gradient checks and naive
 * double references of every flow op; for every layer and every model, the round trip
 * f^-1(f(x)) = x and log|det J| against the log-determinant of the brute-force Jacobian
 * (central differences in double, LU with pivoting); NICE-MNIST's parameter count and names
 * (../shared/peers/nice.py) and its log-likelihood against a direct double computation and
 * against PyTorch (fixture from tests/ref/gen_flow_ref.py); RealNVP trained on 8gaussians to
 * within 0.3 nats of the mixture's true cross-entropy and on moons; Glow's actnorm data init;
 * batch-invariant nll, temperature sampling and an allocation-free training step. */
#include "test.h"
#include "core/core.h"
#include "ops/flow_ops.h"
#include "nn/flow_layers.h"
#include "models/flow.h"
#include "ref/flow_ref.h"

/* ---------------------------------------------------------------- helpers */
/* log|det A| of an n x n matrix (row-major, overwritten) by LU with partial pivoting. */
static double logabsdet(double *a, int n) {
    double s = 0;
    for (int k = 0; k < n; k++) {
        int p = k;
        for (int i = k + 1; i < n; i++)
            if (fabs(a[i * n + k]) > fabs(a[p * n + k])) p = i;
        for (int j = 0; j < n && p != k; j++) {
            double t = a[k * n + j];
            a[k * n + j] = a[p * n + j];
            a[p * n + j] = t;
        }
        double piv = a[k * n + k];
        if (piv == 0) return -INFINITY;
        s += log(fabs(piv));
        for (int i = k + 1; i < n; i++) {
            double f = a[i * n + k] / piv;
            for (int j = k; j < n; j++) a[i * n + j] -= f * a[k * n + j];
        }
    }
    return s;
}

/* A map of one example x (n) -> y (n), in float. */
typedef void (*map_fn)(void *self, const float *x, float *y);

/* log|det dy/dx| at x by central differences (step h on the float input, quotient in double). */
static double brute_logdet(map_fn f, void *self, const float *x, int n) {
    double *J = malloc((size_t)(n * n) * sizeof *J);
    float *xp = malloc((size_t)n * sizeof *xp), *yp = malloc((size_t)n * sizeof *yp),
          *ym = malloc((size_t)n * sizeof *ym);
    const float h = 2e-3f;
    for (int j = 0; j < n; j++) {
        memcpy(xp, x, (size_t)n * sizeof *xp);
        xp[j] = x[j] + h;
        double hp = (double)xp[j];
        f(self, xp, yp);
        xp[j] = x[j] - h;
        double hm = (double)xp[j];
        f(self, xp, ym);
        for (int i = 0; i < n; i++) J[i * n + j] = ((double)yp[i] - ym[i]) / (hp - hm);
    }
    double ld = logabsdet(J, n);
    free(J);
    free(xp);
    free(yp);
    free(ym);
    return ld;
}

static double max_abs_diff(const float *a, const float *b, int64_t n, double *scale) {
    double m = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        m = ug_test_worst(m, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    if (scale) *scale = s;
    return m;
}

static void fill_uniform(float *p, int64_t n, uint64_t seed, uint64_t stream, float lo, float hi) {
    ug_rng r = ug_rng_make(seed, stream, 0);
    ug_rng_uniform(&r, p, n);
    for (int64_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * p[i];
}

/* Adds U(-a, a) to every parameter, so zero-initialized layers stop being the identity. */
static void perturb_params(ug_params *ps, float a, uint64_t seed) {
    for (int i = 0; i < ug_params_num_tensors(ps); i++) {
        ug_tensor *t = ug_params_tensor(ps, i);
        float *noise = malloc((size_t)t->numel * sizeof *noise);
        fill_uniform(noise, t->numel, seed, (uint64_t)i, -a, a);
        for (int64_t j = 0; j < t->numel; j++) t->data[j] += noise[j];
        free(noise);
    }
}

/* ---------------------------------------------------------------- ops: gradients */
static const int32_t g_idx[3] = {6, 0, 3};
static ug_tensor *f_gather(ug_ctx *ctx, ug_tensor **in, void *u) {
    (void)u;
    return ug_flow_gather(ctx, in[0], g_idx, 3);
}
static const int32_t g_ia[2] = {4, 1}, g_ib[3] = {0, 2, 3};
static ug_tensor *f_merge(ug_ctx *ctx, ug_tensor **in, void *u) {
    (void)u;
    return ug_flow_merge(ctx, in[0], g_ia, in[1], g_ib);
}
typedef struct { const float *mask; float c; int logistic; } aff_arg;
static ug_tensor *f_affine(ug_ctx *ctx, ug_tensor **in, void *u) {
    aff_arg *a = u;
    return ug_flow_affine(ctx, in[0], in[1], a->mask, a->c);
}
static ug_tensor *f_affine_ld(ug_ctx *ctx, ug_tensor **in, void *u) {
    aff_arg *a = u;
    return ug_flow_affine_logdet(ctx, in[0], a->mask, a->c);
}
static ug_tensor *f_prior(ug_ctx *ctx, ug_tensor **in, void *u) {
    aff_arg *a = u;
    return ug_flow_prior_logp(ctx, in[0], a->logistic);
}
static const int32_t g_perm[4] = {2, 0, 3, 1};
static const float g_sign[4] = {1, -1, 1, -1};
static ug_tensor *f_lu(ug_ctx *ctx, ug_tensor **in, void *u) {
    (void)u;
    return ug_flow_lu_weight(ctx, in[0], in[1], in[2], g_perm, g_sign);
}

TEST(flow_ops_gradcheck) {
    ug_gc_opts o = ug_gc_default();
    o.h = 1e-2;
    ug_tensor *x = ug_test_tensor(2, (int64_t[]){3, 7}, 1, -2, 2);
    EXPECT(ug_gradcheck("flow_gather", f_gather, NULL, &x, 1, o), "gather");
    ug_tensor *mg[2] = {ug_test_tensor(2, (int64_t[]){3, 2}, 2, -2, 2),
                        ug_test_tensor(2, (int64_t[]){3, 3}, 3, -2, 2)};
    EXPECT(ug_gradcheck("flow_merge", f_merge, NULL, mg, 2, o), "merge");
    /* Affine coupling: x and h, with and without a mask, with and without the clamp. */
    static const float mask[6] = {1, 0, 0, 1, 0, 1};
    ug_tensor *ah[2] = {ug_test_tensor(2, (int64_t[]){3, 6}, 4, -2, 2),
                        ug_test_tensor(3, (int64_t[]){3, 2, 6}, 5, -1.5f, 1.5f)};
    aff_arg cases[4] = {{NULL, 2.0f, 0}, {mask, 2.0f, 0}, {NULL, 0.0f, 0}, {mask, 0.0f, 0}};
    for (int k = 0; k < 4; k++) {
        EXPECT(ug_gradcheck("flow_affine", f_affine, &cases[k], ah, 2, o), "affine case %d", k);
        EXPECT(ug_gradcheck("flow_affine_logdet", f_affine_ld, &cases[k], &ah[1], 1, o),
               "affine logdet case %d", k);
    }
    ug_tensor *z = ug_test_tensor(3, (int64_t[]){3, 2, 5}, 6, -3, 3);
    for (int lg = 0; lg < 2; lg++) {
        aff_arg a = {NULL, 0, lg};
        EXPECT(ug_gradcheck("flow_prior_logp", f_prior, &a, &z, 1, o), "prior logistic=%d", lg);
    }
    ug_tensor *lu[3] = {ug_test_tensor(2, (int64_t[]){4, 4}, 7, -1, 1),
                        ug_test_tensor(2, (int64_t[]){4, 4}, 8, -1, 1),
                        ug_test_tensor(1, (int64_t[]){4}, 9, -0.5f, 0.5f)};
    EXPECT(ug_gradcheck("flow_lu_weight", f_lu, NULL, lu, 3, o), "lu weight");
    ug_test_tensor_free(x);
    for (int k = 0; k < 2; k++) {
        ug_test_tensor_free(mg[k]);
        ug_test_tensor_free(ah[k]);
    }
    ug_test_tensor_free(z);
    for (int k = 0; k < 3; k++) ug_test_tensor_free(lu[k]);
}

/* ---------------------------------------------------------------- ops: values */
TEST(flow_ops_forward_reference) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_ctx_set_grad(ctx, 0);
    const int N = 3, n = 6;
    float xs[18], hs[36];
    fill_uniform(xs, 18, 1, 0, -2, 2);
    fill_uniform(hs, 36, 1, 1, -3, 3);
    static const float mask[6] = {0, 1, 0, 0, 1, 1};
    ug_tensor *x = ug_tensor_from(ctx, 2, (int64_t[]){N, n}, xs);
    ug_tensor *h = ug_tensor_from(ctx, 2, (int64_t[]){N, 2 * n}, hs);
    ug_tensor *y = ug_flow_affine(ctx, x, h, mask, 2.0f);
    ug_tensor *ld = ug_flow_affine_logdet(ctx, h, mask, 2.0f);
    ug_tensor *xb = ug_flow_affine_inverse(ctx, y, h, mask, 2.0f);
    double yr[18], ldr[3];
    float yf[18];
    for (int r = 0; r < N; r++) {
        ldr[r] = 0;
        for (int j = 0; j < n; j++) {
            double s = 2.0 * tanh(hs[2 * r * n + j] / 2.0), t = hs[2 * r * n + n + j];
            yr[r * n + j] = mask[j] ? xs[r * n + j] : xs[r * n + j] * exp(s) + t;
            if (!mask[j]) ldr[r] += s;
        }
    }
    for (int i = 0; i < 18; i++) yf[i] = (float)yr[i];
    EXPECT(ug_test_allclose("affine y", y->data, yf, 18, 1e-5, 1e-5), "affine forward");
    double ldg[3] = {ld->data[0], ld->data[1], ld->data[2]};
    EXPECT(ug_test_allclose_f64("affine logdet", ldg, ldr, 3, 1e-5, 1e-5), "affine logdet");
    EXPECT(ug_test_allclose("affine inverse", xb->data, xs, 18, 1e-5, 1e-5), "affine inverse");
    /* Priors against the densities written out. */
    ug_tensor *lpg = ug_flow_prior_logp(ctx, x, 0), *lpl = ug_flow_prior_logp(ctx, x, 1);
    for (int r = 0; r < N; r++) {
        double g = 0, l = 0;
        for (int j = 0; j < n; j++) {
            double v = xs[r * n + j];
            g += -0.5 * v * v - 0.5 * log(2 * M_PI);
            l += log(exp(-v) / ((1 + exp(-v)) * (1 + exp(-v))));
        }
        EXPECT(fabs(lpg->data[r] - g) < 1e-5 * (1 + fabs(g)), "gaussian logp %g vs %g", lpg->data[r], g);
        EXPECT(fabs(lpl->data[r] - l) < 1e-5 * (1 + fabs(l)), "logistic logp %g vs %g", lpl->data[r], l);
    }
    /* Gather / merge: the parity split and its inverse. */
    static const int32_t ev[3] = {0, 2, 4}, od[3] = {1, 3, 5};
    ug_tensor *e = ug_flow_gather(ctx, x, ev, 3), *o = ug_flow_gather(ctx, x, od, 3);
    for (int r = 0; r < N; r++)
        for (int j = 0; j < 3; j++)
            EXPECT(e->data[r * 3 + j] == xs[r * n + 2 * j] && o->data[r * 3 + j] == xs[r * n + 2 * j + 1],
                   "gather row %d col %d", r, j);
    ug_tensor *m = ug_flow_merge(ctx, e, ev, o, od);
    EXPECT(!memcmp(m->data, xs, sizeof xs), "merge(gather) is not the identity");
    /* LU weight: W = P L (U + diag(sign exp(logs))) multiplied out in double. */
    const int C = 4;
    float l[16], u[16], logs[4];
    fill_uniform(l, 16, 2, 0, -1, 1);
    fill_uniform(u, 16, 2, 1, -1, 1);
    fill_uniform(logs, 4, 2, 2, -0.5f, 0.5f);
    ug_tensor *W = ug_flow_lu_weight(ctx, ug_tensor_from(ctx, 2, (int64_t[]){C, C}, l),
                                     ug_tensor_from(ctx, 2, (int64_t[]){C, C}, u),
                                     ug_tensor_from(ctx, 1, (int64_t[]){C}, logs), g_perm, g_sign);
    double Wr[16] = {0}, detW;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double acc = 0;
            for (int k = 0; k < C; k++) {
                double L = k < i ? l[i * C + k] : k == i;
                double U = k < j ? u[k * C + j] : k == j ? g_sign[k] * exp(logs[k]) : 0;
                acc += L * U;
            }
            Wr[g_perm[i] * C + j] = acc;
        }
    double Wg[16];
    for (int i = 0; i < 16; i++) Wg[i] = W->data[i];
    EXPECT(ug_test_allclose_f64("lu weight", Wg, Wr, 16, 1e-6, 1e-5), "lu weight");
    detW = logabsdet(Wr, C);
    EXPECT(fabs(detW - (logs[0] + logs[1] + logs[2] + logs[3])) < 1e-5,
           "log|det W| %g, sum logs %g", detW, logs[0] + logs[1] + logs[2] + logs[3]);
    ug_ctx_free(ctx);
}

/* ---------------------------------------------------------------- layers */
typedef struct {
    ug_fl_layer L;
    ug_params *ps;
    ug_ctx *ctx;
    int n;          /* values per example */
} layer_case;

/* The layer's map of one example: y = [removed latents (factor-out), output], and log|det|. */
static void layer_apply(layer_case *c, const float *x, int64_t B, float *y, float *ld) {
    ug_fl_layer *L = &c->L;
    ug_ctx_reset(c->ctx);
    ug_tensor *xt = L->image ? ug_tensor_from(c->ctx, 4, (int64_t[]){B, L->C, L->H, L->W}, x)
                             : ug_tensor_from(c->ctx, 2, (int64_t[]){B, L->C}, x);
    ug_tensor *lt = ug_tensor_zeros(c->ctx, 1, (int64_t[]){B}), *zo = NULL;
    ug_tensor *out = ug_fl_forward(c->ctx, L, xt, &lt, &zo, 0);
    int64_t nz = zo ? zo->numel / B : 0, no = out->numel / B;
    ASSERT(nz + no == c->n, "layer kind %d: %lld + %lld values out of %d", (int)L->kind,
           (long long)nz, (long long)no, c->n);
    for (int64_t b = 0; b < B; b++) {
        if (nz) memcpy(y + b * c->n, zo->data + b * nz, (size_t)nz * sizeof *y);
        memcpy(y + b * c->n + nz, out->data + b * no, (size_t)no * sizeof *y);
        if (ld) ld[b] = lt->data[b];
    }
}

static void layer_map(void *self, const float *x, float *y) { layer_apply(self, x, 1, y, NULL); }

static void layer_invert(layer_case *c, const float *y, int64_t B, float *x) {
    ug_fl_layer *L = &c->L;
    ug_ctx_reset(c->ctx);
    int Co, Ho, Wo;
    ug_fl_out_shape(L, &Co, &Ho, &Wo);
    int64_t nz = L->kind == UG_FL_FACTOR ? (int64_t)(L->C / 2) * L->H * L->W : 0, no = c->n - nz;
    ug_tensor *zt = NULL, *yt;
    float *zb = malloc((size_t)(B * (nz + 1)) * sizeof *zb), *ob = malloc((size_t)(B * no) * sizeof *ob);
    for (int64_t b = 0; b < B; b++) {
        memcpy(zb + b * nz, y + b * c->n, (size_t)nz * sizeof *zb);
        memcpy(ob + b * no, y + b * c->n + nz, (size_t)no * sizeof *ob);
    }
    if (nz) zt = ug_tensor_from(c->ctx, 4, (int64_t[]){B, L->C / 2, L->H, L->W}, zb);
    yt = L->image ? ug_tensor_from(c->ctx, 4, (int64_t[]){B, Co, Ho, Wo}, ob)
                  : ug_tensor_from(c->ctx, 2, (int64_t[]){B, Co}, ob);
    ug_tensor *xt = ug_fl_inverse(c->ctx, L, yt, zt);
    memcpy(x, xt->data, (size_t)(B * c->n) * sizeof *x);
    free(zb);
    free(ob);
}

/* Round trip and log-determinant of one layer on B = 3 random examples. */
static void check_layer(const char *what, layer_case *c, float perturb) {
    ASSERT_OK(ug_params_finalize(c->ps));
    ug_params_init_uniform(c->ps, 11);
    ug_fl_init(&c->L, 5, 0, 1);
    perturb_params(c->ps, perturb, 12);
    ASSERT_OK(ug_ctx_create(&c->ctx, 0));
    ug_ctx_set_grad(c->ctx, 0);
    const int B = 3, n = c->n;
    float *x = malloc((size_t)(B * n) * sizeof *x), *y = malloc((size_t)(B * n) * sizeof *y),
          *xb = malloc((size_t)(B * n) * sizeof *xb), ld[3];
    fill_uniform(x, B * n, 3, 0, -1.5f, 1.5f);
    layer_apply(c, x, B, y, ld);
    layer_invert(c, y, B, xb);
    double scale, err = max_abs_diff(xb, x, B * n, &scale);
    EXPECT(err <= 1e-4 * scale, "%s: round trip error %g (scale %g)", what, err, scale);
    for (int b = 0; b < B; b++) {
        double bl = brute_logdet(layer_map, c, x + b * n, n);
        EXPECT(fabs(bl - ld[b]) <= 2e-3 * (1 + fabs(bl)), "%s: example %d log|det| %.6f, brute "
               "force %.6f", what, b, ld[b], bl);
    }
    free(x);
    free(y);
    free(xb);
    ug_fl_free(&c->L);
    ug_ctx_free(c->ctx);
    ug_params_free(c->ps);
}

TEST(flow_layers_roundtrip_logdet) {
    layer_case c;
    /* additive (NICE): both parities, odd d */
    for (int par = 0; par < 2; par++) {
        memset(&c, 0, sizeof c);
        ASSERT_OK(ug_params_create(&c.ps));
        ASSERT_OK(ug_fl_declare_additive(&c.L, c.ps, "m", 7, par, 8, 2));
        c.n = 7;
        check_layer(par ? "additive odd" : "additive even", &c, 0.3f);
    }
    /* affine, vector parity masks */
    for (int par = 0; par < 2; par++) {
        memset(&c, 0, sizeof c);
        ASSERT_OK(ug_params_create(&c.ps));
        ASSERT_OK(ug_fl_declare_affine(&c.L, c.ps, "net", 0, 5, 1, 1, UG_FL_MASK_PARITY, par, 8,
                                       2, 2.0f));
        c.n = 5;
        check_layer("affine parity", &c, 0.3f);
    }
    /* affine, checkerboard and channel masks on a 2 x 4 x 4 image */
    for (int mk = 0; mk < 2; mk++)
        for (int par = 0; par < 2; par++) {
            memset(&c, 0, sizeof c);
            ASSERT_OK(ug_params_create(&c.ps));
            ASSERT_OK(ug_fl_declare_affine(&c.L, c.ps, "net", 1, 2, 4, 4,
                                           mk ? UG_FL_MASK_CHANNEL : UG_FL_MASK_CHECKER, par, 4,
                                           2, 2.0f));
            c.n = 32;
            check_layer(mk ? "affine channel" : "affine checker", &c, 0.2f);
        }
    memset(&c, 0, sizeof c);
    ASSERT_OK(ug_params_create(&c.ps));
    ASSERT_OK(ug_fl_declare_affine_split(&c.L, c.ps, "net", 4, 2, 2, 4, 2.0f));
    c.n = 16;
    check_layer("affine split (glow)", &c, 0.2f);
    memset(&c, 0, sizeof c);
    ASSERT_OK(ug_params_create(&c.ps));
    ASSERT_OK(ug_fl_declare_scale(&c.L, c.ps, "s", 6));
    c.n = 6;
    check_layer("scale", &c, 0.5f);
    memset(&c, 0, sizeof c);
    ASSERT_OK(ug_params_create(&c.ps));
    ASSERT_OK(ug_fl_declare_actnorm(&c.L, c.ps, "an", 2, 2, 3));
    c.n = 12;
    check_layer("actnorm", &c, 0.5f);
    memset(&c, 0, sizeof c);
    ASSERT_OK(ug_params_create(&c.ps));
    ASSERT_OK(ug_fl_declare_invconv(&c.L, c.ps, "inv", 3, 2, 2));
    c.n = 12;
    check_layer("invconv", &c, 0.1f);
    memset(&c, 0, sizeof c);
    ASSERT_OK(ug_params_create(&c.ps));
    ASSERT_OK(ug_fl_declare_squeeze(&c.L, 2, 4, 4));
    c.n = 32;
    check_layer("squeeze", &c, 0.0f);
    memset(&c, 0, sizeof c);
    ASSERT_OK(ug_params_create(&c.ps));
    ASSERT_OK(ug_fl_declare_factor(&c.L, 4, 2, 2));
    c.n = 16;
    check_layer("factor-out", &c, 0.0f);
}

TEST(flow_squeeze_layout) {
    /* c' = 4c + 2dy + dx at (i, j) holds x[c, 2i + dy, 2j + dx]. */
    layer_case c;
    memset(&c, 0, sizeof c);
    ASSERT_OK(ug_fl_declare_squeeze(&c.L, 2, 4, 6));
    ASSERT_OK(ug_ctx_create(&c.ctx, 0));
    c.n = 48;
    float x[48], y[48];
    for (int i = 0; i < 48; i++) x[i] = (float)i;
    layer_apply(&c, x, 1, y, NULL);
    int bad = 0;
    for (int ch = 0; ch < 2; ch++)
        for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++)
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 3; j++)
                        bad += y[((4 * ch + 2 * dy + dx) * 2 + i) * 3 + j] !=
                               x[(ch * 4 + 2 * i + dy) * 6 + 2 * j + dx];
    EXPECT(!bad, "squeeze layout: %d misplaced values", bad);
    ug_ctx_free(c.ctx);
}

TEST(flow_actnorm_data_init) {
    ug_params *ps;
    ug_fl_layer L;
    ASSERT_OK(ug_params_create(&ps));
    ASSERT_OK(ug_fl_declare_actnorm(&L, ps, "an", 3, 4, 4));
    ASSERT_OK(ug_params_finalize(ps));
    ug_fl_init(&L, 0, 0, 1);
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_ctx_set_grad(ctx, 0);
    const int B = 8, n = 48;
    float x[8 * 48];
    fill_uniform(x, B * n, 4, 0, 0, 1);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < 16; k++) {
            x[b * n + k] = 3 + 5 * x[b * n + k];        /* channel 0: mean 5.5 */
            x[b * n + 32 + k] = -2 + 0.1f * x[b * n + 32 + k];
        }
    ug_tensor *xt = ug_tensor_from(ctx, 4, (int64_t[]){B, 3, 4, 4}, x);
    ug_tensor *ld = ug_tensor_zeros(ctx, 1, (int64_t[]){B}), *zo = NULL;
    ug_tensor *y = ug_fl_forward(ctx, &L, xt, &ld, &zo, 1);
    for (int ch = 0; ch < 3; ch++) {
        double s = 0, s2 = 0;
        for (int b = 0; b < B; b++)
            for (int k = 0; k < 16; k++) {
                double v = y->data[(b * 3 + ch) * 16 + k];
                s += v;
                s2 += v * v;
            }
        double mean = s / (B * 16), var = s2 / (B * 16) - mean * mean;
        EXPECT(fabs(mean) < 1e-5 && fabs(var - 1) < 1e-4, "channel %d: mean %g var %g", ch, mean, var);
    }
    double ldr = 16.0 * (L.logs->data[0] + L.logs->data[1] + L.logs->data[2]);
    EXPECT(fabs(ld->data[0] - ldr) < 1e-4, "actnorm logdet %g vs %g", ld->data[0], ldr);
    ug_ctx_free(ctx);
    ug_fl_free(&L);
    ug_params_free(ps);
}

/* ---------------------------------------------------------------- models */
typedef struct {
    ug_model_cfg cfg;
    ug_params *ps;
    void *impl;
} flow_case;

static void flow_make(flow_case *f, const char *net, int d, int C, int H, int W, int hidden,
                      int depth, int K, int levels, const char *prior) {
    memset(f, 0, sizeof *f);
    f->cfg = ug_model_cfg_default();
    f->cfg.family = UG_FAMILY_FLOW;
    snprintf(f->cfg.net, sizeof f->cfg.net, "%s", net);
    f->cfg.data_dim = d;
    f->cfg.channels = C;
    f->cfg.height = H;
    f->cfg.width = W;
    f->cfg.hidden = hidden;
    f->cfg.depth = depth;
    f->cfg.couplings = K;
    f->cfg.levels = levels;
    snprintf(f->cfg.prior, sizeof f->cfg.prior, "%s", prior);
    ASSERT_OK(ug_params_create(&f->ps));
    ASSERT_OK(ug_flow_family.declare(&f->cfg, f->ps, &f->impl));
    ASSERT_OK(ug_params_finalize(f->ps));
    ug_params_init_uniform(f->ps, 7);
    ASSERT_OK(ug_flow_family.init(f->impl, f->ps, 7));
}

static void flow_drop(flow_case *f) {
    ug_flow_family.free_impl(f->impl);
    ug_params_free(f->ps);
}

static void flow_map(void *self, const float *x, float *z) {
    flow_case *f = self;
    double ld;
    if (ug_flow_encode(f->impl, 1, x, z, &ld)) ug_test_fail(__FILE__, __LINE__, "encode failed");
}

/* Round trip on 5 examples, log|det| of 2 against the brute-force Jacobian, and nll =
 * -(log p_Z(z) + log|det|) with the prior written out. */
static void check_model(const char *what, flow_case *f, float lo, float hi) {
    const int n = 5, d = f->cfg.data_dim;
    float *x = malloc((size_t)(n * d) * sizeof *x), *z = malloc((size_t)(n * d) * sizeof *z),
          *xb = malloc((size_t)(n * d) * sizeof *xb);
    double ld[5], nll[5];
    fill_uniform(x, n * d, 21, 0, lo, hi);
    ASSERT_OK(ug_flow_encode(f->impl, n, x, z, ld));
    ASSERT_OK(ug_flow_decode(f->impl, n, z, xb));
    double scale, err = max_abs_diff(xb, x, n * d, &scale);
    EXPECT(err <= 1e-4 * scale, "%s: round trip error %g (scale %g)", what, err, scale);
    double zs = 0;
    for (int i = 0; i < n * d; i++) zs = ug_test_worst(zs, fabs(z[i] - x[i]));
    EXPECT(zs > 1e-2, "%s: the flow is (nearly) the identity, max |z - x| = %g", what, zs);
    for (int b = 0; b < 2; b++) {
        double bl = brute_logdet(flow_map, f, x + b * d, d);
        EXPECT(fabs(bl - ld[b]) <= 2e-3 * (1 + fabs(bl)), "%s: example %d log|det| %.6f, brute "
               "force %.6f", what, b, ld[b], bl);
    }
    ug_nll_cfg nc = ug_nll_default();
    ASSERT_OK(ug_flow_family.nll(f->impl, &nc, n, x, nll));
    int logistic = !strcmp(f->cfg.prior, "logistic") ||
                   (!f->cfg.prior[0] && !strncmp(f->cfg.net, "nice", 4));
    for (int b = 0; b < n; b++) {
        double lp = 0;
        for (int j = 0; j < d; j++) {
            double v = z[b * d + j];
            lp += logistic ? -(log1p(exp(v)) + log1p(exp(-v))) : -0.5 * v * v - 0.5 * log(2 * M_PI);
        }
        EXPECT(fabs(nll[b] + lp + ld[b]) < 1e-4 * (1 + fabs(nll[b])), "%s: nll %g, -(log p_Z + "
               "logdet) %g", what, nll[b], -(lp + ld[b]));
    }
    free(x);
    free(z);
    free(xb);
}

TEST(flow_models_roundtrip_logdet) {
    flow_case f;
    flow_make(&f, "nice", 8, 0, 0, 0, 8, 2, 4, 0, "");
    perturb_params(f.ps, 0.2f, 3);
    check_model("nice d=8", &f, 0, 1);
    flow_drop(&f);
    flow_make(&f, "nice", 7, 0, 0, 0, 6, 3, 3, 0, "gaussian");
    perturb_params(f.ps, 0.2f, 3);
    check_model("nice d=7 gaussian", &f, 0, 1);
    flow_drop(&f);
    flow_make(&f, "realnvp", 6, 0, 0, 0, 8, 2, 4, 0, "");
    perturb_params(f.ps, 0.2f, 4);
    check_model("realnvp d=6", &f, -2, 2);
    flow_drop(&f);
    flow_make(&f, "realnvp", 2, 0, 0, 0, 8, 2, 4, 0, "logistic");
    perturb_params(f.ps, 0.2f, 4);
    check_model("realnvp d=2 logistic", &f, -2, 2);
    flow_drop(&f);
    flow_make(&f, "realnvp", 16, 1, 4, 4, 4, 2, 2, 2, "");
    perturb_params(f.ps, 0.1f, 5);
    check_model("realnvp 1x4x4", &f, 0, 1);
    flow_drop(&f);
    flow_make(&f, "realnvp", 32, 2, 4, 4, 4, 2, 2, 2, "");
    perturb_params(f.ps, 0.1f, 5);
    check_model("realnvp 2x4x4", &f, 0, 1);
    flow_drop(&f);
    flow_make(&f, "glow", 16, 1, 4, 4, 4, 0, 2, 2, "");
    perturb_params(f.ps, 0.1f, 6);
    check_model("glow 1x4x4", &f, 0, 1);
    flow_drop(&f);
    flow_make(&f, "glow", 32, 2, 4, 4, 4, 0, 2, 2, "");
    perturb_params(f.ps, 0.1f, 6);
    check_model("glow 2x4x4", &f, 0, 1);
    flow_drop(&f);
}

TEST(flow_model_errors) {
    ug_params *ps;
    void *impl = NULL;
    ug_model_cfg c = ug_model_cfg_default();
    c.family = UG_FAMILY_FLOW;
    struct { const char *net; int d, C, H, W; const char *prior; const char *needle; } bad[] = {
        {"maf", 2, 0, 0, 0, "", "unknown"},
        {"nice-mnist", 100, 0, 0, 0, "", "784"},
        {"nice-mnist", 784, 0, 0, 0, "gaussian", "logistic"},
        {"glow", 16, 0, 0, 0, "", "images"},
        {"glow", 15, 1, 3, 5, "", "even"},
        {"realnvp", 16, 1, 4, 3, "", "product"},
        {"realnvp", 2, 0, 0, 0, "cauchy", "prior"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(c.net, sizeof c.net, "%s", bad[k].net);
        c.data_dim = bad[k].d;
        c.channels = bad[k].C;
        c.height = bad[k].H;
        c.width = bad[k].W;
        snprintf(c.prior, sizeof c.prior, "%s", bad[k].prior);
        ASSERT_OK(ug_params_create(&ps));
        ug_status st = ug_flow_family.declare(&c, ps, &impl);
        EXPECT(st == UG_ERR_INVALID_ARG && strstr(ug_last_error(), bad[k].needle),
               "case %zu (%s): status %d, message '%s'", k, bad[k].net, (int)st, ug_last_error());
        if (!st) ug_flow_family.free_impl(impl);
        ug_params_free(ps);
    }
}

/* ---------------------------------------------------------------- NICE-MNIST */
static ug_model *make_model(const char *net, int d, int C, int H, int W, int hidden, int depth,
                            int K, const char *prior, uint64_t seed) {
    ug_model_cfg c = ug_model_cfg_default();
    c.family = UG_FAMILY_FLOW;
    snprintf(c.net, sizeof c.net, "%s", net);
    c.data_dim = d;
    c.channels = C;
    c.height = H;
    c.width = W;
    c.hidden = hidden;
    c.depth = depth;
    c.couplings = K;
    snprintf(c.prior, sizeof c.prior, "%s", prior);
    ug_model *m = NULL;
    ug_status st = ug_model_create(&c, seed, &m);
    if (st) {
        ug_test_fail(__FILE__, __LINE__, "ug_model_create(%s): %s", net, ug_last_error());
        ug_test_abort();
    }
    return m;
}

/* log p(x) of peers/nice.py's NICE written out in double: coupling MLPs by naive loops over
 * the parameters found by their PyTorch names. */
static double nice_logp_direct(ug_params *ps, const float *x) {
    double xe[392], xo[392], *h0 = malloc(1000 * sizeof *h0), *h1 = malloc(1000 * sizeof *h1);
    for (int j = 0; j < 392; j++) {
        xe[j] = x[2 * j];
        xo[j] = x[2 * j + 1];
    }
    for (int i = 0; i < 4; i++) {
        double *in = i % 2 ? xo : xe, *upd = i % 2 ? xe : xo;
        const double *cur = in;
        int nin = 392;
        for (int l = 0; l < 6; l++) {
            char name[32];
            snprintf(name, sizeof name, "m.%d.%d.weight", i, 2 * l);
            const ug_tensor *w = ug_params_find(ps, name);
            snprintf(name, sizeof name, "m.%d.%d.bias", i, 2 * l);
            const ug_tensor *b = ug_params_find(ps, name);
            int nout = (int)w->shape[0];
            double *out = l % 2 ? h1 : h0;
            for (int o = 0; o < nout; o++) {
                double acc = b->data[o];
                for (int k = 0; k < nin; k++) acc += (double)w->data[o * nin + k] * cur[k];
                out[o] = l < 5 ? fmax(acc, 0.0) : acc;
            }
            cur = out;
            nin = nout;
        }
        for (int j = 0; j < 392; j++) upd[j] += cur[j];
    }
    const float *s = ug_params_find(ps, "s")->data;
    double lp = 0;
    for (int j = 0; j < 784; j++) {
        double y = j % 2 ? xo[j / 2] : xe[j / 2], hh = y * exp((double)s[j]);
        lp += -(log1p(exp(hh)) + log1p(exp(-hh))) + s[j];
    }
    free(h0);
    free(h1);
    return lp;
}

TEST(flow_nice_mnist_structure_and_loglik) {
    ug_model *m = make_model("nice-mnist", 784, 1, 28, 28, 0, 0, 0, "", 42);
    ug_params *ps = ug_model_params(m);
    EXPECT(ug_params_count(ps) == 19158352, "parameters %lld, peers/nice.py has 19,158,352",
           (long long)ug_params_count(ps));
    EXPECT(ug_params_num_tensors(ps) == 49, "%d tensors, expected 4 x 12 + 1", ug_params_num_tensors(ps));
    static const struct { const char *name; int64_t r, c; } shapes[] = {
        {"m.0.0.weight", 1000, 392}, {"m.0.0.bias", 1000, 0}, {"m.1.2.weight", 1000, 1000},
        {"m.2.8.bias", 1000, 0}, {"m.3.10.weight", 392, 1000}, {"m.3.10.bias", 392, 0},
        {"s", 784, 0}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        ug_tensor *t = ug_params_find(ps, shapes[k].name);
        ASSERT(t, "no parameter '%s'", shapes[k].name);
        EXPECT(t->shape[0] == shapes[k].r && (shapes[k].c ? t->ndim == 2 && t->shape[1] == shapes[k].c
                                                          : t->ndim == 1),
               "'%s' has the wrong shape", shapes[k].name);
    }
    /* PyTorch's default init: U(+-1/sqrt(fan_in)) for weights and biases, s = 0. */
    ug_tensor *w0 = ug_params_find(ps, "m.0.0.weight"), *b5 = ug_params_find(ps, "m.1.10.bias");
    double mw = 0, mb = 0;
    for (int64_t j = 0; j < w0->numel; j++) mw = fmax(mw, fabs(w0->data[j]));
    for (int64_t j = 0; j < b5->numel; j++) mb = fmax(mb, fabs(b5->data[j]));
    EXPECT(mw <= 1 / sqrt(392.0) && mw > 0.95 / sqrt(392.0), "m.0.0.weight bound %g", mw);
    EXPECT(mb <= 1 / sqrt(1000.0) && mb > 0.9 / sqrt(1000.0), "m.1.10.bias bound %g", mb);
    ug_tensor *s = ug_params_find(ps, "s");
    double ms = 0;
    for (int j = 0; j < 784; j++) ms = fmax(ms, fabs(s->data[j]));
    EXPECT(ms == 0, "s is not zero at init (max %g)", ms);
    /* The log-likelihood at init and with a random s, against the direct computation. */
    float x[3 * 784];
    fill_uniform(x, 3 * 784, 8, 0, 0, 1);
    double nll[3];
    for (int pass = 0; pass < 2; pass++) {
        if (pass) fill_uniform(s->data, 784, 9, 0, -0.2f, 0.2f);
        ASSERT_OK(ug_model_nll(m, NULL, 3, x, nll));
        for (int b = 0; b < 3; b++) {
            double ref = nice_logp_direct(ps, x + b * 784);
            EXPECT(fabs(-nll[b] - ref) < 1e-5 * fabs(ref) + 1e-3, "pass %d example %d: log p %.6f, "
                   "direct %.6f", pass, b, -nll[b], ref);
        }
    }
    ug_model_free(m);
}

/* The log-likelihood of peers/nice.py's model itself (tests/ref/gen_flow_ref.py) with weights
 * from a closed formula both sides compute. */
TEST(flow_nice_mnist_torch_fixture) {
    ug_model *m = make_model("nice-mnist", 784, 1, 28, 28, 0, 0, 0, "", 1);
    ug_params *ps = ug_model_params(m);
    for (int i = 0; i < ug_params_num_tensors(ps); i++) {
        ug_tensor *t = ug_params_tensor(ps, i);
        for (int64_t j = 0; j < t->numel; j++)
            t->data[j] = (float)(FLOW_REF_AMP * sin(FLOW_REF_FREQ * (double)j + (double)i)) /
                         (float)sqrt((double)(t->ndim == 2 ? t->shape[1] : 1000));
    }
    float x[FLOW_REF_N * 784];
    for (int b = 0; b < FLOW_REF_N; b++)
        for (int j = 0; j < 784; j++)
            x[b * 784 + j] = (float)(0.5 + 0.49 * sin(0.37 * j + 1.3 * b));
    double nll[FLOW_REF_N];
    ASSERT_OK(ug_model_nll(m, NULL, FLOW_REF_N, x, nll));
    for (int b = 0; b < FLOW_REF_N; b++)
        EXPECT(fabs(-nll[b] - flow_ref_nice_logp[b]) < 1e-5 * fabs(flow_ref_nice_logp[b]),
               "example %d: log p %.6f, PyTorch %.6f", b, -nll[b], flow_ref_nice_logp[b]);
    ug_model_free(m);
    /* UG_FLOW_DUMP=DIR: a default-initialized model as a checkpoint with inputs and unigen's
     * log p, for gen_flow_ref.py --check DIR (PyTorch loads the same weights by name). */
    const char *dir = getenv("UG_FLOW_DUMP");
    if (!dir) return;
    m = make_model("nice-mnist", 784, 1, 28, 28, 0, 0, 0, "", 42);
    fill_uniform(ug_params_find(ug_model_params(m), "s")->data, 784, 9, 0, -0.2f, 0.2f);
    fill_uniform(x, FLOW_REF_N * 784, 8, 0, 0, 1);
    ASSERT_OK(ug_model_nll(m, NULL, FLOW_REF_N, x, nll));
    double lp[FLOW_REF_N];
    for (int b = 0; b < FLOW_REF_N; b++) lp[b] = -nll[b];
    char path[512];
    snprintf(path, sizeof path, "%s/nice.safetensors", dir);
    ASSERT_OK(ug_ckpt_save(path, ug_model_params(m), NULL, NULL, 0, "{}"));
    snprintf(path, sizeof path, "%s/x.npy", dir);
    ASSERT_OK(ug_npy_write_f32(path, 2, (int64_t[]){FLOW_REF_N, 784}, x));
    snprintf(path, sizeof path, "%s/logp.npy", dir);
    ASSERT_OK(ug_npy_write_f64(path, 1, (int64_t[]){FLOW_REF_N}, lp));
    ug_model_free(m);
}

/* ---------------------------------------------------------------- training */
static double train(ug_model *m, const ug_dataset *ds, int steps, int batch, float lr,
                    double *first, double *last) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_params *ps = ug_model_params(m);
    ug_adam opt;
    ASSERT_OK(ug_adam_init(&opt, ps, ug_adam_default()));
    ug_loader L;
    ASSERT_OK(ug_loader_init(&L, ds, batch, 3, 0, 1, 1, 1));
    int64_t d = ug_dataset_dim(ds);
    float *x = malloc((size_t)(batch * d) * sizeof *x);
    uint32_t epoch = 0;
    ug_loader_start_epoch(&L, 0);
    double t0 = ug_test_now_s(), run = 0;
    ug_lr_schedule sch = {UG_LR_COSINE, lr, 0, steps, 0.05f * lr};
    for (int step = 0; step < steps; step++) {
        int64_t B = ug_loader_next(&L, x, NULL, NULL);
        if (!B) {
            ug_loader_start_epoch(&L, ++epoch);
            B = ug_loader_next(&L, x, NULL, NULL);
        }
        if (step == 0) ASSERT_OK(ug_model_data_init(m, x, B));
        ug_tensor *loss;
        ASSERT_OK(ug_model_loss(m, ctx, x, B, NULL, 0, 0, &loss));
        double v = loss->data[0];
        if (step == 0) *first = v;
        run = step < 20 ? v : 0.95 * run + 0.05 * v;
        ug_params_zero_grad(ps);
        ASSERT_OK(ug_backward(ctx, loss));
        ug_adam_step(&opt, ps, ug_lr_at(&sch, step));
        ug_ctx_reset(ctx);
    }
    *last = run;
    free(x);
    ug_loader_free(&L);
    ug_adam_free(&opt);
    ug_ctx_free(ctx);
    return ug_test_now_s() - t0;
}

/* -log p of 8gaussians: centres 4 (cos, sin)(k pi / 4) / 1.414, std 0.5 / 1.414, equal weights
 * (src/data/toy2d.c). */
static double eight_gaussians_nll(const float *p) {
    double sd = 0.5 / 1.414, acc = 0;
    for (int k = 0; k < 8; k++) {
        double a = k * M_PI / 4, mx = 4 * cos(a) / 1.414, my = 4 * sin(a) / 1.414;
        double r2 = (p[0] - mx) * (p[0] - mx) + (p[1] - my) * (p[1] - my);
        acc += exp(-0.5 * r2 / (sd * sd)) / (2 * M_PI * sd * sd) / 8;
    }
    return -log(acc);
}

TEST(flow_realnvp_8gaussians) {
    ug_dataset tr, te;
    ASSERT_OK(ug_dataset_load("8gaussians", 1, 0, 1, &tr));
    ASSERT_OK(ug_dataset_load("8gaussians", 0, 4096, 1, &te));
    /* UG_FLOW_LONG=1: the default width 128 and 6000 steps (about 30 s), for a closer fit. */
    int lng = getenv("UG_FLOW_LONG") != NULL, steps = lng ? 6000 : 800;
    ug_model *m = make_model("realnvp", 2, 0, 0, 0, lng ? 128 : 64, 2, 8, "", 5);
    double first, last;
    double dt = train(m, &tr, steps, 256, 5e-3f, &first, &last);
    double *nll = malloc((size_t)te.n * sizeof *nll), mean = 0, ce = 0;
    ASSERT_OK(ug_model_nll(m, NULL, te.n, te.x, nll));
    for (int64_t i = 0; i < te.n; i++) {
        mean += nll[i] / (double)te.n;
        ce += eight_gaussians_nll(te.x + 2 * i) / (double)te.n;
    }
    printf("    realnvp 8gaussians: %d steps in %.1f s, loss %.3f -> %.3f, test nll %.3f, true "
           "cross-entropy %.3f (gap %.3f)\n", steps, dt, first, last, mean, ce, mean - ce);
    EXPECT(mean - ce < 0.3, "test nll %.3f is more than 0.3 nats above the true %.3f", mean, ce);
    EXPECT(mean - ce > -0.05, "test nll %.3f is below the true cross-entropy %.3f", mean, ce);
    free(nll);
    ug_model_free(m);
    ug_dataset_free(&tr);
    ug_dataset_free(&te);
}

TEST(flow_realnvp_moons) {
    ug_dataset tr;
    ASSERT_OK(ug_dataset_load("moons", 1, 0, 2, &tr));
    ug_model *m = make_model("realnvp", 2, 0, 0, 0, 64, 2, 6, "", 6);
    double first, last;
    train(m, &tr, 400, 256, 5e-3f, &first, &last);
    printf("    realnvp moons: loss %.3f -> %.3f\n", first, last);
    /* The moons density has entropy near 2.3 nats: two arcs of length 2 pi (log 4 pi = 2.53)
     * blurred by N(0, 0.2^2) across them (-0.19). */
    EXPECT(last < first - 1.0 && last < 2.7, "moons loss %.3f -> %.3f", first, last);
    ug_model_free(m);
    ug_dataset_free(&tr);
}

/* Images: a short run of each image model on 8 x 8 blobs; the loss must fall. */
TEST(flow_image_models_train) {
    ug_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n = 256;
    ds.ndim = 3;
    ds.shape[0] = 1;
    ds.shape[1] = 8;
    ds.shape[2] = 8;
    ds.x = malloc(256 * 64 * sizeof *ds.x);
    for (int i = 0; i < 256; i++) {
        float cx[4];
        fill_uniform(cx, 4, 30, (uint64_t)i, 0, 1);
        for (int r = 0; r < 8; r++)
            for (int c = 0; c < 8; c++) {
                double d2 = (r - 2 - 4 * cx[0]) * (r - 2 - 4 * cx[0]) + (c - 2 - 4 * cx[1]) * (c - 2 - 4 * cx[1]);
                ds.x[i * 64 + r * 8 + c] = (float)(exp(-d2 / 4) + 0.05 * cx[2]);
            }
    }
    const char *nets[2] = {"realnvp", "glow"};
    for (int k = 0; k < 2; k++) {
        ug_model *m = make_model(nets[k], 64, 1, 8, 8, 16, 0, 2, "", 9);
        double first, last;
        train(m, &ds, 40, 32, 2e-3f, &first, &last);
        printf("    %s 8x8: loss %.2f -> %.2f\n", nets[k], first, last);
        EXPECT(last < first - 20, "%s: loss %.2f -> %.2f", nets[k], first, last);
        float smp[4 * 64];
        ug_sample_cfg sc = ug_sample_cfg_default();
        double out[4 * 64];
        sc.temperature = 0.7;
        ASSERT_OK(ug_model_sample(m, &sc, 4, NULL, NULL, out, NULL));
        int finite = 1;
        for (int j = 0; j < 4 * 64; j++) {
            smp[j] = (float)out[j];
            finite &= isfinite(smp[j]);
        }
        EXPECT(finite, "%s: non-finite samples", nets[k]);
        ug_model_free(m);
    }
    free(ds.x);
}

/* ---------------------------------------------------------------- evaluation and sampling */
TEST(flow_nll_batch_invariant_and_sampling) {
    ug_model *m = make_model("realnvp", 3, 0, 0, 0, 16, 2, 4, "", 3);
    perturb_params(ug_model_params(m), 0.2f, 1);
    const int n = 300;
    float *x = malloc(n * 3 * sizeof *x);
    double *all = malloc(n * sizeof *all), one;
    fill_uniform(x, n * 3, 2, 0, -2, 2);
    ASSERT_OK(ug_model_nll(m, NULL, n, x, all));
    int same = 1;
    for (int i = 0; i < n; i += 37) {
        ASSERT_OK(ug_model_nll(m, NULL, 1, x + 3 * i, &one));
        same &= one == all[i];
    }
    EXPECT(same, "nll of an example depends on its batch");
    /* Samples at temperature T are f^-1(T z0): encoding them gives the Philox draws back. */
    ug_sample_cfg sc = ug_sample_cfg_default();
    sc.temperature = 0.5;
    sc.seed = 77;
    sc.first_stream = 10;
    double *xs = malloc(n * 3 * sizeof *xs);
    ASSERT_OK(ug_model_sample(m, &sc, n, NULL, NULL, xs, NULL));
    float *z0 = malloc(n * 3 * sizeof *z0), *xf = malloc(n * 3 * sizeof *xf);
    ug_rng_normal_rows(77, 10, 0, z0, n, 3);
    for (int i = 0; i < n * 3; i++) xf[i] = (float)xs[i];
    double one_s[3];
    sc.first_stream = 10 + 5;
    ASSERT_OK(ug_model_sample(m, &sc, 1, NULL, NULL, one_s, NULL));
    EXPECT(one_s[0] == xs[15] && one_s[1] == xs[16] && one_s[2] == xs[17],
           "sample 5 depends on how many are drawn");
    ug_model_free(m);
    /* Through the family: encode(samples) = T z0. */
    flow_case f;
    flow_make(&f, "realnvp", 3, 0, 0, 0, 16, 2, 4, 0, "");
    perturb_params(f.ps, 0.2f, 1);
    float *smp = malloc(n * 3 * sizeof *smp), *z = malloc(n * 3 * sizeof *z);
    ASSERT_OK(ug_flow_family.sample(f.impl, n, 0.5, 77, 10, smp));
    ASSERT_OK(ug_flow_encode(f.impl, n, smp, z, NULL));
    for (int i = 0; i < n * 3; i++) z0[i] *= 0.5f;
    EXPECT(ug_test_allclose("encode(sample)", z, z0, n * 3, 1e-4, 1e-4), "temperature 0.5");
    flow_drop(&f);
    /* Logistic prior: z = T logit(u). */
    flow_make(&f, "nice", 4, 0, 0, 0, 8, 2, 2, 0, "");
    perturb_params(f.ps, 0.2f, 1);
    ASSERT_OK(ug_flow_family.sample(f.impl, 2, 2.0, 5, 0, smp));
    ASSERT_OK(ug_flow_encode(f.impl, 2, smp, z, NULL));
    for (int i = 0; i < 2; i++) {
        ug_rng r = ug_rng_make(5, (uint64_t)i, 0);
        float u[4];
        ug_rng_uniform(&r, u, 4);
        for (int j = 0; j < 4; j++) {
            double ref = 2.0 * log(u[j] / (1.0 - u[j]));
            EXPECT(fabs(z[i * 4 + j] - ref) < 1e-3 * (1 + fabs(ref)), "logistic z %g vs %g",
                   z[i * 4 + j], ref);
        }
    }
    flow_drop(&f);
    free(x);
    free(all);
    free(xs);
    free(z0);
    free(xf);
    free(smp);
    free(z);
}

TEST(flow_training_step_allocation_free) {
    ug_model *m = make_model("nice", 64, 0, 0, 0, 32, 3, 4, "", 1);
    float x[32 * 64];
    fill_uniform(x, 32 * 64, 1, 0, 0, 1);
    int64_t settled, end;
    ug_test_arena_steady(m, x, 32, 5, 2, &settled, &end);
    EXPECT(settled > 0 && end == settled, "the arena allocated after step 2: %lld -> %lld",
           (long long)settled, (long long)end);
    ug_model_free(m);
}
