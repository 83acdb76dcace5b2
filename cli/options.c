/* options.c — the option table and its three readers (flags, config file, --help). */
#include "options.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFF(f) offsetof(cli_cfg, f)

const opt_def cli_options[] = {
    {"threads", OPT_INT, OFF(threads), "0", CMD_ALL, 0,
     "threads for kernels and BLAS (0: UNIGEN_THREADS or all cores)"},
    {"seed", OPT_INT, OFF(seed), "0", CMD_ALL, 0, "random seed"},
    {"config", OPT_STRING, OFF(config), NULL, CMD_ALL, 0,
     "JSON file of options (same keys as the flags; flags win)"},
    {"out", OPT_STRING, OFF(out), NULL, CMD_TRAIN | CMD_SAMPLE | CMD_DATA, 0,
     "output: run directory (train), .npy or .png file (sample, data)"},
    {"data", OPT_STRING, OFF(data), NULL, CMD_TRAIN | CMD_SAMPLE | CMD_EVAL | CMD_DATA, 0,
     "data set: moons, circles, 8gaussians, 25gaussians, checkerboard, swissroll, pinwheel, "
     "2spirals, gmm:FILE.json, fashion-mnist, mnist:DIR, idx:PATH, png:DIR"},
    {"n", OPT_INT, OFF(n), "0", CMD_TRAIN | CMD_SAMPLE | CMD_EVAL | CMD_DATA, 0,
     "number of examples (train: size of a toy data pool; 0: default)"},
    {"json", OPT_BOOL, OFF(json), "0", CMD_ALL, 0, "print one JSON line instead of a table"},
    {"ckpt", OPT_STRING, OFF(ckpt), NULL, CMD_SAMPLE | CMD_EVAL | CMD_INFO, 0, "checkpoint file"},
    /* model definition */
    {"family", OPT_STRING, OFF(family), "diffusion", CMD_TRAIN, 1,
     "model family: diffusion, classifier (features for fd/pr, guidance), flow (nice, "
     "nice-mnist, realnvp, glow), ar (fvsbn, nade, made), vae"},
    {"noisy", OPT_INT, OFF(noisy), "0", CMD_TRAIN, 1,
     "classifier: 1 = trained on noisy inputs x + sigma eps (for classifier guidance)"},
    {"formulation", OPT_STRING, OFF(formulation), "edm", CMD_TRAIN, 1,
     "diffusion formulation: vp, vp-cosine, vp-cont, ve, edm, fm"},
    {"param", OPT_STRING, OFF(param), "", CMD_TRAIN, 1,
     "parameterization: eps, x0, v, edm, velocity (default: the formulation's natural one)"},
    {"model", OPT_STRING, OFF(model), "auto", CMD_TRAIN | CMD_SAMPLE | CMD_EVAL, 1,
     "network: auto (unet-fmnist for images, mlp-toy for vectors), mlp-toy (the peer "
     "toy2d.py net), mlp (--hidden, --depth), unet-fmnist or unet-small (the peer unet.py net), unet (any "
     "channel count, --unet-*); flow: nice, nice-mnist (the peer nice.py net), realnvp, glow; ar: fvsbn, "
     "nade, made; vae: vae; sample/eval also take gmm:FILE.json, an exact Gaussian mixture"},
    {"data-dim", OPT_INT, OFF(data_dim), "0", CMD_TRAIN, 1,
     "size of one example (set from the data)"},
    {"channels", OPT_INT, OFF(channels), "0", CMD_TRAIN, 1, "image channels (set from the data)"},
    {"height", OPT_INT, OFF(height), "0", CMD_TRAIN, 1, "image height (set from the data)"},
    {"width", OPT_INT, OFF(width), "0", CMD_TRAIN, 1, "image width (set from the data)"},
    {"hidden", OPT_STRING, OFF(hidden), "", CMD_TRAIN, 1,
     "hidden width (--model mlp: 256; nade, made: 500; vae, flows: their own default); made, "
     "vae: a comma list for several layers, e.g. 500,500"},
    {"depth", OPT_INT, OFF(depth), "0", CMD_TRAIN, 1,
     "hidden layers (0: the model's default; --model mlp: 3)"},
    {"prior", OPT_STRING, OFF(prior), "", CMD_TRAIN, 1,
     "flow base distribution: gaussian, logistic (default: logistic for nice, else gaussian)"},
    {"couplings", OPT_INT, OFF(couplings), "0", CMD_TRAIN, 1,
     "flow: coupling layers (nice, realnvp) or steps per level (glow); 0: the model's default"},
    {"levels", OPT_INT, OFF(levels), "0", CMD_TRAIN, 1,
     "flow on images: scales of the multi-scale architecture (0: the model's default)"},
    {"masks", OPT_INT, OFF(masks), "1", CMD_TRAIN, 1,
     "made: connectivity masks trained over (order/connectivity-agnostic training for > 1)"},
    {"mask-mode", OPT_STRING, OFF(mask_mode), "resample", CMD_TRAIN, 1,
     "made with --masks > 1: resample (a mask drawn per minibatch) or cycle (mask step mod K)"},
    {"order", OPT_STRING, OFF(order), "natural", CMD_TRAIN, 1,
     "made: input ordering, natural or random"},
    {"direct", OPT_INT, OFF(direct), "0", CMD_TRAIN, 1,
     "made: 1 = direct input-output connections"},
    {"latent", OPT_INT, OFF(latent), "0", CMD_TRAIN, 1, "vae: latent dimension (0: 50)"},
    {"decoder", OPT_STRING, OFF(decoder), "", CMD_TRAIN, 1,
     "vae: bernoulli (binary data, the default) or gaussian"},
    {"binarize", OPT_STRING, OFF(binarize), "auto", CMD_TRAIN, 1,
     "binary data for ar and vae models: a threshold in (0, 1) (pixel > t), stochastic "
     "(pixel is 1 with probability its intensity, redrawn every epoch), none, or auto (0.5 for "
     "ar and bernoulli vae, none otherwise)"},
    {"dequantize", OPT_STRING, OFF(dequantize), "auto", CMD_TRAIN, 1,
     "uniform (x = (pixel + u) / 256, fresh u every epoch; held-out data with a fixed seed), "
     "none, or auto (uniform for flows on images, none otherwise)"},
    {"unet-ch", OPT_INT, OFF(unet_ch), "0", CMD_TRAIN, 1,
     "--model unet: base channels, a multiple of 8 (0: 32); the time embedding follows it "
     "(sinusoid ch, MLP 4 ch)"},
    {"unet-mult", OPT_STRING, OFF(unet_mult), "", CMD_TRAIN, 1,
     "--model unet: channel multiplier per level, e.g. 1,2,2 (the default); levels = their "
     "count, height and width divisible by 2^(levels - 1)"},
    {"unet-blocks", OPT_INT, OFF(unet_blocks), "0", CMD_TRAIN, 1,
     "--model unet: ResBlocks per level going down, one more going up (0: 1)"},
    {"unet-attn", OPT_STRING, OFF(unet_attn), "", CMD_TRAIN, 1,
     "--model unet: feature-map sizes with self-attention after every ResBlock, e.g. 14,7, or "
     "none (the default; the middle block always has attention)"},
    {"unet-heads", OPT_INT, OFF(unet_heads), "0", CMD_TRAIN, 1,
     "--model unet: attention heads (0: 1)"},
    {"dropout", OPT_FLOAT, OFF(dropout), "0", CMD_TRAIN, 1,
     "dropout while training: in every U-Net ResBlock (also unet-fmnist / unet-small), or on "
     "made's hidden units"},
    {"classes", OPT_INT, OFF(classes), "0", CMD_TRAIN, 1,
     "class-conditional with this many classes (0: unconditional)"},
    {"cond", OPT_STRING, OFF(cond), "none", CMD_TRAIN, 0,
     "conditioning: none, or class (a learned label embedding; --classes from the data's labels "
     "unless given)"},
    {"sigma-data", OPT_FLOAT, OFF(sigma_data), "0.5", CMD_TRAIN, 1, "data standard deviation sd"},
    {"t-sampler", OPT_STRING, OFF(t_sampler), "default", CMD_TRAIN, 1,
     "training noise levels: default (SPEC section 3), uniform, lognormal, logitnormal"},
    {"p-mean", OPT_FLOAT, OFF(p_mean), "nan", CMD_TRAIN, 1,
     "mean of the lognormal/logitnormal sampler (nan: -1.2 / 0)"},
    {"p-std", OPT_FLOAT, OFF(p_std), "nan", CMD_TRAIN, 1,
     "std of the lognormal/logitnormal sampler (nan: 1.2 / 1)"},
    {"shift", OPT_FLOAT, OFF(shift), "1", CMD_TRAIN, 1, "SD3 timestep shift"},
    {"p-uncond", OPT_FLOAT, OFF(p_uncond), "0.1", CMD_TRAIN, 1,
     "probability of the null label (classifier-free guidance); also --cond-drop"},
    {"normalize", OPT_STRING, OFF(normalize), "auto", CMD_TRAIN, 1,
     "auto: pm1 for images, none for vectors; none: the data as given; pm1: pixels [0, 1] to "
     "[-1, 1]; std: each coordinate to mean 0 and std sigma-data (samples and likelihoods are "
     "mapped back to data space)"},
    {"data-mean", OPT_STRING, OFF(data_mean), "", CMD_TRAIN, 1,
     "per-coordinate data mean (set by --normalize std)"},
    {"data-std", OPT_STRING, OFF(data_std), "", CMD_TRAIN, 1,
     "per-coordinate data std (set by --normalize std)"},
    /* training */
    {"steps", OPT_INT, OFF(steps), "2000", CMD_TRAIN, 0, "training steps"},
    {"batch", OPT_INT, OFF(batch), "1024", CMD_TRAIN, 0, "batch size"},
    {"lr", OPT_FLOAT, OFF(lr), "1e-3", CMD_TRAIN, 0, "Adam learning rate"},
    {"weight-decay", OPT_FLOAT, OFF(weight_decay), "0", CMD_TRAIN, 0,
     "weight decay: Adam adds wd * w to the gradient (torch.optim.Adam); with --adamw 1 the "
     "decoupled decay w -= lr wd w (torch.optim.AdamW)"},
    {"adamw", OPT_INT, OFF(adamw), "0", CMD_TRAIN, 0, "1: decoupled weight decay (AdamW)"},
    {"lr-schedule", OPT_STRING, OFF(lr_schedule), "constant", CMD_TRAIN, 0,
     "constant, warmup, cosine"},
    {"warmup", OPT_INT, OFF(warmup), "0", CMD_TRAIN, 0, "linear warm-up steps"},
    {"ema", OPT_FLOAT, OFF(ema), "nan", CMD_TRAIN, 0,
     "EMA decay of the weights (0: off; nan: 0.999 for diffusion and classifiers, 0 for flow, "
     "ar and vae)"},
    {"grad-clip", OPT_FLOAT, OFF(grad_clip), "0", CMD_TRAIN, 0,
     "clip the global gradient norm to this (0: off)"},
    {"log-every", OPT_INT, OFF(log_every), "50", CMD_TRAIN, 0, "steps between metrics lines"},
    {"save-every", OPT_INT, OFF(save_every), "0", CMD_TRAIN, 0,
     "also keep a snapshot checkpoint every N steps (0: only the latest)"},
    {"valid-every", OPT_INT, OFF(valid_every), "0", CMD_TRAIN, 0,
     "flow, ar, vae: NLL of the validation split every N steps (0: off); the best weights are "
     "kept in best.safetensors"},
    {"valid-n", OPT_INT, OFF(valid_n), "0", CMD_TRAIN, 0,
     "examples of the validation split used (0: all)"},
    {"patience", OPT_INT, OFF(patience), "0", CMD_TRAIN, 0,
     "early stopping: stop after this many validations without a better NLL (0: never)"},
    {"keep", OPT_INT, OFF(keep), "0", CMD_TRAIN, 0,
     "with --save-every: keep only the N newest snapshots (0: all)"},
    {"resume", OPT_STRING, OFF(resume), NULL, CMD_TRAIN, 0,
     "continue the run in this directory from its latest checkpoint (weights, Adam, EMA, step, "
     "data order); its stored configuration applies, flags given now win (e.g. more --steps; a "
     "cosine --lr-schedule then follows the new length)"},
    {"max-bad-steps", OPT_INT, OFF(max_bad_steps), "5", CMD_TRAIN, 0,
     "stop after this many consecutive steps with a non-finite loss or gradient (each is "
     "skipped: weights, Adam and EMA stay as they were)"},
    /* sampling */
    {"sampler", OPT_STRING, OFF(sampler), "heun", CMD_SAMPLE | CMD_EVAL, 0,
     "euler, heun, edm-sde, euler-a, dpm2, lms, dpmpp-2s-a, dpmpp-2m, dpmpp-2m-sde, "
     "dpmpp-3m-sde, ddim, ddpm, em, pc, fm-euler, fm-heun"},
    {"steps", OPT_INT, OFF(sample_steps), "18", CMD_SAMPLE | CMD_EVAL, 0, "sampler steps"},
    {"schedule", OPT_STRING, OFF(schedule), "", CMD_SAMPLE | CMD_EVAL, 0,
     "time grid: karras, exponential, vp, ve, linear, iddpm, leading, trailing, linspace, fm, "
     "auto (default: karras; auto for ddim, ddpm, fm-*)"},
    {"formulation", OPT_STRING, OFF(sample_formulation), "", CMD_SAMPLE, 0,
     "with --model gmm:...: sample in this formulation (e.g. vp for ddim/ddpm; default edm)"},
    {"sigma-min", OPT_FLOAT, OFF(sigma_min), "0", CMD_SAMPLE | CMD_EVAL, 0,
     "smallest sigma of the grid (0: the formulation's)"},
    {"sigma-max", OPT_FLOAT, OFF(sigma_max), "0", CMD_SAMPLE | CMD_EVAL, 0,
     "largest sigma of the grid (0: the formulation's, at most 160)"},
    {"rho", OPT_FLOAT, OFF(rho), "7", CMD_SAMPLE | CMD_EVAL, 0, "Karras grid exponent"},
    {"eta", OPT_FLOAT, OFF(eta), "nan", CMD_SAMPLE | CMD_EVAL, 0,
     "stochasticity of ancestral/SDE samplers, 0 = deterministic (nan: ddim 0, others 1)"},
    {"s-churn", OPT_FLOAT, OFF(s_churn), "0", CMD_SAMPLE, 0, "edm-sde: S_churn"},
    {"s-tmin", OPT_FLOAT, OFF(s_tmin), "0", CMD_SAMPLE, 0, "edm-sde: S_tmin"},
    {"s-tmax", OPT_FLOAT, OFF(s_tmax), "0", CMD_SAMPLE, 0, "edm-sde: S_tmax (0: inf)"},
    {"s-noise", OPT_FLOAT, OFF(s_noise), "1", CMD_SAMPLE, 0, "noise inflation S_noise"},
    {"solver-type", OPT_STRING, OFF(solver_type), "midpoint", CMD_SAMPLE, 0,
     "dpmpp-2m-sde: midpoint, heun"},
    {"var", OPT_STRING, OFF(var), "beta-tilde", CMD_SAMPLE, 0, "ddpm variance: beta, beta-tilde"},
    {"snr", OPT_FLOAT, OFF(snr), "0.16", CMD_SAMPLE, 0, "pc: Langevin signal-to-noise ratio"},
    {"corrector-steps", OPT_INT, OFF(corrector_steps), "1", CMD_SAMPLE, 0, "pc: Langevin steps"},
    {"steps-offset", OPT_INT, OFF(steps_offset), "0", CMD_SAMPLE, 0,
     "leading spacing: diffusers' steps_offset"},
    {"set-alpha-to-one", OPT_INT, OFF(set_alpha_to_one), "1", CMD_SAMPLE, 0,
     "ddim/ddpm: 1 = the last step reaches abar = 1 (diffusers' set_alpha_to_one)"},
    {"shift", OPT_FLOAT, OFF(sample_shift), "1", CMD_SAMPLE, 0, "fm grid: timestep shift"},
    {"compat", OPT_STRING, OFF(compat), "none", CMD_SAMPLE, 0,
     "none: everything in double; diffusers: copy diffusers' float32 tables and casts "
     "(ddim, ddpm, fm-euler) to reproduce its outputs bit for bit"},
    {"sigmas", OPT_STRING, OFF(sigmas), NULL, CMD_SAMPLE, 0,
     "explicit grid: a .npy of descending sigmas (a final 0 is appended)"},
    {"init-noise", OPT_STRING, OFF(init_noise), NULL, CMD_SAMPLE, 0,
     "(n, d) .npy of standard normal start noise (sets --n)"},
    {"print-grid", OPT_BOOL, OFF(print_grid), "0", CMD_SAMPLE, 0,
     "print the grid and the sigma of every network evaluation"},
    {"use-ema", OPT_BOOL, OFF(use_ema), "1", CMD_SAMPLE | CMD_EVAL, 0,
     "use the EMA weights of a checkpoint"},
    {"temperature", OPT_FLOAT, OFF(temperature), "1", CMD_SAMPLE, 0,
     "flow, vae: base noise z ~ T p(z) (N(0, T^2 I) for a Gaussian prior)"},
    {"reconstruct", OPT_BOOL, OFF(reconstruct), "0", CMD_SAMPLE, 0,
     "vae: a grid of held-out examples (--data) beside their reconstructions instead of samples"},
    /* evaluation */
    {"nll", OPT_BOOL, OFF(nll), "0", CMD_EVAL, 0,
     "negative log-likelihood of held-out data (probability-flow ODE for diffusion models)"},
    {"vlb", OPT_BOOL, OFF(vlb), "0", CMD_EVAL, 0,
     "the DDPM variational bound (vp, vp-cosine models): discretized decoder for images, "
     "Gaussian decoder for vectors"},
    {"vlb-var", OPT_STRING, OFF(vlb_var), "beta-tilde", CMD_EVAL, 0,
     "reverse-process variance of the bound: beta-tilde (DDPM's published numbers), beta (tighter)"},
    {"vlb-steps", OPT_INT, OFF(vlb_steps), "0", CMD_EVAL, 0,
     "0: all T terms per example; k: the decoder term and k sampled steps (unbiased)"},
    {"metrics", OPT_STRING, OFF(metrics), "", CMD_EVAL, 0,
     "comma list of two-sample metrics between --n samples and held-out data: mmd, energy, "
     "swd (raw coordinates), fd, pr (classifier features with --classifier, else raw)"},
    {"split", OPT_STRING, OFF(split), "test", CMD_EVAL, 0, "held-out data: test, valid (sets that have one) or train"},
    {"classifier", OPT_STRING, OFF(classifier), NULL, CMD_EVAL, 0,
     "checkpoint of a classifier trained on the same data (unigen train --family classifier): "
     "fd and pr are computed in its feature space, its test accuracy is reported beside them"},
    {"ensemble", OPT_INT, OFF(ensemble), "0", CMD_EVAL, 0,
     "made: NLL of the ensemble of this many masks (0: the masks it was trained with)"},
    {"iwae-k", OPT_INT, OFF(iwae_k), "5000", CMD_EVAL, 0,
     "vae: importance samples of the IWAE bound on the NLL"},
    {"rtol", OPT_FLOAT, OFF(rtol), "1e-5", CMD_EVAL, 0, "ODE relative tolerance (RK45)"},
    {"atol", OPT_FLOAT, OFF(atol), "1e-5", CMD_EVAL, 0, "ODE absolute tolerance (RK45)"},
    {"divergence", OPT_STRING, OFF(divergence), "auto", CMD_EVAL, 0,
     "auto (exact for d <= 64), exact, hutchinson"},
    {"probes", OPT_INT, OFF(probes), "1", CMD_EVAL, 0, "Hutchinson probes per point"},
    {"swd-dirs", OPT_INT, OFF(swd_dirs), "256", CMD_EVAL, 0, "sliced Wasserstein directions"},
    {"class", OPT_INT, OFF(class_label), "-1", CMD_SAMPLE | CMD_EVAL, 0,
     "class-conditional models: the label of every sample (-1: one row per class)"},
    {"cfg-scale", OPT_FLOAT, OFF(cfg_scale), "1", CMD_SAMPLE | CMD_EVAL, 0,
     "classifier-free guidance w: D(null) + w (D(y) - D(null)) (1: none, 0: unconditional); "
     "also --guidance"},
    {"guidance-classifier", OPT_STRING, OFF(guidance_classifier), NULL, CMD_SAMPLE | CMD_EVAL, 0,
     "checkpoint of a noisy classifier (train --family classifier --noisy 1) for classifier "
     "guidance; needs --class; also --classifier"},
    {"guidance-scale", OPT_FLOAT, OFF(guidance_scale), "1", CMD_SAMPLE | CMD_EVAL, 0,
     "classifier guidance scale s: D + s sigma^2 grad log p(y | x, sigma); also "
     "--classifier-scale"},
    {"batch", OPT_INT, OFF(sample_batch), "0", CMD_SAMPLE, 0,
     "points per network batch (0: all at once); results do not depend on it"},
};
const int cli_num_options = (int)(sizeof cli_options / sizeof *cli_options);

/* The option named key that belongs to cmd (a key may mean different things to different
 * commands, e.g. --steps); failing that, any option of that name (for error messages). */
/* Other names for options: the spelling of the issues and of diffusers/k-diffusion users. */
static const struct { const char *alias, *key; unsigned cmds; } opt_aliases[] = {
    {"cond-drop", "p-uncond", CMD_TRAIN},
    {"guidance", "cfg-scale", CMD_SAMPLE | CMD_EVAL},
    {"classifier", "guidance-classifier", CMD_SAMPLE},
    {"classifier-scale", "guidance-scale", CMD_SAMPLE | CMD_EVAL},
};

static const opt_def *find_opt_for(const char *key, int cmd) {
    const opt_def *any = NULL;
    for (size_t a = 0; a < sizeof opt_aliases / sizeof *opt_aliases; a++)
        if ((opt_aliases[a].cmds & (unsigned)cmd) && !strcmp(key, opt_aliases[a].alias)) {
            key = opt_aliases[a].key;
            break;
        }
    for (int i = 0; i < cli_num_options; i++)
        if (strcmp(cli_options[i].key, key) == 0) {
            if (cli_options[i].cmds & (unsigned)cmd) return &cli_options[i];
            if (!any) any = &cli_options[i];
        }
    return any;
}
#define find_opt(key) find_opt_for((key), cmd)

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

const char *cli_suggest(int cmd, const char *key) {
    const char *best = NULL;
    int bestd = INT_MAX;
    for (int i = 0; i < cli_num_options; i++) {
        if (!(cli_options[i].cmds & (unsigned)cmd)) continue;
        int d = edit_distance(key, cli_options[i].key);
        if (d < bestd) { bestd = d; best = cli_options[i].key; }
    }
    int limit = (int)strlen(key) / 3 + 1;
    return bestd <= (limit < 2 ? 2 : limit) ? best : NULL;
}

/* Stores text into the field; 0 ok, else a message in err. */
static int set_value(const opt_def *o, const char *text, cli_cfg *cfg, const char *where,
                     char *err, size_t errlen) {
    char *field = (char *)cfg + o->offset;
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case OPT_INT: {
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno) {
            snprintf(err, errlen, "%s: --%s expects an integer, found '%s'", where, o->key, text);
            return 2;
        }
        if (o->offset == OFF(threads)) {
            if (v < 0 || v > 1024) {
                snprintf(err, errlen, "%s: --threads expects 0..1024, found %lld", where, v);
                return 2;
            }
            *(int *)field = (int)v;
        } else {
            *(int64_t *)field = v;
        }
        return 0;
    }
    case OPT_FLOAT: {
        double v = strtod(text, &end);
        /* "nan" is allowed: it stands for "the method's own default". */
        if (!*text || *end || errno || (!isfinite(v) && strcmp(text, "nan") != 0)) {
            snprintf(err, errlen, "%s: --%s expects a finite number, found '%s'", where, o->key,
                     text);
            return 2;
        }
        *(double *)field = v;
        return 0;
    }
    case OPT_BOOL:
        if (!strcmp(text, "1") || !strcmp(text, "true")) *(int *)field = 1;
        else if (!strcmp(text, "0") || !strcmp(text, "false")) *(int *)field = 0;
        else {
            snprintf(err, errlen, "%s: --%s expects true/false, found '%s'", where, o->key, text);
            return 2;
        }
        return 0;
    case OPT_STRING: {
        char **s = (char **)field;
        free(*s);
        *s = strdup(text);
        return 0;
    }
    }
    return 2;
}

static void unknown_key(int cmd, const char *cmd_name, const char *key, const char *where,
                        char *err, size_t errlen) {
    const char *s = cli_suggest(cmd, key);
    const opt_def *o = find_opt(key);
    if (o)
        snprintf(err, errlen, "%s: --%s is not an option of 'unigen %s'", where, key, cmd_name);
    else if (s)
        snprintf(err, errlen, "%s: unknown option --%s (did you mean --%s?)", where, key, s);
    else
        snprintf(err, errlen, "%s: unknown option --%s (see 'unigen %s --help')", where, key,
                 cmd_name);
}

/* The text of a JSON config value for option o (strings as is, booleans, numbers printed
 * exactly; integers must be whole), or NULL with a message naming the key. */
static const char *json_text(const cJSON *it, const opt_def *o, char *text, size_t n,
                             const char *where, char *err, size_t errlen) {
    if (cJSON_IsString(it)) return it->valuestring;
    if (cJSON_IsBool(it)) return cJSON_IsTrue(it) ? "true" : "false";
    if (cJSON_IsNumber(it)) {
        if (o->type == OPT_INT || o->type == OPT_BOOL) {
            if (it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 9e15) {
                snprintf(err, errlen, "%s: key \"%s\" expects an integer, found %g", where,
                         it->string, it->valuedouble);
                return NULL;
            }
            snprintf(text, n, "%.0f", it->valuedouble);
        } else {
            snprintf(text, n, "%.17g", it->valuedouble);
        }
        return text;
    }
    snprintf(err, errlen, "%s: key \"%s\" must be a string, number or boolean", where, it->string);
    return NULL;
}

/* Applies every key of a JSON object as an option of cmd. skip_run_keys: a stored run
 * configuration, whose "out" and "resume" belong to the run that wrote it. */
static int apply_json(int cmd, const char *cmd_name, const char *buf, size_t len, const char *what,
                      int skip_run_keys, cli_cfg *cfg, char *err, size_t errlen) {
    cJSON *root = cJSON_ParseWithLength(buf, len);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: config file is not a JSON object%s", what,
                 root ? "" : " (malformed JSON)");
        cJSON_Delete(root);
        return 1;
    }
    int rc = 0;
    for (cJSON *it = root->child; it && !rc; it = it->next) {
        const opt_def *o = find_opt(it->string);
        if (skip_run_keys && o && (o->offset == OFF(out) || o->offset == OFF(resume))) continue;
        if (!o || !(o->cmds & (unsigned)cmd) || o->offset == OFF(config) ||
            o->offset == OFF(resume)) {
            unknown_key(cmd, cmd_name, it->string, what, err, errlen);
            rc = 1;
            break;
        }
        char text[64];
        const char *val = json_text(it, o, text, sizeof text, what, err, errlen);
        if (!val) { rc = 1; break; }
        if (set_value(o, val, cfg, what, err, errlen)) rc = 1;
    }
    cJSON_Delete(root);
    return rc;
}

static int load_config(int cmd, const char *cmd_name, const char *path, cli_cfg *cfg, char *err,
                       size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open config file: %s", path, strerror(errno));
        return 1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 8192;
            if (cap > ((size_t)16 << 20)) {
                snprintf(err, errlen, "%s: config file larger than 16 MiB", path);
                free(buf); fclose(f);
                return 1;
            }
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); snprintf(err, errlen, "out of memory"); return 1; }
            buf = nb;
        }
        size_t k = fread(buf + len, 1, 4096, f);
        len += k;
        if (k < 4096) break;
    }
    fclose(f);
    buf[len] = 0;
    int rc = apply_json(cmd, cmd_name, buf, len, path, 0, cfg, err, errlen);
    free(buf);
    return rc;
}

void cli_cfg_free(cli_cfg *cfg) {
    for (int i = 0; i < cli_num_options; i++)
        if (cli_options[i].type == OPT_STRING) {
            char **s = (char **)((char *)cfg + cli_options[i].offset);
            free(*s);
            *s = NULL;
        }
}

int cli_parse(int cmd, const char *cmd_name, int argc, char **argv, cli_cfg *cfg, char *err,
              size_t errlen) {
    return cli_parse_base(cmd, cmd_name, argc, argv, NULL, NULL, cfg, err, errlen);
}

int cli_parse_base(int cmd, const char *cmd_name, int argc, char **argv, const char *base_json,
                   const char *base_what, cli_cfg *cfg, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < cli_num_options; i++)
        if (cli_options[i].def && (cli_options[i].cmds & (unsigned)cmd))
            set_value(&cli_options[i], cli_options[i].def, cfg, "default", err, errlen);
    if (base_json) {
        int rc = apply_json(cmd, cmd_name, base_json, strlen(base_json), base_what, 1, cfg, err,
                            errlen);
        if (rc) return rc;
    }
    /* The config file first, so that flags override it whatever their order. */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--config=", 9) || (!strcmp(a, "--config") && i + 1 < argc)) {
            const char *path = a[8] == '=' ? a + 9 : argv[i + 1];
            int rc = load_config(cmd, cmd_name, path, cfg, err, errlen);
            if (rc) return rc;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            snprintf(err, errlen, "unexpected argument '%s' (options start with --)", a);
            return 2;
        }
        char key[128];
        const char *eq = strchr(a + 2, '=');
        size_t kl = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (kl >= sizeof key) kl = sizeof key - 1;
        memcpy(key, a + 2, kl);
        key[kl] = 0;
        const opt_def *o = find_opt(key);
        if (!o || !(o->cmds & (unsigned)cmd)) {
            unknown_key(cmd, cmd_name, key, "command line", err, errlen);
            return 2;
        }
        const char *val;
        if (eq) val = eq + 1;
        else if (o->type == OPT_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0 ||
                                         (strcmp(argv[i + 1], "true") && strcmp(argv[i + 1], "false") &&
                                          strcmp(argv[i + 1], "0") && strcmp(argv[i + 1], "1"))))
            val = "true";
        else if (i + 1 < argc) val = argv[++i];
        else {
            snprintf(err, errlen, "--%s needs a value", key);
            return 2;
        }
        if (o->offset == OFF(config)) continue;   /* already read */
        int rc = set_value(o, val, cfg, "command line", err, errlen);
        if (rc) return rc;
    }
    return cli_check_ranges(cmd, cfg, err, errlen);
}

void cli_print_help(int cmd, const char *cmd_name, const char *summary) {
    printf("usage: unigen %s [options]\n\n%s\n\noptions:\n", cmd_name, summary);
    for (int i = 0; i < cli_num_options; i++) {
        const opt_def *o = &cli_options[i];
        if (!(o->cmds & (unsigned)cmd)) continue;
        const char *meta = o->type == OPT_INT ? " N" : o->type == OPT_FLOAT ? " X"
                         : o->type == OPT_STRING ? " S" : "";
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s", o->key, meta);
        printf("  %-24s %s", flag, o->help);
        if (o->def && o->type != OPT_BOOL) printf(" (default %s)", o->def);
        printf("\n");
    }
}

char *cli_cfg_to_json(int cmd, const cli_cfg *cfg) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < cli_num_options; i++) {
        const opt_def *d = &cli_options[i];
        if (!(d->cmds & (unsigned)cmd) || d->offset == OFF(config) || d->offset == OFF(resume))
            continue;
        const char *field = (const char *)cfg + d->offset;
        switch (d->type) {
        case OPT_INT:
            cJSON_AddNumberToObject(o, d->key, d->offset == OFF(threads)
                                                   ? (double)*(const int *)field
                                                   : (double)*(const int64_t *)field);
            break;
        case OPT_FLOAT: {
            double v = *(const double *)field;
            if (isnan(v)) cJSON_AddStringToObject(o, d->key, "nan");
            else cJSON_AddNumberToObject(o, d->key, v);
            break;
        }
        case OPT_BOOL: cJSON_AddBoolToObject(o, d->key, *(const int *)field); break;
        case OPT_STRING: {
            const char *v = *(char *const *)field;
            if (v) cJSON_AddStringToObject(o, d->key, v);
            else cJSON_AddNullToObject(o, d->key);
            break;
        }
        }
    }
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

int cli_cfg_apply_model_json(const char *json, const char *what, cli_cfg *cfg, char *err,
                             size_t errlen) {
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: the stored configuration is not a JSON object", what);
        cJSON_Delete(root);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < cli_num_options && !rc; i++) {
        const opt_def *d = &cli_options[i];
        if (!d->model) continue;
        cJSON *it = cJSON_GetObjectItemCaseSensitive(root, d->key);
        if (!it || cJSON_IsNull(it)) continue;
        char text[64];
        const char *val = json_text(it, d, text, sizeof text, what, err, errlen);
        if (!val) { rc = 1; break; }
        rc = set_value(d, val, cfg, what, err, errlen);
    }
    cJSON_Delete(root);
    return rc;
}
