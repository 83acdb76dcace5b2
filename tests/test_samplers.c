/* test_samplers.c — every sampler against the reference implementations and the exact mixture.
 * 1. tests/ref/samplers/manifest.json (k-diffusion, NVlabs/edm, diffusers on the exact GMM
 *    denoiser, see its README): for EVERY case the C sampler runs from the recorded noise and
 *    arguments; per-sample relative error median <= 1e-4 and p99 <= 1e-3, the same NFE, the same
 *    grid (1e-12 relative; 1e-6 for diffusers' float32 grids), plus the per-family extras
 *    (lms coefficients, t_steps, DDIM timesteps). A case the test cannot map fails.
 * 2. The stochastic samplers on the 8-component 2-D mixture: component frequencies within
 *    binomial error and per-component variances near s_k^2.
 * 3. Noise streams: batch 1 vs 512 chunks and 1 vs 2 threads give bitwise-identical samples. */
#include "test.h"
#include "diffusion/sampler.h"
#include "diffusion/sampler_impl.h"
#include <cjson/cJSON.h>
#include <omp.h>

#define REF "ref/samplers/"

static double num(const cJSON *o, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(v)) return v->valuedouble;
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "inf")) return INFINITY;
    return dflt;
}
static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}
static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* numpy's percentile (linear interpolation) of a sorted array. */
static double pct(const double *s, int n, double q) {
    double pos = q * (n - 1);
    int lo = (int)floor(pos);
    return lo + 1 < n ? s[lo] + (pos - lo) * (s[lo + 1] - s[lo]) : s[n - 1];
}

/* Maps one manifest case onto a sampler configuration; 0 when the case is not understood.
 * form is filled when the case needs one. */
static int case_cfg(const cJSON *cs, ug_sampler_cfg *c, ug_form *form, char *why, size_t whylen) {
    const char *lib = str(cs, "library"), *fn = str(cs, "function"), *sched = str(cs, "schedule");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(cs, "args");
    *c = ug_sampler_default();
    c->steps = (int)num(cs, "steps", 0);
    c->eta = num(args, "eta", NAN);
    if (!strcmp(lib, "k-diffusion")) {
        static const struct { const char *fn; ug_sampler_kind k; } map[] = {
            {".sample_euler", UG_SAMPLER_EULER}, {".sample_heun", UG_SAMPLER_HEUN},
            {".sample_dpm_2", UG_SAMPLER_DPM2}, {".sample_lms", UG_SAMPLER_LMS},
            {".sample_dpmpp_2m", UG_SAMPLER_DPMPP_2M},
            {".sample_euler_ancestral", UG_SAMPLER_EULER_A},
            {".sample_dpmpp_2s_ancestral", UG_SAMPLER_DPMPP_2S_A},
            {".sample_dpmpp_2m_sde", UG_SAMPLER_DPMPP_2M_SDE},
            {".sample_dpmpp_3m_sde", UG_SAMPLER_DPMPP_3M_SDE}};
        int found = 0;
        for (size_t i = 0; i < sizeof map / sizeof *map; i++)
            if (ends_with(fn, map[i].fn)) { c->sampler = map[i].k; found = 1; }
        if (!found) { snprintf(why, whylen, "k-diffusion function %s", fn); return 0; }
        if (ug_sde_solver_from_name(str(args, "solver_type"), &c->sde_solver) && c->sampler == UG_SAMPLER_DPMPP_2M_SDE) {
            snprintf(why, whylen, "solver_type '%s'", str(args, "solver_type"));
            return 0;
        }
        if (ug_schedule_from_name(sched, &c->schedule) ||
            !(c->schedule == UG_SCHED_KARRAS || c->schedule == UG_SCHED_EXPONENTIAL || c->schedule == UG_SCHED_VP)) {
            snprintf(why, whylen, "k-diffusion grid %s", sched);
            return 0;
        }
        c->sigma_min = num(args, "sigma_min", 0.002);
        c->sigma_max = num(args, "sigma_max", 80);
        c->rho = num(args, "rho", 7);
        if (c->schedule == UG_SCHED_VP &&
            (num(args, "beta_d", 0) != 19.9 || num(args, "beta_min", 0) != 0.1 || num(args, "eps_s", 0) != 1e-3)) {
            snprintf(why, whylen, "vp grid with non-default betas");
            return 0;
        }
        return 1;
    }
    if (!strcmp(lib, "NVlabs/edm")) {
        c->s_churn = num(args, "S_churn", 0);
        c->s_tmin = num(args, "S_min", 0);
        c->s_tmax = num(args, "S_max", INFINITY);
        c->s_noise = num(args, "S_noise", 1);
        if (ends_with(fn, ".edm_sampler")) {
            c->sampler = UG_SAMPLER_EDM_SDE;
            c->schedule = UG_SCHED_KARRAS;
            c->sigma_min = num(args, "sigma_min", 0.002);
            c->sigma_max = num(args, "sigma_max", 80);
            c->rho = num(args, "rho", 7);
            return 1;
        }
        if (!ends_with(fn, ".ablation_sampler")) { snprintf(why, whylen, "edm function %s", fn); return 0; }
        const char *solver = str(args, "solver"), *disc = str(args, "discretization");
        const char *sch = str(args, "schedule"), *scal = str(args, "scaling");
        c->sampler = !strcmp(solver, "heun") ? UG_SAMPLER_HEUN : UG_SAMPLER_EULER;
        c->sigma_min = num(args, "resolved_sigma_min", NAN);
        c->sigma_max = num(args, "resolved_sigma_max", NAN);
        if (num(args, "alpha", 1) != 1) { snprintf(why, whylen, "alpha != 1"); return 0; }
        if (!strcmp(disc, "vp") && !strcmp(sch, "vp") && !strcmp(scal, "vp")) {
            ug_form_init(form, UG_FORM_VP_CONT);
            /* ablation_sampler re-derives the betas from its sigma range */
            form->b_d = num(args, "vp_beta_d", NAN);
            form->b_min = num(args, "vp_beta_min", NAN);
            form->eps_t = num(args, "epsilon_s", NAN);
            c->form = form;
            c->schedule = UG_SCHED_VP;
        } else if (!strcmp(disc, "ve") && !strcmp(sch, "ve") && !strcmp(scal, "none")) {
            ug_form_init(form, UG_FORM_VE);
            c->form = form;
            c->schedule = UG_SCHED_VE;
        } else if (!strcmp(disc, "iddpm") && !strcmp(sch, "linear") && !strcmp(scal, "none")) {
            c->schedule = UG_SCHED_IDDPM;
            if (num(args, "M", 0) != 1000 || num(args, "C_1", 0) != 0.001 || num(args, "C_2", 0) != 0.008) {
                snprintf(why, whylen, "iddpm constants");
                return 0;
            }
        } else {
            snprintf(why, whylen, "ablation %s/%s/%s", disc, sch, scal);
            return 0;
        }
        return 1;
    }
    if (!strcmp(lib, "diffusers")) {
        const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(args, "config");
        c->diffusers = 1;
        if (ends_with(fn, "DDIMScheduler.step")) {
            c->sampler = UG_SAMPLER_DDIM;
            if (ug_schedule_from_name(str(cfg, "timestep_spacing"), &c->schedule)) {
                snprintf(why, whylen, "timestep_spacing %s", str(cfg, "timestep_spacing"));
                return 0;
            }
            c->steps_offset = (int)num(cfg, "steps_offset", 0);
            c->set_alpha_to_one = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "set_alpha_to_one"));
            if (num(cfg, "num_train_timesteps", 0) != 1000 || strcmp(str(cfg, "beta_schedule"), "linear") ||
                num(cfg, "beta_start", 0) != 0.0001 || num(cfg, "beta_end", 0) != 0.02 ||
                strcmp(str(cfg, "prediction_type"), "epsilon") ||
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "clip_sample"))) {
                snprintf(why, whylen, "DDIM config");
                return 0;
            }
            return 1;
        }
        if (ends_with(fn, "FlowMatchEulerDiscreteScheduler.step")) {
            c->sampler = UG_SAMPLER_FM_EULER;
            c->schedule = UG_SCHED_FM;
            c->shift = num(cfg, "shift", 1);
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "use_dynamic_shifting"))) {
                snprintf(why, whylen, "dynamic shifting");
                return 0;
            }
            return 1;
        }
    }
    snprintf(why, whylen, "library %s function %s", lib, fn);
    return 0;
}

static int arr_close(const cJSON *a, const double *got, int n, double rtol, double atol, double *worst) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return 0;
    int ok = 1;
    for (int i = 0; i < n; i++) {
        double r = cJSON_GetArrayItem(a, i)->valuedouble, e = fabs(got[i] - r);
        double rel = e / (fabs(r) > 0 ? fabs(r) : 1);
        if (rel > *worst) *worst = rel;
        if (!(e <= atol + rtol * fabs(r))) ok = 0;
    }
    return ok;
}

TEST(samplers_diffusers_float32_alphas_cumprod_bitwise) {
    ug_npy_array a;
    ASSERT_OK(ug_npy_read(REF "ddim_alphas_cumprod.npy", &a));
    ASSERT(a.numel == 1000 && a.dtype == UG_DT_F64, "alphas_cumprod: %lld values", (long long)a.numel);
    double mine[1000];
    ug_diffusers_abar(mine);
    int bad = 0;
    for (int i = 0; i < 1000; i++) bad += mine[i] != ((double *)a.data)[i];
    EXPECT(bad == 0, "%d of 1000 float32 alphas_cumprod differ from diffusers'", bad);
    ug_npy_free(&a);
}

TEST(samplers_lms_closed_form_integrates_cubics) {
    /* The Adams coefficients reproduce the integral of any polynomial of degree < order. */
    const double t[] = {80, 17.5, 2.5, 0.4, 0.05, 0};
    for (int i = 3; i < 5; i++) {
        double got = 0, exact = 0;
        for (int j = 0; j < 4; j++) {
            double tau = t[i - j];
            got += ug_lms_coeff(4, t, i, j) * (1 - 2 * tau + 0.5 * tau * tau * tau);
        }
        double a = t[i], b = t[i + 1];
        exact = (b - a) - (b * b - a * a) + 0.125 * (b * b * b * b - a * a * a * a);
        EXPECT(fabs(got - exact) <= 1e-12 * fabs(exact), "step %d: %.17g vs %.17g", i, got, exact);
    }
}

TEST(samplers_match_reference_implementations) {
    char *js = ug_test_read_file(REF "manifest.json");
    ASSERT(js, "cannot read " REF "manifest.json");
    cJSON *m = cJSON_Parse(js);
    free(js);
    ASSERT(m, "manifest.json does not parse");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(m, "cases");
    ASSERT(cJSON_IsArray(cases) && cJSON_GetArraySize(cases) == 180, "expected 180 cases");
    ug_gmm mix[2];
    ug_npy_array noise[2];
    const char *mixname[2] = {"mix2d", "mix16"};
    ASSERT_OK(ug_gmm_load(REF "mix2d.json", &mix[0]));
    ASSERT_OK(ug_gmm_load(REF "mix16.json", &mix[1]));
    ASSERT_OK(ug_npy_read(REF "noise2d.npy", &noise[0]));
    ASSERT_OK(ug_npy_read(REF "noise16.npy", &noise[1]));
    ug_form *form = malloc(sizeof *form);
    ug_grid *g = malloc(sizeof *g);
    double worst_med = 0, worst_p99 = 0, worst_grid = 0, worst_grid32 = 0, worst_extra = 0;
    const char *worst_name = "";
    int ncase = 0, nfail = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        const char *name = str(cs, "name");
        char why[256] = "";
        ug_sampler_cfg c;
        ncase++;
        if (!case_cfg(cs, &c, form, why, sizeof why)) {
            EXPECT(0, "%s: no C sampler for this case (%s)", name, why);
            nfail++;
            continue;
        }
        int mi = !strcmp(str(cs, "mixture"), "mix16.json");
        if (strncmp(str(cs, "mixture"), mixname[mi], 5)) { EXPECT(0, "%s: mixture?", name); continue; }
        int f32 = c.diffusers;
        /* the grid */
        ug_status st = ug_sampler_make_grid(&c, g);
        if (st) { EXPECT(0, "%s: grid: %s", name, ug_last_error()); nfail++; continue; }
        int N = g->steps, ok = 1;
        double *wg = f32 ? &worst_grid32 : &worst_grid;
        /* flow matching records its t grid as "sigmas" (diffusers names t sigma) */
        const double *grid = g->space == UG_SPACE_FM ? g->t : g->sigma;
        if (!arr_close(cJSON_GetObjectItemCaseSensitive(cs, "sigmas"), grid, N + 1, f32 ? 1e-6 : 1e-12, 0, wg)) {
            EXPECT(0, "%s: sigma grid differs (worst so far %.3g)", name, *wg);
            ok = 0;
        }
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(cs, "t_steps");
        if (ts && g->space == UG_SPACE_T && !arr_close(ts, g->t, N + 1, 1e-12, 1e-300, &worst_extra)) {
            EXPECT(0, "%s: t_steps differ", name);
            ok = 0;
        }
        const cJSON *lc = cJSON_GetObjectItemCaseSensitive(cs, "lms_coeffs");
        for (int i = 0; lc && i < N; i++) {
            int order = i + 1 < 4 ? i + 1 : 4;
            double cf[4];
            for (int j = 0; j < order; j++) cf[j] = ug_lms_coeff(order, g->sigma, i, j);
            if (!arr_close(cJSON_GetArrayItem(lc, i), cf, order, 1e-12, 1e-300, &worst_extra)) {
                EXPECT(0, "%s: lms coefficients of step %d differ", name, i);
                ok = 0;
            }
        }
        if (c.sampler == UG_SAMPLER_DDIM) {
            double tsd[UG_SAMPLER_MAX_STEPS], pvd[UG_SAMPLER_MAX_STEPS], w = 0;
            for (int i = 0; i < N; i++) { tsd[i] = g->timestep[i]; pvd[i] = g->prev_timestep[i]; }
            if (!arr_close(cJSON_GetObjectItemCaseSensitive(cs, "timesteps"), tsd, N, 0, 0, &w) ||
                !arr_close(cJSON_GetObjectItemCaseSensitive(cs, "prev_timesteps"), pvd, N, 0, 0, &w) ||
                !arr_close(cJSON_GetObjectItemCaseSensitive(cs, "alphas_cumprod_t"), g->abar, N, 0, 0, &w) ||
                !arr_close(cJSON_GetObjectItemCaseSensitive(cs, "alphas_cumprod_prev"), g->abar_prev, N, 0, 0, &w)) {
                EXPECT(0, "%s: DDIM timesteps or alphas_cumprod differ", name);
                ok = 0;
            }
        }
        /* the samples */
        ug_npy_array ref;
        char path[512];
        snprintf(path, sizeof path, REF "%s", str(cs, "out"));
        if (ug_npy_read(path, &ref)) { EXPECT(0, "%s: %s", name, ug_last_error()); nfail++; continue; }
        int64_t n = noise[mi].shape[0], d = noise[mi].shape[1];
        ASSERT(ref.numel == n * d, "%s: reference has %lld values", name, (long long)ref.numel);
        double *x = malloc((size_t)(n * d) * sizeof *x), *rel = malloc((size_t)n * sizeof *rel);
        memcpy(x, noise[mi].data, (size_t)(n * d) * sizeof *x);
        ug_denoiser dn = ug_gmm_denoiser(&mix[mi]);
        int64_t nfe = -1;
        st = ug_sampler_run(&c, &dn, n, x, &nfe);
        if (st) {
            EXPECT(0, "%s: run: %s", name, ug_last_error());
            ok = 0;
        } else {
            const double *r = ref.data;
            for (int64_t i = 0; i < n; i++) {
                double e = 0, q = 0;
                for (int64_t j = 0; j < d; j++) {
                    e += (x[i * d + j] - r[i * d + j]) * (x[i * d + j] - r[i * d + j]);
                    q += r[i * d + j] * r[i * d + j];
                }
                rel[i] = sqrt(e) / sqrt(q);
            }
            qsort(rel, (size_t)n, sizeof *rel, ug_test_cmp_double);
            double med = pct(rel, (int)n, 0.5), p99 = pct(rel, (int)n, 0.99);
            if (p99 > worst_p99) { worst_p99 = p99; worst_name = name; }
            if (med > worst_med) worst_med = med;
            if (!(med <= 1e-4 && p99 <= 1e-3)) {
                EXPECT(0, "%s: relative error median %.3g p99 %.3g", name, med, p99);
                ok = 0;
            }
            if (nfe != (int64_t)num(cs, "nfe", -1)) {
                EXPECT(0, "%s: NFE %lld, reference %d", name, (long long)nfe, (int)num(cs, "nfe", -1));
                ok = 0;
            }
        }
        nfail += !ok;
        free(x); free(rel);
        ug_npy_free(&ref);
    }
    printf("    %d cases, %d failed; worst sample error median %.2e, p99 %.2e (%s); grid %.2e "
           "(float32 grids %.2e); lms/t_steps %.2e\n",
           ncase, nfail, worst_med, worst_p99, worst_name, worst_grid, worst_grid32, worst_extra);
    free(form); free(g);
    for (int i = 0; i < 2; i++) { ug_gmm_free(&mix[i]); ug_npy_free(&noise[i]); }
    cJSON_Delete(m);
}

/* ---------------------------------------------------------------- stochastic samplers */

/* Runs c on n points of mix2d from noise streams (seed 7), in chunks of `chunk`. */
static ug_status run_chunks(ug_sampler_cfg c, const ug_gmm *g, int64_t n, int64_t chunk, double *x) {
    ug_denoiser dn = ug_gmm_denoiser(g);
    float *nz = malloc((size_t)(n * g->d) * sizeof *nz);
    ug_rng_normal_rows(7, 1000, 0, nz, n, g->d);   /* the initial noise: its own streams */
    for (int64_t j = 0; j < n * g->d; j++) x[j] = nz[j];
    free(nz);
    ug_status st = UG_OK;
    for (int64_t a = 0; a < n && !st; a += chunk) {
        int64_t m = n - a < chunk ? n - a : chunk, nfe;
        c.first_stream = (uint64_t)a;
        st = ug_sampler_run(&c, &dn, m, x + a * g->d, &nfe);
    }
    return st;
}

/* Each sample goes to its nearest mean and counts when it lies within R = 3 s_k of it. For a
 * 2-D isotropic Gaussian X = r^2/s^2 ~ Exp(mean 2), so the kept fraction is w_k (1 - e^{-4.5})
 * and E[X | kept] = 2 - 9 e^{-4.5}/(1 - e^{-4.5}) (the mass of the other components inside the
 * disc is < 1e-4 of it). The truncation matters: an untruncated variance is inflated ~50% for
 * the narrowest component by the 3-sigma tails of its wide neighbour. Frequencies must lie
 * within 4 binomial standard errors (+0.003), the mean of X within 4 standard errors of the
 * truncated exponential (+2% for the finite step count). */
static int check_mixture(const char *what, const ug_gmm *g, const double *x, int64_t n, int report) {
    enum { KMAX = 16 };
    int K = g->K, ok = 1;
    double cnt[KMAX] = {0}, sx[KMAX] = {0};
    const double q = exp(-4.5), keep = 1 - q, mx = 2 - 9 * q / keep;
    /* E[X^2 | kept] for Exp(mean 2) truncated at 9 */
    const double mx2 = (8 - q * (81 + 4 * 9 + 8)) / keep, vx = mx2 - mx * mx;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        double bd = INFINITY;
        for (int k = 0; k < K; k++) {
            double e0 = x[2 * i] - g->mu[2 * k], e1 = x[2 * i + 1] - g->mu[2 * k + 1], dd = e0 * e0 + e1 * e1;
            if (dd < bd) { bd = dd; best = k; }
        }
        double s2 = g->s[best] * g->s[best];
        if (bd <= 9 * s2) {
            cnt[best]++;
            sx[best] += bd / s2;
        }
    }
    double worst_f = 0, worst_v = 0;
    for (int k = 0; k < K; k++) {
        double w = g->w[k] * keep, f = cnt[k] / n, ftol = 4 * sqrt(w * (1 - w) / n) + 0.003;
        double m = cnt[k] > 0 ? sx[k] / cnt[k] : 0, vtol = 4 * sqrt(vx / (cnt[k] > 0 ? cnt[k] : 1)) / mx + 0.02;
        if (fabs(f - w) / ftol > worst_f) worst_f = fabs(f - w) / ftol;
        if (fabs(m / mx - 1) / vtol > worst_v) worst_v = fabs(m / mx - 1) / vtol;
        if (!(fabs(f - w) <= ftol)) { if (report) ug_test_fail(__FILE__, __LINE__, "%s: component %d frequency %.4f, expected %.4f", what, k, f, w); ok = 0; }
        if (!(fabs(m / mx - 1) <= vtol)) {
            if (report) ug_test_fail(__FILE__, __LINE__, "%s: component %d variance ratio %.4f (tolerance %.3f)", what, k, m / mx, vtol);
            ok = 0;
        }
    }
    printf("    %-22s worst frequency error %.2f, worst variance error %.2f of tolerance\n", what, worst_f, worst_v);
    return ok;
}

TEST(samplers_stochastic_match_mixture) {
    ug_gmm g;
    ASSERT_OK(ug_gmm_load(REF "mix2d.json", &g));
    const int64_t n = 4000;
    {   /* the check itself on exact mixture samples */
        float *e = malloc((size_t)n * 2 * sizeof *e);
        double *xe = malloc((size_t)n * 2 * sizeof *xe);
        ASSERT_OK(ug_gmm_sample(&g, 0, n, 5, e, NULL));
        for (int64_t j = 0; j < n * 2; j++) xe[j] = e[j];
        EXPECT(check_mixture("exact samples", &g, xe, n, 1), "the check rejects exact samples");
        for (int64_t j = 0; j < n * 2; j++) xe[j] *= 1.1;   /* 10% too wide */
        EXPECT(!check_mixture("(must fail) 10% wider", &g, xe, n, 0), "the check accepts samples 10%% too wide");
        free(e); free(xe);
    }
    double *x = malloc((size_t)n * 2 * sizeof *x);
    struct { const char *what; ug_sampler_kind k; int steps; ug_schedule_kind sk; double eta, churn; } runs[] = {
        {"euler-a eta 1", UG_SAMPLER_EULER_A, 100, UG_SCHED_KARRAS, 1, 0},
        {"dpmpp-2s-a eta 1", UG_SAMPLER_DPMPP_2S_A, 50, UG_SCHED_KARRAS, 1, 0},
        {"dpmpp-2m-sde eta 1", UG_SAMPLER_DPMPP_2M_SDE, 100, UG_SCHED_KARRAS, 1, 0},
        {"dpmpp-3m-sde eta 1", UG_SAMPLER_DPMPP_3M_SDE, 100, UG_SCHED_KARRAS, 1, 0},
        {"edm-sde churn 40", UG_SAMPLER_EDM_SDE, 64, UG_SCHED_KARRAS, NAN, 40},
        {"ddpm beta-tilde", UG_SAMPLER_DDPM, 1000, UG_SCHED_LEADING, 1, 0},
        {"ddim eta 1", UG_SAMPLER_DDIM, 500, UG_SCHED_LEADING, 1, 0},
        {"em eta 1", UG_SAMPLER_EM, 300, UG_SCHED_KARRAS, 1, 0},
        {"pc snr 0.16", UG_SAMPLER_PC, 150, UG_SCHED_KARRAS, 1, 0},
    };
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        ug_sampler_cfg c = ug_sampler_default();
        c.sampler = runs[r].k;
        c.steps = runs[r].steps;
        c.schedule = runs[r].sk;
        c.eta = runs[r].eta;
        c.s_churn = runs[r].churn;
        c.s_tmin = 0.01;
        c.s_tmax = 10;
        c.seed = 11;
        ASSERT_OK(run_chunks(c, &g, n, n, x));
        check_mixture(runs[r].what, &g, x, n, 1);
    }
    free(x);
    ug_gmm_free(&g);
}

TEST(samplers_noise_streams_independent_of_batch_and_threads) {
    ug_gmm g;
    ASSERT_OK(ug_gmm_load(REF "mix2d.json", &g));
    const int64_t n = 1024;
    double *a = malloc((size_t)n * 2 * sizeof *a), *b = malloc((size_t)n * 2 * sizeof *b);
    ug_sampler_kind kinds[] = {UG_SAMPLER_EULER_A, UG_SAMPLER_DPMPP_2M_SDE, UG_SAMPLER_DPMPP_3M_SDE,
                               UG_SAMPLER_DPMPP_2S_A, UG_SAMPLER_EDM_SDE, UG_SAMPLER_DDPM,
                               UG_SAMPLER_DDIM, UG_SAMPLER_EM, UG_SAMPLER_PC};
    for (size_t r = 0; r < sizeof kinds / sizeof *kinds; r++) {
        ug_sampler_cfg c = ug_sampler_default();
        c.sampler = kinds[r];
        c.schedule = UG_SCHED_AUTO;
        c.steps = 12;
        c.eta = 1;
        c.s_churn = 5;
        c.seed = 3;
        omp_set_num_threads(1);
        ASSERT_OK(run_chunks(c, &g, n, 1, a));
        omp_set_num_threads(2);
        ASSERT_OK(run_chunks(c, &g, n, 512, b));
        ug_set_threads(0);
        EXPECT(!memcmp(a, b, (size_t)n * 2 * sizeof *a), "%s: batch 1 / 1 thread != batch 512 / 2 threads",
               ug_sampler_name(kinds[r]));
        /* and the noise matters: another seed changes the samples */
        c.seed = 4;
        ASSERT_OK(run_chunks(c, &g, n, n, b));
        EXPECT(memcmp(a, b, (size_t)n * 2 * sizeof *a), "%s: the seed changes nothing", ug_sampler_name(kinds[r]));
    }
    free(a); free(b);
    ug_gmm_free(&g);
}

TEST(samplers_eta0_is_deterministic_solver_and_names_round_trip) {
    for (int k = 0; k < UG_SAMPLER_COUNT; k++) {
        ug_sampler_kind back;
        EXPECT(!ug_sampler_from_name(ug_sampler_name(k), &back) && back == (ug_sampler_kind)k, "sampler %d", k);
    }
    for (int k = 0; k < UG_SCHED_COUNT; k++) {
        ug_schedule_kind back;
        EXPECT(!ug_schedule_from_name(ug_schedule_name(k), &back) && back == (ug_schedule_kind)k, "schedule %d", k);
    }
    ug_gmm g;
    ASSERT_OK(ug_gmm_load(REF "mix2d.json", &g));
    const int64_t n = 64;
    double *a = malloc((size_t)n * 2 * sizeof *a), *b = malloc((size_t)n * 2 * sizeof *b);
    /* eta = 0 draws nothing: two seeds agree; euler-a(0) == euler, em(0) == euler */
    ug_sampler_kind kinds[] = {UG_SAMPLER_EULER_A, UG_SAMPLER_EM, UG_SAMPLER_DPMPP_2M_SDE,
                               UG_SAMPLER_DPMPP_3M_SDE, UG_SAMPLER_DPMPP_2S_A, UG_SAMPLER_DDIM};
    ug_sampler_cfg e = ug_sampler_default();
    e.sampler = UG_SAMPLER_EULER;
    e.steps = 10;
    ASSERT_OK(run_chunks(e, &g, n, n, b));
    for (size_t r = 0; r < sizeof kinds / sizeof *kinds; r++) {
        ug_sampler_cfg c = e;
        c.sampler = kinds[r];
        c.schedule = UG_SCHED_AUTO;
        c.eta = 0;
        c.seed = 1;
        ASSERT_OK(run_chunks(c, &g, n, n, a));
        if (kinds[r] == UG_SAMPLER_EULER_A || kinds[r] == UG_SAMPLER_EM) {
            double worst = 0;
            for (int64_t j = 0; j < n * 2; j++)
                worst = ug_test_worst(worst, fabs(a[j] - b[j]) / (1 + fabs(b[j])));
            EXPECT(worst <= 1e-12, "%s eta 0 vs euler: %.3g", ug_sampler_name(kinds[r]), worst);
        }
        double *s2 = malloc((size_t)n * 2 * sizeof *s2);
        c.seed = 2;
        ASSERT_OK(run_chunks(c, &g, n, n, s2));
        EXPECT(!memcmp(a, s2, (size_t)n * 2 * sizeof *a), "%s eta 0 depends on the seed", ug_sampler_name(kinds[r]));
        free(s2);
    }
    /* eval sigmas: heun's 2N-1 evaluations; edm-sde's raised sigma */
    ug_sampler_cfg h = ug_sampler_default();
    h.steps = 5;
    double sig[64];
    int64_t cnt;
    ASSERT_OK(ug_sampler_eval_sigmas(&h, sig, 64, &cnt));
    EXPECT(cnt == 9 && sig[0] == 80 && sig[2] == sig[1], "heun eval sigmas: %lld", (long long)cnt);
    h.sampler = UG_SAMPLER_EDM_SDE;
    h.s_churn = 2;
    ASSERT_OK(ug_sampler_eval_sigmas(&h, sig, 64, &cnt));
    EXPECT(cnt == 9 && fabs(sig[0] - 80 * 1.4) < 1e-9, "edm-sde first sigma %g", sig[0]);
    free(a); free(b);
    ug_gmm_free(&g);
}
