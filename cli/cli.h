/* cli.h — shared by the subcommands of the `unigen` program. Includes only the public API. */
#ifndef UG_CLI_H
#define UG_CLI_H
#include "options.h"
#include "unigen.h"

typedef struct {
    const char *name;
    unsigned bit;          /* CMD_* */
    const char *summary;
    int (*run)(cli_cfg *cfg);   /* returns the exit status */
} cli_command;

/* Prints "unigen: error: ..." and returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Shared helpers (train.c). */
double cli_now_s(void);   /* monotonic seconds */
int cli_mkdirs(const char *dir);
int cli_write_text(const char *path, const char *text);
int cli_parse_list(const char *s, double *out, int d);
/* normalize.c: data <-> model space (none, std, pm1). */
int cli_norm_affine(const cli_cfg *cfg, int64_t d, double *a, double *b);
int cli_norm_apply(const cli_cfg *cfg, float *xf, double *xd, int64_t n, int64_t d, int dir,
                   double *logdet);
/* The data a family sees (normalize.c): resolves the "auto" choices of normalize, binarize and
 * dequantize for this data set (stored resolved in the configuration); prepares a loaded split
 * (fixed transforms; held-out splits also get their fixed random draw, then normalization);
 * the per-batch random transforms of training (stochastic binarization, dequantization). */
int cli_data_resolve(cli_cfg *cfg, const ug_dataset *ds);
int cli_data_per_batch(const cli_cfg *cfg);
int cli_data_prepare(const cli_cfg *cfg, ug_dataset *ds, int heldout);
void cli_data_batch(const cli_cfg *cfg, float *x, int64_t n, int64_t d, const int64_t *ids,
                    uint32_t epoch);
double cli_data_levels(const cli_cfg *cfg);   /* for bits/dim: 256 dequantized, else 1 */
int cli_model_cfg(const cli_cfg *cfg, int64_t data_dim, ug_model_cfg *mc);
int cli_plot_metrics(const char *metrics_path, const char *dir);

/* sample.c: the model of --ckpt or --model gmm:FILE; data <-> model space. */
int cli_load_model(cli_cfg *cfg, ug_model **out);


int cli_train(cli_cfg *cfg);
int cli_eval(cli_cfg *cfg);
int cli_sample(cli_cfg *cfg);
int cli_info(cli_cfg *cfg);
int cli_data(cli_cfg *cfg);
#endif
