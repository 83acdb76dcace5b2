/* test_vae.c — the VAE family (SPEC section 9) against references computed here in double:
 * the row log-likelihood kernels against naive loops; the loss against a double forward pass
 * with the same eps and against the exact ELBO; its parameter gradients against central
 * differences (fixed eps); the IWAE bound of a 1-D-latent VAE against log p(x) by quadrature
 * (ELBO <= IWAE_k <= log p(x), increasing in k, close at k = 5000, probabilities summing to 1
 * over all 2^d binary vectors); a short training run; determinism and batch invariance of
 * sampling, reconstruction and the bound. */
#include "test.h"
#include "kernels/loglik.h"

#define MAXH 4

static ug_model *make_vae(int d, const char *hidden, int latent, const char *decoder,
                          uint64_t seed) {
    ug_model_cfg c = ug_model_cfg_default();
    c.family = UG_FAMILY_VAE;
    c.data_dim = d;
    strcpy(c.net, "vae");
    snprintf(c.hidden_list, sizeof c.hidden_list, "%s", hidden);
    c.latent_dim = latent;
    snprintf(c.decoder, sizeof c.decoder, "%s", decoder);
    ug_model *m = NULL;
    ug_status st = ug_model_create(&c, seed, &m);
    if (st) {
        ug_test_fail(__FILE__, __LINE__, "ug_model_create: %s", ug_last_error());
        ug_test_abort();
    }
    return m;
}

/* ---------------------------------------------------------------- the network in double */
typedef struct {
    int d, L, nh, gaussian, h[MAXH];
    const float *ew[MAXH], *eb[MAXH], *muw, *mub, *lvw, *lvb, *dw[MAXH + 1], *db[MAXH + 1], *olv;
} ref_net;

static const float *pdata(ug_params *ps, const char *fmt, int i) {
    char name[64];
    snprintf(name, sizeof name, fmt, i);
    ug_tensor *t = ug_params_find(ps, name);
    if (!t) {
        ug_test_fail(__FILE__, __LINE__, "no parameter %s", name);
        ug_test_abort();
    }
    return t->data;
}

static ref_net ref_of(ug_model *m, int d, int L, int nh, const int *h, int gaussian) {
    ref_net r;
    memset(&r, 0, sizeof r);
    r.d = d; r.L = L; r.nh = nh; r.gaussian = gaussian;
    ug_params *ps = ug_model_params(m);
    for (int l = 0; l < nh; l++) {
        r.h[l] = h[l];
        r.ew[l] = pdata(ps, "encoder.%d.weight", 2 * l);
        r.eb[l] = pdata(ps, "encoder.%d.bias", 2 * l);
    }
    r.muw = pdata(ps, "encoder_mu.weight", 0);
    r.mub = pdata(ps, "encoder_mu.bias", 0);
    r.lvw = pdata(ps, "encoder_logvar.weight", 0);
    r.lvb = pdata(ps, "encoder_logvar.bias", 0);
    for (int l = 0; l <= nh; l++) {
        r.dw[l] = pdata(ps, "decoder.%d.weight", 2 * l);
        r.db[l] = pdata(ps, "decoder.%d.bias", 2 * l);
    }
    if (gaussian) r.olv = pdata(ps, "decoder_logvar", 0);
    return r;
}

static void ref_linear(const float *w, const float *b, int in, int out, const double *x,
                       double *y, int act_tanh) {
    for (int o = 0; o < out; o++) {
        double s = b[o];
        for (int i = 0; i < in; i++) s += (double)w[o * in + i] * x[i];
        y[o] = act_tanh ? tanh(s) : s;
    }
}

static void ref_encode(const ref_net *r, const double *x, double *mu, double *lv) {
    double a[256], b[256];
    int in = r->d;
    memcpy(a, x, (size_t)r->d * sizeof *a);
    for (int l = 0; l < r->nh; l++) {
        ref_linear(r->ew[l], r->eb[l], in, r->h[l], a, b, 1);
        memcpy(a, b, (size_t)r->h[l] * sizeof *a);
        in = r->h[l];
    }
    ref_linear(r->muw, r->mub, in, r->L, a, mu, 0);
    ref_linear(r->lvw, r->lvb, in, r->L, a, lv, 0);
}

/* log p(x | z) in double. */
static double ref_loglik(const ref_net *r, const double *z, const double *x) {
    double a[256], b[256];
    int in = r->L;
    memcpy(a, z, (size_t)r->L * sizeof *a);
    for (int l = 0; l <= r->nh; l++) {
        int out = l < r->nh ? r->h[r->nh - 1 - l] : r->d;
        ref_linear(r->dw[l], r->db[l], in, out, a, b, l < r->nh);
        memcpy(a, b, (size_t)out * sizeof *a);
        in = out;
    }
    double s = 0;
    for (int j = 0; j < r->d; j++) {
        if (r->gaussian) {
            double lvj = r->olv[j], dx = x[j] - a[j];
            s += -0.5 * (log(2 * M_PI) + lvj + dx * dx * exp(-lvj));
        } else {
            s += x[j] * a[j] - (fmax(a[j], 0) + log1p(exp(-fabs(a[j]))));
        }
    }
    return s;
}

/* ---------------------------------------------------------------- kernels */
TEST(vae_loglik_kernels_match_double_loops) {
    /* log(1 + e^-|a|) over a sweep of magnitudes: relative error within a few float ulps. */
    double worst = 0;
    float wa = 0;
    /* |a| <= 87: the answer is a normal float (beyond, it underflows in any float code). */
    for (int i = 0; i <= 400000; i++) {
        float a = (float)(-87.0 + 174.0 * i / 400000.0);
        double ref = log1p(exp(-fabs((double)a))), got = ug_log1p_exp_neg_abs(a);
        double rel = ref > 0 ? fabs(got - ref) / ref : fabs(got);
        if (rel > worst) { worst = rel; wa = a; }
    }
    EXPECT(worst < 4e-7, "log1p(exp(-|a|)): worst relative error %.3g at a = %.9g", worst, wa);
    EXPECT(ug_log1p_exp_neg_abs(0.0f) == (float)log(2.0), "at 0: %.9g",
           (double)ug_log1p_exp_neg_abs(0.0f));
    EXPECT(isnan(ug_log1p_exp_neg_abs(NAN)), "NaN must propagate");
    EXPECT(ug_log1p_exp_neg_abs(-INFINITY) == 0 && ug_log1p_exp_neg_abs(200.0f) == 0,
           "far tails must give 0");

    const int rows = 37, d = 29;
    ug_tensor *a = ug_test_tensor(2, (int64_t[]){rows, d}, 1, -30, 30);
    ug_tensor *m = ug_test_tensor(2, (int64_t[]){rows, d}, 2, -2, 2);
    ug_tensor *lv = ug_test_tensor(1, (int64_t[]){d}, 3, -3, 2);
    float x[29], xg[29];
    for (int j = 0; j < d; j++) {
        x[j] = (float)(j % 3 == 0);
        xg[j] = (float)(0.1 * j - 1.3);
    }
    double got[37], ref[37];
    ug_k_bernoulli_loglik_rows(got, a->data, x, rows, d);
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int j = 0; j < d; j++) {
            double z = a->data[r * d + j];
            /* log sigmoid(z) or log(1 - sigmoid(z)), each in its stable form */
            s += x[j] ? -log1p(exp(-z)) : -log1p(exp(z));
        }
        ref[r] = s;
    }
    EXPECT(ug_test_allclose_f64("bernoulli rows", got, ref, rows, 1e-5, 1e-6), "bernoulli rows");
    ug_k_gaussian_loglik_rows(got, m->data, lv->data, xg, rows, d);
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int j = 0; j < d; j++) {
            double v = exp((double)lv->data[j]), dx = xg[j] - (double)m->data[r * d + j];
            s += log(1.0 / sqrt(2 * M_PI * v)) - dx * dx / (2 * v);
        }
        ref[r] = s;
    }
    EXPECT(ug_test_allclose_f64("gaussian rows", got, ref, rows, 1e-5, 1e-6), "gaussian rows");
    ug_test_tensor_free(a);
    ug_test_tensor_free(m);
    ug_test_tensor_free(lv);
}

/* ---------------------------------------------------------------- configuration */
TEST(vae_rejects_bad_configuration_and_data) {
    ug_model_cfg c = ug_model_cfg_default();
    c.family = UG_FAMILY_VAE;
    c.data_dim = 4;
    strcpy(c.net, "vae");
    ug_model *m = NULL;
    strcpy(c.decoder, "poisson");
    EXPECT(ug_model_create(&c, 1, &m) == UG_ERR_INVALID_ARG && strstr(ug_last_error(), "decoder"),
           "decoder 'poisson': %s", ug_last_error());
    c.decoder[0] = 0;
    c.latent_dim = -2;
    EXPECT(ug_model_create(&c, 1, &m) == UG_ERR_INVALID_ARG &&
           strstr(ug_last_error(), "latent_dim"), "latent_dim -2: %s", ug_last_error());
    c.latent_dim = 0;
    strcpy(c.hidden_list, "8,,4");
    EXPECT(ug_model_create(&c, 1, &m) == UG_ERR_INVALID_ARG &&
           strstr(ug_last_error(), "hidden_list"), "hidden_list '8,,4': %s", ug_last_error());
    strcpy(c.hidden_list, "8");
    strcpy(c.net, "made");
    EXPECT(ug_model_create(&c, 1, &m) == UG_ERR_INVALID_ARG, "net 'made' accepted");
    EXPECT(!m, "a failed create left a model");

    /* Defaults: latent 50; the Bernoulli decoder refuses values outside [0, 1]. */
    strcpy(c.net, "vae");
    ASSERT_OK(ug_model_create(&c, 1, &m));
    ug_tensor *mu = ug_params_find(ug_model_params(m), "encoder_mu.weight");
    ASSERT(mu && mu->shape[0] == 50 && mu->shape[1] == 8, "encoder_mu.weight shape");
    float x[8] = {0, 1, 0.5f, 1, 0, 0, 1, 1.5f};
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_tensor *loss;
    EXPECT(ug_model_loss(m, ctx, x, 2, NULL, 1, 0, &loss) == UG_ERR_INVALID_ARG &&
           strstr(ug_last_error(), "[0, 1]"), "value 1.5: %s", ug_last_error());
    double nll[2];
    ug_nll_cfg nc = ug_nll_default();
    EXPECT(ug_model_nll(m, &nc, 2, x, nll) == UG_ERR_INVALID_ARG, "nll took 1.5");
    nc.iwae_k = -1;
    EXPECT(ug_model_nll(m, &nc, 1, x, nll) == UG_ERR_INVALID_ARG &&
           strstr(ug_last_error(), "iwae_k"), "iwae_k -1: %s", ug_last_error());
    ug_ctx_free(ctx);
    ug_model_free(m);
}

/* ---------------------------------------------------------------- loss and gradients */
/* One example's -ELBO estimate in double with eps drawn as the loss draws it. */
static double ref_neg_elbo(const ref_net *r, const double *x, uint64_t seed, uint64_t stream) {
    double mu[64], lv[64], z[64];
    float eps[64];
    ref_encode(r, x, mu, lv);
    ug_rng_normal_rows(seed, stream, 0, eps, 1, r->L);
    double kl = 0;
    for (int l = 0; l < r->L; l++) {
        z[l] = mu[l] + exp(0.5 * lv[l]) * eps[l];
        kl += 0.5 * (mu[l] * mu[l] + exp(lv[l]) - lv[l] - 1);
    }
    return -ref_loglik(r, z, x) + kl;
}

typedef struct { ug_model *m; const float *x; int64_t B; } loss_args;
static ug_tensor *loss_fn(ug_ctx *ctx, ug_tensor **in, void *user) {
    loss_args *a = user;
    ug_tensor *loss = NULL;
    if (ug_model_loss(a->m, ctx, a->x, a->B, NULL, 77, 5, &loss)) {
        ug_test_fail(__FILE__, __LINE__, "loss: %s", ug_last_error());
        ug_test_abort();
    }
    return loss;
}

static void check_loss(const char *decoder) {
    int gaussian = !strcmp(decoder, "gaussian");
    const int d = 5, L = 3, B = 3, h[2] = {6, 4};
    ug_model *m = make_vae(d, "6,4", L, decoder, 21);
    ug_params *ps = ug_model_params(m);
    if (gaussian) {
        /* A non-trivial decoder variance, so its gradient is not checked only at 0. */
        float *olv = ug_params_find(ps, "decoder_logvar")->data;
        for (int j = 0; j < d; j++) olv[j] = 0.3f * (float)j - 0.5f;
    }
    float x[15];
    double xd[15];
    for (int j = 0; j < B * d; j++) {
        x[j] = gaussian ? (float)sin(1.7 * j) : (float)((j * 7) % 3 == 0);
        xd[j] = x[j];
    }
    ref_net r = ref_of(m, d, L, 2, h, gaussian);
    double ref = 0;
    for (int b = 0; b < B; b++) ref += ref_neg_elbo(&r, xd + b * d, 77, 5 + (uint64_t)b) / B;
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_tensor *loss;
    ASSERT_OK(ug_model_loss(m, ctx, x, B, NULL, 77, 5, &loss));
    EXPECT(fabs(loss->data[0] - ref) <= 1e-5 + 1e-5 * fabs(ref), "%s loss %.8g, double reference "
           "%.8g", decoder, (double)loss->data[0], ref);
    ug_ctx_free(ctx);

    int nt = ug_params_num_tensors(ps);
    ug_tensor *ins[32];
    ASSERT(nt <= 32, "%d parameter tensors", nt);
    for (int i = 0; i < nt; i++) ins[i] = ug_params_tensor(ps, i);
    loss_args a = {m, x, B};
    ug_gc_opts o = ug_gc_default();
    o.h = 1e-2;
    EXPECT(ug_gradcheck(gaussian ? "vae gaussian -ELBO" : "vae bernoulli -ELBO", loss_fn, &a, ins,
                        nt, o), "%s ELBO gradient", decoder);
    ug_model_free(m);
}

TEST(vae_loss_matches_double_reference_and_finite_differences) {
    check_loss("bernoulli");
    check_loss("gaussian");
}

/* ---------------------------------------------------------------- the bound against exact */
/* A VAE with one latent dimension, by the trapezoid rule on [-12, 12] (the integrands decay
 * like Gaussians, so the rule converges geometrically; 24001 nodes are far beyond double's
 * needs): log p(x) = log int p(x | z) N(z; 0, 1) dz, the exact ELBO, and the relative variance
 * V = E_q[w^2] / p(x)^2 - 1 of the weights w = p(x, z) / q(z | x), which gives the bound's
 * behaviour by the delta method: E IWAE_k = log p - V / (2k) + O(k^-2), sd IWAE_k = sqrt(V/k). */
#define NQ 24001
static void exact_1d(const ref_net *r, const double *x, double *logp, double *elbo, double *V) {
    double mu, lv, hq = 24.0 / (NQ - 1), mx = -INFINITY, mx2 = -INFINITY;
    ref_encode(r, x, &mu, &lv);
    static double lj[NQ], lw2[NQ];
    double sq = exp(0.5 * lv);
    for (int q = 0; q < NQ; q++) {
        double z = -12.0 + q * hq, u = (z - mu) / sq;
        lj[q] = ref_loglik(r, &z, x) - 0.5 * z * z - 0.5 * log(2 * M_PI);
        lw2[q] = 2 * lj[q] - (-0.5 * u * u - log(sq) - 0.5 * log(2 * M_PI));   /* p^2 / q */
        mx = fmax(mx, lj[q]);
        mx2 = fmax(mx2, lw2[q]);
    }
    double s = 0, s2 = 0, e = 0;
    for (int q = 0; q < NQ; q++) {
        double wq = (q == 0 || q == NQ - 1) ? 0.5 : 1.0, z = -12.0 + q * hq, u = (z - mu) / sq;
        s += wq * exp(lj[q] - mx);
        s2 += wq * exp(lw2[q] - mx2);
        double qz = exp(-0.5 * u * u) / (sq * sqrt(2 * M_PI));
        e += wq * qz * (lj[q] + 0.5 * z * z + 0.5 * log(2 * M_PI));   /* E_q log p(x | z) */
    }
    *logp = mx + log(s * hq);
    *elbo = e * hq - 0.5 * (mu * mu + exp(lv) - lv - 1);
    *V = exp(mx2 + log(s2 * hq) - 2 * *logp) - 1;
}

TEST(vae_iwae_bound_against_exact_loglik) {
    const int d = 5, N = 1 << 5, h[1] = {8};
    ug_model *m = make_vae(d, "8", 1, "bernoulli", 5);
    /* Larger decoder weights make p(x | z) depend strongly on z, so the posterior is narrow and
     * far from q. q's variance is fixed at e^0.2 (near the prior's): a variance below 1/2 would
     * give the weights an infinite second moment and the bound no error bar. */
    ug_params *ps = ug_model_params(m);
    for (int l = 0; l < 2; l++) {
        char nm[32];
        snprintf(nm, sizeof nm, "decoder.%d.weight", 2 * l);
        ug_tensor *w = ug_params_find(ps, nm);
        for (int64_t j = 0; j < w->numel; j++) w->data[j] *= 4.0f;
    }
    ug_tensor *lvw = ug_params_find(ps, "encoder_logvar.weight");
    memset(lvw->data, 0, sizeof(float) * (size_t)lvw->numel);
    ug_params_find(ps, "encoder_logvar.bias")->data[0] = 0.2f;
    ref_net r = ref_of(m, d, 1, 1, h, 0);
    float xf[32 * 5];
    double xd[5], logp[32], elbo[32], V[32], total = 0, mlogp = 0, melbo = 0, mV = 0;
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < d; j++) xf[i * d + j] = (float)((i >> j) & 1);
        for (int j = 0; j < d; j++) xd[j] = xf[i * d + j];
        exact_1d(&r, xd, &logp[i], &elbo[i], &V[i]);
        EXPECT(elbo[i] <= logp[i] + 1e-9, "x %d: exact ELBO %.6g above log p %.6g", i, elbo[i], logp[i]);
        total += exp(logp[i]);
        mlogp += logp[i] / N;
        melbo += elbo[i] / N;
        mV += V[i] / N;
    }
    EXPECT(fabs(total - 1) < 1e-9, "sum over the 2^%d vectors of p(x) = %.12g", d, total);
    EXPECT(mlogp - melbo > 0.1, "the test needs a gap: log p %.4f, ELBO %.4f", mlogp, melbo);
    printf("    exact: mean log p %.5f, ELBO %.5f, relative weight variance %.3f\n", mlogp, melbo, mV);

    /* The loss is an unbiased estimate of -ELBO: average it over 200 eps per vector. */
    const int R = 200;
    float *xr = malloc((size_t)(R * N * d) * sizeof *xr);
    double *nll = malloc((size_t)(R * N) * sizeof *nll);
    ASSERT(xr && nll, "out of memory");
    for (int q = 0; q < R; q++) memcpy(xr + q * N * d, xf, sizeof(float) * N * d);
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_tensor *loss;
    ASSERT_OK(ug_model_loss(m, ctx, xr, R * N, NULL, 9, 0, &loss));
    EXPECT(fabs(-loss->data[0] - melbo) < 0.05, "mean loss %.5f, exact -ELBO %.5f",
           (double)loss->data[0], -melbo);
    ug_ctx_free(ctx);

    /* IWAE_k averaged over the vectors and over reps draws of each: increasing in k, between
     * the ELBO and log p, and (k >= 100, where the delta method holds) at log p - V/(2k) within
     * 4 standard errors sqrt(V/k / (reps N)). */
    const int ks[5] = {1, 10, 100, 1000, 5000}, reps[5] = {200, 200, 100, 20, 4};
    double prev = -INFINITY;
    for (int t = 0; t < 5; t++) {
        int k = ks[t], nr = reps[t] * N;
        ug_nll_cfg nc = ug_nll_default();
        nc.iwae_k = k;
        nc.seed = 3;
        ASSERT_OK(ug_model_nll(m, &nc, nr, xr, nll));
        double mean = 0, per[32] = {0};
        for (int i = 0; i < nr; i++) {
            mean += -nll[i] / nr;
            per[i % N] += -nll[i] / reps[t];
        }
        double se = sqrt(mV / k / nr), expect = mlogp - mV / (2.0 * k);
        printf("    IWAE_%-4d %.5f  (delta method %.5f +- %.5f)\n", k, mean, expect, se);
        EXPECT(mean > prev - 4 * se, "IWAE_%d %.5f below the previous k's %.5f", k, mean, prev);
        EXPECT(mean >= melbo - 4 * se, "IWAE_%d %.5f below the ELBO %.5f", k, mean, melbo);
        EXPECT(mean <= mlogp + 4 * se, "IWAE_%d %.5f above log p %.5f", k, mean, mlogp);
        if (k == 1) EXPECT(fabs(mean - melbo) < 0.05, "IWAE_1 %.5f, ELBO %.5f", mean, melbo);
        if (k >= 100)
            EXPECT(fabs(mean - expect) < 4 * se + 0.1 * mV / (2.0 * k), "IWAE_%d %.5f, expected "
                   "%.5f +- %.5f", k, mean, expect, se);
        if (k == 5000) {
            EXPECT(mlogp - mean < 3e-3, "IWAE_5000 %.5f, log p %.5f", mean, mlogp);
            int bad = 0;
            for (int i = 0; i < N; i++) {
                double tol = 5 * sqrt(V[i] / k / reps[t]) + V[i] / (2.0 * k) + 1e-4;
                if (!(fabs(per[i] - logp[i]) <= tol)) {
                    if (!bad++) printf("    vector %d: IWAE_5000 %.6f, log p %.6f, tol %.3g\n",
                                       i, per[i], logp[i], tol);
                }
            }
            EXPECT(!bad, "%d of %d vectors: IWAE_5000 off log p", bad, N);
        }
        prev = mean;
    }
    free(xr);
    free(nll);
    ug_model_free(m);
}

/* ---------------------------------------------------------------- training */
TEST(vae_trains_on_binary_patterns) {
    /* 4 prototypes of 16 bits, each example one of them with 5% of its bits flipped. */
    const int d = 16, n = 256, B = 32, steps = 300;
    float *x = malloc(sizeof(float) * n * d), u[16];
    ASSERT(x, "out of memory");
    ug_rng g = ug_rng_make(8, 0, 0);
    for (int i = 0; i < n; i++) {
        int p = i % 4;
        ug_rng_uniform(&g, u, d);
        for (int j = 0; j < d; j++) {
            int bit = ((j / 4) == p) || (j % 4 == p);
            x[i * d + j] = (float)(u[j] < 0.05f ? !bit : bit);
        }
    }
    ug_model *m = make_vae(d, "32", 4, "bernoulli", 3);
    ug_params *ps = ug_model_params(m);
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_adam opt;
    ASSERT_OK(ug_adam_init(&opt, ps, ug_adam_default()));
    ug_tensor *loss;
    /* -ELBO over the whole set, averaged over 8 eps draws (fixed seeds: comparable). */
    double before = 0, after = 0;
    for (int q = 0; q < 8; q++) {
        ASSERT_OK(ug_model_loss(m, ctx, x, n, NULL, 100 + (uint64_t)q, 0, &loss));
        before += loss->data[0] / 8;
        ug_ctx_reset(ctx);
    }
    double t0 = ug_test_now_s();
    for (int s = 0; s < steps; s++) {
        int64_t off = (int64_t)(s % (n / B)) * B;
        ASSERT_OK(ug_model_loss(m, ctx, x + off * d, B, NULL, 1, (uint64_t)s * B, &loss));
        ug_params_zero_grad(ps);
        ASSERT_OK(ug_backward(ctx, loss));
        ug_adam_step(&opt, ps, 1e-2f);
        ug_ctx_reset(ctx);
    }
    double dt = ug_test_now_s() - t0;
    for (int q = 0; q < 8; q++) {
        ASSERT_OK(ug_model_loss(m, ctx, x, n, NULL, 100 + (uint64_t)q, 0, &loss));
        after += loss->data[0] / 8;
        ug_ctx_reset(ctx);
    }
    double *nll = malloc(sizeof(double) * n), iwae = 0;
    ug_nll_cfg nc = ug_nll_default();
    nc.iwae_k = 100;
    ASSERT_OK(ug_model_nll(m, &nc, n, x, nll));
    for (int i = 0; i < n; i++) iwae += nll[i] / n;
    /* The data's own entropy: log 4 for the prototype plus 16 H(0.05) for the flips. */
    double hdata = log(4.0) - 16 * (0.05 * log(0.05) + 0.95 * log(0.95));
    printf("    -ELBO %.3f -> %.3f nats in %d steps (%.2f s); IWAE_100 NLL %.3f; data entropy "
           "%.3f\n", before, after, steps, dt, iwae, hdata);
    EXPECT(after < before - 3.0, "-ELBO %.3f -> %.3f: no real improvement", before, after);
    EXPECT(after < hdata + 2.5, "-ELBO %.3f far above the entropy %.3f", after, hdata);
    EXPECT(iwae <= after, "IWAE NLL %.4f above -ELBO %.4f", iwae, after);
    EXPECT(iwae > hdata - 1.0, "IWAE NLL %.4f far below the data entropy %.4f", iwae, hdata);
    free(nll);
    free(x);
    ug_adam_free(&opt);
    ug_ctx_free(ctx);
    ug_model_free(m);
}

/* ---------------------------------------------------------------- determinism */
TEST(vae_sample_reconstruct_nll_are_batch_invariant) {
    const int d = 12, n = 70;   /* more than one 64-row tile */
    ug_model *m = make_vae(d, "16,8", 3, "bernoulli", 4);
    double *big = malloc(sizeof(double) * n * d), *one = malloc(sizeof(double) * d);
    double *again = malloc(sizeof(double) * n * d);
    ASSERT(big && one && again, "out of memory");
    ug_sample_cfg sc = ug_sample_cfg_default();
    sc.seed = 11;
    ASSERT_OK(ug_model_sample(m, &sc, n, NULL, NULL, big, NULL));
    ASSERT_OK(ug_model_sample(m, &sc, n, NULL, NULL, again, NULL));
    EXPECT(!memcmp(big, again, sizeof(double) * n * d), "sampling twice differs");
    int bad = 0, out_of_range = 0;
    for (int i = 0; i < n * d; i++) out_of_range += !(big[i] > 0 && big[i] < 1);
    EXPECT(!out_of_range, "%d Bernoulli means outside (0, 1)", out_of_range);
    for (int i = 0; i < n; i += 9) {
        sc.first_stream = (uint64_t)i;
        ASSERT_OK(ug_model_sample(m, &sc, 1, NULL, NULL, one, NULL));
        bad += memcmp(one, big + i * d, sizeof(double) * d) != 0;
    }
    EXPECT(!bad, "%d samples changed with the batch size", bad);
    sc.first_stream = 0;
    sc.seed = 12;
    ASSERT_OK(ug_model_sample(m, &sc, n, NULL, NULL, again, NULL));
    EXPECT(memcmp(big, again, sizeof(double) * n * d), "another seed gave the same samples");
    /* T -> 0: every sample is the decoder's mean at z = 0. */
    sc.temperature = 1e-6;
    ASSERT_OK(ug_model_sample(m, &sc, n, NULL, NULL, again, NULL));
    double spread = 0;
    for (int i = 1; i < n; i++)
        for (int j = 0; j < d; j++)
            spread = ug_test_worst(spread, fabs(again[i * d + j] - again[j]));
    EXPECT(spread < 1e-5, "samples at T = 1e-6 spread by %.3g", spread);

    float *x = malloc(sizeof(float) * n * d), *rb = malloc(sizeof(float) * n * d), r1[12];
    ASSERT(x && rb, "out of memory");
    for (int i = 0; i < n * d; i++) x[i] = (float)((i * 5 + i / 7) % 3 == 0);
    ASSERT_OK(ug_model_reconstruct(m, n, x, 5, 100, rb));
    bad = 0;
    for (int i = 0; i < n; i += 9) {
        ASSERT_OK(ug_model_reconstruct(m, 1, x + i * d, 5, 100 + (uint64_t)i, r1));
        bad += !ug_test_same_rows("reconstruction", r1, rb + i * d, d, 1e-6, 1e-5);
    }
    EXPECT(!bad, "%d reconstructions changed with the batch size", bad);
    ASSERT_OK(ug_model_reconstruct(m, 1, x, 6, 100, r1));
    EXPECT(memcmp(r1, rb, sizeof(float) * d), "another seed gave the same reconstruction");

    double *nb = malloc(sizeof(double) * n), n1;
    ug_nll_cfg nc = ug_nll_default();
    nc.iwae_k = 600;   /* two chunks of samples */
    nc.seed = 2;
    ASSERT_OK(ug_model_nll(m, &nc, n, x, nb));
    bad = 0;
    for (int i = 0; i < n; i += 23) {
        nc.first_stream = (uint64_t)i;
        ASSERT_OK(ug_model_nll(m, &nc, 1, x + i * d, &n1));
        bad += !ug_test_same_rows_f64("IWAE bound", &n1, &nb[i], 1, 1e-6, 1e-6);
    }
    EXPECT(!bad, "%d IWAE bounds changed with the batch size", bad);
    free(nb);
    free(x);
    free(rb);
    free(big);
    free(one);
    free(again);
    ug_model_free(m);
}
