/* options.h — ONE table of options drives the command-line flags, the --config file (JSON with
 * the same keys) and every --help text. Unknown keys are errors that suggest the closest one. */
#ifndef UG_CLI_OPTIONS_H
#define UG_CLI_OPTIONS_H
#include <stddef.h>
#include <stdint.h>

enum {  /* subcommands, as bits so an option can belong to several */
    CMD_TRAIN = 1 << 0, CMD_SAMPLE = 1 << 1, CMD_EVAL = 1 << 2, CMD_INFO = 1 << 3,
    CMD_DATA = 1 << 4, CMD_ALL = 0xff
};

typedef enum { OPT_INT, OPT_FLOAT, OPT_STRING, OPT_BOOL } opt_type;

typedef struct cli_cfg {
    /* common */
    int threads;
    int64_t seed;
    char *config;
    char *out;
    char *data;
    int64_t n;
    int json;
    char *ckpt;
    /* model definition (stored in checkpoints) */
    char *family, *formulation, *param, *model, *t_sampler, *normalize, *data_mean, *data_std;
    char *hidden, *cond;
    int64_t depth, classes, data_dim, channels, height, width, noisy;
    /* likelihood families (flow, ar, vae) and their data */
    char *prior, *mask_mode, *order, *decoder, *binarize, *dequantize;
    int64_t couplings, levels, masks, direct, latent;
    double sigma_data, p_mean, p_std, shift, p_uncond;
    /* the diffusion U-Net */
    int64_t unet_ch, unet_blocks, unet_heads;
    char *unet_mult, *unet_attn;
    double dropout;
    /* training */
    int64_t steps, batch, warmup, log_every, save_every;
    double lr, ema, grad_clip, weight_decay;
    int64_t adamw;
    char *lr_schedule;
    int64_t valid_every, patience, valid_n;
    /* crash safety (resume.c, guard.c) */
    char *resume;
    int64_t keep, max_bad_steps;
    /* sampling */
    char *sampler, *schedule, *sample_formulation, *compat, *solver_type, *var, *sigmas, *init_noise;
    int64_t sample_steps, corrector_steps, steps_offset, set_alpha_to_one, sample_batch;
    double sigma_min, sigma_max, rho, eta, s_churn, s_tmin, s_tmax, s_noise, snr, sample_shift;
    int print_grid, use_ema, reconstruct;
    double temperature;
    int64_t class_label;
    double cfg_scale, guidance_scale;
    char *guidance_classifier;
    /* evaluation */
    int nll, vlb;
    char *vlb_var;
    int64_t vlb_steps;
    char *metrics, *split, *divergence, *classifier;
    double rtol, atol;
    int64_t probes, swd_dirs, ensemble, iwae_k;
} cli_cfg;

typedef struct {
    const char *key;       /* flag without dashes, also the config-file key */
    opt_type type;
    size_t offset;         /* into cli_cfg */
    const char *def;       /* default as text (NULL: unset) */
    unsigned cmds;         /* subcommands that accept it */
    int model;             /* 1: defines the model; restored from a checkpoint's config */
    const char *help;
} opt_def;

extern const opt_def cli_options[];
extern const int cli_num_options;

/* Fills cfg with defaults, then the --config file (if any), then the flags (flags win).
 * Returns 0, or 2 for a usage error (message in err). */
int cli_parse(int cmd, const char *cmd_name, int argc, char **argv, cli_cfg *cfg, char *err,
              size_t errlen);
/* cli_parse with a stored configuration (JSON text, e.g. a checkpoint's) applied between the
 * defaults and the --config file: `train --resume DIR` continues the run as it was configured,
 * and the flags given now still win. Its "out" and "resume" keys are ignored. */
int cli_parse_base(int cmd, const char *cmd_name, int argc, char **argv, const char *base_json,
                   const char *base_what, cli_cfg *cfg, char *err, size_t errlen);
/* check.c: every numeric option inside its valid range; 0, or 2 with a message in err. */
int cli_check_ranges(int cmd, const cli_cfg *cfg, char *err, size_t errlen);
void cli_cfg_free(cli_cfg *cfg);
/* The resolved configuration as one JSON object (malloc'd), for config.json and checkpoints. */
char *cli_cfg_to_json(int cmd, const cli_cfg *cfg);
/* Applies the model-defining keys of a stored configuration (JSON text) to cfg. */
int cli_cfg_apply_model_json(const char *json, const char *what, cli_cfg *cfg, char *err,
                             size_t errlen);
void cli_print_help(int cmd, const char *cmd_name, const char *summary);
/* Closest option name valid for cmd (edit distance), or NULL when nothing is close. */
const char *cli_suggest(int cmd, const char *key);
#endif
