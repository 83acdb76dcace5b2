/* test_vlb.c — the DDPM variational bound (Ho et al. 2020 eq. 5; src/eval/vlb.c):
 * the Gaussian KL against numerical integration, the normal-mass logarithm against mpmath values,
 * the discretized decoder summing to one over the 256 bins; the whole bound for Gaussian data
 * against its closed-form expectation; for a mixture with its exact denoiser, the bound above the
 * exact NLL and close to it; and the same values whatever the batch split. */
#include "test.h"
#include "eval/eval.h"

/* ---------------------------------------------------------------- formulas */
TEST(vlb_gauss_kl_matches_quadrature) {
    const double cases[][4] = {{0, 1, 0, 1}, {0.3, 0.5, -0.2, 2}, {1e-3, 1e-4, 0, 1.2e-4},
                               {2, 3, 1, 0.7}, {-1, 1e-2, -1.05, 1e-2}};
    for (int c = 0; c < 5; c++) {
        double m1 = cases[c][0], v1 = cases[c][1], m2 = cases[c][2], v2 = cases[c][3];
        /* Simpson's rule for int p log(p/q) over m1 +- 12 sd1. */
        double s1 = sqrt(v1), lo = m1 - 12 * s1, hi = m1 + 12 * s1, sum = 0;
        int N = 20000;
        double h = (hi - lo) / N;
        for (int k = 0; k <= N; k++) {
            double x = lo + k * h;
            double lp = -0.5 * log(2 * M_PI * v1) - 0.5 * (x - m1) * (x - m1) / v1;
            double lq = -0.5 * log(2 * M_PI * v2) - 0.5 * (x - m2) * (x - m2) / v2;
            double wgt = (k == 0 || k == N) ? 1 : (k % 2 ? 4 : 2);
            sum += wgt * exp(lp) * (lp - lq);
        }
        sum *= h / 3;
        double got = ug_gauss_kl(m1, v1, m2, v2);
        EXPECT(fabs(got - sum) < 1e-9 + 1e-8 * fabs(sum), "case %d: kl %.12g, quadrature %.12g", c, got, sum);
    }
    EXPECT(ug_gauss_kl(0.5, 0.1, 0.5, 0.1) == 0, "KL of a distribution with itself");
}

TEST(vlb_log_normal_mass_matches_mpmath) {
    /* mpmath (60 digits): log(Q(a) - Q(b)) with Q the upper tail. */
    const double ref[][3] = {
        {-0.2, 0.3, -1.62368323886831999520},
        {12, 12.5, -75.4127763106974383720},
        {-12.5, -12, -75.4127763106974383720},
        {30.5, 31, -469.462737529771576584},
        {-8, 9, -6.22208916267773990e-16},
        {5, INFINITY, -15.0649983939887257361},
        {10, INFINITY, -53.2312851505124705783},
        {-INFINITY, -29.9, -451.322912458528634468},
        {30.1, INFINITY, -457.329564416382257883},
        {40, INFINITY, -804.608442013753788167},
        {100, INFINITY, -5005.52420869420508863},
    };
    for (int c = 0; c < 11; c++) {
        double got = ug_log_normal_mass(ref[c][0], ref[c][1]);
        EXPECT(fabs(got - ref[c][2]) < 1e-12 * fabs(ref[c][2]) + 1e-28,
               "log mass (%g, %g): %.17g, mpmath %.17g", ref[c][0], ref[c][1], got, ref[c][2]);
    }
    EXPECT(ug_log_normal_mass(-INFINITY, INFINITY) == 0, "whole line");
    EXPECT(ug_log_normal_mass(1, 1) == -INFINITY, "empty interval");
}

TEST(vlb_discretized_decoder_sums_to_one) {
    const double ms[][2] = {{0, 0.01}, {0.3, 0.2}, {-0.99, 1e-3}, {1.5, 0.05}, {0.0021, 1e-5}, {0, 5}};
    for (int c = 0; c < 6; c++) {
        double total = 0, best = -INFINITY;
        for (int k = 0; k < 256; k++) {
            double lp = ug_discretized_gaussian_logp(k / 127.5 - 1, ms[c][0], ms[c][1]);
            EXPECT(lp <= 0, "log probability %g > 0", lp);
            total += exp(lp);
            if (lp > best) best = lp;
        }
        EXPECT(fabs(total - 1) < 1e-12, "mean %g sd %g: mass %.15g", ms[c][0], ms[c][1], total);
        EXPECT(best > -50, "some bin is likely");
    }
    /* A bin far from the mean keeps a finite log probability (no 1e-12 clamp). */
    double lp = ug_discretized_gaussian_logp(1.0 - 2 / 255.0 * 100, 1.0, 1e-3);
    EXPECT(isfinite(lp) && lp < -1e5, "far bin %g", lp);
}

/* ---------------------------------------------------------------- the bound */
static void gmm_points(const ug_gmm *g, int64_t first, int64_t n, uint64_t seed, double *x) {
    float *f = malloc((size_t)(n * g->d) * sizeof *f);
    ASSERT(f, "oom");
    ASSERT_OK(ug_gmm_sample(g, first, n, seed, f, NULL));
    for (int64_t j = 0; j < n * g->d; j++) x[j] = f[j];
    free(f);
}

static double mean_of(const double *v, int64_t n, double *se) {
    double m = 0, q = 0;
    for (int64_t i = 0; i < n; i++) m += v[i];
    m /= (double)n;
    for (int64_t i = 0; i < n; i++) q += (v[i] - m) * (v[i] - m);
    if (se) *se = sqrt(q / (double)(n - 1) / (double)n);
    return m;
}

/* For x0 ~ N(mu, s^2 I) everything is Gaussian: x0 - D(x~; sigma) has mean square
 * s^2 sigma^2 / (s^2 + sigma^2) per dimension, so the expected bound is closed form. */
TEST(vlb_gaussian_data_matches_closed_form) {
    double w = 1, mu[2] = {0.2, -0.1}, s = 0.3;
    ug_gmm g = {1, 2, &w, mu, &s};
    ug_denoiser dn = ug_gmm_denoiser(&g);
    for (int kind = 0; kind < 2; kind++) {
        ug_form f;
        ug_form_init(&f, kind ? UG_FORM_VP_COSINE : UG_FORM_VP);
        for (int var = 0; var < 2; var++) {
            ug_vlb_cfg c = ug_vlb_default();
            c.decoder = UG_VLB_GAUSSIAN;
            c.var = (ug_vlb_var)var;
            c.seed = 11;
            int64_t n = 400, d = 2, T = f.T;
            double *x = malloc((size_t)(n * d) * sizeof *x), *nats = malloc((size_t)n * sizeof *nats);
            double *terms = malloc((size_t)(T + 1) * sizeof *terms);
            gmm_points(&g, 0, n, 5, x);
            ASSERT_OK(ug_ddpm_vlb(&f, &dn, &c, n, x, nats, terms));
            double expect = 0, tsum = 0;
            for (int t = 1; t <= T; t++) {
                double ab = f.abar[t - 1], abp = t >= 2 ? f.abar[t - 2] : 1, beta = f.beta[t - 1];
                double sg2 = (1 - ab) / ab, mse = s * s * sg2 / (s * s + sg2);
                double c1 = sqrt(abp) * beta / (1 - ab), vq = (1 - abp) / (1 - ab) * beta;
                double vp = var ? (t >= 2 ? beta : f.beta[0])
                                : (t >= 2 ? vq : (1 - f.abar[0]) / (1 - f.abar[1]) * f.beta[1]);
                double term = t >= 2 ? 0.5 * d * (vq / vp - 1 - log(vq / vp) + c1 * c1 * mse / vp)
                                     : 0.5 * d * (log(2 * M_PI * vp) + mse / vp);
                expect += term;
                tsum += terms[t - 1];
            }
            double abT = f.abar[T - 1], q2 = (mu[0] * mu[0] + mu[1] * mu[1]) + d * s * s;
            expect += 0.5 * (abT * (q2 - d) - d * log1p(-abT));
            double se, got = mean_of(nats, n, &se);
            EXPECT(fabs(got - expect) < 4 * se + 1e-9, "%s var %d: mean bound %.6f, closed form %.6f (se %.2g)",
                   ug_form_name(f.kind), var, got, expect, se);
            EXPECT(fabs(tsum + terms[T] - got) < 1e-9 * (1 + fabs(got)), "terms sum %.12g, mean %.12g",
                   tsum + terms[T], got);
            free(x); free(nats); free(terms);
        }
    }
}

static const double k_w[] = {0.3, 0.7}, k_s[] = {0.1, 0.25};
static double k_mu[] = {-0.5, 0.4};

/* With the exact denoiser the bound sits above the data's exact NLL on average and close to
 * it: what is left is the Gaussian reverse kernels at T = 1000 and their fixed variances. */
TEST(vlb_mixture_bound_above_exact_nll) {
    ug_gmm g = {2, 1, (double *)k_w, k_mu, (double *)k_s};
    ug_denoiser dn = ug_gmm_denoiser(&g);
    int64_t n = 500;
    double *x = malloc((size_t)n * sizeof *x), *nats = malloc((size_t)n * sizeof *nats);
    double *gap = malloc((size_t)n * sizeof *gap);
    gmm_points(&g, 0, n, 3, x);
    double nll = 0;
    for (int64_t i = 0; i < n; i++) nll -= ug_gmm_logpdf(&g, x + i, 0) / (double)n;
    for (int kind = 0; kind < 2; kind++) {
        ug_form f;
        ug_form_init(&f, kind ? UG_FORM_VP_COSINE : UG_FORM_VP);
        for (int var = 0; var < 2; var++) {
            ug_vlb_cfg c = ug_vlb_default();
            c.decoder = UG_VLB_GAUSSIAN;
            c.var = (ug_vlb_var)var;
            c.seed = 7;
            ASSERT_OK(ug_ddpm_vlb(&f, &dn, &c, n, x, nats, NULL));
            for (int64_t i = 0; i < n; i++) gap[i] = nats[i] + ug_gmm_logpdf(&g, x + i, 0);
            double se, mg = mean_of(gap, n, &se);
            if (getenv("UG_VLB_VERBOSE"))
                printf("  %s var %s: NLL %.4f, VLB %.4f, gap %.4f +- %.4f nats\n", ug_form_name(f.kind),
                       var ? "beta" : "beta~", nll, nll + mg, mg, se);
            EXPECT(mg > -3 * se, "%s var %d: bound below the NLL by %g (se %g)", ug_form_name(f.kind),
                   var, -mg, se);
            /* Measured on 20000 points: beta -0.0005 / -0.0050 (se 0.007), beta~ 0.53 / 0.50
             * (se 0.012) nats for vp / vp-cosine. beta~ is too small a variance where sigma_t is
             * below the data's scale (the decoder's beta~_2 is about beta_1 / 2). */
            double lo = var ? -0.1 : 0.3, hi = var ? 0.1 : 0.8;
            EXPECT(mg > lo && mg < hi, "%s var %d: gap %g nats (se %g), expected in (%g, %g)",
                   ug_form_name(f.kind), var, mg, se, lo, hi);
        }
    }
    free(x); free(nats); free(gap);
}

/* Same values with one call or several chunks (first_stream = index of the first point), in the
 * full sum and with sampled steps; the sampled estimate agrees with the full sum on average. */
TEST(vlb_independent_of_chunking) {
    ug_gmm g = {2, 1, (double *)k_w, k_mu, (double *)k_s};
    ug_denoiser dn = ug_gmm_denoiser(&g);
    ug_form f;
    ug_form_init(&f, UG_FORM_VP);
    int64_t n = 300;
    double *x = malloc((size_t)n * sizeof *x), *a = malloc((size_t)n * sizeof *a);
    double *b = malloc((size_t)n * sizeof *b), *full = malloc((size_t)n * sizeof *full);
    gmm_points(&g, 0, n, 9, x);
    for (int k = 0; k <= 40; k += 40) {
        ug_vlb_cfg c = ug_vlb_default();
        c.decoder = UG_VLB_GAUSSIAN;
        c.t_samples = k;
        c.seed = 42;
        c.first_stream = 1000;
        ASSERT_OK(ug_ddpm_vlb(&f, &dn, &c, n, x, a, NULL));
        const int64_t cut[] = {0, 1, 117, 300};
        for (int p = 0; p < 3; p++) {
            c.first_stream = 1000 + (uint64_t)cut[p];
            ASSERT_OK(ug_ddpm_vlb(&f, &dn, &c, cut[p + 1] - cut[p], x + cut[p], b + cut[p], NULL));
        }
        int same = 1;
        for (int64_t i = 0; i < n; i++) same &= a[i] == b[i];
        EXPECT(same, "t_samples %d: chunked values differ", k);
        if (!k) memcpy(full, a, (size_t)n * sizeof *a);
    }
    /* a: 40 sampled steps per example; unbiased for the full sum. */
    double *dif = malloc((size_t)n * sizeof *dif);
    for (int64_t i = 0; i < n; i++) dif[i] = a[i] - full[i];
    double se, md = mean_of(dif, n, &se);
    EXPECT(fabs(md) < 4 * se, "sampled minus full %g (se %g)", md, se);
    /* Another seed gives other noise. */
    ug_vlb_cfg c = ug_vlb_default();
    c.decoder = UG_VLB_GAUSSIAN;
    c.seed = 43;
    c.first_stream = 1000;
    ASSERT_OK(ug_ddpm_vlb(&f, &dn, &c, n, x, b, NULL));
    EXPECT(b[0] != full[0], "seed has no effect");
    free(x); free(a); free(b); free(full); free(dif);
}

TEST(vlb_rejects_bad_input) {
    ug_gmm g = {2, 1, (double *)k_w, k_mu, (double *)k_s};
    ug_denoiser dn = ug_gmm_denoiser(&g);
    ug_form f;
    ug_form_init(&f, UG_FORM_EDM);
    ug_vlb_cfg c = ug_vlb_default();
    double x = 1.5, out;
    EXPECT(ug_ddpm_vlb(&f, &dn, &c, 1, &x, &out, NULL) == UG_ERR_INVALID_ARG, "edm accepted");
    ug_form_init(&f, UG_FORM_VP);
    EXPECT(ug_ddpm_vlb(&f, &dn, &c, 1, &x, &out, NULL) == UG_ERR_INVALID_ARG,
           "discretized decoder accepted data outside [-1, 1]");
    c.t_samples = -1;
    x = 0.2;
    EXPECT(ug_ddpm_vlb(&f, &dn, &c, 1, &x, &out, NULL) == UG_ERR_INVALID_ARG, "t_samples -1 accepted");
}

/* Discretized decoder on 8-bit data through the model interface: the bound in bits/dim above
 * the mixture's density times the bin volume and near it; sampled steps agree with the full sum. */
TEST(vlb_model_interface_discretized) {
    ug_model *m;
    const char *json = "{\"weights\": [0.5, 0.5], \"means\": [[-0.4, 0.2], [0.5, -0.3]], "
                       "\"stds\": [0.2, 0.15]}";
    FILE *fp = fopen("vlb_gmm_tmp.json", "w");
    ASSERT(fp, "cannot write a temporary file");
    fputs(json, fp);
    fclose(fp);
    ASSERT_OK(ug_model_load_gmm("vlb_gmm_tmp.json", &m));
    remove("vlb_gmm_tmp.json");
    int64_t n = 64, d = 2;
    double *x = malloc((size_t)(n * d) * sizeof *x), *nats = malloc((size_t)n * sizeof *nats);
    ug_gmm g;
    ASSERT_OK(ug_gmm_parse(json, "test", &g));
    gmm_points(&g, 0, n, 1, x);
    for (int64_t j = 0; j < n * d; j++) {   /* onto the 8-bit grid of [-1, 1] */
        double p = round((x[j] + 1) * 127.5);
        x[j] = (p < 0 ? 0 : p > 255 ? 255 : p) / 127.5 - 1;
    }
    ug_vlb_cfg c = ug_vlb_default();
    ASSERT_OK(ug_model_vlb(m, &c, n, x, nats, NULL));
    double mean = mean_of(nats, n, NULL), bpd = mean / (d * log(2.0));
    /* The mixture density times the bin volume approximates the bin probability. */
    double ref = 0;
    for (int64_t i = 0; i < n; i++) ref -= ug_gmm_logpdf(&g, x + i * d, 0) / (double)n;
    double ref_bpd = ug_bits_per_dim(ref, d, 127.5);
    c.t_samples = 50;
    ASSERT_OK(ug_model_vlb(m, &c, n, x, nats, NULL));
    double se, sampled = mean_of(nats, n, &se) / (d * log(2.0));
    se /= d * log(2.0);
    if (getenv("UG_VLB_VERBOSE"))
        printf("  discretized: %.4f bits/dim (50 sampled steps: %.4f +- %.4f), mixture %.4f\n", bpd,
               sampled, se, ref_bpd);
    /* Measured: 7.67 against 6.99 (beta~ variance: about 0.5 nats per dimension above). */
    EXPECT(bpd > ref_bpd - 0.05 && bpd < ref_bpd + 1.0, "bits/dim %g, reference %g", bpd, ref_bpd);
    EXPECT(fabs(sampled - bpd) < 4 * se, "sampled steps %g +- %g, full sum %g", sampled, se, bpd);
    ug_gmm_free(&g);
    free(x); free(nats);
    ug_model_free(m);
}

/* A trained-model handle: a vp / eps network runs through the bound; an EDM model is refused. */
TEST(vlb_model_interface_network) {
    ug_model_cfg mc = ug_model_cfg_default();
    mc.formulation = UG_FORM_VP;
    mc.param = UG_PARAM_EPS;
    mc.hidden = 16;
    mc.depth = 2;
    strcpy(mc.net, "mlp");
    ug_model *m;
    ASSERT_OK(ug_model_create(&mc, 1, &m));
    double x[6] = {0.1, -0.2, 0.5, 0.3, -0.7, 0.0}, nats[3];
    ug_vlb_cfg c = ug_vlb_default();
    c.t_samples = 5;
    ASSERT_OK(ug_model_vlb(m, &c, 3, x, nats, NULL));
    for (int i = 0; i < 3; i++) EXPECT(isfinite(nats[i]) && nats[i] > 0, "nats[%d] = %g", i, nats[i]);
    ug_model_free(m);
    mc.formulation = UG_FORM_EDM;
    mc.param = UG_PARAM_EDM;
    ASSERT_OK(ug_model_create(&mc, 1, &m));
    EXPECT(ug_model_vlb(m, &c, 3, x, nats, NULL) == UG_ERR_INVALID_ARG, "edm model accepted");
    ug_model_free(m);
}
