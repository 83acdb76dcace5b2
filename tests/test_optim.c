/* test_optim.c — SGD, Adam, AdamW, gradient clipping, learning-rate schedules and the EMA.
 * Optimizer steps are checked twice: against scalar double-precision formulas written out here
 * (independent of the library's operation order) and against PyTorch 1.13 trajectories
 * (tests/ref/optim_ref.h from tests/ref/gen_optim_ref.py) at rtol 1e-6. */
#include "test.h"
#include "ref/optim_ref.h"
#include <omp.h>

/* Parameters "w" (2, 3) and "b" (2): eight floats in one flat buffer, as in the fixture. */
static ug_params *make_params8(const float *p0) {
    ug_params *ps;
    if (ug_params_create(&ps) != UG_OK) return NULL;
    ug_params_add(ps, "fc.weight", 2, (int64_t[]){2, 3});
    ug_params_add(ps, "fc.bias", 1, (int64_t[]){2});
    if (ug_params_finalize(ps) != UG_OK) { ug_params_free(ps); return NULL; }
    memcpy(ug_params_data(ps), p0, 8 * sizeof(float));
    return ps;
}

static ug_params *make_params_n(int64_t n) {
    ug_params *ps;
    if (ug_params_create(&ps) != UG_OK) return NULL;
    ug_params_add(ps, "big.weight", 1, (int64_t[]){n});
    if (ug_params_finalize(ps) != UG_OK) { ug_params_free(ps); return NULL; }
    return ps;
}

/* ---------------------------------------------------------------- hand-computed references */
static const float k_p0[3] = {0.5f, -1.25f, 2.0f};
static const float k_g[3][3] = {{0.3f, -0.7f, 0.0f}, {-1.1f, 0.4f, 2.5f}, {0.2f, 0.05f, -0.6f}};

TEST(optim_sgd_hand_computed) {
    /* torch.optim.SGD with dampening 0, written out for one scalar at a time in double. */
    const float lr = 0.1f, mom = 0.9f, wd = 0.05f;
    for (int nesterov = 0; nesterov < 2; nesterov++) {
        ug_params *ps;
        ASSERT_OK(ug_params_create(&ps));
        ug_params_add(ps, "a.weight", 1, (int64_t[]){3});
        ASSERT_OK(ug_params_finalize(ps));
        memcpy(ug_params_data(ps), k_p0, sizeof k_p0);
        ug_sgd_cfg cfg = ug_sgd_default();
        cfg.momentum = mom; cfg.weight_decay = wd; cfg.nesterov = nesterov;
        ug_sgd opt;
        ASSERT_OK(ug_sgd_init(&opt, ps, cfg));
        double p[3], buf[3];
        for (int j = 0; j < 3; j++) p[j] = k_p0[j];
        for (int s = 0; s < 3; s++) {
            memcpy(ug_params_grad(ps), k_g[s], sizeof k_g[s]);
            ug_sgd_step(&opt, ps, lr);
            for (int j = 0; j < 3; j++) {
                double d = (double)k_g[s][j] + (double)wd * p[j];
                buf[j] = s == 0 ? d : (double)mom * buf[j] + d;
                double upd = nesterov ? d + (double)mom * buf[j] : buf[j];
                p[j] -= (double)lr * upd;
            }
            float ref[3] = {(float)p[0], (float)p[1], (float)p[2]};
            EXPECT(ug_test_allclose(nesterov ? "sgd nesterov" : "sgd momentum",
                                    ug_params_data(ps), ref, 3, 1e-7, 1e-6),
                   "SGD (nesterov=%d) step %d differs from the scalar formula", nesterov, s + 1);
        }
        EXPECT(opt.t == 3, "step counter %lld", (long long)opt.t);
        ug_sgd_free(&opt);
        ug_params_free(ps);
    }
}

TEST(optim_adam_adamw_hand_computed) {
    /* Kingma & Ba Algorithm 1 (with PyTorch's eps outside the square root), and AdamW's
     * decoupled decay p <- p (1 - lr wd) before the Adam step, in double. */
    const float lr = 0.02f;
    for (int decoupled = 0; decoupled < 2; decoupled++) {
        ug_params *ps;
        ASSERT_OK(ug_params_create(&ps));
        ug_params_add(ps, "a.weight", 1, (int64_t[]){3});
        ASSERT_OK(ug_params_finalize(ps));
        memcpy(ug_params_data(ps), k_p0, sizeof k_p0);
        ug_adam_cfg cfg = decoupled ? ug_adamw_default() : ug_adam_default();
        cfg.weight_decay = decoupled ? 0.1f : 0.05f;
        cfg.eps = 1e-6f;
        ug_adam opt;
        ASSERT_OK(ug_adam_init(&opt, ps, cfg));
        const double b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.eps, wd = cfg.weight_decay;
        double p[3], m[3] = {0}, v[3] = {0};
        for (int j = 0; j < 3; j++) p[j] = k_p0[j];
        for (int s = 0; s < 3; s++) {
            memcpy(ug_params_grad(ps), k_g[s], sizeof k_g[s]);
            ug_adam_step(&opt, ps, lr);
            int t = s + 1;
            for (int j = 0; j < 3; j++) {
                double g = k_g[s][j];
                if (decoupled) p[j] *= 1.0 - (double)lr * wd;
                else g += wd * p[j];
                m[j] = b1 * m[j] + (1 - b1) * g;
                v[j] = b2 * v[j] + (1 - b2) * g * g;
                double mhat = m[j] / (1 - pow(b1, t)), vhat = v[j] / (1 - pow(b2, t));
                p[j] -= (double)lr * mhat / (sqrt(vhat) + eps);
            }
            float ref[3] = {(float)p[0], (float)p[1], (float)p[2]};
            EXPECT(ug_test_allclose(decoupled ? "adamw" : "adam", ug_params_data(ps), ref, 3,
                                    1e-7, 1e-6),
                   "%s step %d differs from the scalar formula", decoupled ? "AdamW" : "Adam",
                   t);
        }
        EXPECT(opt.t == 3, "step counter %lld", (long long)opt.t);
        ug_adam_free(&opt);
        ug_params_free(ps);
    }
}

TEST(optim_adam_first_step_is_lr_sign) {
    /* With wd = 0, step 1 gives mhat = g and vhat = g^2: p moves by -lr sign(g) (eps aside),
     * and a zero gradient leaves p exactly where it was. */
    ug_params *ps = make_params8(optim_ref_p0);
    ASSERT(ps, "params");
    float g[8] = {1e-3f, -2.0f, 50.0f, 0.0f, -1e-2f, 3.0f, -0.5f, 7.0f};
    memcpy(ug_params_grad(ps), g, sizeof g);
    ug_adam opt;
    ASSERT_OK(ug_adam_init(&opt, ps, ug_adam_default()));
    ug_adam_step(&opt, ps, 0.01f);
    for (int j = 0; j < 8; j++) {
        double moved = (double)ug_params_data(ps)[j] - optim_ref_p0[j];
        double want = g[j] > 0 ? -0.01 : g[j] < 0 ? 0.01 : 0.0;
        /* Float rounding of p (|p| < 2) plus eps's share lr eps / |g|. */
        double tol = g[j] != 0 ? 3e-7 + 0.01 * 1e-8 / fabs(g[j]) : 0.0;
        EXPECT(fabs(moved - want) <= tol, "coordinate %d moved %.9g, expected %.9g", j, moved,
               want);
    }
    EXPECT(ug_params_data(ps)[3] == optim_ref_p0[3], "a zero gradient moved the parameter");
    ug_adam_free(&opt);
    ug_params_free(ps);
}

/* ---------------------------------------------------------------- PyTorch trajectories */
TEST(optim_matches_torch) {
    int ncases = (int)(sizeof optim_ref_cases / sizeof *optim_ref_cases);
    for (int c = 0; c < ncases; c++) {
        const optim_ref_case *rc = &optim_ref_cases[c];
        ug_params *ps = make_params8(optim_ref_p0);
        ASSERT(ps, "params");
        ug_sgd sgd = {0};
        ug_adam adam = {0};
        if (rc->adam) {
            ug_adam_cfg cfg = {rc->beta1, rc->beta2, rc->eps, rc->weight_decay, rc->decoupled};
            ASSERT_OK(ug_adam_init(&adam, ps, cfg));
        } else {
            ug_sgd_cfg cfg = {rc->momentum, rc->weight_decay, rc->nesterov};
            ASSERT_OK(ug_sgd_init(&sgd, ps, cfg));
        }
        for (int s = 0; s < OPTIM_REF_STEPS; s++) {
            memcpy(ug_params_grad(ps), optim_ref_grads[s], sizeof optim_ref_grads[s]);
            if (rc->adam) ug_adam_step(&adam, ps, rc->lr);
            else ug_sgd_step(&sgd, ps, rc->lr);
            char what[64];
            snprintf(what, sizeof what, "%s step %d", rc->name, s + 1);
            EXPECT(ug_test_allclose(what, ug_params_data(ps), rc->p[s], OPTIM_REF_N, 1e-8, 1e-6),
                   "%s differs from torch", what);
        }
        ug_adam_free(&adam);
        ug_sgd_free(&sgd);
        ug_params_free(ps);
    }
}

TEST(optim_clip_matches_torch) {
    int nclips = (int)(sizeof optim_ref_clips / sizeof *optim_ref_clips);
    for (int c = 0; c < nclips; c++) {
        ug_params *ps = make_params8(optim_ref_p0);
        ASSERT(ps, "params");
        memcpy(ug_params_grad(ps), optim_ref_clip_grad, sizeof optim_ref_clip_grad);
        double norm = ug_clip_grad_norm(ps, optim_ref_clips[c].max_norm);
        EXPECT(fabs(norm - optim_ref_clip_norm64) <= 1e-12 * optim_ref_clip_norm64,
               "norm %.17g, double reference %.17g", norm, optim_ref_clip_norm64);
        EXPECT(fabs(norm - optim_ref_clips[c].norm) <= 1e-6 * optim_ref_clips[c].norm,
               "norm %.9g, torch %.9g", norm, optim_ref_clips[c].norm);
        EXPECT(ug_test_allclose("clipped grad", ug_params_grad(ps), optim_ref_clips[c].grad, 8,
                                1e-8, 1e-6),
               "clip to %g differs from torch", optim_ref_clips[c].max_norm);
        ug_params_free(ps);
    }
}

TEST(optim_clip_threshold_behaviour) {
    ug_params *ps = make_params8(optim_ref_p0);
    ASSERT(ps, "params");
    float *g = ug_params_grad(ps);
    /* Norm exactly 5 (3-4-5 triangle). */
    float g0[8] = {3.0f, 0, 0, 0, 0, 0, 0, -4.0f};
    memcpy(g, g0, sizeof g0);
    double n1 = ug_clip_grad_norm(ps, 0.0);   /* off: just the norm */
    EXPECT(n1 == 5.0, "norm %.17g, expected 5", n1);
    EXPECT(memcmp(g, g0, sizeof g0) == 0, "max_norm 0 changed the gradients");
    double n2 = ug_clip_grad_norm(ps, -1.0);
    EXPECT(n2 == 5.0 && memcmp(g, g0, sizeof g0) == 0, "max_norm < 0 clipped");
    /* Above the norm (coef = 6 / (5 + 1e-6) > 1): untouched, bit for bit. */
    double n3 = ug_clip_grad_norm(ps, 6.0);
    EXPECT(n3 == 5.0 && memcmp(g, g0, sizeof g0) == 0, "a gradient below the threshold changed");
    /* Equal to the norm: coef = 5 / (5 + 1e-6) < 1, so torch scales by it (a tiny shrink). */
    ug_clip_grad_norm(ps, 5.0);
    double coef = 5.0 / (5.0 + 1e-6);
    EXPECT(g[0] == (float)(3.0 * coef) || fabs(g[0] - 3.0 * coef) < 1e-6, "g0 %.9g", g[0]);
    memcpy(g, g0, sizeof g0);
    /* Below: the returned value is the norm before clipping; after it the norm is max_norm. */
    double n4 = ug_clip_grad_norm(ps, 0.5);
    EXPECT(n4 == 5.0, "returned %.17g, expected the norm before clipping", n4);
    double after = ug_clip_grad_norm(ps, 0.0);
    EXPECT(fabs(after - 0.5) < 1e-6, "norm after clipping %.9g, expected 0.5", after);
    EXPECT(fabs(g[0] / g[7] - (-0.75)) < 1e-6, "clipping changed the direction");
    ug_params_free(ps);
}

TEST(optim_clip_large_buffer_thread_invariant) {
    /* Large enough for the parallel path; the chunked double sum must give the same bits on
     * one or two threads, and match a plain double loop to rounding. */
    const int64_t n = 200003;
    ug_params *ps = make_params_n(n);
    ASSERT(ps, "params");
    ug_rng r = ug_rng_make(5, 0, 0);
    ug_rng_normal(&r, ug_params_grad(ps), n);
    double ref = 0;
    for (int64_t i = 0; i < n; i++) ref += (double)ug_params_grad(ps)[i] * ug_params_grad(ps)[i];
    ref = sqrt(ref);
    omp_set_num_threads(1);
    double a = ug_clip_grad_norm(ps, 0.0);
    omp_set_num_threads(2);
    double b = ug_clip_grad_norm(ps, 0.0);
    ug_set_threads(0);
    EXPECT(a == b, "norm on 1 thread %.17g, on 2 threads %.17g", a, b);
    EXPECT(fabs(a - ref) <= 1e-12 * ref, "norm %.17g, reference %.17g", a, ref);
    float before = ug_params_grad(ps)[12345];
    double n0 = ug_clip_grad_norm(ps, 1.0);
    EXPECT(fabs(ug_params_grad(ps)[12345] - before / n0) <= 1e-6 * fabs(before / n0) + 1e-12,
           "large-buffer clipping scaled wrongly");
    ug_params_free(ps);
}

TEST(optim_large_buffer_parallel_matches_scalar) {
    /* The parallel loops (n >= UG_PAR_MIN) give the same bits on any thread count, and match
     * the 8-parameter path entry by entry (each entry's update is independent). */
    const int64_t n = 100000;
    float *snap[2];
    for (int run = 0; run < 2; run++) {
        ug_params *ps = make_params_n(n);
        ASSERT(ps, "params");
        ug_rng r = ug_rng_make(9, 0, 0);
        ug_rng_normal(&r, ug_params_data(ps), n);
        omp_set_num_threads(run ? 2 : 1);
        ug_adam opt;
        ASSERT_OK(ug_adam_init(&opt, ps, ug_adamw_default()));
        for (int s = 0; s < 3; s++) {
            ug_rng rg = ug_rng_make(9, 1, (uint32_t)s);
            ug_rng_normal(&rg, ug_params_grad(ps), n);
            ug_adam_step(&opt, ps, 1e-2f);
        }
        ug_set_threads(0);
        snap[run] = malloc((size_t)n * sizeof(float));
        memcpy(snap[run], ug_params_data(ps), (size_t)n * sizeof(float));
        ug_adam_free(&opt);
        ug_params_free(ps);
    }
    EXPECT(memcmp(snap[0], snap[1], (size_t)n * sizeof(float)) == 0,
           "AdamW on 1 and 2 threads differs");
    /* Entry 77777 replayed alone through the small path. */
    float p1[8] = {0}, last = 0;
    {
        float all[3];
        ug_rng r = ug_rng_make(9, 0, 0);
        float *tmp = malloc((size_t)n * sizeof(float));
        ug_rng_normal(&r, tmp, n);
        p1[0] = tmp[77777];
        ug_params *ps = make_params8(p1);
        ug_adam opt;
        ASSERT_OK(ug_adam_init(&opt, ps, ug_adamw_default()));
        for (int s = 0; s < 3; s++) {
            ug_rng rg = ug_rng_make(9, 1, (uint32_t)s);
            ug_rng_normal(&rg, tmp, n);
            all[s] = tmp[77777];
            memset(ug_params_grad(ps), 0, 8 * sizeof(float));
            ug_params_grad(ps)[0] = all[s];
            ug_adam_step(&opt, ps, 1e-2f);
        }
        last = ug_params_data(ps)[0];
        ug_adam_free(&opt);
        ug_params_free(ps);
        free(tmp);
    }
    EXPECT(snap[0][77777] == last, "parallel entry %.9g, scalar path %.9g", snap[0][77777], last);
    free(snap[0]);
    free(snap[1]);
}

TEST(optim_plain_sgd_keeps_no_state) {
    ug_params *ps = make_params8(optim_ref_p0);
    ASSERT(ps, "params");
    ug_sgd opt;
    ASSERT_OK(ug_sgd_init(&opt, ps, ug_sgd_default()));
    EXPECT(opt.buf == NULL, "momentum 0 allocated a buffer");
    memcpy(ug_params_grad(ps), optim_ref_grads[0], sizeof optim_ref_grads[0]);
    ug_sgd_step(&opt, ps, 0.5f);
    for (int j = 0; j < 8; j++)
        EXPECT(ug_params_data(ps)[j] == optim_ref_p0[j] - 0.5f * optim_ref_grads[0][j],
               "plain SGD entry %d", j);
    ug_sgd_free(&opt);
    ug_sgd_free(&opt);   /* free twice is harmless: the struct is zeroed */
    ug_params_free(ps);
}

/* ---------------------------------------------------------------- argument checks */
static int err_has(const char *a, const char *b, const char *c) {
    const char *e = ug_last_error();
    return strstr(e, a) && (!b || strstr(e, b)) && (!c || strstr(e, c));
}

TEST(optim_rejects_bad_hyperparameters) {
    ug_params *ps = make_params8(optim_ref_p0);
    ASSERT(ps, "params");
    ug_adam adam;
    ug_adam_cfg ac = ug_adam_default();
    ac.beta1 = 1.0f;
    EXPECT(ug_adam_init(&adam, ps, ac) == UG_ERR_INVALID_ARG && err_has("beta1", "[0, 1)", "1"),
           "beta1 = 1 accepted or badly reported: %s", ug_last_error());
    EXPECT(adam.m == NULL && adam.v == NULL, "failed init left state behind");
    ac = ug_adam_default();
    ac.beta2 = 1.5f;
    EXPECT(ug_adam_init(&adam, ps, ac) == UG_ERR_INVALID_ARG && err_has("beta2", "[0, 1)", "1.5"),
           "beta2 = 1.5: %s", ug_last_error());
    ac = ug_adam_default();
    ac.beta2 = -0.25f;
    EXPECT(ug_adam_init(&adam, ps, ac) == UG_ERR_INVALID_ARG && err_has("beta2", "-0.25", NULL),
           "beta2 = -0.25: %s", ug_last_error());
    ac = ug_adam_default();
    ac.beta1 = NAN;
    EXPECT(ug_adam_init(&adam, ps, ac) == UG_ERR_INVALID_ARG && err_has("beta1", "nan", NULL),
           "beta1 = NaN: %s", ug_last_error());
    ac = ug_adam_default();
    ac.eps = -1e-8f;
    EXPECT(ug_adam_init(&adam, ps, ac) == UG_ERR_INVALID_ARG && err_has("eps", ">= 0", "-1e-08"),
           "eps < 0: %s", ug_last_error());
    ac = ug_adamw_default();
    ac.weight_decay = -0.5f;
    EXPECT(ug_adam_init(&adam, ps, ac) == UG_ERR_INVALID_ARG &&
               err_has("weight_decay", ">= 0", "-0.5"),
           "weight_decay < 0: %s", ug_last_error());

    ug_sgd sgd;
    ug_sgd_cfg sc = ug_sgd_default();
    sc.momentum = -0.1f;
    EXPECT(ug_sgd_init(&sgd, ps, sc) == UG_ERR_INVALID_ARG && err_has("momentum", ">= 0", "-0.1"),
           "momentum < 0: %s", ug_last_error());
    sc = ug_sgd_default();
    sc.nesterov = 1;
    EXPECT(ug_sgd_init(&sgd, ps, sc) == UG_ERR_INVALID_ARG && err_has("nesterov", "momentum", NULL),
           "nesterov without momentum: %s", ug_last_error());

    ug_ema ema;
    EXPECT(ug_ema_init(&ema, ps, 1.5f) == UG_ERR_INVALID_ARG && err_has("decay", "[0, 1]", "1.5"),
           "decay 1.5: %s", ug_last_error());
    EXPECT(ug_ema_init(&ema, ps, -0.01f) == UG_ERR_INVALID_ARG && err_has("decay", "-0.01", NULL),
           "decay -0.01: %s", ug_last_error());
    EXPECT(ema.w == NULL, "failed EMA init left state behind");

    /* The boundaries themselves are fine. */
    ac = ug_adam_default();
    ac.beta1 = 0.0f; ac.eps = 0.0f;
    ASSERT_OK(ug_adam_init(&adam, ps, ac));
    ug_adam_free(&adam);
    ASSERT_OK(ug_ema_init(&ema, ps, 1.0f));
    ug_ema_free(&ema);
    ASSERT_OK(ug_ema_init(&ema, ps, 0.0f));
    ug_ema_free(&ema);
    ug_params_free(ps);
}

TEST(optim_requires_finalized_params) {
    ug_params *ps;
    ASSERT_OK(ug_params_create(&ps));
    ug_params_add(ps, "fc.weight", 2, (int64_t[]){2, 3});
    ug_adam adam;
    ug_sgd sgd;
    ug_ema ema;
    EXPECT(ug_adam_init(&adam, ps, ug_adam_default()) == UG_ERR_STATE && err_has("finalize", NULL, NULL),
           "Adam on unfinalized params: %s", ug_last_error());
    EXPECT(ug_sgd_init(&sgd, ps, ug_sgd_default()) == UG_ERR_STATE, "SGD on unfinalized params");
    EXPECT(ug_ema_init(&ema, ps, 0.99f) == UG_ERR_STATE, "EMA on unfinalized params");
    ug_params_free(ps);
}

/* ---------------------------------------------------------------- schedules */
TEST(optim_lr_schedules) {
    ug_lr_schedule c = {UG_LR_CONSTANT, 0.1f, 0, 1000, 0.0f};
    EXPECT(ug_lr_at(&c, 0) == 0.1f && ug_lr_at(&c, 999999) == 0.1f, "constant");
    EXPECT(ug_lr_at(&c, -5) == 0.1f, "negative step");

    /* Warm-up over 4 steps: base (s + 1) / 4, then base. */
    ug_lr_schedule w = {UG_LR_WARMUP, 0.2f, 4, 0, 0.0f};
    const double want_w[6] = {0.05, 0.1, 0.15, 0.2, 0.2, 0.2};
    for (int s = 0; s < 6; s++)
        EXPECT(fabs(ug_lr_at(&w, s) - want_w[s]) <= 1e-7, "warmup step %d: %.9g, expected %.9g",
               s, ug_lr_at(&w, s), want_w[s]);
    EXPECT(ug_lr_at(&w, 3) == 0.2f, "warm-up must reach base_lr exactly at step W - 1");
    /* Warm-up applies to every kind (header: "all kinds"). */
    c.warmup_steps = 4;
    EXPECT(fabs(ug_lr_at(&c, 1) - 0.05) <= 1e-7, "constant with warm-up, step 1");

    /* Cosine: W = 10, T = 110, base 1, min 0.1. */
    ug_lr_schedule k = {UG_LR_COSINE, 1.0f, 10, 110, 0.1f};
    struct { int64_t s; double lr; } pts[] = {
        {0, 0.1},                                   /* 1 * 1/10 */
        {9, 1.0},                                   /* end of warm-up */
        {10, 1.0},                                  /* q = 0 */
        {35, 0.1 + 0.45 * (1 + cos(M_PI * 0.25))},  /* q = 1/4 */
        {60, 0.55},                                 /* q = 1/2: midpoint */
        {110, 0.1},                                 /* q = 1 */
        {5000, 0.1},                                /* clamped */
    };
    for (size_t i = 0; i < sizeof pts / sizeof *pts; i++)
        EXPECT(fabs(ug_lr_at(&k, pts[i].s) - pts[i].lr) <= 1e-6,
               "cosine step %lld: %.9g, expected %.9g", (long long)pts[i].s,
               ug_lr_at(&k, pts[i].s), pts[i].lr);
    /* Monotone decay after warm-up. */
    int mono = 1;
    for (int64_t s = 10; s < 120; s++) mono &= ug_lr_at(&k, s + 1) <= ug_lr_at(&k, s);
    EXPECT(mono, "cosine is not monotone after warm-up");
    /* No warm-up: starts at base. T <= W: min_lr after warm-up. */
    ug_lr_schedule k0 = {UG_LR_COSINE, 0.5f, 0, 100, 0.0f};
    EXPECT(ug_lr_at(&k0, 0) == 0.5f && fabs(ug_lr_at(&k0, 50) - 0.25) < 1e-7, "cosine W = 0");
    ug_lr_schedule kd = {UG_LR_COSINE, 0.5f, 10, 5, 0.01f};
    EXPECT(ug_lr_at(&kd, 10) == 0.01f, "cosine with T <= W");

    /* Names round trip; unknown names fail. */
    for (int i = 0; i < UG_LR_COUNT; i++) {
        ug_lr_kind kk = UG_LR_COUNT;
        EXPECT(ug_lr_from_name(ug_lr_name((ug_lr_kind)i), &kk) == 0 && kk == (ug_lr_kind)i,
               "name round trip for %d (%s)", i, ug_lr_name((ug_lr_kind)i));
    }
    ug_lr_kind kk;
    EXPECT(ug_lr_from_name("linear", &kk) == -1 && ug_lr_from_name("", &kk) == -1, "unknown name");
    EXPECT(strcmp(ug_lr_name(UG_LR_COSINE), "cosine") == 0, "cosine name");
}

/* ---------------------------------------------------------------- EMA */
TEST(optim_ema_closed_form) {
    ug_params *ps = make_params8(optim_ref_p0);
    ASSERT(ps, "params");
    const float decay = 0.9f;
    const double d = decay;
    ug_ema ema;
    ASSERT_OK(ug_ema_init(&ema, ps, decay));
    EXPECT(memcmp(ema.w, optim_ref_p0, sizeof optim_ref_p0) == 0, "EMA does not start at p0");
    /* p_j = p0 + j c with a per-coordinate c: ema_k = d^k p_0 + (1 - d) sum_j d^(k-j) p_j. */
    const int K = 25;
    float *p = ug_params_data(ps);
    for (int j = 1; j <= K; j++) {
        for (int i = 0; i < 8; i++) p[i] = optim_ref_p0[i] + (float)j * 0.1f * (float)(i - 3);
        ug_ema_update(&ema, ps);
    }
    float ref[8];
    for (int i = 0; i < 8; i++) {
        double s = pow(d, K) * optim_ref_p0[i];
        for (int j = 1; j <= K; j++)
            s += (1 - d) * pow(d, K - j) * (double)(optim_ref_p0[i] + (float)j * 0.1f * (float)(i - 3));
        ref[i] = (float)s;
    }
    EXPECT(ug_test_allclose("ema", ema.w, ref, 8, 1e-6, 1e-5), "EMA after %d updates", K);
    /* Constant parameters are a fixed point. */
    float wbefore[8];
    memcpy(p, ema.w, sizeof wbefore);
    memcpy(wbefore, ema.w, sizeof wbefore);
    ug_ema_update(&ema, ps);
    EXPECT(ug_test_allclose("ema fixed point", ema.w, wbefore, 8, 1e-7, 1e-6), "fixed point");
    ug_ema_free(&ema);

    /* decay 0 follows the weights; decay 1 never moves. */
    ASSERT_OK(ug_ema_init(&ema, ps, 0.0f));
    p[2] = 123.0f;
    ug_ema_update(&ema, ps);
    EXPECT(ema.w[2] == 123.0f, "decay 0 must copy the weights");
    ug_ema_free(&ema);
    ASSERT_OK(ug_ema_init(&ema, ps, 1.0f));
    p[2] = -7.0f;
    ug_ema_update(&ema, ps);
    EXPECT(ema.w[2] == 123.0f, "decay 1 must keep the EMA");
    ug_ema_free(&ema);
    ug_params_free(ps);
}

TEST(optim_ema_swap_round_trip) {
    const int64_t n = 40000;   /* above UG_PAR_MIN: the parallel swap */
    ug_params *ps = make_params_n(n);
    ASSERT(ps, "params");
    ug_rng r = ug_rng_make(3, 0, 0);
    ug_rng_normal(&r, ug_params_data(ps), n);
    ug_ema ema;
    ASSERT_OK(ug_ema_init(&ema, ps, 0.5f));
    for (int64_t i = 0; i < n; i++) ug_params_data(ps)[i] += 1.0f;
    ug_ema_update(&ema, ps);   /* ema = p0 + 0.5 */
    float *live = malloc((size_t)n * sizeof(float)), *avg = malloc((size_t)n * sizeof(float));
    memcpy(live, ug_params_data(ps), (size_t)n * sizeof(float));
    memcpy(avg, ema.w, (size_t)n * sizeof(float));
    ug_ema_swap(&ema, ps);
    EXPECT(memcmp(ug_params_data(ps), avg, (size_t)n * sizeof(float)) == 0,
           "after swap the params are not the EMA");
    EXPECT(memcmp(ema.w, live, (size_t)n * sizeof(float)) == 0,
           "after swap the EMA does not hold the live weights");
    /* Parameter tensors are views of the flat buffer: they see the swapped values. */
    EXPECT(ug_params_find(ps, "big.weight")->data[17] == avg[17], "tensor view not swapped");
    ug_ema_swap(&ema, ps);
    EXPECT(memcmp(ug_params_data(ps), live, (size_t)n * sizeof(float)) == 0 &&
               memcmp(ema.w, avg, (size_t)n * sizeof(float)) == 0,
           "swap twice is not the identity");
    free(live);
    free(avg);
    ug_ema_free(&ema);
    ug_params_free(ps);
}
