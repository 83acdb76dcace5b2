/* train.c — `unigen train`: data -> model -> Adam + EMA -> run directory:
 *   DIR/config.json        the resolved configuration
 *   DIR/metrics.jsonl      one JSON object per logged step
 *   DIR/checkpoint.safetensors (+ checkpoint-STEP.safetensors with --save-every)
 *   (the latest state; resume.c continues a run, guard.c stops one: signals, NaNs, memory)
 *   DIR/loss.png, DIR/samples.png   previews */
#include "cli.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* DIR/loss.png: the loss column of a metrics.jsonl file against step, log scale. */
int cli_plot_metrics(const char *metrics_path, const char *dir) {
    FILE *f = fopen(metrics_path, "r");
    if (!f) return cli_error("%s: cannot read: %s", metrics_path, strerror(errno));
    int64_t n = 0, cap = 1024;
    double *xs = malloc((size_t)cap * sizeof *xs), *ys = malloc((size_t)cap * sizeof *ys);
    char line[1024];
    while (xs && ys && fgets(line, sizeof line, f)) {
        const char *ps = strstr(line, "\"step\": "), *pl = strstr(line, "\"loss\": ");
        if (!ps || !pl) continue;
        if (n == cap) {
            cap *= 2;
            double *nx = realloc(xs, (size_t)cap * sizeof *xs), *ny = realloc(ys, (size_t)cap * sizeof *ys);
            if (nx) xs = nx;
            if (ny) ys = ny;
            if (!nx || !ny) break;
        }
        xs[n] = strtod(ps + 8, NULL);
        ys[n] = strtod(pl + 8, NULL);
        n++;
    }
    fclose(f);
    int rc = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/loss.png", dir);
    if (!xs || !ys) rc = cli_error("out of memory");
    else if (ug_plot_curve(path, xs, ys, n, "training loss", 1)) rc = cli_error("%s", ug_last_error());
    free(xs);
    free(ys);
    return rc;
}

double cli_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_mkdirs(const char *dir) {
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) return cli_error("%s: bad directory name", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return cli_error("%s: cannot create directory: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    return 0;
}

int cli_write_text(const char *path, const char *text) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return cli_error("%s: cannot write: %s", tmp, strerror(errno));
    int ok = fputs(text, f) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return cli_error("%s: cannot write: %s", path, strerror(errno));
    }
    return 0;
}

/* Parses "a,b,c" into at most d doubles; returns the count. */
int cli_parse_list(const char *s, double *out, int d) {
    int k = 0;
    while (s && *s && k < d) {
        char *end;
        out[k++] = strtod(s, &end);
        if (end == s) return -1;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return k;
}

/* --normalize std: per-coordinate mean and std (one shared pair beyond 64 coordinates). */
static void normalize_stats(const ug_dataset *ds, int64_t d, cli_cfg *cfg) {
    int per = d <= 64;
    int k = per ? (int)d : 1;
    double mean[64] = {0}, var[64] = {0};
    for (int64_t i = 0; i < ds->n; i++)
        for (int64_t j = 0; j < d; j++) mean[per ? j : 0] += ds->x[i * d + j];
    for (int j = 0; j < k; j++) mean[j] /= (double)ds->n * (per ? 1 : (double)d);
    for (int64_t i = 0; i < ds->n; i++)
        for (int64_t j = 0; j < d; j++) {
            double e = ds->x[i * d + j] - mean[per ? j : 0];
            var[per ? j : 0] += e * e;
        }
    char *ms = malloc((size_t)k * 32 + 1), *ss = malloc((size_t)k * 32 + 1);
    size_t pm = 0, psd = 0;
    for (int j = 0; j < k; j++) {
        double sd = sqrt(var[j] / ((double)ds->n * (per ? 1 : (double)d)));
        if (!(sd > 0)) sd = 1;
        pm += (size_t)sprintf(ms + pm, j ? ",%.9g" : "%.9g", mean[j]);
        psd += (size_t)sprintf(ss + psd, j ? ",%.9g" : "%.9g", sd);
    }
    free(cfg->data_mean);
    free(cfg->data_std);
    cfg->data_mean = ms;
    cfg->data_std = ss;
}

int cli_model_cfg(const cli_cfg *cfg, int64_t data_dim, ug_model_cfg *mc) {
    *mc = ug_model_cfg_default();
    if (ug_family_from_name(cfg->family, &mc->family))
        return cli_error("--family %s: unknown (expected diffusion, classifier, flow, ar, vae)",
                         cfg->family);
    if (ug_form_from_name(cfg->formulation, &mc->formulation))
        return cli_error("--formulation %s: unknown (expected vp, vp-cosine, vp-cont, ve, edm, fm)",
                         cfg->formulation);
    if (!cfg->param || !*cfg->param) mc->param = ug_form_natural_param(mc->formulation);
    else if (ug_param_from_name(cfg->param, &mc->param))
        return cli_error("--param %s: unknown (expected eps, x0, v, edm, velocity)", cfg->param);
    if (ug_tsampler_from_name(cfg->t_sampler, &mc->t_sampler))
        return cli_error("--t-sampler %s: unknown (expected default, uniform, lognormal, logitnormal)",
                         cfg->t_sampler);
    if (strlen(cfg->model) >= sizeof mc->net) return cli_error("--model %s: unknown", cfg->model);
    strcpy(mc->net, cfg->model);
    mc->noisy = (int)cfg->noisy;
    mc->data_dim = (int)data_dim;
    mc->channels = (int)cfg->channels;
    mc->height = (int)cfg->height;
    mc->width = (int)cfg->width;
    mc->num_classes = (int)cfg->classes;
    /* --hidden: one width, or a comma list (made, vae); "" leaves each model its default. */
    if (cfg->hidden && *cfg->hidden) {
        char *end;
        long h = strtol(cfg->hidden, &end, 10);
        if (end == cfg->hidden || h < 1 || (*end && *end != ','))
            return cli_error("--hidden %s: expected a positive width or a comma list of them",
                             cfg->hidden);
        if (strlen(cfg->hidden) >= sizeof mc->hidden_list)
            return cli_error("--hidden %s: longer than %zu characters", cfg->hidden,
                             sizeof mc->hidden_list - 1);
        mc->hidden = (int)h;
        strcpy(mc->hidden_list, cfg->hidden);
        if (*end && mc->family != UG_FAMILY_AR && mc->family != UG_FAMILY_VAE)
            return cli_error("--hidden %s: a list of widths is for made and vae models", cfg->hidden);
    } else {
        /* 0: each likelihood model picks its own width. */
        mc->hidden = mc->family == UG_FAMILY_DIFFUSION || mc->family == UG_FAMILY_CLASSIFIER ? 256 : 0;
    }
    if (cfg->depth < 0) return cli_error("--depth %lld: expected >= 0", (long long)cfg->depth);
    mc->depth = cfg->depth ? (int)cfg->depth
                : mc->family == UG_FAMILY_DIFFUSION || mc->family == UG_FAMILY_CLASSIFIER ? 3 : 0;
    if (strlen(cfg->prior) >= sizeof mc->prior || strlen(cfg->decoder) >= sizeof mc->decoder)
        return cli_error("--prior %s / --decoder %s: unknown", cfg->prior, cfg->decoder);
    strcpy(mc->prior, cfg->prior);
    strcpy(mc->decoder, cfg->decoder);
    mc->couplings = (int)cfg->couplings;
    mc->levels = (int)cfg->levels;
    mc->masks = (int)cfg->masks;
    mc->direct = (int)cfg->direct;
    mc->latent_dim = (int)cfg->latent;
    if (strcmp(cfg->mask_mode, "resample") && strcmp(cfg->mask_mode, "cycle"))
        return cli_error("--mask-mode %s: expected resample or cycle", cfg->mask_mode);
    mc->mask_cycle = !strcmp(cfg->mask_mode, "cycle");
    if (strcmp(cfg->order, "natural") && strcmp(cfg->order, "random"))
        return cli_error("--order %s: expected natural or random", cfg->order);
    mc->order_random = !strcmp(cfg->order, "random");
    mc->sigma_data = cfg->sigma_data;
    mc->p_mean = cfg->p_mean;
    mc->p_std = cfg->p_std;
    mc->shift = cfg->shift;
    mc->p_uncond = cfg->p_uncond;
    mc->unet_ch = (int)cfg->unet_ch;
    mc->unet_blocks = (int)cfg->unet_blocks;
    mc->unet_heads = (int)cfg->unet_heads;
    mc->dropout = cfg->dropout;
    /* NULL when a checkpoint from before these options is loaded by sample / eval. */
    const char *mult = cfg->unet_mult ? cfg->unet_mult : "";
    const char *attn = cfg->unet_attn ? cfg->unet_attn : "";
    if (strlen(mult) >= sizeof mc->unet_mult || strlen(attn) >= sizeof mc->unet_attn)
        return cli_error("--unet-mult %s / --unet-attn %s: longer than %zu characters", mult,
                         attn, sizeof mc->unet_mult - 1);
    strcpy(mc->unet_mult, mult);
    strcpy(mc->unet_attn, attn);
    return 0;
}

/* DIR/loss.png from metrics.jsonl and, for 2-D data, DIR/samples.png: EMA samples over the data. */
static int cli_train_previews(const cli_cfg *cfg, ug_model *model, ug_ema *ema,
                              const ug_dataset *ds) {
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->out);
    if (cli_plot_metrics(path, cfg->out)) return 1;
    int64_t d = ug_dataset_dim(ds);
    if (ds->ndim == 3) {
        /* 64 EMA samples in a grid (8 rows of 8). */
        const int64_t n = 64;
        double *x = malloc((size_t)(n * d) * sizeof *x);
        float *xf = malloc((size_t)(n * d) * sizeof *xf);
        int rc = 1;
        ug_sample_cfg sc = ug_sample_cfg_default();
        sc.seed = (uint64_t)cfg->seed + 1;
        int64_t nfe;
        ug_status st = UG_OK;
        if (!x || !xf) { cli_error("out of memory"); goto img_out; }
        if (ema->w) ug_ema_swap(ema, ug_model_params(model));
        st = ug_model_sample(model, &sc, n, NULL, NULL, x, &nfe);
        if (ema->w) ug_ema_swap(ema, ug_model_params(model));
        if (st) { cli_error("%s", ug_last_error()); goto img_out; }
        if (cli_norm_apply(cfg, NULL, x, n, d, -1, NULL)) goto img_out;
        for (int64_t j = 0; j < n * d; j++) xf[j] = (float)x[j];
        snprintf(path, sizeof path, "%s/samples.png", cfg->out);
        if ((st = ug_image_grid_zoom(path, xf, n, (int)ds->shape[0], (int)ds->shape[1],
                                     (int)ds->shape[2], 8, 8, 2, 0.0f, 1.0f,
                                     ds->shape[1] < 48 ? 3 : 1))) {
            cli_error("%s", ug_last_error());
            goto img_out;
        }
        fprintf(stderr, "unigen: 64 samples in %s\n", path);
        rc = 0;
    img_out:
        free(x);
        free(xf);
        return rc;
    }
    if (d != 2) return 0;
    const int64_t n = 4000;
    double *x = malloc((size_t)n * 2 * sizeof *x);
    float *xf = malloc((size_t)n * 2 * sizeof *xf), *ref = malloc((size_t)n * 2 * sizeof *ref);
    int rc = 1;
    if (!x || !xf || !ref) { cli_error("out of memory"); goto out; }
    ug_sample_cfg sc = ug_sample_cfg_default();
    sc.seed = (uint64_t)cfg->seed + 1;
    int64_t nfe;
    if (ema->w) ug_ema_swap(ema, ug_model_params(model));
    ug_status st = ug_model_sample(model, &sc, n, NULL, NULL, x, &nfe);
    if (ema->w) ug_ema_swap(ema, ug_model_params(model));
    if (st) { cli_error("%s", ug_last_error()); goto out; }
    for (int64_t j = 0; j < n * 2; j++) xf[j] = (float)x[j];
    int64_t m = ds->n < n ? ds->n : n;
    memcpy(ref, ds->x, (size_t)m * 2 * sizeof *ref);
    if (cli_norm_apply(cfg, xf, NULL, n, 2, -1, NULL) || cli_norm_apply(cfg, ref, NULL, m, 2, -1, NULL))
        goto out;
    snprintf(path, sizeof path, "%s/samples.png", cfg->out);
    char title[160];
    if (ug_model_config(model)->family == UG_FAMILY_DIFFUSION)
        snprintf(title, sizeof title, "%s samples (heun, %lld nfe) over %s", cfg->formulation,
                 (long long)nfe, cfg->data);
    else
        snprintf(title, sizeof title, "%s %s samples over %s", cfg->family,
                 ug_model_config(model)->net, cfg->data);
    if ((st = ug_plot_scatter(path, xf, n, ref, m, 640, 640, title, NULL))) {
        cli_error("%s", ug_last_error());
        goto out;
    }
    fprintf(stderr, "unigen: samples drawn over the data in %s\n", path);
    rc = 0;
out:
    free(x); free(xf); free(ref);
    return rc;
}

static void fmt_eta(double s, char *buf, size_t n) {
    if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

/* The validation NLL (exact for flows and ar models; the ELBO, an IWAE bound with k = 1, for a
 * vae) with the weights a checkpoint's users load: one metrics line, *better when it improves. */
static int validate(const cli_cfg *cfg, ug_model *model, ug_ema *ema, const ug_dataset *valid,
                    double *nll, int64_t step, double *best, int *better, FILE *metrics) {
    ug_nll_cfg nc = ug_nll_default();
    nc.iwae_k = 1;
    nc.seed = (uint64_t)cfg->seed;
    int64_t d = ug_dataset_dim(valid);
    double t0 = cli_now_s();
    if (ema->w) ug_ema_swap(ema, ug_model_params(model));
    int bad = cli_dist_nll(model, &nc, valid->n, valid->x, d, nll);
    if (ema->w) ug_ema_swap(ema, ug_model_params(model));
    if (bad) return 1;
    double mean = 0;
    for (int64_t i = 0; i < valid->n; i++) mean += nll[i];
    mean /= (double)valid->n;
    double bpd = ug_bits_per_dim(mean, d, cli_data_levels(cfg));
    *better = mean < *best;
    if (*better) *best = mean;
    fprintf(metrics, "{\"step\": %lld, \"valid_nll\": %.6f, \"valid_bpd\": %.6f, \"valid_n\": %lld, "
            "\"valid_s\": %.3f}\n", (long long)step, mean, bpd, (long long)valid->n, cli_now_s() - t0);
    fflush(metrics);
    fprintf(stderr, "%sunigen: step %lld: validation NLL %.4f nats (%.4f bits/dim) on %lld examples%s\n",
            isatty(2) ? "\n" : "", (long long)step, mean, bpd, (long long)valid->n,
            *better ? " (best)" : "");
    return 0;
}

int cli_train(cli_cfg *cfg) {
    if (!cfg->data) return cli_error("train: --data is required (e.g. --data moons)");
    if (!cfg->out) return cli_error("train: --out DIR is required");
    if (cfg->steps < 1 || cfg->batch < 1 || cfg->log_every < 1 || cfg->save_every < 0)
        return cli_error("train: --steps, --batch, --log-every must be >= 1, --save-every >= 0");
    if (!(cfg->lr > 0)) return cli_error("train: --lr %g, expected > 0", cfg->lr);
    if (isnan(cfg->ema)) {
        /* auto: diffusion models and classifiers sample from an EMA; likelihood models are
         * judged on their weights (the peers train without one). */
        int lik = !strcmp(cfg->family, "flow") || !strcmp(cfg->family, "ar") || !strcmp(cfg->family, "vae");
        cfg->ema = lik ? 0 : 0.999;
    }
    if (!(cfg->ema >= 0 && cfg->ema < 1)) return cli_error("train: --ema %g, expected in [0, 1)", cfg->ema);
    if (cfg->valid_every < 0 || cfg->patience < 0 || cfg->valid_n < 0)
        return cli_error("train: --valid-every, --valid-n and --patience must be >= 0");
    if (cli_run_check_out(cfg)) return 1;   /* resume.c: never overwrite another run */
    ug_lr_schedule sched = {UG_LR_CONSTANT, (float)cfg->lr, cfg->warmup, cfg->steps, 0};
    if (ug_lr_from_name(cfg->lr_schedule, &sched.kind))
        return cli_error("--lr-schedule %s: unknown (expected constant, warmup, cosine)", cfg->lr_schedule);

    int cond_class = cfg->cond && !strcmp(cfg->cond, "class");
    if (cfg->cond && !cond_class && strcmp(cfg->cond, "none"))
        return cli_error("--cond %s: unknown (expected none or class)", cfg->cond);

    ug_dataset ds;
    /* Image sets are read as 8-bit pixels; whether they stay so is decided below. */
    ug_status st = ug_dataset_load_bytes(cfg->data, UG_SPLIT_TRAIN, cfg->n, (uint64_t)cfg->seed, &ds);
    if (st) return cli_error("%s", ug_last_error());
    int64_t d = ug_dataset_dim(&ds);
    int classifier = !strcmp(cfg->family, "classifier");
    if ((classifier || cond_class) && !cfg->classes) cfg->classes = ds.num_classes;
    if (cond_class && !ds.y) {
        ug_dataset_free(&ds);
        return cli_error("train: --cond class needs a labelled data set (%s has no labels)", cfg->data);
    }
    if (classifier && !ds.y) {
        ug_dataset_free(&ds);
        return cli_error("train: a classifier needs a labelled data set (%s has no labels)", cfg->data);
    }
    if (cfg->classes && (!ds.y || ds.num_classes > cfg->classes)) {
        ug_dataset_free(&ds);
        return cli_error("train: --classes %lld needs a labelled data set with at most that many "
                         "classes (%s has %d)", (long long)cfg->classes, cfg->data, ds.num_classes);
    }
    cfg->data_dim = d;
    /* Normalization, binarization, dequantization: resolved and stored in the config. */
    if (cli_data_resolve(cfg, &ds)) { ug_dataset_free(&ds); return 1; }
    /* Image sets stay as 8-bit pixels (a quarter of the memory) and every batch is mapped as it
     * is drawn; with --normalize std the statistics need the floats: mapped once. */
    if (!cli_data_keeps_bytes(cfg) && (st = ug_dataset_to_float(&ds))) {
        ug_dataset_free(&ds);
        return cli_error("%s", ug_last_error());
    }
    if (!strcmp(cfg->normalize, "std")) normalize_stats(&ds, d, cfg);
    if (cli_data_prepare(cfg, &ds, 0)) { ug_dataset_free(&ds); return 1; }
    int per_batch = cli_data_per_batch(cfg);
    int lik = !strcmp(cfg->family, "flow") || !strcmp(cfg->family, "ar") || !strcmp(cfg->family, "vae");
    if (cfg->valid_every && !lik) {
        ug_dataset_free(&ds);
        return cli_error("train: --valid-every is for flow, ar and vae models (their NLL)");
    }
    ug_dataset valid = {0};
    if (cfg->valid_every) {
        if ((st = ug_dataset_load(cfg->data, UG_SPLIT_VALID, cfg->valid_n, (uint64_t)cfg->seed, &valid))) {
            ug_dataset_free(&ds);
            return cli_error("%s", ug_last_error());
        }
        if (ug_dataset_dim(&valid) != d || cli_data_prepare(cfg, &valid, 1)) {
            if (ug_dataset_dim(&valid) != d)
                cli_error("%s: the validation split has examples of dim %lld, the training split %lld",
                          cfg->data, (long long)ug_dataset_dim(&valid), (long long)d);
            ug_dataset_free(&valid);
            ug_dataset_free(&ds);
            return 1;
        }
    }

    if (ds.ndim == 3) {
        cfg->channels = ds.shape[0];
        cfg->height = ds.shape[1];
        cfg->width = ds.shape[2];
    }
    ug_model_cfg mc;
    ug_model *model = NULL;
    if (cli_model_cfg(cfg, d, &mc)) { ug_dataset_free(&ds); return 1; }
    if ((st = ug_model_create(&mc, (uint64_t)cfg->seed, &model))) {
        ug_dataset_free(&ds);
        return cli_error("%s", ug_last_error());
    }
    ug_params *ps = ug_model_params(model);
    ug_adam adam = {0};
    ug_ema ema = {0};
    ug_ctx *ctx = NULL;
    ug_loader L = {0};
    float *xb = malloc((size_t)(cfg->batch * d) * sizeof *xb);
    int32_t *yb = malloc((size_t)cfg->batch * sizeof *yb);
    int64_t *ib = malloc((size_t)cfg->batch * sizeof *ib);
    double *vnll = cfg->valid_every ? malloc((size_t)valid.n * sizeof *vnll) : NULL;
    double *aff = malloc((size_t)(2 * d) * sizeof *aff);   /* bytes: the per-batch affine map */
    double best_nll = INFINITY;
    int64_t since_best = 0;
    char path[4200];
    char *cfg_json = cli_cfg_to_json(CMD_TRAIN, cfg);
    FILE *metrics = NULL;
    int rc = 1;
    if (!xb || !yb || !ib || !aff || !cfg_json || (cfg->valid_every && !vnll)) {
        cli_error("out of memory");
        goto done;
    }
    if (cli_norm_affine(cfg, d, aff, aff + d)) goto done;
    if (cli_check_memory(cfg, &ds, model)) goto done;   /* guard.c: refuse what cannot fit */
    ug_adam_cfg acfg = ug_adam_default();
    acfg.weight_decay = (float)cfg->weight_decay;
    acfg.decoupled = (int)cfg->adamw;
    if ((st = ug_adam_init(&adam, ps, acfg)) ||
        (cfg->ema > 0 && (st = ug_ema_init(&ema, ps, (float)cfg->ema))) ||
        (st = ug_ctx_create(&ctx, 0)) ||
        (st = ug_loader_init(&L, &ds, cfg->batch, (uint64_t)cfg->seed, 0, 1, 1,
                             ds.n >= cfg->batch))) {
        cli_error("%s", ug_last_error());
        goto done;
    }
    /* Data-parallel: only rank 0 writes the run directory (the others' metrics: /dev/null). */
    int root = cli_dist_root();
    if (cli_dist_check_batch(cfg->batch, ds.n)) goto done;
    /* resume.c: weights, Adam, EMA, step and data position of the latest checkpoint (every
     * rank loads it). */
    int64_t start_step;
    if ((rc = cli_resume_load(cfg, ps, &ema, &adam, &L, &start_step))) {
        rc = rc < 0 ? 0 : 1;   /* -1: the run is already complete */
        goto done;
    }
    rc = 1;
    if (root && cli_mkdirs(cfg->out)) goto done;
    snprintf(path, sizeof path, "%s/config.json", cfg->out);
    if (root && cli_write_text(path, cfg_json)) goto done;
    snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->out);
    metrics = root ? cli_metrics_open(cfg->out, cfg->resume ? start_step : -1) : fopen("/dev/null", "w");
    if (!metrics) goto done;
    cli_guard guard;
    cli_guard_init(&guard, start_step, &L);
    cli_signals_install();

    int tty = isatty(2);
    if (lik)
        fprintf(stderr, "unigen: training %s %s (%lld parameters) on %s: %lld examples of dim %lld "
                "(binarize %s, dequantize %s)\n", cfg->family, ug_model_config(model)->net,
                (long long)ug_params_count(ps), cfg->data, (long long)ds.n, (long long)d,
                cfg->binarize, cfg->dequantize);
    else if (classifier)
        fprintf(stderr, "unigen: training a%s classifier (%lld parameters, %lld classes) on %s: "
                "%lld examples of dim %lld\n", cfg->noisy ? " noisy" : "", (long long)ug_params_count(ps),
                (long long)cfg->classes, cfg->data, (long long)ds.n, (long long)d);
    else
        fprintf(stderr, "unigen: training %s %s/%s (%lld parameters) on %s: %lld examples of dim %lld\n",
                ug_family_name(mc.family), ug_form_name(mc.formulation), ug_param_name(mc.param),
                (long long)ug_params_count(ps), cfg->data, (long long)ds.n, (long long)d);
    double t_start = cli_now_s(), t_log = t_start, loss_acc = 0, gn_acc = 0;
    int64_t n_acc = 0, epoch = L.epoch;
    for (int64_t step = start_step; step < cfg->steps; step++) {
        int64_t got = ug_loader_next(&L, xb, yb, ib);
        if (got == 0) {
            ug_loader_start_epoch(&L, (uint32_t)++epoch);
            got = ug_loader_next(&L, xb, yb, ib);
        }
        if (!ds.x) cli_data_prepare_batch(cfg, xb, got, d, aff, aff + d);
        if (per_batch) cli_data_batch(cfg, xb, got, d, ib, (uint32_t)epoch);
        if (step == 0 && (st = ug_model_data_init(model, xb, got))) {
            cli_error("data-dependent init: %s", ug_last_error());
            goto done;
        }
        ug_model_set_step(model, step);
        /* This rank's rows [lo, hi) of the global batch keep their global Philox streams. */
        int64_t lo, hi;
        ug_dist_range(got, &lo, &hi);
        double loss;
        ug_params_zero_grad(ps);
        st = ug_model_loss_backward(model, ctx, xb + lo * d, hi - lo, cfg->classes ? yb + lo : NULL,
                                    (uint64_t)cfg->seed,
                                    (uint64_t)step * (uint64_t)cfg->batch + (uint64_t)lo, &loss);
        if (st && st != UG_ERR_NUMERIC) { cli_error("step %lld: %s", (long long)step, ug_last_error()); goto done; }
        if (st) {
            /* A non-finite loss on this rank: a NaN gradient makes every rank skip the step
             * together (the allreduce spreads it), so the ranks never disagree. */
            float *g = ug_params_grad(ps);
            for (int64_t j = 0, np = ug_params_count(ps); j < np; j++) g[j] = NAN;
        }
        if (cli_dist_grad(ps, hi - lo, got)) goto done;
        double gn = ug_clip_grad_norm(ps, cfg->grad_clip);
        float lr = ug_lr_at(&sched, step);
        /* guard.c: a non-finite loss or gradient skips the step; too many in a row stop the run. */
        if (cli_guard_step(&guard, step, !st, st ? NAN : loss, gn, &L)) {
            ug_adam_step(&adam, ps, lr);
            if (ema.w) ug_ema_update(&ema, ps);
            loss_acc += loss * (double)(hi - lo) / (double)got;
            gn_acc += gn;
            n_acc++;
        } else if (guard.bad_run >= cfg->max_bad_steps) {
            if (root) cli_guard_give_up(&guard, cfg, cfg_json, step, ps, &ema, &adam, &L);
            goto done;
        }
        ug_ctx_reset(ctx);
        int last = step + 1 == cfg->steps;
        if (((step + 1) % cfg->log_every == 0 || last) && n_acc > 0) {
            if (cli_dist_sum(&loss_acc, 1)) goto done;
            double t = cli_now_s(), sps = n_acc / (t - t_log);
            fprintf(metrics, "{\"step\": %lld, \"loss\": %.6g, \"lr\": %.6g, \"grad_norm\": %.6g, "
                             "\"steps_per_s\": %.4g, \"elapsed_s\": %.3f}\n",
                    (long long)(step + 1), loss_acc / n_acc, (double)lr, gn_acc / n_acc, sps, t - t_start);
            fflush(metrics);
            char eta[32];
            fmt_eta((cfg->steps - step - 1) / sps, eta, sizeof eta);
            if (tty) {
                int w = 30, f = (int)(w * (step + 1) / cfg->steps);
                fprintf(stderr, "\r[%.*s%*s] step %lld/%lld loss %.4f %.1f it/s ETA %s   ",
                        f, "##############################", w - f, "", (long long)(step + 1),
                        (long long)cfg->steps, loss_acc / n_acc, sps, eta);
            } else {
                fprintf(stderr, "step %lld/%lld loss %.4f %.1f it/s ETA %s\n", (long long)(step + 1),
                        (long long)cfg->steps, loss_acc / n_acc, sps, eta);
            }
            t_log = t;
            loss_acc = gn_acc = 0;
            n_acc = 0;
        }
        if (cfg->valid_every && ((step + 1) % cfg->valid_every == 0 || last)) {
            int better = 0;
            if (validate(cfg, model, &ema, &valid, vnll, step + 1, &best_nll, &better, metrics)) goto done;
            since_best = better ? 0 : since_best + 1;
            if (better) {
                snprintf(path, sizeof path, "%s/best.safetensors", cfg->out);
                if (root && (st = ug_ckpt_save(path, ps, ema.w ? &ema : NULL, &adam, step + 1, cfg_json))) {
                    cli_error("%s", ug_last_error());
                    goto done;
                }
            }
            if (cfg->patience && since_best >= cfg->patience && !last) {
                fprintf(stderr, "%sunigen: early stop at step %lld: no better validation NLL in %lld "
                        "validations (best %.4f nats in best.safetensors)\n", tty ? "\n" : "",
                        (long long)(step + 1), (long long)since_best, best_nll);
                cfg->steps = step + 1;
                break;
            }
        }
        if (root && cfg->save_every && (step + 1) % cfg->save_every == 0 && !last &&
            cli_ckpt_write(cfg, cfg_json, step + 1, ps, &ema, &adam, &L, 1, path, sizeof path))
            goto done;
        if (cli_stop_signal() && !last) {   /* guard.c: SIGINT/SIGTERM save and leave */
            rc = root ? cli_train_interrupted(cfg, cfg_json, step + 1, ps, &ema, &adam, &L)
                      : 128 + cli_stop_signal();
            goto done;
        }
    }
    if (tty) fputc('\n', stderr);
    if (root && cli_ckpt_write(cfg, cfg_json, cfg->steps, ps, &ema, &adam, &L, 0, path, sizeof path)) goto done;
    fprintf(stderr, "unigen: %lld steps in %.1f s; checkpoint %s\n", (long long)cfg->steps,
            cli_now_s() - t_start, path);
    fclose(metrics);
    metrics = NULL;
    if (classifier) {
        /* The test split's accuracy, with the EMA weights the checkpoint's users will load. */
        ug_dataset te;
        double acc;
        if (ug_dataset_load(cfg->data, 0, 0, (uint64_t)cfg->seed, &te)) { cli_error("%s", ug_last_error()); goto done; }
        if (cli_norm_apply(cfg, te.x, NULL, te.n, d, +1, NULL)) { ug_dataset_free(&te); goto done; }
        if (ema.w) ug_ema_swap(&ema, ps);
        st = ug_model_accuracy(model, &te, &acc);
        if (ema.w) ug_ema_swap(&ema, ps);
        ug_dataset_free(&te);
        if (st) { cli_error("%s", ug_last_error()); goto done; }
        fprintf(stderr, "unigen: test accuracy %.4f\n", acc);
        snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->out);
        FILE *mf = root ? fopen(path, "a") : NULL;
        if (mf) {
            fprintf(mf, "{\"step\": %lld, \"test_accuracy\": %.6f}\n", (long long)cfg->steps, acc);
            fclose(mf);
        }
        snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->out);
        if (root && cli_plot_metrics(path, cfg->out)) goto done;
    } else if (root && cli_train_previews(cfg, model, &ema, &ds)) {
        goto done;
    }
    rc = 0;
done:
    if (metrics) fclose(metrics);
    free(cfg_json);
    free(xb);
    free(yb);
    free(ib);
    free(vnll);
    free(aff);
    ug_dataset_free(&valid);
    ug_loader_free(&L);
    ug_ctx_free(ctx);
    ug_ema_free(&ema);
    ug_adam_free(&adam);
    ug_model_free(model);
    ug_dataset_free(&ds);
    return rc;
}
