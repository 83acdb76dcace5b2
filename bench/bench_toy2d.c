/* bench_toy2d.c — workload W1 of ../shared/peers/README.md in unigen, same protocol as
 * peers/toy2d.py: mlp-toy (141,058 parameters) with EDM preconditioning on standardized two
 * moons, batch 1024, Adam 1e-3. A timed step = batch indices + sigma + eps draws, forward,
 * loss, backward, Adam. Train figure: 1 / median of 200 timed steps after 20 warm-up steps.
 * Sampling: 10,000 points, Heun 18 steps (35 NFE), median of 5 runs after 1 warm-up run.
 * Prints one JSON line (keys as peers/toy2d.py's, peak RSS from getrusage).
 * Usage: bench_toy2d [threads] [warm] [timed] [sample_runs]  (defaults all, 20, 200, 5: the
 * peer's --warmup, --steps, --sample-runs) */
#include "unigen.h"
#include "bench.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    ug_set_threads(argc > 1 ? atoi(argv[1]) : 0);
    const int warm = argc > 2 ? atoi(argv[2]) : 20, timed = argc > 3 ? atoi(argv[3]) : 200,
              sruns = argc > 4 ? atoi(argv[4]) : 5;
    if (warm < 0 || timed < 1 || timed > 100000 || sruns < 1 || sruns > 100) return 2;
    const int64_t pool = 65536, B = 1024;
    float *data = malloc(pool * 2 * sizeof *data), *batch = malloc(B * 2 * sizeof *batch);
    if (ug_toy2d_sample("moons", pool, 0, data)) return 1;
    for (int j = 0; j < 2; j++) {   /* standardize to mean 0, std 0.5 as the peer does */
        double m = 0, v = 0;
        for (int64_t i = 0; i < pool; i++) m += data[2 * i + j];
        m /= pool;
        for (int64_t i = 0; i < pool; i++) v += (data[2 * i + j] - m) * (data[2 * i + j] - m);
        double sd = sqrt(v / pool);
        for (int64_t i = 0; i < pool; i++) data[2 * i + j] = (float)((data[2 * i + j] - m) / sd * 0.5);
    }
    ug_model_cfg mc = ug_model_cfg_default();   /* edm/edm, mlp-toy */
    ug_model *m;
    ug_ctx *ctx;
    if (ug_model_create(&mc, 0, &m) || ug_ctx_create(&ctx, 0)) return 1;
    ug_params *ps = ug_model_params(m);
    ug_adam adam;
    ug_adam_init(&adam, ps, ug_adam_default());
    double *t = malloc((size_t)timed * sizeof *t);
    int64_t idx[1024];
    for (int s = 0; s < warm + timed; s++) {
        double t0 = bench_now_s();
        ug_rng r = ug_rng_make(1, 1u << 30, (uint32_t)s);
        double u[1024];
        ug_rng_uniform_f64(&r, u, B);
        for (int64_t b = 0; b < B; b++) {
            idx[b] = (int64_t)(u[b] * pool);
            batch[2 * b] = data[2 * idx[b]];
            batch[2 * b + 1] = data[2 * idx[b] + 1];
        }
        double loss;
        ug_params_zero_grad(ps);
        if (ug_model_loss_backward(m, ctx, batch, B, NULL, 7, (uint64_t)s * B, &loss)) return 1;
        ug_adam_step(&adam, ps, 1e-3f);
        ug_ctx_reset(ctx);
        if (s >= warm) t[s - warm] = bench_now_s() - t0;
    }
    double step_med = bench_median(t, timed);
    const int64_t n = 10000;
    double *x = malloc((size_t)n * 2 * sizeof *x), ts[100];
    ug_sample_cfg sc = ug_sample_cfg_default();
    int64_t nfe = 0;
    for (int rep = -1; rep < sruns; rep++) {
        double t0 = bench_now_s();
        if (ug_model_sample(m, &sc, n, NULL, NULL, x, &nfe)) return 1;
        if (rep >= 0) ts[rep] = bench_now_s() - t0;
    }
    double sum = 0;   /* the last run's samples, summed: equal sums across builds = same samples */
    for (int64_t i = 0; i < 2 * n; i++) sum += x[i];
    printf("{\"workload\": \"toy2d\", \"impl\": \"unigen\", \"threads\": %d, \"params\": %lld, "
           "\"batch\": %lld, \"warmup_steps\": %d, \"timed_steps\": %d, "
           "\"train_steps_per_s\": %.2f, \"train_step_ms_median\": %.3f, "
           "\"sample_points\": %lld, \"sample_nfe\": %lld, \"sample_s_median\": %.4f, "
           "\"sample_sum\": %.17g, \"peak_rss_mib\": %.1f}\n",
           ug_get_threads(), (long long)ug_params_count(ps), (long long)B, warm, timed,
           1.0 / step_med, step_med * 1e3, (long long)n, (long long)nfe, bench_median(ts, sruns),
           sum, bench_peak_rss_mib());
    ug_adam_free(&adam);
    ug_ctx_free(ctx);
    ug_model_free(m);
    free(data); free(batch); free(x); free(t);
    return 0;
}
