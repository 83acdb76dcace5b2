/* bench_made.c — workload W3 of ../shared/peers/README.md in unigen, the protocol of
 * peers/made.py: MADE 784-500-784 (785,284 parameters stored, one fixed natural-order mask, no
 * direct connections: family ar, net made, hidden 500, masks 1) on binarized Fashion-MNIST
 * (x = 1 if pixel / 255 > 0.5), loss = BCE summed over pixels, mean over the batch, Adam 1e-3,
 * batch 100, one epoch = 600 steps over one fixed-seed permutation. A timed step = gather the
 * batch, forward, loss, backward, Adam. Train figure: 1 / median step time of the epoch's steps
 * after the first `warm` (peer: 20). Then the test NLL (nats/image, 10,000 test images) as a
 * check that the two sides train the same model (peer: 162.77 after one epoch).
 * Without the data set: uniform bits, no test NLL. Prints one JSON line (keys as the peer's,
 * peak RSS from getrusage).
 * Usage: bench_made [threads] [warm] [steps]  (defaults 2, 20, 600 = one epoch) */
#include "unigen.h"
#include "bench.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, warm = argc > 2 ? atoi(argv[2]) : 20,
        steps = argc > 3 ? atoi(argv[3]) : 600;
    if (warm < 0 || steps <= warm || steps > 600) return 2;
    ug_set_threads(threads);
    const int64_t B = 100, D = 784;
    ug_dataset tr, te;
    int have = ug_dataset_load("fashion-mnist", UG_SPLIT_TRAIN, 0, 0, &tr) == UG_OK &&
               ug_dataset_load("fashion-mnist", UG_SPLIT_TEST, 0, 0, &te) == UG_OK;
    int64_t n = have ? tr.n : 60000;
    float *data = have ? tr.x : malloc((size_t)(n * D) * sizeof *data);
    if (!have) {
        ug_rng r = ug_rng_make(1, 0, 0);
        ug_rng_uniform(&r, data, n * D);
    }
    ug_data_binarize_fixed(data, n * D, 0.5f);
    if (have) ug_data_binarize_fixed(te.x, te.n * D, 0.5f);

    ug_model_cfg mc = ug_model_cfg_default();
    mc.family = UG_FAMILY_AR;
    snprintf(mc.net, sizeof mc.net, "made");
    mc.data_dim = 784;
    mc.hidden = 500;
    mc.masks = 1;
    ug_model *m;
    ug_ctx *ctx;
    if (ug_model_create(&mc, 0, &m) || ug_ctx_create(&ctx, 0)) {
        fprintf(stderr, "bench_made: %s\n", ug_last_error());
        return 1;
    }
    ug_params *ps = ug_model_params(m);
    ug_adam adam;
    ug_adam_init(&adam, ps, ug_adam_default());
    float *x = malloc((size_t)(B * D) * sizeof *x);
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    ug_data_permutation(perm, n, 0, 0);
    double *t = malloc((size_t)steps * sizeof *t), loss_last = 0, epoch_s = 0;
    for (int s = 0; s < steps; s++) {
        double t0 = bench_now_s();
        for (int64_t b = 0; b < B; b++)
            memcpy(x + b * D, data + perm[s * B + b] * D, (size_t)D * sizeof *x);
        ug_model_set_step(m, s);
        ug_tensor *loss;
        if (ug_model_loss(m, ctx, x, B, NULL, 0, 0, &loss)) {
            fprintf(stderr, "bench_made: %s\n", ug_last_error());
            return 1;
        }
        loss_last = loss->data[0];
        ug_params_zero_grad(ps);
        ug_backward(ctx, loss);
        ug_adam_step(&adam, ps, 1e-3f);
        ug_ctx_reset(ctx);
        t[s] = bench_now_s() - t0;
        epoch_s += t[s];
    }
    double med = bench_median(t + warm, steps - warm), test_nll = NAN;
    if (have) {
        double *nll = malloc((size_t)te.n * sizeof *nll), sum = 0;
        if (ug_model_nll(m, NULL, te.n, te.x, nll)) {
            fprintf(stderr, "bench_made: %s\n", ug_last_error());
            return 1;
        }
        for (int64_t i = 0; i < te.n; i++) sum += nll[i];
        test_nll = sum / (double)te.n;
        free(nll);
    }
    printf("{\"workload\": \"made\", \"impl\": \"unigen\", \"threads\": %d, \"params\": %lld, "
           "\"batch\": %lld, \"data\": \"%s\", \"epoch_steps\": %d, \"warmup_steps_excluded\": %d, "
           "\"train_step_ms_median\": %.4f, \"train_steps_per_s\": %.2f, \"epoch_s\": %.3f, "
           "\"train_loss_last\": %.3f, \"test_nll_nats\": %.4f, \"peak_rss_mib\": %.1f}\n",
           ug_get_threads(), (long long)ug_params_count(ps), (long long)B,
           have ? "fashion-mnist" : "uniform", steps, warm, med * 1e3, 1.0 / med, epoch_s,
           loss_last, have ? test_nll : -1.0, bench_peak_rss_mib());
    free(x); free(t); free(perm);
    if (have) {
        ug_dataset_free(&tr);
        ug_dataset_free(&te);
    } else {
        free(data);
    }
    ug_adam_free(&adam);
    ug_ctx_free(ctx);
    ug_model_free(m);
    return 0;
}
