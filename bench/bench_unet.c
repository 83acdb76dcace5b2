/* bench_unet.c — workload W2 of ../shared/peers/README.md in unigen, the protocol of
 * peers/unet.py: the unet-fmnist network (1,062,497 parameters) trained as a DDPM eps-predictor
 * (vp formulation, linear betas 1e-4..0.02, T = 1000, t ~ U{0..999}) on Fashion-MNIST scaled to
 * [-1, 1] (uniform noise if the data set is not installed), batch 64 of random indices, Adam 2e-4.
 * A timed step = indices + t + eps draws, forward, loss, backward, Adam. Train figure: 1 / median
 * of `steps` timed steps after `warm` warm-up steps (peer: 30 after 5).
 * Sampling: deterministic DDIM (eta 0), 35 network evaluations on the linspace timesteps
 * round(linspace(999, 0, 35)), 64 images; median of `sruns` timed runs after 1 warm-up run (peer:
 * 3). unigen's DDIM steps to t - T/N (diffusers) where the peer steps to the next grid point:
 * the same 35 evaluations of the same network, so the same cost.
 * Prints one JSON line (keys as the peer's, peak RSS from getrusage).
 * Usage: bench_unet [threads] [warm] [steps] [sample_runs]  (defaults 2, 5, 30, 3) */
#include "unigen.h"
#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, warm = argc > 2 ? atoi(argv[2]) : 5,
        steps = argc > 3 ? atoi(argv[3]) : 30, sruns = argc > 4 ? atoi(argv[4]) : 3;
    if (warm < 0 || steps < 1 || steps > 10000 || sruns < 1 || sruns > 100) return 2;
    ug_set_threads(threads);
    const int64_t B = 64, D = 784, nimg = 64;
    ug_dataset ds;
    /* As `unigen train` holds it: 8-bit pixels, each batch mapped to [-1, 1] as it is drawn (the
     * peer scales a float copy of the whole set once, before timing). */
    int have = ug_dataset_load_bytes("fashion-mnist", UG_SPLIT_TRAIN, 0, 0, &ds) == UG_OK;
    int64_t n = have ? ds.n : 1024, ids[64];
    float *data = have ? NULL : malloc((size_t)(n * D) * sizeof *data);
    if (!have) {
        ug_rng r = ug_rng_make(1, 0, 0);
        ug_rng_uniform(&r, data, n * D);
        ug_data_scale_pm1(data, n * D);
    }

    ug_model_cfg mc = ug_model_cfg_default();
    snprintf(mc.net, sizeof mc.net, "unet-fmnist");
    mc.channels = 1;
    mc.height = 28;
    mc.width = 28;
    mc.data_dim = 784;
    mc.formulation = UG_FORM_VP;
    mc.param = UG_PARAM_EPS;
    ug_model *m;
    ug_ctx *ctx;
    if (ug_model_create(&mc, 0, &m) || ug_ctx_create(&ctx, 0)) {
        fprintf(stderr, "bench_unet: %s\n", ug_last_error());
        return 1;
    }
    ug_params *ps = ug_model_params(m);
    ug_adam adam;
    ug_adam_init(&adam, ps, ug_adam_default());
    float *x = malloc((size_t)(B * D) * sizeof *x);
    double *t = malloc((size_t)steps * sizeof *t), u[64], loss_last = 0;
    for (int s = 0; s < warm + steps; s++) {
        double t0 = bench_now_s();
        ug_rng r = ug_rng_make(2, 1u << 30, (uint32_t)s);
        ug_rng_uniform_f64(&r, u, B);
        for (int64_t b = 0; b < B; b++) ids[b] = (int64_t)(u[b] * n);
        if (have) {
            ug_dataset_rows(&ds, ids, B, x);
            ug_data_scale_pm1(x, B * D);
        } else {
            for (int64_t b = 0; b < B; b++) memcpy(x + b * D, data + ids[b] * D, (size_t)D * sizeof *x);
        }
        ug_params_zero_grad(ps);
        if (ug_model_loss_backward(m, ctx, x, B, NULL, 3, (uint64_t)s * B, &loss_last)) {
            fprintf(stderr, "bench_unet: %s\n", ug_last_error());
            return 1;
        }
        ug_adam_step(&adam, ps, 2e-4f);
        ug_ctx_reset(ctx);
        if (s >= warm) t[s - warm] = bench_now_s() - t0;
    }
    double med = bench_median(t, steps);
    printf("# train: median step %.1f ms -> %.3f steps/s, last loss %.4f\n", med * 1e3, 1.0 / med,
           loss_last);
    fflush(stdout);   /* progress in the log before the long sampling runs */
    /* Training is over: its arena (the activations and gradients of a step, kept at their
     * high-water mark for allocation-free steps) goes back before sampling, as the peer's
     * autograd graph is gone once its last backward has run. The sampler uses its own arenas. */
    const double train_rss = bench_peak_rss_mib();
    ug_ctx_free(ctx);
    ctx = NULL;

    ug_sample_cfg sc = ug_sample_cfg_default();
    sc.sampler = "ddim";
    sc.schedule = "linspace";
    sc.steps = 35;
    sc.eta = 0;
    double *out = malloc((size_t)(nimg * D) * sizeof *out), ts[100];
    int64_t nfe = 0;
    for (int rep = -1; rep < sruns; rep++) {
        double t0 = bench_now_s();
        sc.seed = (uint64_t)(rep + 1);
        if (ug_model_sample(m, &sc, nimg, NULL, NULL, out, &nfe)) {
            fprintf(stderr, "bench_unet: %s\n", ug_last_error());
            return 1;
        }
        if (rep >= 0) ts[rep] = bench_now_s() - t0;
    }
    /* The last run's samples summed: a change that should leave every float the same must
     * leave this too. */
    double sample_sum = 0;
    for (int64_t j = 0; j < nimg * D; j++) sample_sum += out[j];
    printf("{\"workload\": \"unet\", \"impl\": \"unigen\", \"threads\": %d, \"params\": %lld, "
           "\"batch\": %lld, \"data\": \"%s\", \"warmup_steps\": %d, \"timed_steps\": %d, "
           "\"train_step_ms_median\": %.2f, \"train_steps_per_s\": %.3f, \"train_loss_last\": %.5f, "
           "\"sample_images\": %lld, \"sample_nfe\": %lld, \"sample_s_median\": %.4f, "
           "\"sample_sum\": %.9g, \"train_peak_rss_mib\": %.1f, \"peak_rss_mib\": %.1f}\n",
           ug_get_threads(), (long long)ug_params_count(ps), (long long)B,
           have ? "fashion-mnist" : "uniform", warm, steps, med * 1e3, 1.0 / med, loss_last,
           (long long)nimg, (long long)nfe, bench_median(ts, sruns), sample_sum, train_rss,
           bench_peak_rss_mib());
    free(x); free(t); free(out);
    if (have) ug_dataset_free(&ds);
    else free(data);
    ug_adam_free(&adam);
    ug_model_free(m);
    return 0;
}
