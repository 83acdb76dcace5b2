/* sample.c — `unigen sample`: draw samples from a checkpoint (--ckpt, EMA weights by default)
 * or from the exact denoiser of a Gaussian mixture (--model gmm:MIX.json), with any sampler and
 * time grid; writes (n, d) float64 .npy in data space, or a picture. --json prints one line
 * with the NFE and the sigma grid; --print-grid lists the grid and every evaluation's sigma. */
#include "cli.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* A checkpoint's model: configuration from its metadata, weights (EMA by default). */
static int load_ckpt_model(cli_cfg *cfg, ug_model **out) {
    *out = NULL;
    char *json = NULL, err[512];
    if (ug_ckpt_config(cfg->ckpt, &json)) return cli_error("%s", ug_last_error());
    int rc = cli_cfg_apply_model_json(json, cfg->ckpt, cfg, err, sizeof err);
    free(json);
    if (rc) return cli_error("%s", err);
    if (cfg->data_dim < 1) return cli_error("%s: configuration has no data-dim", cfg->ckpt);
    ug_model_cfg mc;
    if (cli_model_cfg(cfg, cfg->data_dim, &mc)) return 1;
    if (ug_model_create(&mc, 0, out)) return cli_error("%s", ug_last_error());
    ug_params *ps = ug_model_params(*out);
    ug_st_file *f;
    if (ug_st_open(cfg->ckpt, &f)) return cli_error("%s", ug_last_error());
    char ename[600];
    snprintf(ename, sizeof ename, "ema.%s", ug_params_tensor(ps, 0)->name);
    int has_ema = ug_st_find(f, ename) >= 0;
    ug_st_close(f);
    ug_ema ema = {0};
    if (has_ema && cfg->use_ema && ug_ema_init(&ema, ps, 0.999f)) return cli_error("%s", ug_last_error());
    ug_status st = ug_ckpt_load(cfg->ckpt, ps, ema.w ? &ema : NULL, NULL, NULL);
    if (!st && ema.w) ug_ema_swap(&ema, ps);   /* sample with the EMA weights */
    ug_ema_free(&ema);
    if (st) return cli_error("%s", ug_last_error());
    if (cfg->use_ema && !has_ema && ug_model_config(*out)->family == UG_FAMILY_DIFFUSION)
        fprintf(stderr, "unigen: %s has no EMA weights; sampling with the raw weights\n", cfg->ckpt);
    return 0;
}

int cli_load_model(cli_cfg *cfg, ug_model **out) {
    *out = NULL;
    if (cfg->ckpt) return load_ckpt_model(cfg, out);
    if (cfg->model && !strncmp(cfg->model, "gmm:", 4)) {
        if (ug_model_load_gmm(cfg->model + 4, out)) return cli_error("%s", ug_last_error());
        return 0;
    }
    return cli_error("give --ckpt FILE or --model gmm:MIX.json");
}

static int read_matrix(const char *path, double **out, int64_t *rows, int64_t *cols, int want_1d) {
    ug_npy_array a;
    if (ug_npy_read(path, &a)) return cli_error("%s", ug_last_error());
    int ok = want_1d ? a.ndim == 1 : a.ndim == 2;
    if (!ok || a.numel < 1) {
        ug_npy_free(&a);
        return cli_error("%s: expected a %s array, found %d dimensions", path,
                         want_1d ? "1-D" : "2-D (n, d)", a.ndim);
    }
    *rows = a.shape[0];
    *cols = want_1d ? 1 : a.shape[1];
    *out = malloc((size_t)a.numel * sizeof **out);
    if (!*out) { ug_npy_free(&a); return cli_error("out of memory"); }
    ug_npy_to_f64(&a, *out);
    ug_npy_free(&a);
    return 0;
}

/* --out: a .png (image grid, one row per class when rows > 0; 2-D scatter) or a .npy of the
 * samples x (n, d) in data space. */
static int write_samples(const cli_cfg *cfg, ug_model *m, const double *x, int64_t n, int rows,
                         const char *title) {
    ug_status st;
    const ug_model_cfg *mc = ug_model_config(m);
    int64_t d = mc->data_dim;
    int image = mc->channels > 0 && (int64_t)mc->channels * mc->height * mc->width == d;
    if (ends_with(cfg->out, ".png")) {
        float *xf = malloc((size_t)(n * d) * sizeof *xf);
        if (!xf) return cli_error("out of memory");
        for (int64_t j = 0; j < n * d; j++) xf[j] = (float)x[j];
        if (image) {
            int zoom = mc->height < 48 ? 3 : mc->height < 96 ? 2 : 1;
            st = ug_image_grid_zoom(cfg->out, xf, n, mc->channels, mc->height, mc->width, rows,
                                    rows ? (int)((n + rows - 1) / rows) : (n < 8 ? (int)n : 8), 2,
                                    0.0f, 1.0f, zoom);
        } else if (d == 2) {
            st = ug_plot_scatter(cfg->out, xf, n, NULL, 0, 640, 640, title, NULL);
        } else {
            free(xf);
            return cli_error("sample: no picture for %lld-dimensional vectors; use .npy", (long long)d);
        }
        free(xf);
    } else if (image) {
        st = ug_npy_write_f64(cfg->out, 4, (int64_t[]){n, mc->channels, mc->height, mc->width}, x);
    } else {
        st = ug_npy_write_f64(cfg->out, 2, (int64_t[]){n, d}, x);
    }
    return st ? cli_error("%s", ug_last_error()) : 0;
}

/* Flows, autoregressive models and VAEs: ancestral / inverse-flow samples at --temperature, or
 * (--reconstruct, vae) held-out examples of --data beside their reconstructions. */
static int sample_family(cli_cfg *cfg, ug_model *m, int64_t n) {
    int64_t d = ug_model_config(m)->data_dim;
    if (!(cfg->temperature > 0)) return cli_error("sample: --temperature %g, expected > 0", cfg->temperature);
    double *x = malloc((size_t)(2 * n * d) * sizeof *x);
    if (!x) return cli_error("out of memory");
    int rc = 1, rows = 0;
    double t0 = cli_now_s();
    if (cfg->reconstruct) {
        /* Rows alternate: 8 held-out examples, then their reconstructions. */
        ug_dataset ds;
        if (!cfg->data) { free(x); return cli_error("sample: --reconstruct needs --data (held-out examples)"); }
        if (ug_dataset_load(cfg->data, UG_SPLIT_TEST, n, (uint64_t)cfg->seed, &ds)) { free(x); return cli_error("%s", ug_last_error()); }
        float *xr = NULL;
        if (ug_dataset_dim(&ds) != d) {
            cli_error("sample: %s has examples of size %lld, the model %lld", cfg->data,
                      (long long)ug_dataset_dim(&ds), (long long)d);
            goto rec_out;
        }
        if (cli_data_prepare(cfg, &ds, 1)) goto rec_out;
        n = ds.n;
        if (!(xr = malloc((size_t)(n * d) * sizeof *xr))) { cli_error("out of memory"); goto rec_out; }
        if (ug_model_reconstruct(m, n, ds.x, (uint64_t)cfg->seed, 0, xr)) { cli_error("%s", ug_last_error()); goto rec_out; }
        for (int64_t i = 0; i < n; i++) {
            int64_t blk = i / 8, col = i % 8, k = blk * 16 + col;
            for (int64_t j = 0; j < d; j++) {
                x[k * d + j] = ds.x[i * d + j];
                x[(k + 8) * d + j] = xr[i * d + j];
            }
        }
        n = (n + 7) / 8 * 16;
        rc = 0;
    rec_out:
        free(xr);
        ug_dataset_free(&ds);
        if (rc) { free(x); return 1; }
        rc = 1;
    } else {
        ug_sample_cfg sc = ug_sample_cfg_default();
        sc.temperature = cfg->temperature;
        sc.seed = (uint64_t)cfg->seed;
        /* Split over the ranks (a world of one: every sample here). */
        if (cli_dist_sample(m, &sc, n, cfg->sample_batch, d, NULL, NULL, x, NULL)) {
            free(x);
            return 1;
        }
    }
    double secs = cli_now_s() - t0;
    if (cli_norm_apply(cfg, NULL, x, n, d, -1, NULL)) goto out;
    char title[160];
    snprintf(title, sizeof title, "%s %s, temperature %g", cfg->family, cfg->model, cfg->temperature);
    if (cfg->out && cli_dist_root() && write_samples(cfg, m, x, n, rows, title)) goto out;
    if (cfg->json)
        printf("{\"family\": \"%s\", \"model\": \"%s\", \"n\": %lld, \"d\": %lld, \"temperature\": %g, "
               "\"reconstruct\": %s, \"seconds\": %.4f, \"seed\": %lld%s%s%s}\n", cfg->family, cfg->model,
               (long long)n, (long long)d, cfg->temperature, cfg->reconstruct ? "true" : "false", secs,
               (long long)cfg->seed, cfg->out ? ", \"out\": \"" : "", cfg->out ? cfg->out : "",
               cfg->out ? "\"" : "");
    else
        fprintf(stderr, "unigen: %lld %s from %s %s (temperature %g), %.2f s%s%s\n", (long long)n,
                cfg->reconstruct ? "examples and reconstructions" : "samples", cfg->family,
                cfg->model, cfg->temperature, secs, cfg->out ? " -> " : "", cfg->out ? cfg->out : "");
    rc = 0;
out:
    free(x);
    return rc;
}

/* Labels and guidance for n samples of model m: class-conditional models (and any model guided
 * by --guidance-classifier) get --class K for every sample, or blocks of rows per class
 * (sample i: class i K / n); sc takes --cfg-scale and the loaded classifier with its scale.
 * *labels stays NULL for an unconditional, unguided model. Returns 0, or 1 with the message
 * printed; the caller frees *labels, *gcls and gc either way. */
int cli_guidance_labels(const cli_cfg *cfg, ug_model *m, ug_sample_cfg *sc, int64_t n,
                        int32_t **labels, ug_model **gcls, cli_cfg *gc) {
    int K = ug_model_config(m)->num_classes;
    int64_t d = ug_model_config(m)->data_dim;
    *labels = NULL;
    *gcls = NULL;
    if (cfg->guidance_classifier) {
        char err[512];
        if (cli_parse(CMD_SAMPLE, "sample", 0, NULL, gc, err, sizeof err)) return cli_error("%s", err);
        gc->ckpt = strdup(cfg->guidance_classifier);
        if (cli_load_model(gc, gcls)) return 1;
        if (ug_model_config(*gcls)->family != UG_FAMILY_CLASSIFIER || ug_model_config(*gcls)->data_dim != d)
            return cli_error("--guidance-classifier %s: not a classifier of %lld-dimensional examples",
                             cfg->guidance_classifier, (long long)d);
        K = ug_model_config(*gcls)->num_classes > K ? ug_model_config(*gcls)->num_classes : K;
        sc->classifier = *gcls;
        sc->classifier_scale = cfg->guidance_scale;
    }
    if (K > 0) {
        if (cfg->class_label >= K)
            return cli_error("--class %lld: the model has %d classes", (long long)cfg->class_label, K);
        *labels = malloc((size_t)(n > 0 ? n : 1) * sizeof **labels);
        if (!*labels) return cli_error("out of memory");
        for (int64_t i = 0; i < n; i++)
            (*labels)[i] = cfg->class_label >= 0 ? (int32_t)cfg->class_label : (int32_t)(i * K / n);
        sc->cfg_scale = cfg->cfg_scale;
    }
    return 0;
}

int cli_sample(cli_cfg *cfg) {
    ug_model *m = NULL;
    int rc = 1;
    double *noise = NULL, *x = NULL, *grid = NULL, *evals = NULL, *user = NULL;
    int64_t n = cfg->n, d;
    if (cli_load_model(cfg, &m)) goto done;
    d = ug_model_config(m)->data_dim;
    if (cfg->init_noise) {
        int64_t r, c;
        if (read_matrix(cfg->init_noise, &noise, &r, &c, 0)) goto done;
        if (c != d) {
            cli_error("%s: noise has %lld columns, the model has dimension %lld", cfg->init_noise,
                      (long long)c, (long long)d);
            goto done;
        }
        n = r;
    }
    if (n <= 0) n = 1000;
    if (cli_check_sample_memory(m, n, d, cfg->sample_batch)) goto done;   /* guard.c */
    ug_family fam = ug_model_config(m)->family;
    if (fam == UG_FAMILY_FLOW || fam == UG_FAMILY_AR || fam == UG_FAMILY_VAE) {
        if (noise) { cli_error("sample: --init-noise is for diffusion models"); goto done; }
        rc = sample_family(cfg, m, n);
        goto done;
    }
    if (cfg->reconstruct) { cli_error("sample: --reconstruct is for vae models"); goto done; }
    ug_sample_cfg sc = ug_sample_cfg_default();
    sc.sampler = cfg->sampler;
    sc.schedule = cfg->schedule && *cfg->schedule ? cfg->schedule : NULL;
    sc.formulation = cfg->sample_formulation && *cfg->sample_formulation ? cfg->sample_formulation : NULL;
    if (sc.formulation && cfg->ckpt) {
        cli_error("sample: --formulation is for --model gmm:...; a checkpoint has its own");
        goto done;
    }
    sc.steps = (int)cfg->sample_steps;
    sc.sigma_min = cfg->sigma_min;
    sc.sigma_max = cfg->sigma_max;
    sc.rho = cfg->rho;
    sc.eta = cfg->eta;
    sc.s_noise = cfg->s_noise;
    sc.s_churn = cfg->s_churn;
    sc.s_tmin = cfg->s_tmin;
    sc.s_tmax = cfg->s_tmax;
    sc.solver_type = cfg->solver_type;
    sc.var = cfg->var;
    sc.snr = cfg->snr;
    sc.corrector_steps = (int)cfg->corrector_steps;
    sc.steps_offset = (int)cfg->steps_offset;
    sc.set_alpha_to_one = (int)cfg->set_alpha_to_one;
    sc.shift = cfg->sample_shift;
    sc.seed = (uint64_t)cfg->seed;
    if (!strcmp(cfg->compat, "diffusers")) sc.diffusers_compat = 1;
    else if (strcmp(cfg->compat, "none")) { cli_error("--compat %s: unknown (none, diffusers)", cfg->compat); goto done; }
    if (cfg->sigmas) {
        int64_t r, c;
        if (read_matrix(cfg->sigmas, &user, &r, &c, 1)) goto done;
        sc.sigmas = user;
        sc.n_sigmas = (int)r;
    }
    if (sc.steps < 1 || sc.steps > 2048) { cli_error("sample: --steps %d, expected 1..2048", sc.steps); goto done; }
    int nsig = 0;
    int64_t nev = 0, maxev = 8 * (int64_t)sc.steps + 16;
    grid = malloc(((size_t)sc.steps + 2 + (size_t)(user ? sc.n_sigmas : 0)) * sizeof *grid);
    evals = malloc((size_t)maxev * sizeof *evals);
    x = malloc((size_t)(n * d) * sizeof *x);
    if (!grid || !evals || !x) { cli_error("out of memory"); goto done; }
    if (ug_model_sample_grid(m, &sc, grid, &nsig, evals, maxev, &nev)) { cli_error("%s", ug_last_error()); goto done; }
    if (cfg->print_grid) {
        printf("grid (%d points):", nsig);
        for (int i = 0; i < nsig; i++) printf(" %.9g", grid[i]);
        printf("\nnetwork evaluations (%lld):", (long long)nev);
        for (int64_t i = 0; i < nev && i < maxev; i++) printf(" %.9g", evals[i]);
        printf("\n");
        if (!cfg->out && !cfg->json) { rc = 0; goto done; }
    }
    /* Labels: conditional models get --class, or one block of rows per class; classifier
     * guidance of an unconditional model needs --class. */
    int32_t *labels = NULL;
    ug_model *gcls = NULL;
    cli_cfg gc;
    memset(&gc, 0, sizeof gc);
    if (cfg->guidance_classifier && cfg->class_label < 0) {
        cli_error("sample: --guidance-classifier needs --class K");
        goto done;
    }
    if (cli_guidance_labels(cfg, m, &sc, n, &labels, &gcls, &gc)) {
        free(labels);
        ug_model_free(gcls);
        cli_cfg_free(&gc);
        goto done;
    }
    int K = ug_model_config(m)->num_classes;   /* grid rows: one per class */
    if (gcls && ug_model_config(gcls)->num_classes > K) K = ug_model_config(gcls)->num_classes;
    int64_t nfe = 0;
    double t0 = cli_now_s();
    /* Chunks of --sample-batch rows, split over the ranks (sample i: stream i either way). */
    if (cli_dist_sample(m, &sc, n, cfg->sample_batch, d, labels, noise, x, &nfe)) {
        free(labels);
        ug_model_free(gcls);
        cli_cfg_free(&gc);
        goto done;
    }
    double secs = cli_now_s() - t0;
    free(labels);
    ug_model_free(gcls);
    cli_cfg_free(&gc);
    /* Back to data space when the model was trained on standardized data. */
    if (cfg->ckpt && cli_norm_apply(cfg, NULL, x, n, d, -1, NULL)) goto done;
    char title[200];
    snprintf(title, sizeof title, "%s, %d steps, %lld nfe", cfg->sampler, sc.steps, (long long)nfe);
    if (cfg->out && cli_dist_root() && write_samples(cfg, m, x, n, K > 0 && cfg->class_label < 0 ? K : 0, title))
        goto done;
    if (cfg->json) {
        printf("{\"sampler\": \"%s\", \"steps\": %d, \"n\": %lld, \"d\": %lld, \"nfe\": %lld, "
               "\"seconds\": %.4f, \"seed\": %lld, \"sigmas\": [",
               cfg->sampler, sc.steps, (long long)n, (long long)d, (long long)nfe, secs,
               (long long)cfg->seed);
        for (int i = 0; i < nsig; i++) printf(i ? ", %.17g" : "%.17g", grid[i]);
        printf("], \"eval_sigmas\": [");
        for (int64_t i = 0; i < nev && i < maxev; i++) printf(i ? ", %.17g" : "%.17g", evals[i]);
        printf("]%s%s%s}\n", cfg->out ? ", \"out\": \"" : "", cfg->out ? cfg->out : "", cfg->out ? "\"" : "");
    } else {
        fprintf(stderr, "unigen: %lld samples, %s %d steps, %lld network evaluations, %.2f s%s%s\n",
                (long long)n, cfg->sampler, sc.steps, (long long)nfe, secs, cfg->out ? " -> " : "",
                cfg->out ? cfg->out : "");
    }
    rc = 0;
done:
    free(noise); free(x); free(grid); free(evals); free(user);
    ug_model_free(m);
    return rc;
}
