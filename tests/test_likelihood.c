/* test_likelihood.c — the probability-flow ODE likelihood (SPEC section 6) against exact answers:
 * Dormand-Prince RK45 on ODEs with known solutions; the mixture's analytic div_x D against
 * central differences; ODE log-likelihoods of points near the mixtures of tests/ref/samplers
 * against ug_gmm_logpdf; a small network's exact (vector-Jacobian) divergence against finite
 * differences, and Hutchinson's estimate against it within its standard error. */
#include "test.h"
#include "eval/eval.h"

/* ---------------------------------------------------------------- RK45 */
static ug_status decay(void *self, double t, const double *y, double *dy) {
    (void)self; (void)t;
    dy[0] = -y[0];
    return UG_OK;
}

/* y'' = -y as a system: (cos t, -sin t). */
static ug_status oscillator(void *self, double t, const double *y, double *dy) {
    int *calls = self;
    (*calls)++;
    (void)t;
    dy[0] = y[1];
    dy[1] = -y[0];
    return UG_OK;
}

/* scipy 1.10 solve_ivp(RK45) on the same problems: nfev 38, 68, 212 (6, 11, 35 steps) for
 * dy/dt = -y on [0, 5] at rtol = atol = 1e-3, 1e-5, 1e-8; the oscillator: nfev 362, 60 steps. */
TEST(rk45_decay_meets_tolerance) {
    const double tols[] = {1e-3, 1e-5, 1e-8};
    const int64_t scipy_nfe[] = {38, 68, 212};
    int64_t prev_nfe = 0;
    for (int i = 0; i < 3; i++) {
        ug_rk45_cfg c = ug_rk45_default();
        c.rtol = c.atol = tols[i];
        double y = 1;
        ug_ode_stats st;
        ASSERT_OK(ug_rk45_solve(&c, decay, NULL, 1, &y, 0, 5, &st));
        double err = fabs(y - exp(-5.0));
        /* The local control keeps the global error within a small multiple of the tolerance. */
        EXPECT(err < 10 * tols[i] * (1 + exp(-5.0)), "tol %g: error %g", tols[i], err);
        /* FSAL: 6 evaluations per attempted step, plus f(t0) and the initial-step probe. */
        EXPECT(st.nfe == 6 * (st.steps + st.rejected) + 2, "nfe %lld, steps %lld, rejected %lld",
               (long long)st.nfe, (long long)st.steps, (long long)st.rejected);
        EXPECT(st.nfe > prev_nfe && st.nfe < 600, "tol %g: nfe %lld", tols[i], (long long)st.nfe);
        EXPECT(st.nfe == scipy_nfe[i], "tol %g: nfe %lld, scipy %lld", tols[i], (long long)st.nfe,
               (long long)scipy_nfe[i]);
        prev_nfe = st.nfe;
    }
    /* Backwards in time: e^{-5} at t = 5 back to 1 at t = 0. */
    ug_rk45_cfg c = ug_rk45_default();
    double y = exp(-5.0);
    ASSERT_OK(ug_rk45_solve(&c, decay, NULL, 1, &y, 5, 0, NULL));
    EXPECT(fabs(y - 1) < 1e-4, "backward: %g", y);
}

TEST(rk45_oscillator_counts_calls) {
    ug_rk45_cfg c = ug_rk45_default();
    c.rtol = c.atol = 1e-7;
    double y[2] = {1, 0};
    int calls = 0;
    ug_ode_stats st;
    ASSERT_OK(ug_rk45_solve(&c, oscillator, &calls, 2, y, 0, 10, &st));
    EXPECT(fabs(y[0] - cos(10.0)) < 1e-5 && fabs(y[1] + sin(10.0)) < 1e-5, "y (%g, %g)", y[0], y[1]);
    EXPECT(st.nfe == calls, "nfe %lld, calls %d", (long long)st.nfe, calls);
    EXPECT(st.nfe == 362 && st.steps == 60, "steps %lld nfe %lld, scipy 60 and 362",
           (long long)st.steps, (long long)st.nfe);
    c.max_nfe = 20;
    y[0] = 1; y[1] = 0;
    EXPECT(ug_rk45_solve(&c, oscillator, &calls, 2, y, 0, 10, NULL) == UG_ERR_NUMERIC,
           "max_nfe must stop the solve");
}

/* ---------------------------------------------------------------- mixture divergence */
TEST(gmm_divergence_matches_finite_differences) {
    const char *files[] = {"ref/samplers/mix2d.json", "ref/samplers/mix16.json"};
    const double sigmas[] = {0.002, 0.05, 0.3, 1.0, 5.0, 80.0};
    for (int fi = 0; fi < 2; fi++) {
        ug_gmm g;
        ASSERT_OK(ug_gmm_load(files[fi], &g));
        int d = g.d;
        float xs[8 * 16];
        ASSERT_OK(ug_gmm_sample(&g, 0, 8, 3, xs, NULL));
        double worst = 0;
        for (int si = 0; si < 6; si++) {
            double sigma = sigmas[si];
            ug_rng r = ug_rng_make(4, (uint64_t)si, 0);
            float z[16];
            for (int p = 0; p < 8; p++) {
                double x[16], D[16], Dp[16], Dm[16], div, fd = 0;
                ug_rng_normal(&r, z, d);
                /* points between components too, where r_k varies fastest */
                for (int j = 0; j < d; j++) x[j] = xs[p * d + j] + (0.3 + sigma) * z[j];
                ug_gmm_denoise_div(&g, x, sigma, D, &div);
                double Dref[16];
                ug_gmm_denoise(&g, x, sigma, Dref);
                for (int j = 0; j < d; j++)
                    EXPECT(fabs(D[j] - Dref[j]) < 1e-12 * (1 + fabs(Dref[j])), "D differs at %d", j);
                double h = 1e-5 * (0.1 + sigma);
                for (int j = 0; j < d; j++) {
                    double keep = x[j];
                    x[j] = keep + h;
                    ug_gmm_denoise(&g, x, sigma, Dp);
                    x[j] = keep - h;
                    ug_gmm_denoise(&g, x, sigma, Dm);
                    x[j] = keep;
                    fd += (Dp[j] - Dm[j]) / (2 * h);
                }
                double e = fabs(div - fd) / (1 + fabs(fd));
                if (e > worst) worst = e;
                EXPECT(e < 1e-5, "%s sigma %g point %d: div %.10g, finite differences %.10g",
                       files[fi], sigma, p, div, fd);
            }
        }
        printf("    %s: worst relative divergence error %.2e\n", files[fi], worst);
        ug_gmm_free(&g);
    }
}

/* ---------------------------------------------------------------- ODE likelihood, mixture */
/* n points of the mixture noised to sigma_min; returns the mean |error| with the exact prior
 * at sigma_max (integration error alone) and with SPEC's N(0, smax^2 I) prior. */
static void gmm_likelihood(const char *file, int64_t n, double smin, double smax, double tol,
                           double *err_exact_prior, double *err_gauss_prior, int64_t *nfe) {
    ug_gmm g;
    ASSERT_OK(ug_gmm_load(file, &g));
    int64_t d = g.d;
    float *xs = malloc((size_t)(n * d) * sizeof *xs), *eps = malloc((size_t)(n * d) * sizeof *eps);
    double *x = malloc((size_t)(n * d) * sizeof *x), *z = malloc((size_t)(n * d) * sizeof *z);
    double *logp = malloc((size_t)n * sizeof *logp), *delta = malloc((size_t)n * sizeof *delta);
    ASSERT_OK(ug_gmm_sample(&g, 0, n, 11, xs, NULL));
    ug_rng_normal_rows(12, 0, 0, eps, n, d);
    for (int64_t j = 0; j < n * d; j++) x[j] = xs[j] + smin * eps[j];
    ug_lik_cfg c = ug_lik_default();
    c.sigma_min = smin;
    c.sigma_max = smax;
    c.ode.rtol = c.ode.atol = tol;
    ug_div_denoiser dn = ug_gmm_div_denoiser(&g);
    ug_ode_stats st;
    ASSERT_OK(ug_likelihood_ode(&c, &dn, n, x, logp, z, delta, &st));
    double e1 = 0, e2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double ref = ug_gmm_logpdf(&g, x + i * d, smin);
        double exact_prior = ug_gmm_logpdf(&g, z + i * d, smax) + delta[i];
        e1 += fabs(exact_prior - ref);
        e2 += fabs(logp[i] - ref);
    }
    *err_exact_prior = e1 / n;
    *err_gauss_prior = e2 / n;
    *nfe = st.nfe;
    printf("    %s, %lld points, sigma %g..%g, tol %g: mean |NLL error| %.2e nats (exact prior), %.2e "
           "(N(0, smax^2) prior); NFE %lld, %lld steps, %lld rejected\n", file, (long long)n, smin,
           smax, tol, *err_exact_prior, *err_gauss_prior, (long long)st.nfe, (long long)st.steps,
           (long long)st.rejected);
    free(xs); free(eps); free(x); free(z); free(logp); free(delta);
    ug_gmm_free(&g);
}

TEST(likelihood_gmm2d_matches_exact) {
    double e1, e2;
    int64_t nfe;
    gmm_likelihood("ref/samplers/mix2d.json", 256, 0.002, 80, 1e-5, &e1, &e2, &nfe);
    EXPECT(e1 < 1e-3, "mix2d: mean |error| %g nats with the exact prior", e1);
    /* N(0, 80^2 I) is not p_80, but log p_80(z) - log N(z; 0, 80^2 I) ~ z . mubar / 80^2 with
     * mubar = sum_k w_k mu_k, small for this ring of components. */
    EXPECT(e2 < 1e-3, "mix2d: mean |error| %g nats with the Gaussian prior", e2);
    EXPECT(nfe > 20 && nfe < 2000, "nfe %lld", (long long)nfe);
    /* At sigma_max = 1e4 the Gaussian prior is itself exact to ~1e-4 nats. The tolerance is
     * tighter there: rtol bounds the error of delta relative to |delta| ~ d ln(smax/smin). */
    gmm_likelihood("ref/samplers/mix2d.json", 256, 0.002, 1e4, 1e-7, &e1, &e2, &nfe);
    EXPECT(e2 < 1e-3, "mix2d, smax 1e4: mean |error| %g nats", e2);
}

TEST(likelihood_gmm16_matches_exact) {
    double e1, e2;
    int64_t nfe;
    gmm_likelihood("ref/samplers/mix16.json", 128, 0.002, 80, 1e-5, &e1, &e2, &nfe);
    EXPECT(e1 < 1e-3, "mix16: mean |error| %g nats with the exact prior", e1);
    /* Here mubar is far from 0 (|mu_k| ~ 5): the Gaussian prior at 80 costs ~0.03 nats. */
    EXPECT(e2 < 0.05, "mix16: mean |error| %g nats with the Gaussian prior", e2);
    EXPECT(nfe > 20 && nfe < 2000, "nfe %lld", (long long)nfe);
    gmm_likelihood("ref/samplers/mix16.json", 128, 0.01, 1e4, 1e-7, &e1, &e2, &nfe);
    EXPECT(e2 < 1e-3, "mix16, smax 1e4: mean |error| %g nats", e2);
}

TEST(likelihood_rejects_bad_range) {
    ug_gmm g;
    ASSERT_OK(ug_gmm_load("ref/samplers/mix2d.json", &g));
    ug_div_denoiser dn = ug_gmm_div_denoiser(&g);
    ug_lik_cfg c = ug_lik_default();
    c.sigma_min = 0;
    double x[2] = {0, 0}, lp;
    EXPECT(ug_likelihood_ode(&c, &dn, 1, x, &lp, NULL, NULL, NULL) == UG_ERR_INVALID_ARG, "smin 0");
    c = ug_lik_default();
    c.sigma_max = 0.001;
    EXPECT(ug_likelihood_ode(&c, &dn, 1, x, &lp, NULL, NULL, NULL) == UG_ERR_INVALID_ARG, "smax < smin");
    ug_gmm_free(&g);
}

/* ---------------------------------------------------------------- network divergence */
enum { NET_D = 4, NET_N = 5 };

static ug_model *tiny_model(int d, float wscale) {
    ug_model_cfg mc = ug_model_cfg_default();
    mc.data_dim = d;
    strcpy(mc.net, "mlp");
    mc.hidden = 8;
    mc.depth = 2;
    mc.emb_dim = 8;
    ug_model *m;
    if (ug_model_create(&mc, 7, &m)) return NULL;
    /* Larger weights than the default init make the Jacobian far from c_skip I (and the field
     * rough in sigma: NFE 68 at scale 0.3, 362 at 1, 1604 at 3 in the likelihood test). */
    ug_params *ps = ug_model_params(m);
    float *w = ug_params_data(ps);
    for (int64_t j = 0; j < ug_params_count(ps); j++) w[j] *= wscale;
    return m;
}

TEST(network_exact_divergence_matches_finite_differences) {
    const int d = NET_D, n = NET_N;
    ug_model *m = tiny_model(d, 3);
    ASSERT(m, "model: %s", ug_last_error());
    ug_div_cfg dc = ug_div_default();
    dc.kind = UG_DIV_EXACT;
    ug_div_denoiser dn;
    void *state;
    ASSERT_OK(ug_model_div_denoiser(m, NULL, &dc, &dn, &state));
    float z[NET_N * NET_D];
    ug_rng_normal_rows(3, 0, 0, z, n, d);
    const double sigmas[] = {0.01, 0.5, 3.0};
    for (int si = 0; si < 3; si++) {
        double sigma = sigmas[si], x[NET_N * NET_D], D[NET_N * NET_D], div[NET_N], Dp[NET_N * NET_D],
               Dm[NET_N * NET_D], fd[NET_N];
        for (int j = 0; j < n * d; j++) x[j] = z[j];
        ASSERT_OK(dn.fn(dn.self, n, x, sigma, D, div));
        for (int i = 0; i < n; i++) fd[i] = 0;
        /* Perturb coordinate j of every point at once: points do not interact. */
        const double h = 1e-2;
        for (int j = 0; j < d; j++) {
            for (int i = 0; i < n; i++) x[i * d + j] = z[i * d + j] + h;
            ASSERT_OK(dn.fn(dn.self, n, x, sigma, Dp, NULL));
            for (int i = 0; i < n; i++) x[i * d + j] = z[i * d + j] - h;
            ASSERT_OK(dn.fn(dn.self, n, x, sigma, Dm, NULL));
            for (int i = 0; i < n; i++) {
                x[i * d + j] = z[i * d + j];
                fd[i] += (Dp[i * d + j] - Dm[i * d + j]) / (2 * h);
            }
        }
        for (int i = 0; i < n; i++)
            EXPECT(fabs(div[i] - fd[i]) < 2e-3 + 1e-2 * fabs(fd[i]),
                   "sigma %g point %d: exact %.6g, finite differences %.6g", sigma, i, div[i], fd[i]);
        /* The divergence must not be trivially d * c_skip. */
        if (si == 1) EXPECT(fabs(div[0] - d * 0.2) > 0.05, "div %g looks like d c_skip", div[0]);
    }
    /* Frozen only during the call. */
    EXPECT(ug_params_tensor(ug_model_params(m), 0)->requires_grad, "requires_grad not restored");
    ug_model_div_free(state);
    ug_model_free(m);
}

TEST(network_hutchinson_within_standard_error) {
    const int d = NET_D, reps = 2000;
    ug_model *m = tiny_model(d, 3);
    ASSERT(m, "model: %s", ug_last_error());
    float z[NET_D];
    ug_rng r = ug_rng_make(9, 0, 0);
    ug_rng_normal(&r, z, d);
    const double sigma = 0.5;
    /* Exact divergence at one point. */
    ug_div_cfg dc = ug_div_default();
    dc.kind = UG_DIV_EXACT;
    ug_div_denoiser dn;
    void *state;
    double x1[NET_D], D1[NET_D], exact;
    for (int j = 0; j < d; j++) x1[j] = z[j];
    ASSERT_OK(ug_model_div_denoiser(m, NULL, &dc, &dn, &state));
    ASSERT_OK(dn.fn(dn.self, 1, x1, sigma, D1, &exact));
    ug_model_div_free(state);
    /* reps copies of the point, one probe each: per-sample streams make them independent. */
    double *x = malloc((size_t)reps * d * sizeof *x), *D = malloc((size_t)reps * d * sizeof *D);
    double *est = malloc((size_t)reps * sizeof *est);
    for (int i = 0; i < reps; i++)
        for (int j = 0; j < d; j++) x[i * d + j] = z[j];
    dc.kind = UG_DIV_HUTCHINSON;
    dc.probes = 1;
    dc.seed = 21;
    ASSERT_OK(ug_model_div_denoiser(m, NULL, &dc, &dn, &state));
    ASSERT_OK(dn.fn(dn.self, reps, x, sigma, D, est));
    EXPECT(dn.fn(dn.self, 3, x, sigma, D, est) == UG_ERR_INVALID_ARG, "batch size is fixed");
    ug_model_div_free(state);
    double mean = 0, var = 0;
    for (int i = 0; i < reps; i++) mean += est[i];
    mean /= reps;
    for (int i = 0; i < reps; i++) var += (est[i] - mean) * (est[i] - mean);
    double sd = sqrt(var / (reps - 1)), se = sd / sqrt((double)reps);
    printf("    Hutchinson: exact %.5f, mean of %d single probes %.5f (sd %.4f, se %.4f)\n", exact,
           reps, mean, sd, se);
    EXPECT(sd > 1e-3, "probes should vary (sd %g)", sd);
    EXPECT(fabs(mean - exact) < 4 * se, "mean %g vs exact %g (se %g)", mean, exact, se);
    /* 500 probes on one point: error within 4 sd / sqrt(500). */
    dc.probes = 500;
    double est500;
    ASSERT_OK(ug_model_div_denoiser(m, NULL, &dc, &dn, &state));
    ASSERT_OK(dn.fn(dn.self, 1, x1, sigma, D1, &est500));
    ug_model_div_free(state);
    EXPECT(fabs(est500 - exact) < 4 * sd / sqrt(500.0), "500 probes %g vs exact %g", est500, exact);
    free(x); free(D); free(est);
    ug_model_free(m);
}

TEST(network_likelihood_runs_and_agrees_across_divergences) {
    enum { LD = 3, LN = 4 };
    const int d = LD, n = LN;
    ug_model *m = tiny_model(d, 1);
    ASSERT(m, "model: %s", ug_last_error());
    double x[LN * LD], lp_exact[LN], lp_hut[LN];
    float z[LN * LD];
    ug_rng_normal_rows(5, 0, 0, z, n, d);
    for (int j = 0; j < n * d; j++) x[j] = z[j];
    ug_lik_cfg c = ug_lik_default();
    /* A narrow range: the untrained net oscillates in ln sigma through its embedding. */
    c.sigma_min = 0.1;
    c.sigma_max = 5;
    ug_div_cfg dc = ug_div_default();   /* auto: exact for d <= 64 */
    ug_div_denoiser dn;
    void *state;
    ug_ode_stats st;
    ASSERT_OK(ug_model_div_denoiser(m, NULL, &dc, &dn, &state));
    ASSERT_OK(ug_likelihood_ode(&c, &dn, n, x, lp_exact, NULL, NULL, &st));
    ug_model_div_free(state);
    dc.kind = UG_DIV_HUTCHINSON;
    dc.probes = 100;
    ASSERT_OK(ug_model_div_denoiser(m, NULL, &dc, &dn, &state));
    ASSERT_OK(ug_likelihood_ode(&c, &dn, n, x, lp_hut, NULL, NULL, NULL));
    ug_model_div_free(state);
    for (int i = 0; i < n; i++) {
        EXPECT(isfinite(lp_exact[i]), "logp %d = %g", i, lp_exact[i]);
        EXPECT(fabs(lp_exact[i] - lp_hut[i]) < 0.1 * (1 + fabs(lp_exact[i])),
               "point %d: exact %g, Hutchinson %g", i, lp_exact[i], lp_hut[i]);
    }
    printf("    tiny network: logp[0] %.4f (exact div), %.4f (Hutchinson, 100 probes), NFE %lld\n",
           lp_exact[0], lp_hut[0], (long long)st.nfe);
    ug_model_free(m);
}

TEST(bits_per_dim) {
    /* Uniform density on [0, 1]^d (nll 0) dequantized from 8 bits: exactly 8 bits/dim. */
    EXPECT(fabs(ug_bits_per_dim(0, 784, ug_data_scale_levels(UG_SCALE_DEQUANT256)) - 8) < 1e-12, "8 bits");
    /* Uniform on [-1, 1]^d (nll d ln 2) is uniform over 255 pixel steps: log2(255) bits/dim. */
    EXPECT(fabs(ug_bits_per_dim(10 * log(2.0), 10, 127.5) - log2(255.0)) < 1e-12, "uniform pm1");
    double nll = 100, d = 10;
    EXPECT(fabs(ug_bits_per_dim(nll, 10, 127.5) - (nll + d * log(127.5)) / (d * log(2))) < 1e-12, "pm1");
    EXPECT(fabs(ug_bits_per_dim(nll, 10, 1) - nll / (d * log(2))) < 1e-12, "raw");
    EXPECT(ug_data_scale_levels(UG_SCALE_PM1) == 127.5 && ug_data_scale_levels(UG_SCALE_UNIT) == 255 &&
           ug_data_scale_levels(UG_SCALE_RAW) == 1, "levels");
    ug_div_kind k;
    EXPECT(!ug_div_from_name("hutchinson", &k) && k == UG_DIV_HUTCHINSON, "name");
    EXPECT(ug_div_from_name("hutch", &k) == -1, "unknown name");
}
