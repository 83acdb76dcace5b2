/* threads.c — one thread count for OpenMP and OpenBLAS. unigen links the OpenMP build of
 * OpenBLAS, so GEMMs and our kernels share libgomp's pool: no second pool fights for the
 * cores (the oversubscription ../shared/peers/README.md measured in PyTorch). */
#include "core.h"
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int g_threads;

void ug_set_threads(int n) {
    if (n <= 0) {
        const char *env = getenv("UNIGEN_THREADS");
        if (env && *env) n = atoi(env);
    }
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
#else
    if (n <= 0) n = 1;
#endif
    openblas_set_num_threads(n);
    g_threads = n;
}

int ug_get_threads(void) {
    if (!g_threads) ug_set_threads(0);
    return g_threads;
}
