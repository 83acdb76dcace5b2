/* bench_allreduce.c — the communication of one data-parallel training step: one in-place sum
 * allreduce of the flat float32 gradient buffer (ug_dist_allreduce_sum_f32), timed for the sizes
 * of W1 (mlp-toy, 141,058 parameters) and W2 (unet-fmnist, 1,062,497 parameters) or the sizes
 * given. Each figure: median of 50 calls after 5 warm-up calls, a barrier before each so a call
 * times the reduction, not the wait for a late rank. Also the bus bandwidth as nccl-tests define
 * it for a ring allreduce, 2 (N - 1) / N * bytes / time. One JSON line per size from rank 0.
 * Usage: mpirun -np N build/bench_allreduce [floats ...]   (make MPI=1) */
#include "unigen.h"
#include "bench.h"
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (ug_dist_init(&argc, &argv)) {
        fprintf(stderr, "bench_allreduce: %s\n", ug_last_error());
        return 1;
    }
    int64_t sizes[16] = {141058, 1062497};
    int ns = 2;
    if (argc > 1) {
        ns = 0;
        for (int i = 1; i < argc && ns < 16; i++) sizes[ns++] = atoll(argv[i]);
    }
    int world = ug_dist_world(), rc = 0;
    enum { WARM = 5, TIMED = 50 };
    for (int k = 0; k < ns && !rc; k++) {
        int64_t n = sizes[k];
        float *g = malloc((size_t)n * sizeof *g);
        if (!g) { rc = 1; break; }
        for (int64_t i = 0; i < n; i++) g[i] = 1e-3f * (float)(i % 97);
        double t[TIMED];
        for (int it = 0; it < WARM + TIMED && !rc; it++) {
            rc = ug_dist_barrier() != UG_OK;
            double t0 = bench_now_s();
            rc |= ug_dist_allreduce_sum_f32(g, n) != UG_OK;
            if (it >= WARM) t[it - WARM] = bench_now_s() - t0;
        }
        if (rc) fprintf(stderr, "bench_allreduce: %s\n", ug_last_error());
        double med = bench_median(t, TIMED), bytes = 4.0 * (double)n;
        if (!rc && ug_dist_rank() == 0)
            printf("{\"world\": %d, \"floats\": %lld, \"bytes\": %.0f, \"allreduce_ms\": %.4f, "
                   "\"bus_gbps\": %.3f}\n", world, (long long)n, bytes, 1e3 * med,
                   world > 1 ? 8e-9 * 2.0 * (world - 1) / world * bytes / med : 0.0);
        free(g);
    }
    ug_dist_finalize();
    return rc;
}
