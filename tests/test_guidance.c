/* test_guidance.c — SPEC section 5 on a labelled 8-component mixture (label = component):
 * classifier-free guidance with w > 1 pulls class samples tighter around their component;
 * classifier guidance with a noisy classifier steers an UNconditional model to a class. */
#include "test.h"

static ug_model *train_on_mix(const ug_dataset *ds, ug_model_cfg mc, int steps, int use_labels) {
    ug_model *m;
    ug_ctx *ctx;
    if (ug_model_create(&mc, 2, &m) || ug_ctx_create(&ctx, 0)) return NULL;
    ug_params *ps = ug_model_params(m);
    ug_adam opt;
    ug_adam_init(&opt, ps, ug_adam_default());
    float xb[256 * 2];
    int32_t yb[256];
    for (int s = 0; s < steps; s++) {
        for (int64_t b = 0; b < 256; b++) {
            int64_t k = ((int64_t)s * 256 + b) * 7919 % ds->n;
            xb[2 * b] = ds->x[2 * k];
            xb[2 * b + 1] = ds->x[2 * k + 1];
            yb[b] = ds->y[k];
        }
        ug_tensor *loss;
        if (ug_model_loss(m, ctx, xb, 256, use_labels ? yb : NULL, 3, (uint64_t)s * 256, &loss)) break;
        ug_params_zero_grad(ps);
        ug_backward(ctx, loss);
        ug_adam_step(&opt, ps, 2e-3f);
        ug_ctx_reset(ctx);
    }
    ug_adam_free(&opt);
    ug_ctx_free(ctx);
    return m;
}

/* Mean exact posterior p(y = label | x) under the mixture (what guidance raises) and the share
 * of samples nearest to their own component. */
static void score(const ug_gmm *g, const double *x, const int32_t *lab, int64_t n, double *post,
                  double *own) {
    double s = 0;
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        double bd = INFINITY, lw[16], mx = -INFINITY, z = 0;
        for (int k = 0; k < g->K; k++) {
            double dx = x[2 * i] - g->mu[2 * k], dy = x[2 * i + 1] - g->mu[2 * k + 1];
            double dd = dx * dx + dy * dy, v = g->s[k] * g->s[k];
            if (dd < bd) { bd = dd; best = k; }
            lw[k] = log(g->w[k]) - 0.5 * dd / v - log(v);
            if (lw[k] > mx) mx = lw[k];
        }
        for (int k = 0; k < g->K; k++) z += exp(lw[k] - mx);
        s += exp(lw[lab[i]] - mx) / z;
        right += best == lab[i];
    }
    *post = s / n;
    *own = (double)right / n;
}

TEST(guidance_classifier_free_and_classifier) {
    ug_dataset ds;
    ASSERT_OK(ug_dataset_load("gmm:ref/samplers/mix2d.json", 1, 16384, 5, &ds));
    ug_gmm g;
    ASSERT_OK(ug_gmm_load("ref/samplers/mix2d.json", &g));
    ug_model_cfg mc = ug_model_cfg_default();
    mc.formulation = UG_FORM_EDM;
    mc.param = UG_PARAM_EDM;
    strcpy(mc.net, "mlp");
    mc.hidden = 128;
    mc.depth = 3;
    const int64_t n = 800;
    int32_t lab[800];
    double *x = malloc((size_t)n * 2 * sizeof *x);
    for (int64_t i = 0; i < n; i++) lab[i] = (int32_t)(i % 8);
    ug_sample_cfg sc = ug_sample_cfg_default();
    sc.seed = 4;
    int64_t nfe;
    double msd1, own1, msd3, own3;

    /* Classifier-free: w = 3 vs w = 1 (plain conditional). */
    mc.num_classes = 8;
    ug_model *cond = train_on_mix(&ds, mc, 1000, 1);
    ASSERT(cond, "training failed");
    ASSERT_OK(ug_model_sample(cond, &sc, n, lab, NULL, x, &nfe));
    score(&g, x, lab, n, &msd1, &own1);
    sc.cfg_scale = 3;
    ASSERT_OK(ug_model_sample(cond, &sc, n, lab, NULL, x, &nfe));
    score(&g, x, lab, n, &msd3, &own3);
    printf("    classifier-free: w 1: p(y|x) %.4f own %.3f | w 3: p(y|x) %.4f own %.3f\n", msd1,
           own1, msd3, own3);
    EXPECT(msd3 > msd1 && own3 >= own1, "w = 3 should raise p(y | x) (%.4f vs %.4f)", msd3, msd1);
    EXPECT(nfe == 35, "one sampler evaluation counts once (%lld)", (long long)nfe);

    /* Classifier guidance of an unconditional model with a noisy classifier. */
    mc.num_classes = 0;
    ug_model *unc = train_on_mix(&ds, mc, 1000, 0);
    ug_model_cfg cc = ug_model_cfg_default();
    cc.family = UG_FAMILY_CLASSIFIER;
    cc.num_classes = 8;
    strcpy(cc.net, "mlp");
    cc.hidden = 64;
    cc.depth = 2;
    cc.noisy = 1;
    ug_model *cls = train_on_mix(&ds, cc, 400, 1);
    ASSERT(unc && cls, "training failed");
    sc = ug_sample_cfg_default();
    sc.seed = 4;
    ASSERT_OK(ug_model_sample(unc, &sc, n, lab, NULL, x, &nfe));   /* labels ignored: unguided */
    score(&g, x, lab, n, &msd1, &own1);
    sc.classifier = cls;
    sc.classifier_scale = 2;
    ASSERT_OK(ug_model_sample(unc, &sc, n, lab, NULL, x, &nfe));
    score(&g, x, lab, n, &msd3, &own3);
    printf("    classifier guidance: unguided own %.3f | scale 2: own %.3f\n", own1, own3);
    EXPECT(own1 < 0.4 && own3 > 0.8, "classifier guidance should steer to the label (%.3f -> %.3f)",
           own1, own3);
    sc.cfg_scale = 2;   /* CFG needs a conditional model */
    EXPECT(ug_model_sample(unc, &sc, 4, lab, NULL, x, &nfe) == UG_ERR_INVALID_ARG, "CFG on unconditional");
    free(x);
    ug_model_free(cond);
    ug_model_free(unc);
    ug_model_free(cls);
    ug_gmm_free(&g);
    ug_dataset_free(&ds);
}
