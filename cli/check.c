/* check.c — the valid range of every numeric option, checked once after parsing, so a value
 * such as `--batch -4` or `--lr 0` is a usage error (exit status 2) that names the flag, the
 * value and the range, before any data is read or any file written. Kept apart from the option
 * table so the table stays one line per option; an option missing here is only type-checked. */
#include "options.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *key;
    unsigned cmds;       /* the commands whose option of this name the range is for */
    double lo, hi;
    int lo_open;         /* 1: lo itself is invalid (lr > 0) */
    int hi_open;         /* 1: hi itself is invalid (ema < 1) */
    int nan_ok;          /* "nan" stands for the method's own default */
} range_def;

#define BIG 1e15
#define TSE (CMD_TRAIN | CMD_SAMPLE | CMD_EVAL)

static const range_def k_ranges[] = {
    {"n", CMD_ALL, 0, 1e12, 0, 0, 0},
    /* training */
    {"steps", TSE, 1, BIG, 0, 0, 0},
    {"batch", CMD_TRAIN, 1, 1e9, 0, 0, 0},
    {"batch", CMD_SAMPLE, 0, 1e9, 0, 0, 0},
    {"lr", CMD_TRAIN, 0, 1e30, 1, 0, 0},
    {"warmup", CMD_TRAIN, 0, BIG, 0, 0, 0},
    {"ema", CMD_TRAIN, 0, 1, 0, 1, 1},
    {"grad-clip", CMD_TRAIN, 0, 1e30, 0, 0, 0},
    {"weight-decay", CMD_TRAIN, 0, 1e30, 0, 0, 0},
    {"adamw", CMD_TRAIN, 0, 1, 0, 0, 0},
    {"log-every", CMD_TRAIN, 1, BIG, 0, 0, 0},
    {"save-every", CMD_TRAIN, 0, BIG, 0, 0, 0},
    {"keep", CMD_TRAIN, 0, 1e9, 0, 0, 0},
    {"max-bad-steps", CMD_TRAIN, 1, BIG, 0, 0, 0},
    {"valid-every", CMD_TRAIN, 0, BIG, 0, 0, 0},
    {"valid-n", CMD_TRAIN, 0, 1e12, 0, 0, 0},
    {"patience", CMD_TRAIN, 0, BIG, 0, 0, 0},
    /* model definition */
    {"hidden", CMD_TRAIN, 1, 1e6, 0, 0, 0},
    {"depth", CMD_TRAIN, 0, 1e4, 0, 0, 0},
    {"classes", CMD_TRAIN, 0, 1e6, 0, 0, 0},
    {"noisy", CMD_TRAIN, 0, 1, 0, 0, 0},
    {"couplings", CMD_TRAIN, 0, 1e4, 0, 0, 0},
    {"levels", CMD_TRAIN, 0, 64, 0, 0, 0},
    {"masks", CMD_TRAIN, 1, 1e6, 0, 0, 0},
    {"direct", CMD_TRAIN, 0, 1, 0, 0, 0},
    {"latent", CMD_TRAIN, 0, 1e6, 0, 0, 0},
    {"sigma-data", CMD_TRAIN, 0, 1e30, 1, 0, 0},
    {"p-std", CMD_TRAIN, 0, 1e30, 1, 0, 1},
    {"shift", CMD_TRAIN | CMD_SAMPLE, 0, 1e30, 1, 0, 0},
    {"p-uncond", CMD_TRAIN, 0, 1, 0, 0, 0},
    {"unet-ch", CMD_TRAIN, 0, 4096, 0, 0, 0},
    {"unet-blocks", CMD_TRAIN, 0, 8, 0, 0, 0},
    {"unet-heads", CMD_TRAIN, 0, 1024, 0, 0, 0},
    {"dropout", CMD_TRAIN, 0, 1, 0, 1, 0},
    /* sampling */
    {"sigma-min", CMD_SAMPLE | CMD_EVAL, 0, 1e30, 0, 0, 0},
    {"sigma-max", CMD_SAMPLE | CMD_EVAL, 0, 1e30, 0, 0, 0},
    {"rho", CMD_SAMPLE | CMD_EVAL, 0, 1e30, 1, 0, 0},
    {"eta", CMD_SAMPLE | CMD_EVAL, 0, 1e30, 0, 0, 1},
    {"s-churn", CMD_SAMPLE, 0, 1e30, 0, 0, 0},
    {"s-tmin", CMD_SAMPLE, 0, 1e30, 0, 0, 0},
    {"s-tmax", CMD_SAMPLE, 0, 1e30, 0, 0, 0},
    {"s-noise", CMD_SAMPLE, 0, 1e30, 0, 0, 0},
    {"snr", CMD_SAMPLE, 0, 1e30, 0, 0, 0},
    {"corrector-steps", CMD_SAMPLE, 0, 1e6, 0, 0, 0},
    {"steps-offset", CMD_SAMPLE, 0, 1e6, 0, 0, 0},
    {"set-alpha-to-one", CMD_SAMPLE, 0, 1, 0, 0, 0},
    {"class", CMD_SAMPLE | CMD_EVAL, -1, 1e6, 0, 0, 0},
    {"temperature", CMD_SAMPLE, 0, 1e30, 1, 0, 0},
    /* evaluation */
    {"vlb-steps", CMD_EVAL, 0, BIG, 0, 0, 0},
    {"rtol", CMD_EVAL, 0, 1, 1, 0, 0},
    {"atol", CMD_EVAL, 0, 1, 1, 0, 0},
    {"probes", CMD_EVAL, 1, 1e6, 0, 0, 0},
    {"swd-dirs", CMD_EVAL, 1, 1e7, 0, 0, 0},
    {"ensemble", CMD_EVAL, 0, 1e6, 0, 0, 0},
    {"iwae-k", CMD_EVAL, 1, 1e9, 0, 0, 0},
};

int cli_check_ranges(int cmd, const cli_cfg *cfg, char *err, size_t errlen) {
    for (size_t r = 0; r < sizeof k_ranges / sizeof *k_ranges; r++) {
        const range_def *g = &k_ranges[r];
        if (!(g->cmds & (unsigned)cmd)) continue;
        for (int i = 0; i < cli_num_options; i++) {
            const opt_def *o = &cli_options[i];
            if (strcmp(o->key, g->key) || !(o->cmds & (unsigned)cmd)) continue;
            const char *field = (const char *)cfg + o->offset;
            double v;
            char shown[48];
            if (o->type == OPT_INT && o->offset == offsetof(cli_cfg, threads)) continue;
            if (o->type == OPT_INT) {
                int64_t x = *(const int64_t *)field;
                v = (double)x;
                snprintf(shown, sizeof shown, "%lld", (long long)x);
            } else if (o->type == OPT_FLOAT) {
                v = *(const double *)field;
                if (isnan(v) && g->nan_ok) continue;
                snprintf(shown, sizeof shown, "%g", v);
            } else {
                continue;
            }
            int ok = (g->lo_open ? v > g->lo : v >= g->lo) && (g->hi_open ? v < g->hi : v <= g->hi);
            if (ok) continue;
            const char *what = o->type == OPT_INT ? "an integer" : "a number";
            if (g->hi >= 1e12 || (o->type == OPT_FLOAT && g->hi >= 1e30))
                snprintf(err, errlen, "--%s %s: expected %s %s %.15g", o->key, shown, what,
                         g->lo_open ? ">" : ">=", g->lo);
            else
                snprintf(err, errlen, "--%s %s: expected %s in %s%.15g, %.15g%s", o->key, shown,
                         what, g->lo_open ? "(" : "[", g->lo, g->hi, g->hi_open ? ")" : "]");
            return 2;
        }
    }
    return 0;
}
