/* test_diffusion.c — the diffusion family end to end on 8gaussians: for each formulation with
 * its natural parameterization, short training makes >= 90% of 2,000 Heun samples land within
 * 3 standard deviations of a mixture component; the untrained model does not. A 128-wide MLP,
 * batch 256, Adam 2e-3, EMA 0.99, Heun with 18 steps over the formulation's sigma range (capped
 * at 160: vp-cosine's last sigma is 2e4). The data keep their raw scale (std ~2). */
#include "test.h"
#include "models/diffusion.h"
#include <time.h>

/* FFJORD's 8gaussians: centers 4 (cos, sin)(k pi/4) / 1.414, std 0.5 / 1.414. */
static double near_component_fraction(const double *x, int64_t n) {
    const double r = 4.0 / 1.414, sd = 0.5 / 1.414;
    int64_t hit = 0;
    for (int64_t i = 0; i < n; i++) {
        double best = INFINITY;
        for (int k = 0; k < 8; k++) {
            double cx = r * cos(k * M_PI / 4), cy = r * sin(k * M_PI / 4);
            double dx = x[2 * i] - cx, dy = x[2 * i + 1] - cy;
            double dd = sqrt(dx * dx + dy * dy);
            if (dd < best) best = dd;
        }
        hit += best <= 3 * sd;
    }
    return (double)hit / n;
}


static double train_and_score(ug_form_kind fk, int steps, double *secs) {
    const int64_t B = 256;
    const float lr0 = 2e-3f;
    ug_params *ps;
    ug_ctx *ctx;
    ug_params_create(&ps);
    ug_ctx_create(&ctx, 0);
    ug_mlp_cfg net = ug_mlp_toy_cfg(2);
    net.hidden = 128;
    ug_diffusion m;
    if (ug_diffusion_declare(&m, ps, fk, ug_form_natural_param(fk), &net) ||
        ug_params_finalize(ps)) return -1;
    ug_params_init_uniform(ps, 1);
    ug_adam opt;
    ug_adam_init(&opt, ps, ug_adam_default());
    ug_ema ema;
    ug_ema_init(&ema, ps, 0.99f);
    const int64_t pool = 65536;
    float *data = malloc((size_t)pool * 2 * sizeof *data), *batch = malloc((size_t)B * 2 * sizeof *batch);
    ug_toy2d_sample("8gaussians", pool, 3, data);
    clock_t t0 = clock();
    for (int s = 0; s < steps; s++) {
        for (int64_t b = 0; b < B; b++) {
            int64_t k = ((int64_t)s * B + b) * 7919 % pool;
            batch[2 * b] = data[2 * k];
            batch[2 * b + 1] = data[2 * k + 1];
        }
        ug_tensor *loss = ug_diffusion_loss(ctx, &m, batch, B, NULL, 11, (uint64_t)s * B);
        ug_params_zero_grad(ps);
        ug_backward(ctx, loss);
        ug_lr_schedule lr = {UG_LR_WARMUP, lr0, 50, steps, 0};
        ug_adam_step(&opt, ps, ug_lr_at(&lr, s));
        ug_ema_update(&ema, ps);
        ug_ctx_reset(ctx);
    }
    *secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    if (steps) ug_ema_swap(&ema, ps);
    const int64_t n = 2000;
    double *x = malloc((size_t)n * 2 * sizeof *x);
    float *nz = malloc((size_t)n * 2 * sizeof *nz);
    ug_rng_normal_rows(99, 0, 0, nz, n, 2);
    for (int64_t j = 0; j < n * 2; j++) x[j] = nz[j];
    ug_sampler_cfg sc = ug_sampler_default();
    sc.sigma_min = m.form.sigma_min;
    sc.sigma_max = fmin(m.form.sigma_max, 160.0);   /* vp-cosine ends near 2e4 */
    ug_denoiser dn;
    void *st;
    ug_diffusion_denoiser(&m, ctx, NULL, &dn, &st);
    int64_t nfe;
    double frac = -1;
    if (ug_sampler_run(&sc, &dn, n, x, &nfe) == UG_OK) {
        frac = near_component_fraction(x, n);
    }
    ug_diffusion_denoiser_free(st); free(x); free(nz); free(data); free(batch);
    ug_ema_free(&ema); ug_adam_free(&opt); ug_params_free(ps); ug_ctx_free(ctx);
    return frac;
}

TEST(diffusion_trains_every_formulation_on_8gaussians) {
    for (int fk = 0; fk < UG_FORM_COUNT; fk++) {
        double secs = 0;
        double untrained = train_and_score((ug_form_kind)fk, 0, &secs);
        /* VE's c_in = 1 feeds the net inputs up to |x| ~ sigma_max = 100: it converges slowest. */
        int steps = fk == UG_FORM_VE ? 5000 : 3000;
        double trained = train_and_score((ug_form_kind)fk, steps, &secs);
        printf("    %-10s untrained %.3f trained %.3f (%.1f s cpu)\n", ug_form_name(fk), untrained,
               trained, secs);
        EXPECT(trained >= 0.90, "%s: only %.1f%% of samples near a component",
               ug_form_name(fk), 100 * trained);
        EXPECT(untrained < 0.5, "%s: the untrained model already scores %.2f", ug_form_name(fk),
               untrained);
    }
}

TEST(mlp_toy_is_the_peer_network) {
    ug_model_cfg mc = ug_model_cfg_default();
    ug_model *m;
    ASSERT_OK(ug_model_create(&mc, 0, &m));
    ug_params *ps = ug_model_params(m);
    /* ../shared/peers/toy2d.py: Linear(34,256) SiLU Linear(256,256) SiLU Linear(256,256) SiLU
     * Linear(256,2) = 141,058 parameters, state_dict names net.{0,2,4,6}.{weight,bias}. */
    EXPECT(ug_params_count(ps) == 141058, "%lld parameters", (long long)ug_params_count(ps));
    const char *names[] = {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias",
                           "net.4.weight", "net.4.bias", "net.6.weight", "net.6.bias"};
    const int64_t rows[] = {256, 256, 256, 256, 256, 256, 2, 2};
    for (int i = 0; i < 8; i++) {
        ug_tensor *t = ug_params_find(ps, names[i]);
        EXPECT(t && t->shape[0] == rows[i], "%s", names[i]);
    }
    EXPECT(ug_params_find(ps, "net.0.weight")->shape[1] == 34, "input 2 + 32");
    ug_model_free(m);
}

/* A velocity model evaluated in x_t (fm_fn, defined at t = 1) agrees with the sigma-space
 * denoiser at x~ = x_t / (1 - t), sigma = t / (1 - t). */
TEST(velocity_model_fm_denoiser_matches_sigma_space) {
    ug_params *ps;
    ug_ctx *ctx;
    ASSERT_OK(ug_params_create(&ps));
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_mlp_cfg net = ug_mlp_toy_cfg(3);
    net.hidden = 16;
    ug_diffusion m;
    ASSERT_OK(ug_diffusion_declare(&m, ps, UG_FORM_FM, UG_PARAM_VELOCITY, &net));
    ASSERT_OK(ug_params_finalize(ps));
    ug_params_init_uniform(ps, 4);
    ug_denoiser dn;
    void *st;
    ASSERT_OK(ug_diffusion_denoiser(&m, ctx, NULL, &dn, &st));
    ASSERT(dn.fm_fn, "velocity models provide fm_fn");
    double xt[6] = {0.3, -1.2, 0.5, 2.0, 0.1, -0.4}, a[6], b[6], xs[6];
    const double ts[] = {0.1, 0.5, 0.9};
    for (int k = 0; k < 3; k++) {
        double t = ts[k];
        for (int j = 0; j < 6; j++) xs[j] = xt[j] / (1 - t);
        ASSERT_OK(dn.fm_fn(dn.self, 2, xt, t, a));
        ASSERT_OK(dn.fn(dn.self, 2, xs, t / (1 - t), b));
        for (int j = 0; j < 6; j++)
            EXPECT(fabs(a[j] - b[j]) < 1e-5 * (1 + fabs(b[j])), "t %g [%d]: %g vs %g", t, j, a[j], b[j]);
    }
    ASSERT_OK(dn.fm_fn(dn.self, 2, xt, 1.0, a));   /* t = 1 is defined */
    for (int j = 0; j < 6; j++) EXPECT(isfinite(a[j]), "t = 1 not finite");
    ug_diffusion_denoiser_free(st);
    ug_ctx_free(ctx);
    ug_params_free(ps);
}

/* ug_mlp_forward without the tape runs mlp.c's feature-major path: with one noise level (and
 * one label) for every row it adds the first layer's conditioning part once, otherwise once a
 * row. Its output must match the taped product to float rounding, for the toy MLP and a
 * class-conditional one, and every row's value must be the same bits whatever else shares its
 * call: rows 0..4 alone, and row 36 alone (both shared calls), against the full batch (a mixed
 * call when a row's noise level or label differs). */
TEST(mlp_shared_conditioning_matches_full_first_layer) {
    for (int cond = 0; cond < 2; cond++) {
        ug_params *ps;
        ug_ctx *ctx;
        ASSERT_OK(ug_params_create(&ps));
        ASSERT_OK(ug_ctx_create(&ctx, 0));
        ug_mlp_cfg cfg = ug_mlp_toy_cfg(3);
        cfg.hidden = 40;
        cfg.num_classes = cond ? 5 : 0;
        cfg.label_dim = cond ? 6 : 0;
        ug_mlp net;
        ASSERT_OK(ug_mlp_declare(&net, ps, &cfg));
        ASSERT_OK(ug_params_finalize(ps));
        ug_params_init_uniform(ps, 12);
        const int64_t B = 37;
        float xv[37 * 3], cv[37], eval[37 * 3], full[37 * 3], part[5 * 3];
        int32_t lab[37];
        ug_rng r = ug_rng_make(3, 0, 0);
        ug_rng_normal(&r, xv, B * 3);
        for (int mixed = 0; mixed < 2; mixed++) {
            for (int64_t b = 0; b < B; b++) {
                cv[b] = mixed && b == B - 1 ? 0.25f : -0.7f;
                lab[b] = cond && mixed && b == 3 ? 1 : 4;
            }
            /* taped 0 / 1: the B rows; 2: rows 0..4; 3: row 36 */
            for (int run = 0; run < 4; run++) {
                const int64_t r0 = run == 3 ? B - 1 : 0, n = run < 2 ? B : run == 2 ? 5 : 1;
                ug_ctx_reset(ctx);
                int old = ug_ctx_set_grad(ctx, run == 1);
                ug_tensor *x = ug_tensor_from(ctx, 2, (int64_t[]){n, 3}, xv + r0 * 3);
                ug_tensor *c = ug_tensor_from(ctx, 1, (int64_t[]){n}, cv + r0);
                if (run == 1) ug_tensor_requires_grad(ctx, x);   /* forces the taped path */
                ug_tensor *y = ug_mlp_forward(ctx, &net, x, c, cond ? lab + r0 : NULL);
                memcpy(run == 0 ? eval : run == 1 ? full : run == 2 ? part : part + 3, y->data,
                       (size_t)(n * 3) * sizeof *eval);
                ug_ctx_set_grad(ctx, old);
                if (run == 2)
                    EXPECT(!memcmp(part, eval, sizeof part), "cond %d mixed %d: rows 0..4 alone "
                           "differ from the full call", cond, mixed);
                if (run == 3)
                    EXPECT(!memcmp(part + 3, eval + (B - 1) * 3, 3 * sizeof *eval),
                           "cond %d mixed %d: row 36 alone differs from the full call", cond,
                           mixed);
            }
            double worst = 0, scale = 0;
            for (int j = 0; j < B * 3; j++) {
                worst = ug_test_worst(worst, fabs((double)eval[j] - full[j]));
                scale = fmax(scale, fabs((double)full[j]));
            }
            EXPECT(worst <= 1e-5 * scale && scale > 0, "cond %d mixed %d: untaped path off by %g "
                   "(outputs up to %g)", cond, mixed, worst, scale);
        }
        ug_ctx_free(ctx);
        ug_params_free(ps);
    }
}

/* Issue 6: a diffusion model trained briefly on 8gaussians has a probability-flow ODE NLL within
 * 0.2 nats of the true cross-entropy -E log p(x) of the data distribution, measured on the same
 * held-out points with the exact mixture density (FFJORD's 8gaussians: 8 equal components at
 * radius 4/1.414, std 0.5/1.414). */
TEST(diffusion_nll_near_true_cross_entropy) {
    ug_model_cfg mc = ug_model_cfg_default();   /* edm/edm */
    strcpy(mc.net, "mlp");
    mc.hidden = 128;
    mc.depth = 3;
    ug_model *m;
    ug_ctx *ctx;
    ASSERT_OK(ug_model_create(&mc, 1, &m));
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_params *ps = ug_model_params(m);
    ug_adam opt;
    ug_ema ema;
    ASSERT_OK(ug_adam_init(&opt, ps, ug_adam_default()));
    ASSERT_OK(ug_ema_init(&ema, ps, 0.99f));
    const int64_t B = 256, pool = 65536, n = 500;
    float *data = malloc((size_t)pool * 2 * sizeof *data), *batch = malloc((size_t)B * 2 * sizeof *batch);
    ASSERT_OK(ug_toy2d_sample("8gaussians", pool, 3, data));
    ug_lr_schedule lr = {UG_LR_WARMUP, 2e-3f, 50, 3000, 0};
    for (int s = 0; s < 3000; s++) {
        for (int64_t b = 0; b < B; b++) {
            int64_t k = ((int64_t)s * B + b) * 7919 % pool;
            batch[2 * b] = data[2 * k];
            batch[2 * b + 1] = data[2 * k + 1];
        }
        ug_tensor *loss;
        ASSERT_OK(ug_model_loss(m, ctx, batch, B, NULL, 11, (uint64_t)s * B, &loss));
        ug_params_zero_grad(ps);
        ASSERT_OK(ug_backward(ctx, loss));
        ug_adam_step(&opt, ps, ug_lr_at(&lr, s));
        ug_ema_update(&ema, ps);
        ug_ctx_reset(ctx);
    }
    ug_ema_swap(&ema, ps);
    /* Held-out points: another seed. */
    float *xs = malloc((size_t)n * 2 * sizeof *xs);
    double *x = malloc((size_t)n * 2 * sizeof *x), *logp = malloc((size_t)n * sizeof *logp);
    ASSERT_OK(ug_toy2d_sample("8gaussians", n, 77, xs));
    for (int64_t j = 0; j < n * 2; j++) x[j] = xs[j];
    ug_ode_stats st;
    ASSERT_OK(ug_model_loglik(m, NULL, NULL, n, x, logp, &st));
    /* The exact mixture. */
    ug_gmm g = {8, 2, NULL, NULL, NULL};
    double w[8], mu[16], sd[8];
    for (int k = 0; k < 8; k++) {
        w[k] = 1.0 / 8;
        sd[k] = 0.5 / 1.414;
        mu[2 * k] = 4.0 / 1.414 * cos(k * M_PI / 4);
        mu[2 * k + 1] = 4.0 / 1.414 * sin(k * M_PI / 4);
    }
    g.w = w; g.mu = mu; g.s = sd;
    double nll = 0, h = 0;
    for (int64_t i = 0; i < n; i++) {
        nll -= logp[i];
        h -= ug_gmm_logpdf(&g, x + 2 * i, 0.0);
    }
    nll /= n;
    h /= n;
    printf("    ODE NLL %.4f nats vs true cross-entropy %.4f (gap %.4f), %lld NFE\n", nll, h, nll - h,
           (long long)st.nfe);
    EXPECT(fabs(nll - h) < 0.2, "NLL %.4f is %.3f nats from the cross-entropy %.4f", nll, nll - h, h);
    free(xs); free(x); free(logp); free(data); free(batch);
    ug_ema_free(&ema);
    ug_adam_free(&opt);
    ug_ctx_free(ctx);
    ug_model_free(m);
}

/* Class conditioning (learned label embedding, null label with probability p_uncond): trained on
 * a labelled mixture (label = component), samples drawn for class k land on component k; the
 * null label gives the unconditional mixture. */
TEST(diffusion_class_conditional_follows_labels) {
    ug_dataset ds;
    ASSERT_OK(ug_dataset_load("gmm:ref/samplers/mix2d.json", 1, 16384, 5, &ds));
    ASSERT(ds.y && ds.num_classes == 8, "mixture data carry component labels");
    ug_gmm g;
    ASSERT_OK(ug_gmm_load("ref/samplers/mix2d.json", &g));
    ug_model_cfg mc = ug_model_cfg_default();
    mc.formulation = UG_FORM_FM;
    mc.param = UG_PARAM_VELOCITY;
    strcpy(mc.net, "mlp");
    mc.hidden = 128;
    mc.depth = 3;
    mc.num_classes = 8;
    ug_model *m;
    ug_ctx *ctx;
    ASSERT_OK(ug_model_create(&mc, 2, &m));
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    ug_params *ps = ug_model_params(m);
    EXPECT(ug_params_find(ps, "label_emb.weight") &&
           ug_params_find(ps, "label_emb.weight")->shape[0] == 9, "8 classes + the null label");
    ug_adam opt;
    ASSERT_OK(ug_adam_init(&opt, ps, ug_adam_default()));
    const int64_t B = 256;
    float xb[256 * 2];
    int32_t yb[256];
    EXPECT(ug_model_loss(m, ctx, xb, B, NULL, 0, 0, &(ug_tensor *){0}) == UG_ERR_INVALID_ARG,
           "a conditional model without labels is refused");
    for (int s = 0; s < 2000; s++) {
        for (int64_t b = 0; b < B; b++) {
            int64_t k = ((int64_t)s * B + b) * 7919 % ds.n;
            xb[2 * b] = ds.x[2 * k];
            xb[2 * b + 1] = ds.x[2 * k + 1];
            yb[b] = ds.y[k];
        }
        ug_tensor *loss;
        ASSERT_OK(ug_model_loss(m, ctx, xb, B, yb, 3, (uint64_t)s * B, &loss));
        ug_params_zero_grad(ps);
        ASSERT_OK(ug_backward(ctx, loss));
        ug_adam_step(&opt, ps, 2e-3f);
        ug_ctx_reset(ctx);
    }
    const int64_t per = 100, n = 8 * per;
    int32_t lab[800];
    double *x = malloc((size_t)n * 2 * sizeof *x);
    for (int64_t i = 0; i < n; i++) lab[i] = (int32_t)(i / per);
    ug_sample_cfg sc = ug_sample_cfg_default();
    sc.sampler = "fm-heun";
    sc.steps = 30;
    sc.seed = 9;
    int64_t nfe;
    ASSERT_OK(ug_model_sample(m, &sc, n, lab, NULL, x, &nfe));
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        double bd = INFINITY;
        for (int k = 0; k < 8; k++) {
            double dx = x[2 * i] - g.mu[2 * k], dy = x[2 * i + 1] - g.mu[2 * k + 1];
            if (dx * dx + dy * dy < bd) { bd = dx * dx + dy * dy; best = k; }
        }
        right += best == lab[i];
    }
    printf("    %.1f%% of class-conditional samples on their own component\n", 100.0 * right / n);
    EXPECT(right >= 0.9 * n, "only %lld of %lld samples follow their label", (long long)right, (long long)n);
    /* Null label: every component is reached. */
    ASSERT_OK(ug_model_sample(m, &sc, n, NULL, NULL, x, &nfe));
    int hit[8] = {0};
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        double bd = INFINITY;
        for (int k = 0; k < 8; k++) {
            double dx = x[2 * i] - g.mu[2 * k], dy = x[2 * i + 1] - g.mu[2 * k + 1];
            if (dx * dx + dy * dy < bd) { bd = dx * dx + dy * dy; best = k; }
        }
        hit[best]++;
    }
    for (int k = 0; k < 8; k++) EXPECT(hit[k] > 0, "the unconditional model never reaches component %d", k);
    free(x);
    ug_gmm_free(&g);
    ug_dataset_free(&ds);
    ug_adam_free(&opt);
    ug_ctx_free(ctx);
    ug_model_free(m);
}

/* An analytic mixture is a model with no parameters: training it is refused, not a crash. */
TEST(diffusion_gmm_model_refuses_training) {
    ug_model *m;
    ASSERT_OK(ug_model_load_gmm("ref/samplers/mix2d.json", &m));
    ug_ctx *ctx;
    ASSERT_OK(ug_ctx_create(&ctx, 0));
    float x[4] = {0.1f, 0.2f, -0.3f, 0.4f};
    ug_tensor *loss = NULL;
    EXPECT(ug_model_loss(m, ctx, x, 2, NULL, 1, 0, &loss) == UG_ERR_UNSUPPORTED &&
               strstr(ug_last_error(), "nothing to train"),
           "loss of a gmm model: %s", ug_last_error());
    ug_ctx_free(ctx);
    ug_model_free(m);
}
