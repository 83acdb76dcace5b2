/* bench_nice.c — workload W4 of ../shared/peers/README.md in unigen, the protocol of
 * peers/nice.py: nice-mnist (19,158,352 parameters), batch 200 of dequantized Fashion-MNIST
 * x = (pixel + u) / 256 (uniform noise if the data set is not installed), Adam 1e-3. A timed
 * step = dequantize, forward, loss, backward, Adam. Train figure: 1 / median step time of the
 * steps after `warm` warm-up steps (the peer's --max-steps and --warmup; its full epoch is 300
 * steps, warm-up 10). Prints one JSON line, peak RSS from getrusage.
 * Usage: bench_nice [threads] [steps] [warm]  (defaults 2, 20, 3) */
#include "unigen.h"
#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, steps = argc > 2 ? atoi(argv[2]) : 20,
        warm = argc > 3 ? atoi(argv[3]) : 3;
    if (warm < 0 || steps <= warm || steps > 1000) return 2;
    ug_set_threads(threads);
    const int64_t B = 200, D = 784;
    ug_dataset ds;
    /* The training set as 8-bit pixels, as `unigen train` keeps it for per-batch dequantization
     * (the peer holds a float32 copy); each batch is converted as it is drawn. */
    int have = ug_dataset_load_bytes("fashion-mnist", 1, 0, 0, &ds) == UG_OK;
    ug_model_cfg mc = ug_model_cfg_default();
    mc.family = UG_FAMILY_FLOW;
    snprintf(mc.net, sizeof mc.net, "nice-mnist");
    mc.data_dim = 784;
    ug_model *m;
    ug_ctx *ctx;
    if (ug_model_create(&mc, 0, &m) || ug_ctx_create(&ctx, 0)) {
        fprintf(stderr, "bench_nice: %s\n", ug_last_error());
        return 1;
    }
    ug_params *ps = ug_model_params(m);
    ug_adam adam;
    ug_adam_init(&adam, ps, ug_adam_default());
    float *x = malloc((size_t)(B * D) * sizeof *x);
    int64_t ids[200];
    double *t = malloc((size_t)steps * sizeof *t), loss0 = 0, loss1 = 0;
    for (int s = 0; s < steps; s++) {
        double t0 = bench_now_s();
        for (int64_t b = 0; b < B; b++) ids[b] = have ? (s * B + b) % ds.n : b;
        if (have) ug_dataset_rows(&ds, ids, B, x);
        else memset(x, 0, (size_t)(B * D) * sizeof *x);
        ug_data_dequantize(x, B, D, ids, 1, (uint32_t)s);
        ug_tensor *loss;
        if (ug_model_loss(m, ctx, x, B, NULL, 0, 0, &loss)) {
            fprintf(stderr, "bench_nice: %s\n", ug_last_error());
            return 1;
        }
        if (s == 0) loss0 = loss->data[0];
        loss1 = loss->data[0];
        ug_params_zero_grad(ps);
        ug_backward(ctx, loss);
        ug_adam_step(&adam, ps, 1e-3f);
        ug_ctx_reset(ctx);
        t[s] = bench_now_s() - t0;
    }
    double med = bench_median(t + warm, steps - warm);
    printf("{\"workload\": \"nice\", \"impl\": \"unigen\", \"threads\": %d, \"params\": %lld, \"batch\": %lld, "
           "\"data\": \"%s\", \"steps\": %d, \"warmup_steps_excluded\": %d, "
           "\"train_step_ms_median\": %.2f, \"train_steps_per_s\": %.3f, \"loss_first\": %.2f, "
           "\"loss_last\": %.2f, \"peak_rss_mib\": %.1f}\n", threads, (long long)ug_params_count(ps),
           (long long)B, have ? "fashion-mnist" : "uniform", steps, warm, med * 1e3, 1.0 / med, loss0,
           loss1, bench_peak_rss_mib());
    free(x);
    free(t);
    if (have) ug_dataset_free(&ds);
    ug_adam_free(&adam);
    ug_ctx_free(ctx);
    ug_model_free(m);
    return 0;
}
