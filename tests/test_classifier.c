/* test_classifier.c — the classifier family: d/dx log p(y | x~, sigma) against central
 * differences of the log-softmax of ug_model_classify; training to a high accuracy on a
 * labelled 2-D mixture (labels = components, Bayes accuracy computed here from the mixture)
 * and on a Fashion-MNIST subset; a noise-conditioned classifier that is sharp at small sigma
 * and falls back to the class prior at large sigma; batch-invariant features; a Fréchet
 * distance in feature space that separates a data set from one missing half its classes. */
#include "test.h"
#include "models/classifier.h"   /* the functions still to move to unigen.h */
#include <time.h>

static ug_model *make_classifier(int d, int K, int C, int H, int W, int hidden, int depth,
                                 int noisy, uint64_t seed) {
    ug_model_cfg c = ug_model_cfg_default();
    c.family = UG_FAMILY_CLASSIFIER;
    c.data_dim = d;
    c.num_classes = K;
    c.channels = C;
    c.height = H;
    c.width = W;
    c.hidden = hidden;
    c.depth = depth;
    c.noisy = noisy;
    ug_model *m = NULL;
    ug_status st = ug_model_create(&c, seed, &m);
    if (st) {
        ug_test_fail(__FILE__, __LINE__, "ug_model_create: %s", ug_last_error());
        ug_test_abort();
    }
    return m;
}

/* log p(y | x, sigma) in double from the float logits of one point. */
static double logprob(ug_model *m, int K, const float *x, double sigma, int y) {
    float lg[64];
    if (ug_model_classify(m, 1, x, &sigma, lg, NULL)) return NAN;
    double mx = lg[0], s = 0;
    for (int k = 1; k < K; k++) mx = fmax(mx, lg[k]);
    for (int k = 0; k < K; k++) s += exp(lg[k] - mx);
    return lg[y] - mx - log(s);
}

/* Trains with Adam on random minibatches; returns seconds spent. */
static double train(ug_model *m, const ug_dataset *ds, int steps, int batch, float lr,
                    uint64_t seed) {
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_adam opt;
    ug_params *ps = ug_model_params(m);
    ASSERT_OK(ug_adam_init(&opt, ps, ug_adam_default()));
    ug_loader L;
    ASSERT_OK(ug_loader_init(&L, ds, batch, seed, 0, 1, 1, 1));
    int64_t d = ug_dataset_dim(ds);
    float *x = malloc((size_t)(batch * d) * sizeof *x);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    ASSERT(x && y, "out of memory");
    double t0 = ug_test_now_s();
    uint32_t epoch = 0;
    ug_loader_start_epoch(&L, epoch);
    for (int step = 0; step < steps; step++) {
        int64_t B = ug_loader_next(&L, x, y, NULL);
        if (B == 0) {
            ug_loader_start_epoch(&L, ++epoch);
            B = ug_loader_next(&L, x, y, NULL);
        }
        ug_tensor *loss;
        ASSERT_OK(ug_model_loss(m, ctx, x, B, y, seed, (uint64_t)step * (uint64_t)batch, &loss));
        ug_params_zero_grad(ps);
        ASSERT_OK(ug_backward(ctx, loss));
        ug_adam_step(&opt, ps, lr);
        ug_ctx_reset(ctx);
    }
    double dt = ug_test_now_s() - t0;
    free(x);
    free(y);
    ug_loader_free(&L);
    ug_adam_free(&opt);
    ug_ctx_free(ctx);
    return dt;
}

static void check_grad_fd(ug_model *m, int d, int K, int n, double sigma, uint64_t seed) {
    double *x = malloc((size_t)(n * d) * sizeof *x), *g = malloc((size_t)(n * d) * sizeof *g);
    float *xf = malloc((size_t)d * sizeof *xf), *r = malloc((size_t)(n * d) * sizeof *r);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    ASSERT(x && g && xf && r && lab, "out of memory");
    ug_rng rg = ug_rng_make(seed, 0, 0);
    ug_rng_normal(&rg, r, n * d);
    for (int64_t j = 0; j < n * d; j++) x[j] = r[j];
    for (int i = 0; i < n; i++) lab[i] = i % K;
    ASSERT_OK(ug_model_class_logprob_grad(m, n, x, sigma, lab, g));
    EXPECT(ug_params_tensor(ug_model_params(m), 0)->requires_grad,
           "the parameters' requires-grad flags were not restored");
    /* Float logits: h = 1e-2 keeps rounding (~1e-7 / h) and truncation (~h^2) near 1e-4. */
    const double h = 1e-2;
    int probes = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) {
            if (d > 8 && (i * d + j) % (d / 6) != 0) continue;   /* a spread of coordinates */
            for (int k = 0; k < d; k++) xf[k] = (float)x[i * d + k];
            xf[j] = (float)(x[i * d + j] + h);
            double lp = logprob(m, K, xf, sigma, lab[i]);
            xf[j] = (float)(x[i * d + j] - h);
            double lm = logprob(m, K, xf, sigma, lab[i]);
            double fd = (lp - lm) / (2 * h), an = g[i * d + j];
            probes++;
            if (!(fabs(fd - an) <= 2e-3 + 2e-2 * fabs(fd))) {
                ug_test_fail(__FILE__, __LINE__, "d log p / dx[%d][%d]: analytic %.6g, numeric %.6g",
                             i, j, an, fd);
                break;
            }
        }
    }
    EXPECT(probes > 0, "no coordinate probed");
    free(x);
    free(g);
    free(xf);
    free(r);
    free(lab);
}

TEST(classifier_logprob_grad_matches_finite_differences) {
    /* Noisy MLP (noise embedding path included) and noisy CNN; weights scaled up so the
     * log-probabilities are not nearly flat at initialization. */
    ug_model *mlp = make_classifier(3, 4, 0, 0, 0, 16, 2, 1, 11);
    ug_model *cnn = make_classifier(2 * 4 * 8, 3, 2, 4, 8, 0, 0, 1, 12);
    ug_model *clean = make_classifier(5, 3, 0, 0, 0, 8, 1, 0, 13);
    ug_model *ms[3] = {mlp, cnn, clean};
    for (int t = 0; t < 3; t++) {
        ug_params *ps = ug_model_params(ms[t]);
        for (int64_t j = 0; j < ug_params_count(ps); j++) ug_params_data(ps)[j] *= 3.0f;
    }
    check_grad_fd(mlp, 3, 4, 5, 0.7, 1);
    check_grad_fd(cnn, 64, 3, 2, 2.5, 2);
    check_grad_fd(clean, 5, 3, 4, 1.0, 3);
    ug_model_free(mlp);
    ug_model_free(cnn);
    ug_model_free(clean);
}

TEST(classifier_rejects_bad_input) {
    ug_model_cfg c = ug_model_cfg_default();
    c.family = UG_FAMILY_CLASSIFIER;
    c.data_dim = 2 * 6 * 6;
    c.num_classes = 3;
    c.channels = 2;
    c.height = 6;
    c.width = 6;
    ug_model *m = NULL;
    EXPECT(ug_model_create(&c, 0, &m) == UG_ERR_INVALID_ARG && !m, "H = 6 accepted");
    c.channels = c.height = c.width = 0;
    c.num_classes = 1;
    EXPECT(ug_model_create(&c, 0, &m) == UG_ERR_INVALID_ARG && !m, "one class accepted");
    ug_family f;
    EXPECT(ug_family_from_name("classifier", &f) == 0 && f == UG_FAMILY_CLASSIFIER &&
           !strcmp(ug_family_name(UG_FAMILY_CLASSIFIER), "classifier"), "family name");

    m = make_classifier(2, 3, 0, 0, 0, 8, 1, 0, 1);
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    float x[4] = {0, 1, 2, 3};
    int32_t bad[2] = {0, 3};
    ug_tensor *loss;
    EXPECT(ug_model_loss(m, ctx, x, 2, NULL, 0, 0, &loss) == UG_ERR_INVALID_ARG, "no labels accepted");
    EXPECT(ug_model_loss(m, ctx, x, 2, bad, 0, 0, &loss) == UG_ERR_INVALID_ARG, "label 3 of 3 accepted");
    ug_sample_cfg sc = ug_sample_cfg_default();
    double out[4];
    EXPECT(ug_model_sample(m, &sc, 2, NULL, NULL, out, NULL) == UG_ERR_UNSUPPORTED,
           "a classifier sampled");
    ug_model_free(m);

    ug_model_cfg dc = ug_model_cfg_default();
    ASSERT_OK(ug_model_create(&dc, 0, &m));
    float lg[8];
    EXPECT(ug_model_classify(m, 1, x, NULL, lg, NULL) == UG_ERR_INVALID_ARG,
           "a diffusion model classified");
    EXPECT(ug_model_feature_dim(m) == 0, "a diffusion model has features");
    ug_model_free(m);
    ug_ctx_free(ctx);
}

/* Features and logits of each row are bit-identical (to float rounding where the sgemm's rows
 * depend on their place in the call) whether the row is classified alone or among others
 * (across a tile boundary, with the rows shifted). */
static void check_batch_invariance(ug_model *m, int d, int K, int F, int n, double sigma) {
    float *x = malloc((size_t)(n * d) * sizeof *x);
    float *lg = malloc((size_t)(n * K) * sizeof *lg), *ft = malloc((size_t)(n * F) * sizeof *ft);
    float lg1[16], *ft1 = malloc((size_t)F * sizeof *ft1);
    double *sg = malloc((size_t)n * sizeof *sg);
    ASSERT(x && lg && ft && ft1 && sg, "out of memory");
    ug_rng r = ug_rng_make(5, 0, 0);
    ug_rng_normal(&r, x, n * d);
    for (int i = 0; i < n; i++) sg[i] = sigma * (1 + 0.01 * i);
    ASSERT_OK(ug_model_classify(m, n, x, sg, lg, ft));
    int rows[4] = {0, 1, n / 2, n - 1};
    for (int t = 0; t < 4; t++) {
        int i = rows[t];
        ASSERT_OK(ug_model_classify(m, 1, x + (int64_t)i * d, sg + i, lg1, ft1));
        EXPECT(ug_test_same_rows("logits", lg1, lg + (int64_t)i * K, K, 1e-5, 1e-5),
               "logits of row %d differ", i);
        EXPECT(ug_test_same_rows("features", ft1, ft + (int64_t)i * F, F, 1e-5, 1e-5),
               "features of row %d differ", i);
    }
    /* Rows 3.. of the batch classified as their own batch. */
    ASSERT_OK(ug_model_classify(m, n - 3, x + 3 * (int64_t)d, sg + 3, lg + 3 * (int64_t)K,
                                ft + 3 * (int64_t)F));
    float *lg2 = malloc((size_t)(n * K) * sizeof *lg2);
    ASSERT(lg2, "out of memory");
    ASSERT_OK(ug_model_classify(m, n, x, sg, lg2, NULL));
    EXPECT(ug_test_same_rows("shifted", lg2, lg, n * K, 1e-5, 1e-5), "shifted batch changed the logits");
    free(lg2);
    free(x);
    free(lg);
    free(ft);
    free(ft1);
    free(sg);
}

TEST(classifier_features_shape_and_batch_invariance) {
    ug_model *mlp = make_classifier(3, 4, 0, 0, 0, 24, 2, 1, 1);
    EXPECT(ug_model_feature_dim(mlp) == 24, "MLP feature dim %d, expected 24",
           ug_model_feature_dim(mlp));
    check_batch_invariance(mlp, 3, 4, 24, 300, 0.3);
    ug_model *cnn = make_classifier(1 * 8 * 8, 5, 1, 8, 8, 0, 0, 0, 2);
    EXPECT(ug_model_feature_dim(cnn) == 128, "CNN feature dim %d, expected 128",
           ug_model_feature_dim(cnn));
    check_batch_invariance(cnn, 64, 5, 128, 70, 1.0);
    ug_model_free(mlp);
    ug_model_free(cnn);
}

/* Bayes classifier of the mixture at noise sigma: argmax_k w_k N(x; mu_k, (s_k^2 + sigma^2) I). */
static int bayes_class(const ug_gmm *g, const float *x, double sigma) {
    int best = 0;
    double bl = -INFINITY;
    for (int k = 0; k < g->K; k++) {
        double v = g->s[k] * g->s[k] + sigma * sigma, q = 0;
        for (int j = 0; j < g->d; j++) {
            double e = x[j] - g->mu[k * g->d + j];
            q += e * e;
        }
        double l = log(g->w[k]) - 0.5 * g->d * log(v) - 0.5 * q / v;
        if (l > bl) { bl = l; best = k; }
    }
    return best;
}

static double frechet_features(ug_model *m, const float *xa, int64_t na, const float *xb,
                               int64_t nb, int64_t d) {
    int K = ug_model_config(m)->num_classes, F = ug_model_feature_dim(m);
    float *fa = malloc((size_t)(na * F) * sizeof *fa), *fb = malloc((size_t)(nb * F) * sizeof *fb);
    float *lg = malloc((size_t)((na > nb ? na : nb) * K) * sizeof *lg);
    double fd = NAN;
    if (fa && fb && lg && !ug_model_classify(m, na, xa, NULL, lg, fa) &&
        !ug_model_classify(m, nb, xb, NULL, lg, fb))
        ug_frechet_distance(fa, na, fb, nb, F, &fd);
    (void)d;
    free(fa);
    free(fb);
    free(lg);
    return fd;
}

/* Keeps the examples whose label is below K/2 (a set missing half its classes). */
static int64_t half_classes(const ug_dataset *ds, float *out) {
    int64_t d = ug_dataset_dim(ds), n = 0;
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->y[i] < ds->num_classes / 2)
            memcpy(out + (n++) * d, ds->x + i * d, (size_t)d * sizeof *out);
    return n;
}

TEST(classifier_mlp_learns_mixture_labels) {
    ug_dataset tr, te;
    ASSERT_OK(ug_dataset_load("gmm:ref/samplers/mix2d.json", 1, 4096, 1, &tr));
    ASSERT_OK(ug_dataset_load("gmm:ref/samplers/mix2d.json", 0, 2000, 1, &te));
    ASSERT(tr.y && tr.num_classes == 8, "mixture labels missing");
    ug_gmm g;
    ASSERT_OK(ug_gmm_load("ref/samplers/mix2d.json", &g));
    int64_t bayes = 0;
    for (int64_t i = 0; i < te.n; i++) bayes += bayes_class(&g, te.x + 2 * i, 0) == te.y[i];
    ug_model *m = make_classifier(2, 8, 0, 0, 0, 64, 2, 0, 3);
    double acc0;
    ASSERT_OK(ug_model_accuracy(m, &te, &acc0));
    double dt = train(m, &tr, 300, 128, 1e-2f, 7);
    double acc;
    ASSERT_OK(ug_model_accuracy(m, &te, &acc));
    printf("    mix2d MLP: test accuracy %.4f (untrained %.4f, Bayes %.4f), 300 steps in %.2f s\n",
           acc, acc0, (double)bayes / te.n, dt);
    EXPECT(acc > 0.9, "test accuracy %.4f, expected > 0.9 (Bayes %.4f)", acc, (double)bayes / te.n);
    EXPECT(acc0 < 0.6, "untrained accuracy %.4f suspiciously high", acc0);

    /* Fréchet distance in the hidden-feature space: test vs train is sampling noise, test vs a
     * set without classes 4..7 is not. */
    float *half = malloc((size_t)(tr.n * 2) * sizeof *half);
    ASSERT(half, "out of memory");
    int64_t nh = half_classes(&tr, half);
    double fd_same = frechet_features(m, te.x, te.n, tr.x, tr.n, 2);
    double fd_half = frechet_features(m, te.x, te.n, half, nh, 2);
    printf("    mix2d features: FD(test, train) %.4g, FD(test, half the classes) %.4g\n", fd_same,
           fd_half);
    EXPECT(fd_same >= 0 && fd_half > 20 * fd_same, "FD %.4g (same) vs %.4g (half the classes)",
           fd_same, fd_half);
    free(half);
    ug_model_free(m);
    ug_gmm_free(&g);
    ug_dataset_free(&tr);
    ug_dataset_free(&te);
}

TEST(classifier_noisy_sharp_at_small_sigma_prior_at_large) {
    ug_dataset tr, te;
    ASSERT_OK(ug_dataset_load("gmm:ref/samplers/mix2d.json", 1, 8192, 2, &tr));
    ASSERT_OK(ug_dataset_load("gmm:ref/samplers/mix2d.json", 0, 2000, 2, &te));
    ug_gmm g;
    ASSERT_OK(ug_gmm_load("ref/samplers/mix2d.json", &g));
    ug_model *m = make_classifier(2, 8, 0, 0, 0, 64, 2, 1, 4);
    double dt = train(m, &tr, 400, 128, 1e-2f, 8);
    int64_t n = te.n;
    float *xn = malloc((size_t)(n * 2) * sizeof *xn), *eps = malloc((size_t)(n * 2) * sizeof *eps);
    float *lg = malloc((size_t)(n * 8) * sizeof *lg);
    double *sg = malloc((size_t)n * sizeof *sg);
    ASSERT(xn && eps && lg && sg, "out of memory");
    ug_rng r = ug_rng_make(77, 0, 0);
    ug_rng_normal(&r, eps, n * 2);
    const double sigmas[3] = {0.02, 0.5, 40.0};
    double acc[3], bayes[3], tv = 0;
    for (int s = 0; s < 3; s++) {
        for (int64_t j = 0; j < n * 2; j++) xn[j] = (float)(te.x[j] + sigmas[s] * eps[j]);
        for (int64_t i = 0; i < n; i++) sg[i] = sigmas[s];
        ASSERT_OK(ug_model_classify(m, n, xn, sg, lg, NULL));
        int64_t right = 0, bright = 0;
        double pbar[8] = {0};
        for (int64_t i = 0; i < n; i++) {
            int best = 0;
            double mx = lg[i * 8], z = 0;
            for (int k = 1; k < 8; k++) {
                if (lg[i * 8 + k] > lg[i * 8 + best]) best = k;
                mx = fmax(mx, lg[i * 8 + k]);
            }
            for (int k = 0; k < 8; k++) z += exp(lg[i * 8 + k] - mx);
            for (int k = 0; k < 8; k++) pbar[k] += exp(lg[i * 8 + k] - mx) / z / (double)n;
            right += best == te.y[i];
            bright += bayes_class(&g, xn + 2 * i, sigmas[s]) == te.y[i];
        }
        acc[s] = (double)right / n;
        bayes[s] = (double)bright / n;
        if (s == 2) {
            for (int k = 0; k < 8; k++) tv += 0.5 * fabs(pbar[k] - g.w[k]);
        }
        printf("    noisy mix2d, sigma %g: accuracy %.4f (Bayes %.4f)\n", sigmas[s], acc[s], bayes[s]);
    }
    printf("    noisy mix2d: 400 steps in %.2f s; at sigma 40 the mean predicted distribution is "
           "%.4f (total variation) from the prior\n", dt, tv);
    EXPECT(acc[0] > 0.95 && acc[0] > bayes[0] - 0.03, "accuracy %.4f at sigma 0.02 (Bayes %.4f)",
           acc[0], bayes[0]);
    EXPECT(acc[1] > bayes[1] - 0.08, "accuracy %.4f at sigma 0.5 (Bayes %.4f)", acc[1], bayes[1]);
    EXPECT(acc[2] < 0.35, "accuracy %.4f at sigma 40: the inputs carry almost no information",
           acc[2]);
    EXPECT(tv < 0.1, "mean prediction at sigma 40 is %.4f from the class prior", tv);
    free(xn);
    free(eps);
    free(lg);
    free(sg);
    ug_model_free(m);
    ug_gmm_free(&g);
    ug_dataset_free(&tr);
    ug_dataset_free(&te);
}

/* The centre 24 x 24 of each 28 x 28 image, 2 x 2 average-pooled to 12 x 12: the same network
 * at a fifth of the cost, so the test stays short on a shared 2-core machine. */
static int shrink_fashion(const ug_dataset *src, ug_dataset *dst) {
    memset(dst, 0, sizeof *dst);
    dst->n = src->n;
    dst->ndim = 3;
    dst->shape[0] = 1;
    dst->shape[1] = dst->shape[2] = 12;
    dst->num_classes = src->num_classes;
    dst->x = malloc((size_t)(src->n * 144) * sizeof *dst->x);
    dst->y = malloc((size_t)src->n * sizeof *dst->y);
    if (!dst->x || !dst->y) return 0;
    memcpy(dst->y, src->y, (size_t)src->n * sizeof *dst->y);
    for (int64_t i = 0; i < src->n; i++) {
        const float *im = src->x + i * 784;
        for (int r = 0; r < 12; r++)
            for (int c = 0; c < 12; c++) {
                const float *p = im + (2 + 2 * r) * 28 + 2 + 2 * c;
                dst->x[i * 144 + r * 12 + c] = 0.25f * (p[0] + p[1] + p[28] + p[29]);
            }
    }
    return 1;
}

TEST(classifier_cnn_fashion_mnist) {
    ug_dataset full_tr, full_te, tr, te;
    if (ug_dataset_load("fashion-mnist", 1, 2000, 0, &full_tr) != UG_OK) {
        printf("    skipped: %s\n", ug_last_error());
        return;
    }
    ASSERT_OK(ug_dataset_load("fashion-mnist", 0, 1000, 0, &full_te));
    ASSERT(full_tr.ndim == 3 && full_tr.shape[0] == 1 && full_tr.shape[1] == 28 &&
           full_tr.num_classes == 10, "unexpected Fashion-MNIST layout");
    ASSERT(shrink_fashion(&full_tr, &tr) && shrink_fashion(&full_te, &te), "out of memory");
    ug_dataset_free(&full_tr);
    ug_dataset_free(&full_te);
    enum { STEPS = 300, BATCH = 32 };
    /* One thread: a 12 x 12 image's sgemms are too small to share, and on a loaded machine the
     * thread hand-offs of the per-image conv loop cost 10x the work (measured 83 s vs 5.7 s,
     * identical results). */
    int threads = ug_get_threads();
    ug_set_threads(1);
    ug_model *m = make_classifier(144, 10, 1, 12, 12, 0, 0, 0, 5);
    double dt = train(m, &tr, STEPS, BATCH, 3e-3f, 9);
    double acc, t0 = ug_test_now_s();
    ASSERT_OK(ug_model_accuracy(m, &te, &acc));
    double dte = ug_test_now_s() - t0;
    printf("    Fashion-MNIST 12x12 CNN: test accuracy %.4f on 1000 images after %d steps of %d "
           "(%.2f s; evaluation %.2f s)\n", acc, STEPS, BATCH, dt, dte);
    EXPECT(acc > 0.6, "test accuracy %.4f, expected > 0.6 (chance 0.1)", acc);

    float *half = malloc((size_t)(tr.n * 144) * sizeof *half);
    ASSERT(half, "out of memory");
    int64_t nh = half_classes(&tr, half);
    double fd_same = frechet_features(m, te.x, te.n, tr.x, tr.n, 144);
    double fd_half = frechet_features(m, te.x, te.n, half, nh, 144);
    printf("    Fashion-MNIST features: FD(test, train) %.4g, FD(test, classes 0-4) %.4g\n",
           fd_same, fd_half);
    EXPECT(fd_same >= 0 && fd_half > 5 * fd_same, "FD %.4g (same) vs %.4g (half the classes)",
           fd_same, fd_half);
    free(half);
    ug_model_free(m);
    free(tr.x);
    free(tr.y);
    free(te.x);
    free(te.y);
    ug_set_threads(threads);
}
