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
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) {
            double v = xf ? xf[i * d + j] : xd[i * d + j];
            v = dir > 0 ? a[j] * v + b[j] : (v - b[j]) / a[j];
            if (xf) xf[i * d + j] = (float)v;
            else xd[i * d + j] = v;
        }
    free(a);
    return 0;
}
