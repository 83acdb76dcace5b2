/* test_ar.c — the autoregressive family (SPEC section 8; models/ar.c, ops/nade.c):
 * finite-difference gradients of NADE's fused op (input and every parameter, one and two
 * threads); its O(d H) forward against a naive O(d^2 H) double evaluation; the autoregressive
 * property d logit_i / d x_j = 0 for pos(j) >= pos(i) on the tape for every model and several
 * MADE masks (random orders, several layers, direct connections); probabilities summing to 1
 * over all 2^d vectors, single masks and the MADE ensemble; samples whose frequencies match
 * the exact probabilities and do not depend on the batch; the MADE preset against the peer
 * ../shared/peers/made.py (fixture tests/ref/gen_made_ref.py); a short training run reaching
 * the entropy of a small binary mixture; the mask schedule; an allocation-free training step;
 * made's dropout (training loss only, per-example streams). */
#include "test.h"
#include "core/core.h"
#include "models/ar.h"
#include "ops/ar_ops.h"

static ug_model_cfg ar_cfg(const char *net, int d, int hidden, const char *hidden_list, int masks,
                           int cycle, int order_random, int direct) {
    ug_model_cfg c = ug_model_cfg_default();
    c.family = UG_FAMILY_AR;
    snprintf(c.net, sizeof c.net, "%s", net);
    c.data_dim = d;
    c.hidden = hidden;
    snprintf(c.hidden_list, sizeof c.hidden_list, "%s", hidden_list);
    c.masks = masks;
    c.mask_cycle = cycle;
    c.order_random = order_random;
    c.direct = direct;
    return c;
}

static ug_model *make_model(const ug_model_cfg *c, uint64_t seed) {
    ug_model *m = NULL;
    ug_status st = ug_model_create(c, seed, &m);
    if (st) {
        ug_test_fail(__FILE__, __LINE__, "ug_model_create(%s): %s", c->net, ug_last_error());
        ug_test_abort();
    }
    return m;
}

/* The family built by hand, to reach its logits and masks (models/ar.h). */
typedef struct { ug_params *ps; void *impl; } fam;
static void fam_make(fam *f, const ug_model_cfg *c, uint64_t seed) {
    ASSERT_OK(ug_params_create(&f->ps));
    ASSERT_OK(ug_ar_family.declare(c, f->ps, &f->impl));
    ASSERT_OK(ug_params_finalize(f->ps));
    ug_params_init_uniform(f->ps, seed);
    if (ug_ar_family.init) ASSERT_OK(ug_ar_family.init(f->impl, f->ps, seed));
}
static void fam_free(fam *f) {
    ug_ar_family.free_impl(f->impl);
    ug_params_free(f->ps);
}

/* Every binary vector of dimension d, vector v's bit j = (v >> j) & 1. */
static float *all_vectors(int d) {
    int64_t n = (int64_t)1 << d;
    float *x = malloc((size_t)(n * d) * sizeof *x);
    for (int64_t v = 0; v < n; v++)
        for (int j = 0; j < d; j++) x[v * d + j] = (float)((v >> j) & 1);
    return x;
}

/* ---------------------------------------------------------------- NADE's fused op */
static ug_tensor *f_nade(ug_ctx *ctx, ug_tensor **in, void *user) {
    (void)user;
    return ug_nade_logits(ctx, in[0], in[1], in[2], in[3]);
}

TEST(ar_nade_gradcheck) {
    /* Continuous x in (-1, 2): the op is smooth in x too (d logit / d x feeds MADE-style
     * property checks and input gradients). Scaled-up weights make sigmoids nonlinear. */
    const int64_t shapes[][3] = {{3, 5, 4}, {2, 12, 7}};
    for (int s = 0; s < 2; s++) {
        int64_t B = shapes[s][0], d = shapes[s][1], H = shapes[s][2];
        ug_tensor *ins[4] = {
            ug_test_tensor(2, (int64_t[]){B, d}, 11 + s, -1.0f, 2.0f),
            ug_test_tensor(2, (int64_t[]){H, d}, 12 + s, -1.5f, 1.5f),
            ug_test_tensor(1, (int64_t[]){H}, 13 + s, -1.0f, 1.0f),
            ug_test_tensor(2, (int64_t[]){d, H}, 14 + s, -1.5f, 1.5f),
        };
        ug_gc_opts o = ug_gc_default();
        o.max_elems = 0;
        char name[64];
        snprintf(name, sizeof name, "nade_logits (%lld, %lld, %lld)", (long long)B, (long long)d,
                 (long long)H);
        EXPECT(ug_gradcheck(name, f_nade, NULL, ins, 4, o), "%s", name);
        for (int k = 0; k < 4; k++) ug_test_tensor_free(ins[k]);
    }
}

/* out_i = V_i . sigmoid(c + sum_{j<i} W[:, j] x_j), in double: O(d^2 H) per example. */
static void nade_naive(const float *x, const float *w, const float *c, const float *v, int64_t B,
                       int64_t d, int64_t H, double *out) {
    for (int64_t r = 0; r < B; r++)
        for (int64_t i = 0; i < d; i++) {
            double s = 0;
            for (int64_t k = 0; k < H; k++) {
                double a = c[k];
                for (int64_t j = 0; j < i; j++) a += (double)w[k * d + j] * x[r * d + j];
                s += (double)v[i * H + k] / (1.0 + exp(-a));
            }
            out[r * d + i] = s;
        }
}

TEST(ar_nade_matches_naive) {
    int64_t B = 4, d = 30, H = 9;
    ug_tensor *x = ug_test_tensor(2, (int64_t[]){B, d}, 21, 0.0f, 1.0f);
    for (int64_t j = 0; j < B * d; j++) x->data[j] = x->data[j] < 0.4f ? 1.0f : 0.0f;
    ug_tensor *w = ug_test_tensor(2, (int64_t[]){H, d}, 22, -1.0f, 1.0f);
    ug_tensor *c = ug_test_tensor(1, (int64_t[]){H}, 23, -1.0f, 1.0f);
    ug_tensor *v = ug_test_tensor(2, (int64_t[]){d, H}, 24, -1.0f, 1.0f);
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_tensor *out = ug_nade_logits(ctx, x, w, c, v);
    double *ref = malloc((size_t)(B * d) * sizeof *ref), *got = malloc((size_t)(B * d) * sizeof *got);
    nade_naive(x->data, w->data, c->data, v->data, B, d, H, ref);
    for (int64_t j = 0; j < B * d; j++) got[j] = out->data[j];
    EXPECT(ug_test_allclose_f64("nade O(dH) vs naive O(d^2 H)", got, ref, B * d, 1e-5, 1e-5),
           "nade forward");
    free(ref);
    free(got);
    ug_ctx_free(ctx);
    ug_test_tensor_free(x);
    ug_test_tensor_free(w);
    ug_test_tensor_free(c);
    ug_test_tensor_free(v);
}

/* Sizes past UG_PAR_MIN take the threaded paths (examples split in the forward, hidden units
 * in the backward): two threads must give one thread's results up to summation order. */
TEST(ar_nade_threads) {
    int64_t B = 20, d = 64, H = 100;   /* 3 blocks of examples in the forward */
    ug_tensor *ins[4] = {
        ug_test_tensor(2, (int64_t[]){B, d}, 31, 0.0f, 1.0f),
        ug_test_tensor(2, (int64_t[]){H, d}, 32, -0.3f, 0.3f),
        ug_test_tensor(1, (int64_t[]){H}, 33, -1.0f, 1.0f),
        ug_test_tensor(2, (int64_t[]){d, H}, 34, -0.3f, 0.3f),
    };
    float *R = malloc((size_t)(B * d) * sizeof *R), *res[2][5];
    ug_rng rr = ug_rng_make(5, 6, 0);
    ug_rng_normal(&rr, R, B * d);
    int old = ug_get_threads();
    for (int t = 0; t < 2; t++) {
        ug_set_threads(t + 1);
        ug_ctx *ctx;
        ASSERT_OK(ug_ctx_create(&ctx, 0));
        for (int k = 0; k < 4; k++) memset(ins[k]->grad, 0, (size_t)ins[k]->numel * sizeof(float));
        ug_tensor *out = ug_nade_logits(ctx, ins[0], ins[1], ins[2], ins[3]);
        ASSERT_OK(ug_backward_seed(ctx, out, R));
        res[t][4] = malloc((size_t)(B * d) * sizeof(float));
        memcpy(res[t][4], out->data, (size_t)(B * d) * sizeof(float));
        for (int k = 0; k < 4; k++) {
            res[t][k] = malloc((size_t)ins[k]->numel * sizeof(float));
            memcpy(res[t][k], ins[k]->grad, (size_t)ins[k]->numel * sizeof(float));
        }
        ug_ctx_free(ctx);
    }
    ug_set_threads(old);
    const char *names[5] = {"dx", "dW", "dc", "dV", "logits"};
    for (int k = 0; k < 5; k++) {
        int64_t n = k < 4 ? ins[k]->numel : B * d;
        EXPECT(ug_test_allclose(names[k], res[1][k], res[0][k], n, 1e-5, 1e-4), "nade 2 threads: %s",
               names[k]);
        free(res[0][k]);
        free(res[1][k]);
    }
    free(R);
    for (int k = 0; k < 4; k++) ug_test_tensor_free(ins[k]);
}

/* ---------------------------------------------------------------- the autoregressive property */
/* d logit_i / d x_j on the tape for every output i: zero whenever pos(j) >= pos(i). Returns the
 * number of nonzero entries below the diagonal, so a dead network cannot pass silently. */
static int64_t check_ar_property(const char *what, fam *f, int d, int mask) {
    ug_ctx *ctx;
    if (ug_ctx_create(&ctx, 0)) return -1;
    ug_params_set_requires_grad(f->ps, 0);
    const int64_t *order = ug_ar_order(f->impl, mask);
    int64_t pos[64], nonzero = 0;
    for (int p = 0; p < d; p++) pos[order[p]] = p;
    float *xv = malloc((size_t)d * sizeof *xv), *seed = calloc((size_t)d, sizeof *seed);
    ug_rng r = ug_rng_make(99, (uint64_t)mask, 0);
    ug_rng_uniform(&r, xv, d);
    int bad = 0;
    for (int i = 0; i < d && !bad; i++) {
        ug_ctx_reset(ctx);
        ug_tensor *x = ug_tensor_from(ctx, 2, (int64_t[]){1, d}, xv);
        ug_tensor_requires_grad(ctx, x);
        ug_tensor *lg = ug_ar_logits(f->impl, ctx, x, mask);
        memset(seed, 0, (size_t)d * sizeof *seed);
        seed[i] = 1;
        if (ug_backward_seed(ctx, lg, seed)) bad = 1;
        for (int j = 0; j < d && !bad; j++) {
            float g = x->grad[j];
            if (pos[j] >= pos[i] && g != 0) {
                ug_test_fail(__FILE__, __LINE__, "%s mask %d: d logit_%d / d x_%d = %g with "
                             "pos %lld >= %lld", what, mask, i, j, (double)g, (long long)pos[j],
                             (long long)pos[i]);
                bad = 1;
            }
            nonzero += pos[j] < pos[i] && g != 0;
        }
    }
    ug_params_set_requires_grad(f->ps, 1);
    free(xv);
    free(seed);
    ug_ctx_free(ctx);
    return bad ? -1 : nonzero;
}

TEST(ar_autoregressive_property) {
    int d = 9;
    struct { ug_model_cfg c; int nmask; } cases[] = {
        {ar_cfg("fvsbn", d, 0, "", 0, 0, 0, 0), 1},
        {ar_cfg("nade", d, 6, "", 0, 0, 0, 0), 1},
        {ar_cfg("made", d, 12, "", 1, 0, 0, 0), 1},
        {ar_cfg("made", d, 0, "16,12", 4, 1, 1, 0), 4},
        {ar_cfg("made", d, 0, "10,14,10", 3, 0, 1, 1), 3},
        {ar_cfg("made", d, 0, "8,8", 3, 1, 0, 1), 3},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        fam f;
        fam_make(&f, &cases[t].c, 7 + t);
        char what[96];
        snprintf(what, sizeof what, "%s '%s' K %d order_random %d direct %d", cases[t].c.net,
                 cases[t].c.hidden_list, cases[t].c.masks, cases[t].c.order_random, cases[t].c.direct);
        for (int k = 0; k < cases[t].nmask; k++) {
            int64_t nz = check_ar_property(what, &f, d, k);
            /* Below the diagonal there are d (d - 1) / 2 pairs; a healthy network reaches most. */
            EXPECT(nz >= d * (d - 1) / 4, "%s mask %d: only %lld nonzero d logit_i / d x_j with "
                   "pos(j) < pos(i)", what, k, (long long)nz);
        }
        if (cases[t].c.order_random) {
            const int64_t *o0 = ug_ar_order(f.impl, 0);
            int64_t first0 = o0[0], last0 = o0[d - 1];
            const int64_t *o1 = ug_ar_order(f.impl, 1);
            EXPECT(first0 != o1[0] || last0 != o1[d - 1], "%s: masks 0 and 1 share their order", what);
        }
        fam_free(&f);
    }
}

/* ---------------------------------------------------------------- exact normalization */
static double total_prob(ug_model *m, int d, int ensemble, double *nll) {
    int64_t n = (int64_t)1 << d;
    float *x = all_vectors(d);
    ug_nll_cfg c = ug_nll_default();
    c.ensemble = ensemble;
    ug_status st = ug_model_nll(m, &c, n, x, nll);
    free(x);
    if (st) {
        ug_test_fail(__FILE__, __LINE__, "nll: %s", ug_last_error());
        return NAN;
    }
    double s = 0;
    for (int64_t v = 0; v < n; v++) s += exp(-nll[v]);
    return s;
}

TEST(ar_exact_normalization) {
    int d = 7;
    double *nll = malloc(((size_t)1 << d) * sizeof *nll);
    ug_model_cfg cases[] = {
        ar_cfg("fvsbn", d, 0, "", 0, 0, 0, 0),
        ar_cfg("nade", d, 11, "", 0, 0, 0, 0),
        ar_cfg("made", d, 13, "", 1, 0, 0, 0),
        ar_cfg("made", d, 0, "12,9", 3, 0, 1, 1),
        ar_cfg("made", d, 0, "20", 4, 1, 0, 0),
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        ug_model *m = make_model(&cases[t], 40 + t);
        /* Larger weights than PyTorch's init: conditionals far from 1/2 test more. */
        ug_params *ps = ug_model_params(m);
        for (int64_t j = 0; j < ug_params_count(ps); j++) ug_params_data(ps)[j] *= 4.0f;
        int K = cases[t].masks > 0 ? cases[t].masks : 1;
        for (int e = 0; e <= K; e++) {
            double s = total_prob(m, d, e, nll);
            EXPECT(fabs(s - 1) <= 1e-6, "%s '%s' ensemble %d: sum of p(x) over 2^%d vectors = %.9f",
                   cases[t].net, cases[t].hidden_list, e, d, s);
            double mx = 0;
            for (int v = 0; v < (1 << d); v++) mx = fmax(mx, exp(-nll[v]));
            EXPECT(mx > 4.0 / (1 << d), "%s: the distribution is nearly uniform (max p %g)",
                   cases[t].net, mx);
        }
        ug_model_free(m);
    }
    free(nll);
}

/* MADE's evaluation runs each mask's layers packed once over chunks of rows, without the tape:
 * every per-example ensemble NLL must be bit for bit the one from the taped logits
 * (ug_ar_logits) on the same tiles of 64 rows (the last zero-padded), 4096 + 100 rows so that
 * a second, partial chunk runs too. */
TEST(made_ensemble_nll_matches_taped_logits) {
    const int d = 30;
    const int64_t n = 4096 + 100, T = 64;
    ug_model_cfg cases[] = {
        ar_cfg("made", d, 0, "64,48", 3, 0, 1, 1),
        ar_cfg("made", d, 40, "", 1, 0, 0, 0),
        ar_cfg("made", d, 0, "50,20,70", 2, 1, 1, 0),
    };
    float *x = malloc((size_t)(n * d) * sizeof *x), *xt = malloc((size_t)(T * d) * sizeof *xt);
    double *got = malloc((size_t)n * sizeof *got), lp[8];
    ug_rng r = ug_rng_make(5, 0, 0);
    ug_rng_uniform(&r, x, n * d);
    for (int64_t j = 0; j < n * d; j++) x[j] = x[j] < 0.4f ? 1.0f : 0.0f;
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        fam f;
        fam_make(&f, &cases[t], 60 + t);
        int E = cases[t].masks;
        ug_nll_cfg c = ug_nll_default();
        c.ensemble = E;
        ASSERT_OK(ug_ar_family.nll(f.impl, &c, n, x, got));
        int64_t bad = 0;
        for (int64_t i0 = 0; i0 < n; i0 += T) {
            int64_t rows = n - i0 < T ? n - i0 : T;
            memset(xt, 0, (size_t)(T * d) * sizeof *xt);
            memcpy(xt, x + i0 * d, (size_t)(rows * d) * sizeof *xt);
            double ref[64][8];
            for (int e = 0; e < E; e++) {
                ug_ctx_reset(ctx);
                int old = ug_ctx_set_grad(ctx, 0);
                ug_tensor *lg = ug_ar_logits(f.impl, ctx, ug_tensor_from(ctx, 2, (int64_t[]){T, d}, xt), e);
                ug_ctx_set_grad(ctx, old);
                for (int64_t q = 0; q < rows; q++) {
                    double s = 0;
                    for (int j = 0; j < d; j++) {
                        double z = lg->data[q * d + j], tv = xt[q * d + j];
                        s += (z > 0 ? z : 0) - z * tv + log1p(exp(-fabs(z)));
                    }
                    ref[q][e] = -s;
                }
            }
            for (int64_t q = 0; q < rows; q++) {
                for (int e = 0; e < E; e++) lp[e] = ref[q][e];
                double mx = lp[0], s = 0;
                for (int e = 1; e < E; e++) mx = fmax(mx, lp[e]);
                for (int e = 0; e < E; e++) s += exp(lp[e] - mx);
                double want = log((double)E) - mx - log(s);
                if (got[i0 + q] != want && bad++ == 0)
                    ug_test_fail(__FILE__, __LINE__, "%s '%s' K %d: example %lld NLL %.17g, taped %.17g",
                                 cases[t].net, cases[t].hidden_list, E, (long long)(i0 + q),
                                 got[i0 + q], want);
            }
        }
        EXPECT(bad == 0, "case %zu: %lld examples differ", t, (long long)bad);
        fam_free(&f);
    }
    ug_ctx_free(ctx);
    free(x);
    free(xt);
    free(got);
}

/* ---------------------------------------------------------------- sampling */
TEST(ar_sample_frequencies) {
    int d = 5;
    int64_t n = 20000, V = 1 << d;
    double *nll = malloc((size_t)V * sizeof *nll);
    double *out = malloc((size_t)(n * d) * sizeof *out);
    ug_model_cfg cases[] = {
        ar_cfg("fvsbn", d, 0, "", 0, 0, 0, 0),
        ar_cfg("nade", d, 7, "", 0, 0, 0, 0),
        ar_cfg("made", d, 0, "9,9", 3, 0, 1, 1),
        ar_cfg("made", d, 0, "11,6,8", 4, 0, 1, 0),
        ar_cfg("made", d, 0, "13", 4, 1, 1, 1),
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        ug_model *m = make_model(&cases[t], 60 + t);
        ug_params *ps = ug_model_params(m);
        for (int64_t j = 0; j < ug_params_count(ps); j++) ug_params_data(ps)[j] *= 3.0f;
        total_prob(m, d, 0, nll);
        ug_sample_cfg sc = ug_sample_cfg_default();
        sc.seed = 5;
        ASSERT_OK(ug_model_sample(m, &sc, n, NULL, NULL, out, NULL));
        double *cnt = calloc((size_t)V, sizeof *cnt), tv = 0;
        for (int64_t i = 0; i < n; i++) {
            int v = 0;
            for (int j = 0; j < d; j++) v |= (out[i * d + j] != 0) << j;
            cnt[v] += 1.0 / (double)n;
        }
        for (int v = 0; v < V; v++) tv += 0.5 * fabs(cnt[v] - exp(-nll[v]));
        /* Sampling noise alone gives about 0.5 sum sqrt(p / n) < 0.02 here. */
        EXPECT(tv < 0.03, "%s: total variation %.4f between samples and exact probabilities",
               cases[t].net, tv);
        free(cnt);
        /* A sample depends on its stream only: 3 samples from stream 70 on equal rows 70..72 of
         * a batch of 100 (a different tile of rows). */
        double few[3 * 5];
        sc.first_stream = 70;
        ASSERT_OK(ug_model_sample(m, &sc, 3, NULL, NULL, few, NULL));
        sc.first_stream = 0;
        ASSERT_OK(ug_model_sample(m, &sc, 100, NULL, NULL, out, NULL));
        EXPECT(!memcmp(few, out + 70 * d, sizeof few), "%s: samples depend on the batch", cases[t].net);
        ug_model_free(m);
    }
    free(nll);
    free(out);
}

/* ---------------------------------------------------------------- MADE against the peer */
TEST(ar_made_matches_peer) {
    ug_st_file *f;
    ASSERT_OK(ug_st_open("ref/made_ref.safetensors", &f));
    const char *prefixes[2] = {"a", "b"};
    for (int p = 0; p < 2; p++) {
        char name[64];
        snprintf(name, sizeof name, "%s.x", prefixes[p]);
        int64_t shape[UG_MAX_DIMS];
        int ndim;
        ASSERT_OK(ug_st_info(f, name, NULL, &ndim, shape));
        int64_t n = shape[0], D = shape[1];
        snprintf(name, sizeof name, "%s.fc1.bias", prefixes[p]);
        int64_t H = ug_st_numel(f, name);
        ug_model_cfg c = ar_cfg("made", (int)D, (int)H, "", 1, 0, 0, 0);
        ug_model *m = make_model(&c, 1);
        ug_params *ps = ug_model_params(m);
        ASSERT(ug_params_num_tensors(ps) == 4, "made preset: %d parameter tensors, the peer has 4",
               ug_params_num_tensors(ps));
        for (int i = 0; i < 4; i++) {
            ug_tensor *t = ug_params_tensor(ps, i);
            snprintf(name, sizeof name, "%s.%s", prefixes[p], t->name);
            ASSERT(ug_st_find(f, name) >= 0, "the peer has no %s", name);
            ASSERT_OK(ug_st_info(f, name, NULL, &ndim, shape));
            EXPECT(ndim == t->ndim && shape[0] == t->shape[0] && (ndim == 1 || shape[1] == t->shape[1]),
                   "%s: shapes differ from the peer's", t->name);
            ASSERT_OK(ug_st_read_f32(f, name, t->data, t->numel));
        }
        float *x = malloc((size_t)(n * D) * sizeof *x);
        double *ref = malloc((size_t)n * sizeof *ref), *got = malloc((size_t)n * sizeof *got);
        snprintf(name, sizeof name, "%s.x", prefixes[p]);
        ASSERT_OK(ug_st_read_f32(f, name, x, n * D));
        snprintf(name, sizeof name, "%s.nll", prefixes[p]);
        ASSERT_OK(ug_st_read_f64(f, name, ref, n));
        ASSERT_OK(ug_model_nll(m, NULL, n, x, got));
        snprintf(name, sizeof name, "made %s (D %lld, H %lld) per-image NLL vs peer", prefixes[p],
                 (long long)D, (long long)H);
        EXPECT(ug_test_allclose_f64(name, got, ref, n, 1e-6, 1e-5), "%s", name);
        /* The training loss is the peer's: the batch mean of the same NLL. */
        ug_ctx *ctx;
        ASSERT_OK(ug_ctx_create(&ctx, 0));
        ug_tensor *loss;
        ASSERT_OK(ug_model_loss(m, ctx, x, n, NULL, 0, 0, &loss));
        double mean = 0;
        for (int64_t i = 0; i < n; i++) mean += ref[i] / (double)n;
        EXPECT(fabs(loss->data[0] - mean) <= 1e-4 * fabs(mean), "made %s: loss %.6f, peer mean NLL %.6f",
               prefixes[p], (double)loss->data[0], mean);
        ug_ctx_free(ctx);
        free(x);
        free(ref);
        free(got);
        ug_model_free(m);
    }
    /* The full-size preset: names, shapes, parameter count and the peer's masks (degrees read
     * from its mask1; the output mask must be 1[d > m_k]). */
    int32_t deg[500];
    {
        double tmp[500];
        ASSERT_OK(ug_st_read_f64(f, "deg784_500", tmp, 500));
        for (int k = 0; k < 500; k++) deg[k] = (int32_t)tmp[k];
    }
    ug_st_close(f);
    ug_model_cfg c = ar_cfg("made", 784, 500, "", 1, 0, 0, 0);
    fam fm;
    fam_make(&fm, &c, 3);
    EXPECT(ug_params_count(fm.ps) == 785284, "made 784-500: %lld parameters, the peer has 785284",
           (long long)ug_params_count(fm.ps));
    const char *names[4] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    const int64_t shapes[4][2] = {{500, 784}, {500, 0}, {784, 500}, {784, 0}};
    for (int i = 0; i < 4; i++) {
        ug_tensor *t = ug_params_find(fm.ps, names[i]);
        ASSERT(t, "made 784-500: no parameter %s", names[i]);
        EXPECT(t->shape[0] == shapes[i][0] && (t->ndim == 1 ? shapes[i][1] == 0 : t->shape[1] == shapes[i][1]),
               "made 784-500: %s has the wrong shape", names[i]);
        /* PyTorch's nn.Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
        double bound = 1.0 / sqrt(i < 2 ? 784.0 : 500.0), mx = 0;
        for (int64_t j = 0; j < t->numel; j++) mx = fmax(mx, fabs(t->data[j]));
        EXPECT(mx <= bound && mx > 0.95 * bound, "%s: max |w| %g, init bound %g", names[i], mx, bound);
    }
    const float *m1 = ug_ar_made_mask(fm.impl, 0, 0), *m2 = ug_ar_made_mask(fm.impl, 0, 1);
    int64_t bad1 = 0, bad2 = 0;
    for (int k = 0; k < 500; k++)
        for (int dd = 1; dd <= 784; dd++) {
            bad1 += m1[k * 784 + (dd - 1)] != (deg[k] >= dd ? 1.0f : 0.0f);
            bad2 += m2[(dd - 1) * 500 + k] != (dd > deg[k] ? 1.0f : 0.0f);
        }
    EXPECT(bad1 == 0 && bad2 == 0, "made 784-500: %lld / %lld mask entries differ from the peer's",
           (long long)bad1, (long long)bad2);
    fam_free(&fm);
}

/* ---------------------------------------------------------------- training */
/* A mixture of 3 prototypes with each bit flipped with probability 0.1: exact p(x). */
#define MIX_D 8
static const int k_proto[3] = {0x0F, 0xA5, 0x3C};
static const double k_w[3] = {0.5, 0.3, 0.2};
static double mix_p(int v) {
    double p = 0;
    for (int k = 0; k < 3; k++) {
        int diff = __builtin_popcount((unsigned)(v ^ k_proto[k]));
        p += k_w[k] * pow(0.1, diff) * pow(0.9, MIX_D - diff);
    }
    return p;
}

static void mix_draw(float *x, int64_t B, uint64_t stream0) {
    for (int64_t b = 0; b < B; b++) {
        ug_rng r = ug_rng_make(17, stream0 + (uint64_t)b, 0);
        float u[12];
        ug_rng_uniform(&r, u, 12);
        int k = u[0] < 0.5f ? 0 : u[0] < 0.8f ? 1 : 2;
        for (int j = 0; j < MIX_D; j++) {
            int bit = (k_proto[k] >> j) & 1;
            x[b * MIX_D + j] = (float)(u[1 + j] < 0.1f ? !bit : bit);
        }
    }
}

/* Fresh draws every step; the exact cross-entropy sum_x p(x) NLL(x) over all 2^8 vectors minus
 * the entropy is KL(p || model), about 2 nats at init. */
TEST(ar_train_reaches_entropy) {
    int V = 1 << MIX_D;
    double Hp = 0;
    for (int v = 0; v < V; v++) Hp -= mix_p(v) * log(mix_p(v));
    struct { ug_model_cfg c; float lr; double max_kl; } cases[] = {
        /* FVSBN's logistic conditionals cannot express the mixture: it stops near 0.054. */
        {ar_cfg("fvsbn", MIX_D, 0, "", 0, 0, 0, 0), 3e-2f, 0.08},
        {ar_cfg("nade", MIX_D, 16, "", 0, 0, 0, 0), 2e-2f, 0.02},
        {ar_cfg("made", MIX_D, 32, "", 1, 0, 0, 0), 1e-2f, 0.02},
        {ar_cfg("made", MIX_D, 0, "48,48", 4, 1, 1, 0), 1e-2f, 0.02},
    };
    int old = ug_get_threads();
    ug_set_threads(1);
    int64_t B = 100, steps = 1200;
    float *x = malloc((size_t)(B * MIX_D) * sizeof *x);
    float *xv = all_vectors(MIX_D);
    double *nll = malloc((size_t)V * sizeof *nll);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        ug_model *m = make_model(&cases[t].c, 80 + t);
        ug_params *ps = ug_model_params(m);
        ug_adam opt;
        ASSERT_OK(ug_adam_init(&opt, ps, ug_adam_default()));
        ug_ctx *ctx;
        ASSERT_OK(ug_ctx_create(&ctx, 0));
        double t0 = ug_test_now_s();
        for (int64_t s = 0; s < steps; s++) {
            mix_draw(x, B, (uint64_t)(s * B));
            ug_model_set_step(m, s);
            ug_tensor *loss;
            ASSERT_OK(ug_model_loss(m, ctx, x, B, NULL, 0, 0, &loss));
            ug_params_zero_grad(ps);
            ASSERT_OK(ug_backward(ctx, loss));
            /* The last third at a tenth of the rate: Adam's noise floor, not the model, would
             * otherwise set the gap. */
            ug_adam_step(&opt, ps, s < 2 * steps / 3 ? cases[t].lr : 0.1f * cases[t].lr);
            ug_ctx_reset(ctx);
        }
        double secs = ug_test_now_s() - t0;
        ASSERT_OK(ug_model_nll(m, NULL, V, xv, nll));
        double ce = 0;
        for (int v = 0; v < V; v++) ce += mix_p(v) * nll[v];
        printf("    %s '%s' K %d: cross-entropy %.4f nats, entropy %.4f, KL %.4f (%lld steps, %.2f s)\n",
               cases[t].c.net, cases[t].c.hidden_list, cases[t].c.masks, ce, Hp, ce - Hp,
               (long long)steps, secs);
        EXPECT(ce - Hp < cases[t].max_kl && ce - Hp > -1e-9, "%s: KL(p || model) = %.4f, expected < %g",
               cases[t].c.net, ce - Hp, cases[t].max_kl);
        ug_adam_free(&opt);
        ug_ctx_free(ctx);
        ug_model_free(m);
    }
    ug_set_threads(old);
    free(x);
    free(xv);
    free(nll);
}

/* ---------------------------------------------------------------- masks, steps, errors */
TEST(ar_made_mask_schedule) {
    ug_model_cfg c = ar_cfg("made", 6, 8, "", 5, 1, 1, 0);
    fam f;
    fam_make(&f, &c, 1);
    for (int s = 0; s < 12; s++) EXPECT(ug_ar_step_mask(f.impl, s) == s % 5, "cycle: step %d", s);
    fam_free(&f);
    c.mask_cycle = 0;
    fam_make(&f, &c, 1);
    int seen[5] = {0};
    for (int s = 0; s < 200; s++) {
        int k = ug_ar_step_mask(f.impl, s);
        ASSERT(k >= 0 && k < 5, "resample: step %d picked mask %d", s, k);
        EXPECT(k == ug_ar_step_mask(f.impl, s), "resample: step %d is not reproducible", s);
        seen[k]++;
    }
    for (int k = 0; k < 5; k++) EXPECT(seen[k] > 20, "resample: mask %d picked %d / 200 times", k, seen[k]);
    /* Masks are a function of the configuration: another seed, the same masks. */
    fam g;
    fam_make(&g, &c, 999);
    for (int k = 0; k < 5; k++) {
        const float *a = ug_ar_made_mask(f.impl, k, 0);
        float *copy = malloc(8 * 6 * sizeof *copy);
        memcpy(copy, a, 8 * 6 * sizeof *copy);
        EXPECT(!memcmp(copy, ug_ar_made_mask(g.impl, k, 0), 8 * 6 * sizeof *copy),
               "mask %d depends on the init seed", k);
        free(copy);
    }
    fam_free(&g);
    fam_free(&f);
}

TEST(ar_made_step_allocation_free) {
    /* Without and with dropout (its scales live in the arena too). */
    float *x = malloc(16 * 40 * sizeof *x);
    for (int j = 0; j < 16 * 40; j++) x[j] = (float)((j * 7 + j / 3) % 2);
    for (int drop = 0; drop < 2; drop++) {
        ug_model_cfg c = ar_cfg("made", 40, 0, "30,30", 3, 1, 1, 1);
        c.dropout = drop ? 0.25 : 0.0;
        ug_model *m = make_model(&c, 2);
        int64_t settled, end;
        ug_test_arena_steady(m, x, 16, 12, 3, &settled, &end);   /* masks cycle through the steps */
        EXPECT(settled > 0 && end == settled,
               "dropout %d: the arena grew after step 3: %lld -> %lld mallocs", drop,
               (long long)settled, (long long)end);
        ug_model_free(m);
    }
    free(x);
}

TEST(ar_made_dropout) {
    /* Dropout on made's hidden units, in the training loss only. Two models with the same
     * parameters, p = 0.3 and p = 0: the same NLL (evaluation uses the whole network) and, with
     * the dropout drawn, a different loss; the same seed and streams give the same loss, another
     * seed another. A split batch draws the same masks (each example from its own stream): the
     * loss of rows 0..4 and 5..9 averages to the whole batch's. */
    enum { d = 10, B = 10 };
    ug_model_cfg c0 = ar_cfg("made", d, 0, "16,12", 4, 1, 1, 1), c1 = c0;
    c1.dropout = 0.3;
    ug_model *m0 = make_model(&c0, 5), *m1 = make_model(&c1, 5);
    ug_params *p0 = ug_model_params(m0), *p1 = ug_model_params(m1);
    memcpy(ug_params_data(p1), ug_params_data(p0), (size_t)ug_params_count(p1) * sizeof(float));
    float x[B * d];
    for (int i = 0; i < B * d; i++) x[i] = (float)((i * 7 + i / 3) % 3 == 0);
    double n0[B], n1[B];
    ASSERT_OK(ug_model_nll(m0, NULL, B, x, n0));
    ASSERT_OK(ug_model_nll(m1, NULL, B, x, n1));
    EXPECT(!memcmp(n0, n1, sizeof n0), "dropout changed the NLL");
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_tensor *l;
    float l0, la, lb, lc, lh[2];
    ASSERT_OK(ug_model_loss(m0, ctx, x, B, NULL, 7, 100, &l));
    l0 = l->data[0];
    ASSERT_OK(ug_model_loss(m1, ctx, x, B, NULL, 7, 100, &l));
    la = l->data[0];
    ASSERT_OK(ug_model_loss(m1, ctx, x, B, NULL, 7, 100, &l));
    lb = l->data[0];
    ASSERT_OK(ug_model_loss(m1, ctx, x, B, NULL, 8, 100, &l));
    lc = l->data[0];
    for (int h = 0; h < 2; h++) {
        ASSERT_OK(ug_model_loss(m1, ctx, x + h * (B / 2) * d, B / 2, NULL, 7, 100 + h * (B / 2), &l));
        lh[h] = l->data[0];
    }
    EXPECT(isfinite(la) && la != l0, "p = 0.3: loss %g, without dropout %g", (double)la, (double)l0);
    EXPECT(la == lb, "same seed: %g then %g", (double)la, (double)lb);
    EXPECT(lc != la, "another seed, the same loss %g", (double)la);
    EXPECT(fabs(0.5 * (lh[0] + lh[1]) - la) <= 1e-5 * fabs(la), "halves %g %g, whole %g",
           (double)lh[0], (double)lh[1], (double)la);
    ug_ctx_free(ctx);
    ug_model_free(m0);
    ug_model_free(m1);
    /* Only made takes it, and p in [0, 1). */
    ug_model *m = NULL;
    ug_model_cfg c = ar_cfg("nade", 8, 4, "", 0, 0, 0, 0);
    c.dropout = 0.1;
    EXPECT(ug_model_create(&c, 1, &m) == UG_ERR_INVALID_ARG && strstr(ug_last_error(), "dropout"),
           "nade with dropout: %s", ug_last_error());
    c = ar_cfg("made", 8, 4, "", 0, 0, 0, 0);
    c.dropout = 1.0;
    EXPECT(ug_model_create(&c, 1, &m) == UG_ERR_INVALID_ARG && strstr(ug_last_error(), "dropout"),
           "made with dropout 1: %s", ug_last_error());
}

TEST(ar_config_errors) {
    ug_model *m = NULL;
    ug_model_cfg c = ar_cfg("pixelcnn", 8, 0, "", 0, 0, 0, 0);
    EXPECT(ug_model_create(&c, 1, &m) == UG_ERR_INVALID_ARG && strstr(ug_last_error(), "pixelcnn"),
           "unknown net: %s", ug_last_error());
    c = ar_cfg("nade", 8, 4, "", 3, 0, 0, 0);
    EXPECT(ug_model_create(&c, 1, &m) == UG_ERR_INVALID_ARG && strstr(ug_last_error(), "masks"),
           "nade with masks: %s", ug_last_error());
    c = ar_cfg("nade", 8, 0, "4,4", 0, 0, 0, 0);
    EXPECT(ug_model_create(&c, 1, &m) == UG_ERR_INVALID_ARG, "nade with two layers accepted");
    c = ar_cfg("made", 8, 0, "4,x", 2, 0, 0, 0);
    EXPECT(ug_model_create(&c, 1, &m) == UG_ERR_INVALID_ARG && strstr(ug_last_error(), "hidden_list"),
           "bad hidden_list: %s", ug_last_error());
    c = ar_cfg("made", 8, 6, "", 2, 0, 0, 0);
    m = make_model(&c, 1);
    float x[8] = {0, 1, 0, 1, 1, 0, 0, 0.5f};
    double nll;
    ug_nll_cfg nc = ug_nll_default();
    EXPECT(ug_model_nll(m, &nc, 1, x, &nll) == UG_ERR_INVALID_ARG && strstr(ug_last_error(), "binar"),
           "non-binary data: %s", ug_last_error());
    x[7] = 1;
    nc.ensemble = 3;
    EXPECT(ug_model_nll(m, &nc, 1, x, &nll) == UG_ERR_INVALID_ARG && strstr(ug_last_error(), "ensemble"),
           "ensemble beyond the masks: %s", ug_last_error());
    nc.ensemble = 2;
    EXPECT(ug_model_nll(m, &nc, 1, x, &nll) == UG_OK && isfinite(nll), "ensemble 2: %s", ug_last_error());
    ug_model_free(m);
}
