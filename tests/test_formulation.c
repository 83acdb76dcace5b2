/* test_formulation.c — SPEC sections 1-3 tested: every (formulation, parameterization) pair
 * turns its exact regression target back into x0; s and sigma match independent formulas;
 * derivatives match finite differences; training sigma samplers map quantiles correctly. */
#include "test.h"
#include "diffusion/formulation.h"

static const double k_sigmas[] = {0.002, 0.01, 0.1, 0.5, 1.0, 3.0, 20.0, 80.0, 150.0};
#define NSIG (int)(sizeof k_sigmas / sizeof *k_sigmas)

TEST(precond_exact_target_returns_x0_every_pair) {
    ug_rng r = ug_rng_make(5, 0, 0);
    for (int fk = 0; fk < UG_FORM_COUNT; fk++) {
        ug_form f;
        ug_form_init(&f, (ug_form_kind)fk);
        for (int pk = 0; pk < UG_PARAM_COUNT; pk++) {
            for (int si = 0; si < NSIG; si++) {
                double sigma = k_sigmas[si];
                ug_precond c = ug_precond_at(&f, (ug_param_kind)pk, sigma);
                float v[8];
                ug_rng_normal(&r, v, 8);
                for (int j = 0; j < 4; j++) {
                    double x0 = v[j], eps = v[4 + j];
                    /* The semantic target of each parameterization, written independently. */
                    double F;
                    switch (pk) {
                    case UG_PARAM_EPS: F = (fk == UG_FORM_VE || fk == UG_FORM_EDM) ? -eps : eps; break;
                    case UG_PARAM_X0: F = x0; break;
                    case UG_PARAM_V: F = (eps - sigma * x0) / sqrt(1 + sigma * sigma); break;
                    case UG_PARAM_VELOCITY: F = eps - x0; break;
                    default: {  /* EDM: F = (x0 - c_skip x~) / c_out */
                        double sd = f.sigma_data;
                        F = (sigma * x0 - sd * sd * eps) / (sd * sqrt(sigma * sigma + sd * sd));
                    }
                    }
                    double xt = x0 + sigma * eps;
                    double D = c.c_skip * xt + c.c_out * F;
                    ASSERT(fabs(D - x0) <= 1e-12 * (1 + fabs(x0) + sigma * fabs(eps)),
                           "%s/%s sigma %g: D %.17g != x0 %.17g", ug_form_name(fk),
                           ug_param_name(pk), sigma, D, x0);
                    /* The same in float arithmetic, as the network path computes it. */
                    float xtf = (float)x0 + (float)sigma * (float)eps;
                    float Df = (float)c.c_skip * xtf + (float)c.c_out * (float)F;
                    ASSERT(fabsf(Df - (float)x0) <= 5e-7f * (float)(1 + fabs(x0) + sigma * fabs(eps)),
                           "%s/%s sigma %g (float): D %.9g != x0 %.9g", ug_form_name(fk),
                           ug_param_name(pk), sigma, Df, x0);
                    /* The stored closed-form target agrees with F. */
                    double tgt = c.a * x0 + c.b * eps;
                    ASSERT(fabs(tgt - F) <= 1e-12 * (1 + fabs(F)), "%s/%s target %g vs %g",
                           ug_form_name(fk), ug_param_name(pk), tgt, F);
                }
            }
        }
    }
}

TEST(precond_natural_pairs_weight_one) {
    for (int fk = 0; fk < UG_FORM_COUNT; fk++) {
        ug_form f;
        ug_form_init(&f, (ug_form_kind)fk);
        ug_param_kind p = ug_form_natural_param((ug_form_kind)fk);
        for (int si = 0; si < NSIG; si++) {
            ug_precond c = ug_precond_at(&f, p, k_sigmas[si]);
            double w = ug_form_lambda(&f, k_sigmas[si]) * c.c_out * c.c_out;
            EXPECT(fabs(w - 1) < 1e-12, "%s/%s: lambda c_out^2 = %g", ug_form_name(fk),
                   ug_param_name(p), w);
        }
    }
}

TEST(edm_precond_matches_table) {
    ug_form f;
    ug_form_init(&f, UG_FORM_EDM);
    double s = 1.7, sd = 0.5;
    ug_precond c = ug_precond_at(&f, UG_PARAM_EDM, s);
    EXPECT(fabs(c.c_skip - sd * sd / (s * s + sd * sd)) < 1e-15, "c_skip");
    EXPECT(fabs(c.c_out - s * sd / sqrt(s * s + sd * sd)) < 1e-15, "c_out");
    EXPECT(fabs(c.c_in - 1 / sqrt(s * s + sd * sd)) < 1e-15, "c_in");
    EXPECT(fabs(c.c_noise - log(s) / 4) < 1e-15, "c_noise");
    ug_form_init(&f, UG_FORM_VE);
    c = ug_precond_at(&f, UG_PARAM_EPS, s);
    EXPECT(c.c_skip == 1 && c.c_out == s && c.c_in == 1 && fabs(c.c_noise - log(s / 2)) < 1e-15,
           "VE eps row");
}

TEST(ddpm_schedules_known_values) {
    ug_form f;
    ug_form_init(&f, UG_FORM_VP);
    /* DDPM linear betas: abar_0 = 1 - 1e-4; abar_999 = prod(1 - linspace(1e-4, .02, 1000)). */
    double abar = 1;
    for (int i = 0; i < 1000; i++) abar *= 1 - (1e-4 + (0.02 - 1e-4) * i / 999.0);
    EXPECT(fabs(f.abar[0] - (1 - 1e-4)) < 1e-15, "abar_0 %.17g", f.abar[0]);
    EXPECT(fabs(f.abar[999] / abar - 1) < 1e-12, "abar_999 %.6g vs %.6g", f.abar[999], abar);
    EXPECT(fabs(f.abar[999] - 4.0358e-5) < 1e-8, "abar_999 = %.6g, DDPM's is 4.036e-5", f.abar[999]);
    EXPECT(fabs(f.sigma_max - 157.4) < 0.1 && fabs(f.sigma_min - 0.0100005) < 1e-6,
           "sigma range %g..%g", f.sigma_min, f.sigma_max);
    ug_form_init(&f, UG_FORM_VP_COSINE);
    /* iDDPM: beta_i = min(1 - f((i+1)/T)/f(i/T), 0.999); the last betas hit the clip. */
    EXPECT(f.beta[999] == 0.999, "cosine beta_999 = %g, expected the 0.999 clip", f.beta[999]);
    double f0 = cos(0.008 / 1.008 * M_PI / 2), f1 = cos((1.0 / 1000 + 0.008) / 1.008 * M_PI / 2);
    EXPECT(fabs(f.abar[0] - (f1 * f1) / (f0 * f0)) < 1e-15, "cosine abar_0");
    /* The grid is exact under t(sigma). */
    for (int i = 0; i < 1000; i += 37) {
        double t = ug_form_t(&f, exp(f.log_sigma[i]));
        EXPECT(fabs(t - i) < 1e-9, "t(sigma_%d) = %.12g", i, t);
    }
    EXPECT(fabs(ug_form_t(&f, exp(f.log_sigma[999])) - 999) < 1e-9, "last grid point");
}

TEST(vp_cont_matches_score_sde_marginal) {
    ug_form f;
    ug_form_init(&f, UG_FORM_VP_CONT);
    for (double t = 1e-3; t <= 1.0; t += 0.0999) {
        /* score_sde VPSDE.marginal_prob: log_mean_coeff = -t^2 (b1 - b0)/4 - t b0 / 2. */
        double lmc = -0.25 * t * t * (20 - 0.1) - 0.5 * t * 0.1;
        double s = exp(lmc), std = sqrt(1 - exp(2 * lmc));
        EXPECT(fabs(ug_form_s(&f, t) - s) < 1e-14, "s(%g)", t);
        EXPECT(fabs(ug_form_s(&f, t) * ug_form_sigma(&f, t) - std) < 1e-14, "s sigma (%g)", t);
        EXPECT(fabs(ug_form_t(&f, ug_form_sigma(&f, t)) - t) < 1e-12, "t(sigma(%g))", t);
    }
}

TEST(formulation_derivatives_match_finite_differences) {
    const ug_form_kind kinds[] = {UG_FORM_VP_CONT, UG_FORM_VE, UG_FORM_EDM, UG_FORM_FM, UG_FORM_VP};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        ug_form f;
        ug_form_init(&f, kinds[k]);
        double ts[3];
        if (kinds[k] == UG_FORM_VP) { ts[0] = 10.3; ts[1] = 400.6; ts[2] = 900.2; }
        else {
            double t0 = ug_form_t(&f, f.sigma_min), t1 = ug_form_t(&f, f.sigma_max);
            ts[0] = t0 + 0.1 * (t1 - t0); ts[1] = t0 + 0.5 * (t1 - t0); ts[2] = t0 + 0.9 * (t1 - t0);
        }
        for (int i = 0; i < 3; i++) {
            double t = ts[i], h = 1e-6 * (1 + fabs(t));
            double ds = (ug_form_sigma(&f, t + h) - ug_form_sigma(&f, t - h)) / (2 * h);
            double dss = (ug_form_s(&f, t + h) - ug_form_s(&f, t - h)) / (2 * h);
            EXPECT(fabs(ds - ug_form_dsigma_dt(&f, t)) <= 1e-6 * (1 + fabs(ds)),
                   "%s dsigma/dt(%g): %g vs %g", ug_form_name(kinds[k]), t, ug_form_dsigma_dt(&f, t), ds);
            EXPECT(fabs(dss - ug_form_ds_dt(&f, t)) <= 1e-6 * (1 + fabs(dss)),
                   "%s ds/dt(%g): %g vs %g", ug_form_name(kinds[k]), t, ug_form_ds_dt(&f, t), dss);
            EXPECT(fabs(ug_form_s(&f, t) - ug_form_s_of_sigma(&f, ug_form_sigma(&f, t))) < 1e-12,
                   "%s s(t) vs s(sigma)", ug_form_name(kinds[k]));
        }
    }
}

TEST(train_sigma_quantiles) {
    ug_form f;
    ug_form_init(&f, UG_FORM_EDM);
    EXPECT(fabs(log(ug_form_train_sigma(&f, 0.3, 0.0)) + 1.2) < 1e-12, "EDM median sigma e^-1.2");
    EXPECT(fabs(log(ug_form_train_sigma(&f, 0.3, 1.0)) - 0.0) < 1e-12, "EDM +1 std: ln sigma 0");
    ug_form_init(&f, UG_FORM_VE);
    EXPECT(fabs(ug_form_train_sigma(&f, 0.0, 0) - 0.02) < 1e-12, "VE u=0");
    EXPECT(fabs(ug_form_train_sigma(&f, 0.5, 0) - sqrt(0.02 * 100)) < 1e-9, "VE log-uniform");
    ug_form_init(&f, UG_FORM_FM);
    EXPECT(fabs(ug_form_train_sigma(&f, 0.5, 0) - 1.0) < 1e-12, "FM t=0.5 -> sigma 1");
    f.tsampler = UG_TS_LOGITNORMAL;
    EXPECT(fabs(ug_form_train_sigma(&f, 0.9, 0.0) - 1.0) < 1e-12, "logit-normal median t = 0.5");
    f.shift = 3;
    EXPECT(fabs(ug_form_train_sigma(&f, 0.9, 0.0) - 3.0) < 1e-12, "shift 3: t 0.5 -> 0.75");
    ug_form_init(&f, UG_FORM_VP);
    EXPECT(ug_form_train_sigma(&f, 0.0, 0) == exp(f.log_sigma[0]), "DDPM u=0 -> t=0");
    EXPECT(ug_form_train_sigma(&f, 0.99999, 0) == exp(f.log_sigma[999]), "DDPM u->1 -> t=999");
    ug_form_kind k;
    EXPECT(ug_form_from_name("vp-cosine", &k) == 0 && k == UG_FORM_VP_COSINE, "name lookup");
    EXPECT(ug_form_from_name("vp_cosine", &k) == -1, "bad name accepted");
}
