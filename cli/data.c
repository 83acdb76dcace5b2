/* data.c — `unigen data --data SPEC [--out PICTURE.png]`: counts, shapes, value range and
 * class counts of a data set, and a preview: a scatter plot for 2-D points, a grid (one row per
 * class when labelled) for images. */
#include "cli.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int preview(const cli_cfg *cfg, const ug_dataset *ds, int64_t d) {
    if (ds->ndim == 3) {
        int C = (int)ds->shape[0], H = (int)ds->shape[1], W = (int)ds->shape[2];
        int rows = ds->y && ds->num_classes <= 16 ? ds->num_classes : 8, cols = 8;
        float *imgs = calloc((size_t)rows * cols * d, sizeof *imgs);
        if (!imgs) return cli_error("out of memory");
        int64_t filled = 0;
        if (ds->y && rows == ds->num_classes) {
            /* One row per class: the first `cols` examples of each. */
            int *count = calloc((size_t)rows, sizeof *count);
            for (int64_t i = 0; i < ds->n && filled < (int64_t)rows * cols; i++) {
                int c = ds->y[i];
                if (c < 0 || c >= rows || count[c] >= cols) continue;
                memcpy(imgs + ((int64_t)c * cols + count[c]++) * d, ds->x + i * d, (size_t)d * sizeof *imgs);
                filled++;
            }
            free(count);
        } else {
            filled = ds->n < rows * cols ? ds->n : rows * cols;
            memcpy(imgs, ds->x, (size_t)(filled * d) * sizeof *imgs);
        }
        int zoom = H < 48 ? 3 : H < 96 ? 2 : 1;
        ug_status st = ug_image_grid_zoom(cfg->out, imgs, (int64_t)rows * cols, C, H, W, rows, cols,
                                          2, 0.0f, 1.0f, zoom);
        free(imgs);
        if (st) return cli_error("%s", ug_last_error());
    } else {
        if (d < 2) return cli_error("data: no picture for %lld-dimensional examples", (long long)d);
        int64_t n = ds->n < 5000 ? ds->n : 5000;
        float *pts = malloc((size_t)n * 2 * sizeof *pts);
        if (!pts) return cli_error("out of memory");
        for (int64_t i = 0; i < n; i++) {
            pts[2 * i] = ds->x[i * d];
            pts[2 * i + 1] = ds->x[i * d + 1];
        }
        char title[300];
        snprintf(title, sizeof title, "%s%s (%lld points)", cfg->data,
                 d > 2 ? ", first two coordinates" : "", (long long)n);
        ug_status st = ug_plot_scatter(cfg->out, pts, n, NULL, 0, 640, 640, title, NULL);
        free(pts);
        if (st) return cli_error("%s", ug_last_error());
    }
    fprintf(stderr, "unigen: preview written to %s\n", cfg->out);
    return 0;
}

int cli_data(cli_cfg *cfg) {
    if (!cfg->data) return cli_error("data: --data is required (e.g. --data moons)");
    ug_dataset ds;
    if (ug_dataset_load(cfg->data, 1, cfg->n, (uint64_t)cfg->seed, &ds)) return cli_error("%s", ug_last_error());
    int64_t d = ug_dataset_dim(&ds);
    double lo = INFINITY, hi = -INFINITY, sum = 0, sq = 0;
    for (int64_t i = 0; i < ds.n * d; i++) {
        double v = ds.x[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        sum += v;
        sq += v * v;
    }
    double N = (double)(ds.n * d), mean = sum / N, sd = sqrt(fmax(sq / N - mean * mean, 0));
    char shape[96] = "";
    size_t p = 0;
    for (int k = 0; k < ds.ndim; k++)
        p += (size_t)snprintf(shape + p, sizeof shape - p, k ? " x %lld" : "%lld", (long long)ds.shape[k]);
    int64_t counts[1024] = {0};
    int nc = ds.y ? (ds.num_classes < 1024 ? ds.num_classes : 1024) : 0;
    for (int64_t i = 0; ds.y && i < ds.n; i++)
        if (ds.y[i] >= 0 && ds.y[i] < nc) counts[ds.y[i]]++;
    if (cfg->json) {
        printf("{\"data\": \"%s\", \"n\": %lld, \"shape\": [", cfg->data, (long long)ds.n);
        for (int k = 0; k < ds.ndim; k++) printf(k ? ", %lld" : "%lld", (long long)ds.shape[k]);
        printf("], \"min\": %.9g, \"max\": %.9g, \"mean\": %.9g, \"std\": %.9g, \"classes\": %d",
               lo, hi, mean, sd, ds.num_classes);
        if (nc) {
            printf(", \"class_counts\": [");
            for (int c = 0; c < nc; c++) printf(c ? ", %lld" : "%lld", (long long)counts[c]);
            printf("]");
        }
        printf("}\n");
    } else {
        printf("%s: %lld examples of shape %s (%lld values each)\n", cfg->data, (long long)ds.n, shape,
               (long long)d);
        printf("values: min %.6g, max %.6g, mean %.6g, std %.6g\n", lo, hi, mean, sd);
        if (nc) {
            printf("%d classes:", ds.num_classes);
            for (int c = 0; c < nc; c++) printf(" %lld", (long long)counts[c]);
            printf("\n");
        }
    }
    int rc = cfg->out ? preview(cfg, &ds, d) : 0;
    ug_dataset_free(&ds);
    return rc;
}
