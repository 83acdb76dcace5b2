/* cli.h — shared by the subcommands of the `unigen` program. Includes only the public API. */
#ifndef UG_CLI_H
#define UG_CLI_H
#include "options.h"
#include "unigen.h"
#include <stdio.h>

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
/* A training set of 8-bit pixels stays bytes (normalize none or pm1; std needs the statistics
 * of the floats): each drawn batch then gets cli_data_prepare's maps, the fixed threshold and
 * x_model = a x + b with the coefficients of cli_norm_affine, the same numbers as on the set. */
int cli_data_keeps_bytes(const cli_cfg *cfg);
void cli_data_prepare_batch(const cli_cfg *cfg, float *x, int64_t n, int64_t d, const double *a,
                            const double *b);
void cli_data_batch(const cli_cfg *cfg, float *x, int64_t n, int64_t d, const int64_t *ids,
                    uint32_t epoch);
double cli_data_levels(const cli_cfg *cfg);   /* for bits/dim: 256 dequantized, else 1 */
int cli_model_cfg(const cli_cfg *cfg, int64_t data_dim, ug_model_cfg *mc);
int cli_plot_metrics(const char *metrics_path, const char *dir);

/* dist.c: data-parallel train, sample and eval over ranks (a world of one: plain calls).
 * Training: every rank takes the whole global batch from the loader and keeps its rows of
 * ug_dist_range; cli_dist_grad scales the gradient of its mean loss by nloc / nglob and sums it
 * over the ranks. The others split n examples by index and gather every row on every rank. */
int cli_dist_root(void);   /* rank 0: the one that writes files */
int cli_dist_check_batch(int64_t batch, int64_t n);
int cli_dist_grad(ug_params *ps, int64_t nloc, int64_t nglob);
int cli_dist_sum(double *v, int64_t n);
int cli_dist_nll(ug_model *m, const ug_nll_cfg *c, int64_t n, const float *x, int64_t d,
                 double *nll);
/* Labels and guidance settings for n samples (sample.c); see there. */
int cli_guidance_labels(const cli_cfg *cfg, ug_model *m, ug_sample_cfg *sc, int64_t n,
                        int32_t **labels, ug_model **gcls, cli_cfg *gc);
int cli_dist_sample(ug_model *m, const ug_sample_cfg *c, int64_t n, int64_t chunk, int64_t d,
                    const int32_t *labels, const double *noise, double *x, int64_t *nfe);
int cli_dist_loglik(ug_model *m, const ug_lik_cfg *lc, const ug_div_cfg *dc, int64_t n,
                    int64_t d, const double *x, double *logp, ug_ode_stats *st);
int cli_dist_vlb(ug_model *m, const ug_vlb_cfg *vc, int64_t n, int64_t d, const double *x0,
                 double *nats);
/* resume.c: run directories that survive kills (see the file's comment). */
int cli_resume_config(int cmd, const char *cmd_name, int argc, char **argv, cli_cfg *cfg);
int cli_run_check_out(const cli_cfg *cfg);   /* a fresh run refuses a DIR with checkpoints */
int cli_resume_load(const cli_cfg *cfg, ug_params *ps, ug_ema *ema, ug_adam *adam, ug_loader *L,
                    int64_t *start_step);   /* step 0 without --resume; -1: run complete */
FILE *cli_metrics_open(const char *dir, int64_t resumed_step);   /* -1: a fresh file */
/* snapshot 1: checkpoint-STEP.safetensors and checkpoint.safetensors; 0: the latter only. */
int cli_ckpt_write(const cli_cfg *cfg, const char *cfg_json, int64_t step, ug_params *ps,
                   const ug_ema *ema, const ug_adam *adam, const ug_loader *L, int snapshot,
                   char *latest, size_t latest_n);
/* guard.c: signals, non-finite steps, memory. */
typedef struct cli_guard {
    int64_t bad_run, bad_total;      /* consecutive / all skipped steps */
    int64_t good_step, good_pos;     /* state after the last good step */
    uint32_t good_epoch;
    double last_bad;
    char why[32];
} cli_guard;
void cli_signals_install(void);
int cli_stop_signal(void);   /* the signal received, or 0 */
int cli_train_interrupted(const cli_cfg *cfg, const char *cfg_json, int64_t step, ug_params *ps,
                          const ug_ema *ema, const ug_adam *adam, const ug_loader *L);
void cli_guard_init(cli_guard *g, int64_t step, const ug_loader *L);
/* 1: apply the step; 0: skip it (non-finite loss or gradient norm). */
int cli_guard_step(cli_guard *g, int64_t step, int loss_ok, double loss, double grad_norm,
                   const ug_loader *L);
int cli_guard_give_up(const cli_guard *g, const cli_cfg *cfg, const char *cfg_json, int64_t step,
                      ug_params *ps, const ug_ema *ema, const ug_adam *adam, const ug_loader *L);
int cli_check_memory(const cli_cfg *cfg, const ug_dataset *ds, ug_model *model);
int cli_check_sample_memory(ug_model *model, int64_t n, int64_t d, int64_t batch);

/* sample.c: the model of --ckpt or --model gmm:FILE; data <-> model space. */
int cli_load_model(cli_cfg *cfg, ug_model **out);


int cli_train(cli_cfg *cfg);
int cli_eval(cli_cfg *cfg);
int cli_sample(cli_cfg *cfg);
int cli_info(cli_cfg *cfg);
int cli_data(cli_cfg *cfg);
#endif
