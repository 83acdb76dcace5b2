/* dist.c — the data-parallel pieces of `mpirun -np N unigen train | sample | eval` (issue 11),
 * kept apart from the subcommands so that each of them changes by a few calls.
 *
 * Results do not depend on N. Every rank draws the same GLOBAL batch from one loader (world 1,
 * --batch examples: the batch of the one-process run) and keeps its rows [lo, hi) of it
 * (ug_dist_range). Example b of step s keeps its Philox stream s * batch + b (the rank passes
 * first_stream = s * batch + lo), so its noise is the one-process noise. Each rank's loss is the
 * mean over its nloc rows; scaled by nloc / B before the one allreduce over the flat gradient
 * buffer, the sum is the gradient of the global mean,
 *   sum_r (nloc_r / B) (1 / nloc_r) sum_{i in r} g_i = (1 / B) sum_i g_i,
 * equal to the one-process gradient up to float summation order. Every rank then applies the
 * same clip, Adam and EMA step to the same sum. Sampling and evaluation split examples (by index:
 * streams first_stream + i as in one process) and gather all rows on every rank, so every rank
 * walks the same code path on the same numbers; only rank 0 writes files, and the other ranks'
 * stdout and stderr go to /dev/null (their errors still reach the terminal, see main.c). */
#include "cli.h"
#include <stdio.h>
#include <stdlib.h>

int cli_dist_root(void) { return ug_dist_rank() == 0; }

int cli_dist_check_batch(int64_t batch, int64_t n) {
    int64_t b = batch < n ? batch : n, w = ug_dist_world();
    if (b < w)
        return cli_error("train: a global batch of %lld examples over %lld ranks leaves a rank "
                         "without examples (--batch is the global batch size; expected >= %lld)",
                         (long long)b, (long long)w, (long long)w);
    if (w > 1)
        fprintf(stderr, "unigen: data-parallel over %lld ranks: global batch %lld, %lld..%lld "
                "examples per rank\n", (long long)w, (long long)b, (long long)(b / w),
                (long long)((b + w - 1) / w));
    return 0;
}

int cli_dist_grad(ug_params *ps, int64_t nloc, int64_t nglob) {
    if (ug_dist_world() == 1) return 0;
    float *g = ug_params_grad(ps), f = (float)((double)nloc / (double)nglob);
    int64_t n = ug_params_count(ps);
    for (int64_t i = 0; i < n; i++) g[i] *= f;
    return ug_dist_allreduce_sum_f32(g, n) ? cli_error("%s", ug_last_error()) : 0;
}

int cli_dist_sum(double *v, int64_t n) {
    return ug_dist_allreduce_sum_f64(v, n) ? cli_error("%s", ug_last_error()) : 0;
}

int cli_dist_nll(ug_model *m, const ug_nll_cfg *c, int64_t n, const float *x, int64_t d,
                 double *nll) {
    int64_t lo, hi;
    ug_dist_range(n, &lo, &hi);
    ug_nll_cfg rc = *c;
    rc.first_stream = c->first_stream + (uint64_t)lo;
    if (hi > lo && ug_model_nll(m, &rc, hi - lo, x + lo * d, nll + lo))
        return cli_error("%s", ug_last_error());
    return ug_dist_allgather_rows_f64(nll, n, 1) ? cli_error("%s", ug_last_error()) : 0;
}

int cli_dist_sample(ug_model *m, const ug_sample_cfg *c, int64_t n, int64_t chunk, int64_t d,
                    const int32_t *labels, const double *noise, double *x, int64_t *nfe) {
    int64_t lo, hi, my_nfe = 0;
    ug_dist_range(n, &lo, &hi);
    ug_sample_cfg sc = *c;
    if (chunk < 1) chunk = n;
    for (int64_t i = lo; i < hi; i += chunk) {
        int64_t k = hi - i < chunk ? hi - i : chunk;
        sc.first_stream = c->first_stream + (uint64_t)i;
        if (ug_model_sample(m, &sc, k, labels ? labels + i : NULL, noise ? noise + i * d : NULL,
                            x + i * d, &my_nfe))
            return cli_error("%s", ug_last_error());
    }
    /* The NFE of one batch: the same on every rank unless a rank had no rows. */
    double v = (double)my_nfe;
    if (ug_dist_allreduce_max_f64(&v, 1) || ug_dist_allgather_rows_f64(x, n, d))
        return cli_error("%s", ug_last_error());
    if (nfe) *nfe = (int64_t)v;
    return 0;
}

/* RK45 controls its step on the error of the whole batch, so a rank's shard takes its own steps:
 * the log-likelihoods agree with one process within the ODE tolerance, not bit for bit. The
 * statistics are those of the slowest rank (NFE, steps) and the total of rejections. */
int cli_dist_loglik(ug_model *m, const ug_lik_cfg *lc, const ug_div_cfg *dc, int64_t n,
                    int64_t d, const double *x, double *logp, ug_ode_stats *st) {
    int64_t lo, hi;
    ug_dist_range(n, &lo, &hi);
    ug_div_cfg c = *dc;
    c.first_stream = dc->first_stream + (uint64_t)lo;
    ug_ode_stats mine = {0, 0, 0};
    if (hi > lo && ug_model_loglik(m, lc, &c, hi - lo, x + lo * d, logp + lo, &mine))
        return cli_error("%s", ug_last_error());
    double mx[2] = {(double)mine.nfe, (double)mine.steps}, rej = (double)mine.rejected;
    if (ug_dist_allreduce_max_f64(mx, 2) || ug_dist_allreduce_sum_f64(&rej, 1) ||
        ug_dist_allgather_rows_f64(logp, n, 1))
        return cli_error("%s", ug_last_error());
    st->nfe = (int64_t)mx[0];
    st->steps = (int64_t)mx[1];
    st->rejected = (int64_t)rej;
    return 0;
}

int cli_dist_vlb(ug_model *m, const ug_vlb_cfg *vc, int64_t n, int64_t d, const double *x0,
                 double *nats) {
    int64_t lo, hi;
    ug_dist_range(n, &lo, &hi);
    ug_vlb_cfg c = *vc;
    c.first_stream = vc->first_stream + (uint64_t)lo;
    if (hi > lo && ug_model_vlb(m, &c, hi - lo, x0 + lo * d, nats + lo, NULL))
        return cli_error("%s", ug_last_error());
    return ug_dist_allgather_rows_f64(nats, n, 1) ? cli_error("%s", ug_last_error()) : 0;
}
