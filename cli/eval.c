/* eval.c — `unigen eval`: NLL of held-out data (nats per example and bits/dim) and two-sample
 * metrics between generated samples and held-out data. Every result carries its protocol: data
 * set and split, preprocessing, number of examples, seeds, sampler, steps, NFE, tolerances.
 * Under mpirun the per-example work (NLL, bound, samples) is split over the ranks (cli/dist.c). */
#include "cli.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void report(int json, const char *key, double val) {
    if (json) printf(", \"%s\": %.9g", key, val);
    else printf("  %-10s %.6g\n", key, val);
}

static int has_metric(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && !strncmp(p, name, n)) return 1;
        p = e ? e + 1 : p + k;
    }
    return 0;
}

/* The classifier of --classifier, with its own stored configuration (normalization included). */
static int load_classifier(const char *path, int64_t d, cli_cfg *cc, ug_model **out) {
    char err[512];
    *out = NULL;
    if (cli_parse(CMD_EVAL, "eval", 0, NULL, cc, err, sizeof err)) return cli_error("%s", err);
    cc->ckpt = strdup(path);
    if (cli_load_model(cc, out)) return 1;
    const ug_model_cfg *mc = ug_model_config(*out);
    if (mc->family != UG_FAMILY_CLASSIFIER)
        return cli_error("--classifier %s: a %s model, expected a classifier (unigen train --family "
                         "classifier)", path, ug_family_name(mc->family));
    if (mc->data_dim != d)
        return cli_error("--classifier %s: examples of size %d, the data have %lld", path,
                         mc->data_dim, (long long)d);
    return 0;
}

/* Features of n examples (data space, float) under the classifier: its normalization, then the
 * feature layer. */
/* Features of n examples x in the classifier's space; with labels, *match = the share of them
 * whose argmax class is their label. */
static int features_of(cli_cfg *cc, ug_model *cls, const float *x, int64_t n, int64_t d,
                       float *feat, float *xn, const int32_t *labels, double *match) {
    memcpy(xn, x, (size_t)(n * d) * sizeof *xn);
    if (cli_norm_apply(cc, xn, NULL, n, d, +1, NULL)) return 1;
    int K = ug_model_config(cls)->num_classes;
    float *logits = malloc((size_t)(n * K) * sizeof *logits);
    if (!logits) return cli_error("out of memory");
    ug_status st = ug_model_classify(cls, n, xn, NULL, logits, feat);
    if (!st && labels) {
        int64_t hit = 0;
        for (int64_t i = 0; i < n; i++) {
            const float *l = logits + i * K;
            int best = 0;
            for (int k = 1; k < K; k++) if (l[k] > l[best]) best = k;
            hit += best == labels[i];
        }
        *match = (double)hit / (double)n;
    }
    free(logits);
    return st ? cli_error("%s", ug_last_error()) : 0;
}

/* The NLL of a likelihood family (flow, ar, vae) on the prepared held-out examples: exact, the
 * MADE mask ensemble, or the IWAE bound. Prints its fields (JSON: continues the open object). */
static int eval_family_nll(const cli_cfg *cfg, ug_model *m, const ug_dataset *ds, int64_t n) {
    int64_t d = ug_dataset_dim(ds);
    ug_family fam = ug_model_config(m)->family;
    ug_nll_cfg nc = ug_nll_default();
    nc.ensemble = (int)cfg->ensemble;
    nc.iwae_k = (int)cfg->iwae_k;
    nc.seed = (uint64_t)cfg->seed;
    if (cfg->ensemble < 0 || cfg->iwae_k < 1)
        return cli_error("eval: --ensemble %lld must be >= 0 and --iwae-k %lld >= 1",
                         (long long)cfg->ensemble, (long long)cfg->iwae_k);
    double *nll = malloc((size_t)n * sizeof *nll), logdet = 0;
    if (!nll) return cli_error("out of memory");
    double *a = malloc((size_t)d * 2 * sizeof *a);
    if (!a || cli_norm_affine(cfg, d, a, a + d)) { free(a); free(nll); return a ? 1 : cli_error("out of memory"); }
    for (int64_t j = 0; j < d; j++) logdet += log(a[j]);
    free(a);
    double t0 = cli_now_s();
    if (cli_dist_nll(m, &nc, n, ds->x, d, nll)) { free(nll); return 1; }
    double secs = cli_now_s() - t0, s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = nll[i] - logdet;   /* data space: log p(x) = log p_model(T x) + log|T'| */
        s += v;
        s2 += v * v;
    }
    free(nll);
    double mean = s / n, se = sqrt(fmax(s2 / n - mean * mean, 0) / n);
    double bpd = ug_bits_per_dim(mean, d, cli_data_levels(cfg));
    long long K = cfg->ensemble > 0 ? cfg->ensemble : ug_model_config(m)->masks;
    const char *kind = fam == UG_FAMILY_VAE ? "iwae" : fam == UG_FAMILY_AR && K > 1 ? "ensemble" : "exact";
    if (cfg->json) {
        printf(", \"nll\": %.9g, \"nll_stderr\": %.4g, \"bpd\": %.9g, \"nll_kind\": \"%s\"", mean, se,
               bpd, kind);
        if (fam == UG_FAMILY_VAE) printf(", \"iwae_k\": %lld", (long long)cfg->iwae_k);
        if (fam == UG_FAMILY_AR) printf(", \"ensemble\": %lld", K > 1 ? K : 1);
        /* Network passes per example: one (flows, fvsbn, nade), one per mask (made ensemble),
         * one decoder pass per importance sample (vae). */
        printf(", \"nfe\": %lld, \"seconds\": %.3f",
               fam == UG_FAMILY_VAE ? (long long)cfg->iwae_k : fam == UG_FAMILY_AR && K > 1 ? K : 1LL, secs);
    } else {
        printf("NLL %.4f +- %.4f nats per example (%.4f bits/dim", mean, se, bpd);
        if (cli_data_levels(cfg) > 1) printf(" on the 8-bit scale");
        printf("): ");
        if (fam == UG_FAMILY_VAE) printf("IWAE bound, k = %lld", (long long)cfg->iwae_k);
        else if (!strcmp(kind, "ensemble")) printf("exact, ensemble of %lld masks", K);
        else printf("exact");
        printf(", %.2f s\n", secs);
    }
    return 0;
}

int cli_eval(cli_cfg *cfg) {
    if (!cfg->data) return cli_error("eval: --data is required (the held-out data)");
    int want_metrics = cfg->metrics && *cfg->metrics;
    if (!cfg->nll && !cfg->vlb && !want_metrics)
        return cli_error("eval: ask for --nll, --vlb and/or --metrics LIST");
    ug_vlb_cfg vc = ug_vlb_default();
    if (!strcmp(cfg->vlb_var, "beta")) vc.var = UG_VLB_VAR_BETA;
    else if (strcmp(cfg->vlb_var, "beta-tilde")) return cli_error("--vlb-var %s: expected beta, beta-tilde", cfg->vlb_var);
    if (cfg->vlb_steps < 0) return cli_error("--vlb-steps %lld: expected >= 0", (long long)cfg->vlb_steps);
    vc.t_samples = (int)cfg->vlb_steps;
    vc.seed = (uint64_t)cfg->seed;
    const char *known[] = {"mmd", "energy", "swd", "fd", "pr"};
    for (const char *p = cfg->metrics; p && *p;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        int ok = 0;
        for (size_t i = 0; i < 5; i++) ok |= k == strlen(known[i]) && !strncmp(p, known[i], k);
        if (!ok) return cli_error("--metrics: '%.*s' unknown (mmd, energy, swd, fd, pr)", (int)k, p);
        p = e ? e + 1 : p + k;
    }
    int split = !strcmp(cfg->split, "train") ? UG_SPLIT_TRAIN : !strcmp(cfg->split, "valid") ? UG_SPLIT_VALID : UG_SPLIT_TEST;
    if (split == UG_SPLIT_TEST && strcmp(cfg->split, "test"))
        return cli_error("--split %s: expected test, valid or train", cfg->split);
    ug_div_cfg dc = ug_div_default();
    if (ug_div_from_name(cfg->divergence, &dc.kind))
        return cli_error("--divergence %s: expected auto, exact, hutchinson", cfg->divergence);
    dc.probes = (int)cfg->probes;
    dc.seed = (uint64_t)cfg->seed;

    ug_model *m = NULL;
    ug_dataset ds = {0};
    double *x = NULL, *logp = NULL, *gen = NULL;
    float *xf = NULL, *gf = NULL;
    int rc = 1;
    if (cli_load_model(cfg, &m)) return 1;
    ug_family fam = ug_model_config(m)->family;
    int lik = fam == UG_FAMILY_FLOW || fam == UG_FAMILY_AR || fam == UG_FAMILY_VAE;
    if (lik && cfg->vlb) { ug_model_free(m); return cli_error("eval: --vlb is for diffusion models (flow, ar and vae take --nll)"); }
    /* Likelihood families: every example of the split unless --n (their NLL is cheap). */
    int64_t d = ug_model_config(m)->data_dim, n = cfg->n > 0 ? cfg->n : lik ? 0 : 2000;
    if (ug_dataset_load(cfg->data, split, n, (uint64_t)cfg->seed, &ds)) { cli_error("%s", ug_last_error()); goto done; }
    if (!n) n = ds.n;
    if (ug_dataset_dim(&ds) != d) {
        cli_error("eval: %s has examples of size %lld, the model %lld", cfg->data,
                  (long long)ug_dataset_dim(&ds), (long long)d);
        goto done;
    }
    if (ds.n < n) n = ds.n;
    if (lik && ug_dataset_dim(&ds) == d && cli_data_prepare(cfg, &ds, 1)) goto done;
    x = malloc((size_t)(n * d) * sizeof *x);
    logp = malloc((size_t)n * sizeof *logp);
    xf = malloc((size_t)(n * d) * sizeof *xf);
    if (!x || !logp || !xf) { cli_error("out of memory"); goto done; }
    int image = ds.ndim == 3;
    for (int64_t j = 0; j < n * d; j++) { x[j] = ds.x[j]; xf[j] = ds.x[j]; }
    if (image && cfg->nll && !lik) {
        /* Uniform dequantization on the 8-bit grid (SPEC section 6): pixel p (stored p / 255)
         * becomes (p + u) / 255 with u ~ U(0, 1) from the example's own Philox stream. */
        for (int64_t i = 0; i < n; i++) {
            ug_rng r = ug_rng_make((uint64_t)cfg->seed, (uint64_t)i, 0xDE0);
            double u[2];
            for (int64_t j = 0; j < d; j++) {
                if (j % 2 == 0) ug_rng_uniform_f64(&r, u, 2);
                x[i * d + j] = (round(ds.x[i * d + j] * 255.0) + u[j % 2]) / 255.0;
            }
        }
    }
    int analytic = !cfg->ckpt;
    printf(cfg->json ? "{\"model\": \"%s\", \"data\": \"%s\", \"split\": \"%s\", \"n\": %lld, "
                       "\"seed\": %lld, \"binarization\": \"%s\", \"dequantization\": \"%s\", "
                       "\"normalization\": \"%s\""
                     : "model %s, data %s (%s split, %lld examples, seed %lld), binarization %s, "
                       "dequantization %s, normalization %s\n",
           cfg->ckpt ? cfg->ckpt : cfg->model, cfg->data, cfg->split, (long long)n,
           (long long)cfg->seed, lik ? cfg->binarize : "none",
           lik ? (strcmp(cfg->dequantize, "uniform") ? "none" : "uniform (p + u) / 256, fixed draw")
               : image && cfg->nll ? "uniform (p + u) / 255" : "none",
           analytic ? "none" : cfg->normalize);
    if (cfg->nll && lik) {
        if (eval_family_nll(cfg, m, &ds, n)) goto done;
    } else if (cfg->nll) {
        double logdet;
        logdet = 0;
        if (cfg->ckpt && cli_norm_apply(cfg, NULL, x, n, d, +1, &logdet)) goto done;
        ug_lik_cfg lc = ug_lik_default();
        if (cfg->sigma_min > 0) lc.sigma_min = cfg->sigma_min;
        if (cfg->sigma_max > 0) lc.sigma_max = cfg->sigma_max;
        lc.ode.rtol = cfg->rtol;
        lc.ode.atol = cfg->atol;
        ug_ode_stats st;
        double t0 = cli_now_s();
        if (cli_dist_loglik(m, &lc, &dc, n, d, x, logp, &st)) goto done;
        double secs = cli_now_s() - t0, s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) {
            double v = -(logp[i] + logdet);   /* data space: log p(x) = log p_model(T x) + log|T'| */
            s += v;
            s2 += v * v;
        }
        double nll = s / n, se = sqrt(fmax(s2 / n - nll * nll, 0) / n);
        /* Images: NLL of (p + u) / 255 -> nats on the 8-bit scale, d ln 255 more. */
        if (image) nll += (double)d * log(255.0);
        double bpd = ug_bits_per_dim(nll, d, 1.0);
        const char *div = analytic ? "analytic" : (dc.kind == UG_DIV_HUTCHINSON || (dc.kind == UG_DIV_AUTO && d > 64)) ? "hutchinson" : "exact";
        if (cfg->json)
            printf(", \"nll\": %.9g, \"nll_stderr\": %.4g, \"bpd\": %.9g, \"nfe\": %lld, "
                   "\"ode\": {\"solver\": \"rk45\", \"rtol\": %g, \"atol\": %g, \"sigma_min\": %g, "
                   "\"sigma_max\": %g, \"prior\": \"N(0, sigma_max^2 I)\", \"divergence\": \"%s\", "
                   "\"probes\": %d, \"steps\": %lld, \"rejected\": %lld, \"seconds\": %.3f}",
                   nll, se, bpd, (long long)st.nfe, lc.ode.rtol, lc.ode.atol, lc.sigma_min,
                   lc.sigma_max, div, strcmp(div, "hutchinson") ? 0 : dc.probes,
                   (long long)st.steps, (long long)st.rejected, secs);
        else
            printf("NLL %.4f +- %.4f nats per example (%.4f bits/dim) by the probability-flow ODE: "
                   "RK45 rtol %g atol %g, sigma %g..%g, %s divergence, %lld NFE, %.2f s\n",
                   nll, se, bpd, lc.ode.rtol, lc.ode.atol, lc.sigma_min, lc.sigma_max, div,
                   (long long)st.nfe, secs);
    }
    if (cfg->vlb) {
        /* On the data as stored (no dequantization): images on their 8-bit grid in [-1, 1]
         * with the discretized decoder, vectors with the Gaussian decoder. */
        double *x0 = malloc((size_t)(n * d) * sizeof *x0), *nats = malloc((size_t)n * sizeof *nats);
        if (!x0 || !nats) { free(x0); free(nats); cli_error("out of memory"); goto done; }
        double logdet = 0;
        for (int64_t j = 0; j < n * d; j++) x0[j] = image ? round(ds.x[j] * 255.0) / 255.0 : ds.x[j];
        int bad = cfg->ckpt && cli_norm_apply(cfg, NULL, x0, n, d, +1, &logdet);
        vc.decoder = image ? UG_VLB_DISCRETIZED : UG_VLB_GAUSSIAN;
        double t0 = cli_now_s();
        if (!bad) bad = cli_dist_vlb(m, &vc, n, d, x0, nats);
        double secs = cli_now_s() - t0, s = 0;
        for (int64_t i = 0; !bad && i < n; i++) s += nats[i];
        free(x0);
        free(nats);
        if (bad) goto done;
        /* The discretized decoder already gives probabilities of 8-bit values; a Gaussian
         * decoder gives a density in model space, mapped back to data space. */
        double vlb = s / n - (image ? 0 : logdet);
        double vbpd = ug_bits_per_dim(vlb, d, 1.0);
        const char *var = vc.var == UG_VLB_VAR_BETA ? "beta" : "beta-tilde";
        if (cfg->json)
            printf(", \"vlb\": %.9g, \"vlb_bpd\": %.9g, \"vlb_protocol\": {\"decoder\": \"%s\", "
                   "\"variance\": \"%s\", \"steps\": %s, \"seconds\": %.3f}",
                   vlb, vbpd, image ? "discretized" : "gaussian", var,
                   vc.t_samples ? "\"sampled\"" : "\"all\"", secs);
        else
            printf("DDPM variational bound %.4f nats per example (%.4f bits/dim): %s decoder, %s "
                   "variance, %s steps, %.2f s\n", vlb, vbpd, image ? "discretized" : "Gaussian", var,
                   vc.t_samples ? "sampled" : "all", secs);
    }
    if (want_metrics) {
        gen = malloc((size_t)(n * d) * sizeof *gen);
        gf = malloc((size_t)(n * d) * sizeof *gf);
        if (!gen || !gf) { cli_error("out of memory"); goto done; }
        ug_sample_cfg sc = ug_sample_cfg_default();
        sc.sampler = cfg->sampler;
        sc.schedule = cfg->schedule && *cfg->schedule ? cfg->schedule : NULL;
        sc.steps = (int)cfg->sample_steps;
        sc.sigma_min = cfg->sigma_min;
        sc.sigma_max = cfg->sigma_max;
        sc.rho = cfg->rho;
        sc.eta = cfg->eta;
        sc.seed = (uint64_t)cfg->seed + 1;
        int64_t nfe;
        /* Class-conditional (or classifier-guided) models: n / K samples of each class, with
         * --cfg-scale and --guidance-classifier as in sample; the feature classifier then also
         * reports the share of samples it assigns to their requested class. */
        int32_t *labels = NULL;
        ug_model *gcls = NULL;
        cli_cfg gc;
        memset(&gc, 0, sizeof gc);
        int sbad = cli_guidance_labels(cfg, m, &sc, n, &labels, &gcls, &gc) ||
                  cli_dist_sample(m, &sc, n, 0, d, labels, NULL, gen, &nfe);
        ug_model_free(gcls);
        cli_cfg_free(&gc);
        if (sbad) { free(labels); goto done; }
        if (cfg->ckpt && cli_norm_apply(cfg, NULL, gen, n, d, -1, NULL)) { free(labels); goto done; }
        for (int64_t j = 0; j < n * d; j++) gf[j] = (float)gen[j];
        if (cfg->json) printf(", \"samples\": {\"n\": %lld, \"sampler\": \"%s\", \"steps\": %d, \"nfe\": %lld, \"seed\": %lld, \"labels\": \"%s\", \"cfg_scale\": %.9g, \"guidance_classifier\": \"%s\", \"guidance_scale\": %.9g}, \"metrics\": {\"raw_metrics\": \"mmd, energy, swd\"",
                              (long long)n, cfg->sampler, sc.steps ? sc.steps : 18, (long long)nfe, (long long)sc.seed,
                              labels ? (cfg->class_label >= 0 ? "one class" : "n/K per class") : "none", labels ? sc.cfg_scale : 1.0,
                              cfg->guidance_classifier ? cfg->guidance_classifier : "", cfg->guidance_classifier ? sc.classifier_scale : 0.0);
        else printf("%lld samples: %s, %d steps, %lld NFE, seed %lld%s; metrics on raw coordinates:\n",
                    (long long)n, cfg->sampler, sc.steps ? sc.steps : 18, (long long)nfe, (long long)sc.seed,
                    labels ? ", class-conditional" : "");
        double v, bw = 0, prec, rec;
        ug_status st = UG_OK;
        if (!st && has_metric(cfg->metrics, "mmd") && !(st = ug_mmd2(xf, n, gf, n, d, &bw, &v))) {
            report(cfg->json, "mmd2", v);
            report(cfg->json, "mmd_bandwidth", bw);
        }
        if (!st && has_metric(cfg->metrics, "energy") && !(st = ug_energy_distance(xf, n, gf, n, d, &v))) report(cfg->json, "energy", v);
        if (!st && has_metric(cfg->metrics, "swd") &&
            !(st = ug_sliced_w2(xf, n, gf, n, d, (int)cfg->swd_dirs, (uint64_t)cfg->seed, &v))) report(cfg->json, "swd", v);
        /* fd and pr: in the classifier's feature space when one is given. */
        const float *fx = xf, *fg = gf;
        int64_t fdim = d;
        float *featx = NULL, *featg = NULL, *tmp = NULL;
        ug_model *cls = NULL;
        cli_cfg cc;
        memset(&cc, 0, sizeof cc);
        int need_feat = has_metric(cfg->metrics, "fd") || has_metric(cfg->metrics, "pr");
        if (!st && need_feat && cfg->classifier) {
            int bad = load_classifier(cfg->classifier, d, &cc, &cls);
            if (!bad) {
                fdim = ug_model_feature_dim(cls);
                featx = malloc((size_t)(n * fdim) * sizeof *featx);
                featg = malloc((size_t)(n * fdim) * sizeof *featg);
                tmp = malloc((size_t)(n * d) * sizeof *tmp);
                bad = !featx || !featg || !tmp;
                if (bad) cli_error("out of memory");
            }
            double match = -1;
            if (!bad) bad = features_of(&cc, cls, xf, n, d, featx, tmp, NULL, NULL) ||
                            features_of(&cc, cls, gf, n, d, featg, tmp, labels, &match);
            double acc = 0;
            if (!bad) {
                /* The classifier's accuracy on the same held-out examples, beside its metrics. */
                ug_dataset view = ds;
                view.n = n;
                memcpy(tmp, xf, (size_t)(n * d) * sizeof *tmp);
                view.x = tmp;
                bad = cli_norm_apply(&cc, tmp, NULL, n, d, +1, NULL) ||
                      (ug_model_accuracy(cls, &view, &acc) && cli_error("%s", ug_last_error()));
            }
            if (bad) {
                free(featx); free(featg); free(tmp); free(labels);
                ug_model_free(cls);
                cli_cfg_free(&cc);
                if (cfg->json) printf("}}\n");
                goto done;
            }
            if (cfg->json) printf(", \"feature_space\": \"%s\", \"feature_dim\": %lld, \"classifier_test_accuracy\": %.6f",
                                  cfg->classifier, (long long)fdim, acc);
            else printf("  classifier %s: %lld features, test accuracy %.4f\n", cfg->classifier, (long long)fdim, acc);
            if (labels) report(cfg->json, "class_match", match);
            fx = featx;
            fg = featg;
        } else if (!st && need_feat) {
            if (cfg->json) printf(", \"feature_space\": \"raw\"");
            else printf("  fd and pr on the raw coordinates (no --classifier)\n");
        }
        if (!st && has_metric(cfg->metrics, "fd") && !(st = ug_frechet_distance(fx, n, fg, n, fdim, &v))) report(cfg->json, "fd", v);
        if (!st && has_metric(cfg->metrics, "pr") && !(st = ug_precision_recall(fx, n, fg, n, fdim, 3, &prec, &rec))) {
            report(cfg->json, "precision", prec);
            report(cfg->json, "recall", rec);
        }
        free(featx); free(featg); free(tmp); free(labels);
        ug_model_free(cls);
        cli_cfg_free(&cc);
        if (st) { if (cfg->json) printf("}}\n"); cli_error("%s", ug_last_error()); goto done; }
        if (cfg->json) printf("}");
    }
    if (cfg->json) printf("}\n");
    rc = 0;
done:
    free(x); free(logp); free(xf); free(gen); free(gf);
    ug_dataset_free(&ds);
    ug_model_free(m);
    return rc;
}
