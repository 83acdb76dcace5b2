/* normalize.c — the map from data space to model space, x_model = a_j x_j + b_j per
 * coordinate, in one place:
 *   none  a = 1, b = 0
 *   std   a = sigma_data / std_j, b = -mean_j a   (statistics stored in the configuration)
 *   pm1   a = 2, b = -1                           (pixels in [0, 1] -> [-1, 1], DDPM's scale)
 * Samples go back through the inverse; likelihoods pick up log|det| = sum_j ln a_j. */
#include "cli.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int cli_norm_affine(const cli_cfg *cfg, int64_t d, double *a, double *b) {
    const char *k = cfg->normalize ? cfg->normalize : "none";
    for (int64_t j = 0; j < d; j++) { a[j] = 1; b[j] = 0; }
    if (!strcmp(k, "none")) return 0;
    if (!strcmp(k, "pm1")) {
        for (int64_t j = 0; j < d; j++) { a[j] = 2; b[j] = -1; }
        return 0;
    }
    if (strcmp(k, "std")) return cli_error("--normalize %s: unknown (expected none, std, pm1, auto)", k);
    double mean[64], sd[64];
    int km = cli_parse_list(cfg->data_mean, mean, 64), ks = cli_parse_list(cfg->data_std, sd, 64);
    if (km < 1 || km != ks || (km != 1 && km != d))
        return cli_error("configuration: data-mean / data-std hold %d / %d values, expected 1 or %lld",
                         km, ks, (long long)d);
    for (int64_t j = 0; j < d; j++) {
        int i = km == 1 ? 0 : (int)j;
        a[j] = cfg->sigma_data / sd[i];
        b[j] = -mean[i] * a[j];
    }
    return 0;
}

/* The affine map on n rows with the coefficients of cli_norm_affine. */
static void norm_rows(const double *a, const double *b, float *xf, double *xd, int64_t n,
                      int64_t d, int dir) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) {
            double v = xf ? xf[i * d + j] : xd[i * d + j];
            v = dir > 0 ? a[j] * v + b[j] : (v - b[j]) / a[j];
            if (xf) xf[i * d + j] = (float)v;
            else xd[i * d + j] = v;
        }
}

/* dir > 0: data -> model; dir < 0: model -> data. One of xf / xd is used. *logdet (may be NULL)
 * receives sum_j ln a_j, the log |det| of data -> model. */
int cli_norm_apply(const cli_cfg *cfg, float *xf, double *xd, int64_t n, int64_t d, int dir,
                   double *logdet) {
    double *a = malloc((size_t)d * 2 * sizeof *a);
    if (!a) return cli_error("out of memory");
    double *b = a + d;
    if (cli_norm_affine(cfg, d, a, b)) { free(a); return 1; }
    if (logdet) {
        *logdet = 0;
        for (int64_t j = 0; j < d; j++) *logdet += log(a[j]);
    }
    norm_rows(a, b, xf, xd, n, d, dir);
    free(a);
    return 0;
}

/* ---------------------------------------------------------------- what a family's data is
 * Binary models (ar, Bernoulli vae) see binarized pixels: a fixed threshold, or stochastic
 * binarization redrawn every epoch (Salakhutdinov & Murray 2008). Flows on images see uniformly
 * dequantized pixels x = (pixel + u) / 256 (Theis et al. 2016), fresh u every epoch. Held-out
 * splits get the same maps with a fixed draw, so every evaluation sees the same numbers. */
#define CLI_HELDOUT_STREAM 0x5EEDu   /* the held-out draw: epoch 0 of this seed offset */

int cli_data_resolve(cli_cfg *cfg, const ug_dataset *ds) {
    int lik = !strcmp(cfg->family, "flow") || !strcmp(cfg->family, "ar") || !strcmp(cfg->family, "vae");
    int bernoulli_vae = !strcmp(cfg->family, "vae") &&
                        (!*cfg->decoder || !strcmp(cfg->decoder, "bernoulli"));
    if (!strcmp(cfg->normalize, "auto")) {
        /* Images to DDPM's [-1, 1] for diffusion; likelihood models see the data as it is. */
        free(cfg->normalize);
        cfg->normalize = strdup(ds->ndim == 3 && !lik ? "pm1" : "none");
    }
    if (!strcmp(cfg->binarize, "auto")) {
        free(cfg->binarize);
        cfg->binarize = strdup(!strcmp(cfg->family, "ar") || bernoulli_vae ? "0.5" : "none");
    }
    if (!strcmp(cfg->dequantize, "auto")) {
        free(cfg->dequantize);
        cfg->dequantize = strdup(!strcmp(cfg->family, "flow") && ds->ndim == 3 ? "uniform" : "none");
    }
    if (!cfg->normalize || !cfg->binarize || !cfg->dequantize) return cli_error("out of memory");
    double t;
    char *end;
    if (strcmp(cfg->binarize, "none") && strcmp(cfg->binarize, "stochastic")) {
        t = strtod(cfg->binarize, &end);
        if (end == cfg->binarize || *end || !(t > 0 && t < 1))
            return cli_error("--binarize %s: expected a threshold in (0, 1), stochastic, none or auto",
                             cfg->binarize);
    }
    if (strcmp(cfg->dequantize, "none") && strcmp(cfg->dequantize, "uniform"))
        return cli_error("--dequantize %s: expected uniform, none or auto", cfg->dequantize);
    if (strcmp(cfg->binarize, "none") && strcmp(cfg->dequantize, "none"))
        return cli_error("--binarize %s and --dequantize %s: choose one", cfg->binarize, cfg->dequantize);
    if (cli_data_per_batch(cfg) && strcmp(cfg->normalize, "none"))
        return cli_error("--normalize %s: with --binarize stochastic or --dequantize uniform the data "
                         "must stay as loaded (--normalize none)", cfg->normalize);
    return 0;
}

int cli_data_per_batch(const cli_cfg *cfg) {
    return !strcmp(cfg->binarize ? cfg->binarize : "none", "stochastic") ||
           !strcmp(cfg->dequantize ? cfg->dequantize : "none", "uniform");
}

/* Pixels must be intensities in [0, 1] before they are binarized or dequantized. */
static int check_unit(const cli_cfg *cfg, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!(x[i] >= 0 && x[i] <= 1))
            return cli_error("--binarize %s / --dequantize %s: value %g at index %lld is outside "
                             "[0, 1] (these maps take pixel intensities)", cfg->binarize,
                             cfg->dequantize, (double)x[i], (long long)i);
    return 0;
}

int cli_data_keeps_bytes(const cli_cfg *cfg) {
    return cfg->normalize && strcmp(cfg->normalize, "std");
}

void cli_data_prepare_batch(const cli_cfg *cfg, float *x, int64_t n, int64_t d, const double *a,
                            const double *b) {
    const char *t = cfg->binarize ? cfg->binarize : "none";
    if (strcmp(t, "none") && strcmp(t, "stochastic"))
        ug_data_binarize_fixed(x, n * d, (float)strtod(t, NULL));
    norm_rows(a, b, x, NULL, n, d, +1);
}

int cli_data_prepare(const cli_cfg *cfg, ug_dataset *ds, int heldout) {
    int64_t d = ug_dataset_dim(ds), n = ds->n;
    const char *b = cfg->binarize ? cfg->binarize : "none";
    const char *q = cfg->dequantize ? cfg->dequantize : "none";
    /* A training set kept as bytes: cli_data_prepare_batch maps each batch instead. */
    if (!ds->x) return 0;
    if ((strcmp(b, "none") || strcmp(q, "none")) && check_unit(cfg, ds->x, n * d)) return 1;
    if (strcmp(b, "none") && strcmp(b, "stochastic"))
        ug_data_binarize_fixed(ds->x, n * d, (float)strtod(b, NULL));
    else if (heldout && !strcmp(b, "stochastic"))
        ug_data_binarize_stochastic(ds->x, n, d, NULL, (uint64_t)cfg->seed + CLI_HELDOUT_STREAM, 0);
    else if (heldout && !strcmp(q, "uniform"))
        ug_data_dequantize(ds->x, n, d, NULL, (uint64_t)cfg->seed + CLI_HELDOUT_STREAM, 0);
    return cli_norm_apply(cfg, ds->x, NULL, n, d, +1, NULL);
}

void cli_data_batch(const cli_cfg *cfg, float *x, int64_t n, int64_t d, const int64_t *ids,
                    uint32_t epoch) {
    if (!strcmp(cfg->binarize, "stochastic"))
        ug_data_binarize_stochastic(x, n, d, ids, (uint64_t)cfg->seed, epoch);
    else if (!strcmp(cfg->dequantize, "uniform"))
        ug_data_dequantize(x, n, d, ids, (uint64_t)cfg->seed, epoch);
}

double cli_data_levels(const cli_cfg *cfg) {
    /* Dequantized pixels: the 8-bit scale of (p + u) / 256; binary data: already discrete. */
    return cfg->dequantize && !strcmp(cfg->dequantize, "uniform") ? 256.0 : 1.0;
}
