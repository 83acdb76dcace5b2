/* guard.c — what stops a training run, and how it stops:
 *  - SIGINT / SIGTERM: the handler only sets a flag; the loop finishes the step it is in, saves
 *    checkpoint.safetensors and exits with 128 + the signal (130, 143), as shells expect of a
 *    program killed by it. A second signal during that save ends the process at once (the
 *    previous checkpoint stays intact: saves are atomic).
 *  - Non-finite numbers: a step whose loss or global gradient norm is NaN or Inf is skipped, so
 *    weights, Adam moments and t, and the EMA keep their last finite values. After
 *    --max-bad-steps consecutive skips the run stops (exit status 1) and checkpoint.safetensors
 *    gets the last good state: the weights are untouched since, and the step and data position
 *    are those where the bad streak began, so a resume (with e.g. a lower --lr) replays it.
 *  - Memory: before the first step (or the first sample), what training will still allocate (Adam m and v, the EMA,
 *    the activations of one batch, measured on a few examples and scaled) is compared with what
 *    the system and the process limits leave (MemAvailable, RLIMIT_AS, RLIMIT_DATA), so a run
 *    that cannot fit is refused with the numbers instead of being killed by the OOM killer. */
#include "cli.h"
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop_signal;

static void on_stop_signal(int sig) {
    if (g_stop_signal) {   /* second signal: do not wait for the save */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_stop_signal = sig;
}

void cli_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;   /* writes in progress complete; the loop polls the flag */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_stop_signal(void) { return g_stop_signal; }

int cli_train_interrupted(const cli_cfg *cfg, const char *cfg_json, int64_t step, ug_params *ps,
                          const ug_ema *ema, const ug_adam *adam, const ug_loader *L) {
    int sig = g_stop_signal;
    char latest[4400];
    if (cli_ckpt_write(cfg, cfg_json, step, ps, ema, adam, L, 0, latest, sizeof latest)) return 1;
    fprintf(stderr, "unigen: %s at step %lld of %lld; saved %s (continue with --resume %s)\n",
            sig == SIGINT ? "interrupted" : "terminated", (long long)step, (long long)cfg->steps,
            latest, cfg->out);
    return 128 + sig;
}

void cli_guard_init(cli_guard *g, int64_t step, const ug_loader *L) {
    memset(g, 0, sizeof *g);
    g->good_step = step;
    g->good_epoch = L->epoch;
    g->good_pos = L->pos;
}

int cli_guard_step(cli_guard *g, int64_t step, int loss_ok, double loss, double grad_norm,
                   const ug_loader *L) {
    if (loss_ok && isfinite(loss) && isfinite(grad_norm)) {
        g->bad_run = 0;
        g->good_step = step + 1;
        g->good_epoch = L->epoch;
        g->good_pos = L->pos;
        return 1;
    }
    g->bad_run++;
    g->bad_total++;
    snprintf(g->why, sizeof g->why, "%s", !loss_ok || !isfinite(loss) ? "loss" : "gradient norm");
    g->last_bad = loss_ok && !isfinite(loss) ? loss : grad_norm;
    if (g->bad_total <= 10)
        fprintf(stderr, "unigen: step %lld: non-finite %s (%g), step skipped (weights, Adam and "
                "EMA unchanged)%s\n", (long long)(step + 1), g->why, g->last_bad,
                g->bad_total == 10 ? "; further skips are not reported" : "");
    return 0;
}

int cli_guard_give_up(const cli_guard *g, const cli_cfg *cfg, const char *cfg_json, int64_t step,
                      ug_params *ps, const ug_ema *ema, const ug_adam *adam, const ug_loader *L) {
    ug_loader at = *L;   /* the data position where the bad streak began */
    at.epoch = g->good_epoch;
    at.pos = g->good_pos;
    char latest[4400];
    if (cli_ckpt_write(cfg, cfg_json, g->good_step, ps, ema, adam, &at, 0, latest, sizeof latest))
        return 1;
    return cli_error("step %lld: %lld consecutive steps with a non-finite %s, stopping; %s holds "
                     "the last good state (step %lld): resume with --resume %s and e.g. a lower "
                     "--lr or a --grad-clip", (long long)(step + 1), (long long)g->bad_run, g->why,
                     latest, (long long)g->good_step, cfg->out);
}

/* ---------------------------------------------------------------- memory */
/* Bytes still available to this process: MemAvailable, and what RLIMIT_AS / RLIMIT_DATA leave
 * above the current virtual size / data segment. what names the binding limit. */
static double mem_available(const char **what, double *as_left) {
    double best = INFINITY;
    *what = "no limit";
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        long long kb;
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) {
            best = 1024.0 * (double)kb;
            *what = "MemAvailable in /proc/meminfo";
        }
    }
    if (f) fclose(f);
    if (best == INFINITY) {
        long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        if (pages > 0 && psz > 0) {
            best = (double)pages * (double)psz;
            *what = "free physical memory";
        }
    }
    long long vm = 0, data = 0;
    long psz = sysconf(_SC_PAGESIZE);
    if ((f = fopen("/proc/self/statm", "r"))) {
        long long size, res, shared, text, lib, dat;
        if (fscanf(f, "%lld %lld %lld %lld %lld %lld", &size, &res, &shared, &text, &lib, &dat) == 6) {
            vm = size * psz;
            data = dat * psz;
        }
        fclose(f);
    }
    struct rlimit rl;
    *as_left = INFINITY;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        *as_left = (double)rl.rlim_cur - (double)vm;
    if (*as_left < best) {
        best = *as_left;
        *what = "the address-space limit (ulimit -v)";
    }
    if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (double)rl.rlim_cur - (double)data < best) {
        best = (double)rl.rlim_cur - (double)data;
        *what = "the data-segment limit (ulimit -d)";
    }
    return best < 0 ? 0 : best;
}

/* Arena bytes of one training step on a batch of B, from the forward pass on a few examples
 * x (rows of d; NULL: zeros) scaled by B / rows and doubled for the gradients backward
 * allocates. Nothing of the model changes: the probe records a tape it never runs. */
static double activation_bytes(ug_model *model, const float *x, int64_t n, int64_t d,
                               const int32_t *y, int64_t B, uint64_t seed) {
    int64_t rows = B < 8 ? B : 8;
    if (rows > n) rows = n;
    /* Exact mixtures (gmm:) have no network and no training loss. */
    ug_params *ps = ug_model_params(model);
    if (rows < 1 || !ps || ug_params_count(ps) == 0) return 0;
    float *zeros = x ? NULL : calloc((size_t)(rows * d), sizeof *zeros);
    int32_t *labels = y ? NULL : calloc((size_t)rows, sizeof *labels);
    ug_ctx *ctx = NULL;
    double used = 0;
    if ((x || zeros) && (y || labels) && !ug_ctx_create(&ctx, 0)) {
        ug_tensor *loss;
        (void)ug_model_loss(model, ctx, x ? x : zeros, rows, y ? y : labels, seed, 0, &loss);
        used = (double)ug_ctx_arena_used(ctx);
    }
    ug_ctx_free(ctx);
    free(zeros);
    free(labels);
    return 2.0 * used * (double)B / (double)rows;
}

/* OpenBLAS maps a 128 MiB work buffer per thread at its first call and, when that mmap fails
 * under an address-space limit, retries forever: it must fit before any network runs. */
static int blas_fits(double as_left, double *blas) {
    const double MiB = 1048576.0;
    *blas = 128.0 * MiB * (double)(ug_get_threads() > 0 ? ug_get_threads() : 1);
    if (*blas + 64 * MiB <= as_left) return 1;
    cli_error("not enough memory: the address-space limit (ulimit -v) leaves %.0f MiB, and "
              "OpenBLAS alone maps %.0f MiB (128 MiB per thread; --threads %d); raise the limit "
              "or use fewer --threads", as_left / MiB, *blas / MiB, ug_get_threads());
    return 0;
}

int cli_check_sample_memory(ug_model *model, int64_t n, int64_t d, int64_t batch) {
    const double MiB = 1048576.0;
    const char *what;
    double as_left, blas, avail = mem_available(&what, &as_left);
    if (!blas_fits(as_left, &blas)) return 1;
    int64_t B = batch > 0 && batch < n ? batch : n;
    /* The samples, start noise and a multistep sampler's history in double. */
    double bufs = 8.0 * 8.0 * (double)n * (double)d;
    double act = 0.5 * activation_bytes(model, NULL, B, d, NULL, B, 0);   /* forward only */
    double need = bufs + act;
    if (need * 1.1 + 32 * MiB <= avail && need * 1.1 + blas + 32 * MiB <= as_left) return 0;
    return cli_error("not enough memory: sampling %lld points of dimension %lld needs about %.0f "
                     "MiB (sampler buffers %.0f MiB, network activations for batches of %lld about "
                     "%.0f MiB), and %s leaves %.0f MiB; use a smaller --n or --batch",
                     (long long)n, (long long)d, need / MiB, bufs / MiB, (long long)B, act / MiB,
                     what, avail / MiB);
}

int cli_check_memory(const cli_cfg *cfg, const ug_dataset *ds, ug_model *model) {
    const double MiB = 1048576.0;
    int64_t P = ug_params_count(ug_model_params(model));
    int64_t B = cfg->batch < ds->n ? cfg->batch : ds->n;
    double copies = 2.0 + (cfg->ema > 0);   /* Adam m, v; EMA */
    double opt = copies * 4.0 * (double)P;
    double bufs = (double)B * (double)ug_dataset_dim(ds) * 4.0 + (double)ds->n * 8.0;
    double act, need = opt + bufs;
    const char *what;
    double as_left;
    double avail = mem_available(&what, &as_left);
    double blas;
    if (!blas_fits(as_left, &blas)) return 1;
    act = activation_bytes(model, ds->x, ds->n, ug_dataset_dim(ds), cfg->classes ? ds->y : NULL,
                           B, (uint64_t)cfg->seed);
    need += act;
    /* Head room for the allocator, thread stacks and the previews drawn at the end. */
    if (need * 1.1 + 32 * MiB <= avail && need * 1.1 + blas + 32 * MiB <= as_left) return 0;
    double held = (double)ds->n * (double)ug_dataset_dim(ds) * (ds->x ? 4.0 : 1.0) + 2.0 * 4.0 * (double)P;
    return cli_error("not enough memory: training needs about %.0f MiB more (Adam moments%s "
                     "%.0f MiB, activations of a batch of %lld about %.0f MiB) beyond the %.0f MiB "
                     "of data, weights and gradients, and %s leaves %.0f MiB; use a smaller "
                     "--batch, --hidden/--depth or --n", need / MiB, cfg->ema > 0 ? " and EMA" : "",
                     opt / MiB, (long long)B, act / MiB, held / MiB, what, avail / MiB);
}
