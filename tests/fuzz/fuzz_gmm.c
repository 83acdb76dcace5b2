/* fuzz_gmm.c — libFuzzer harness of the Gaussian-mixture JSON reader (src/data/gmm.c):
 * ug_gmm_load on the input, then a few samples and the log-density of an accepted mixture,
 * which index every weight, mean and std the parser claims to have filled. */
#include "unigen.h"
#include "fuzz.h"
#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ug_gmm g;
    if (ug_gmm_load(fuzz_file(0, data, size), &g) != UG_OK) {
        FUZZ_CHECK(g.w == NULL && g.mu == NULL && g.s == NULL);
        return 0;
    }
    FUZZ_CHECK(g.K >= 1 && g.d >= 1 && g.w && g.mu && g.s);
    double total = 0;
    for (int k = 0; k < g.K; k++) {
        FUZZ_CHECK(g.w[k] >= 0 && g.s[k] > 0);
        total += g.w[k];
    }
    FUZZ_CHECK(fabs(total - 1) < 1e-9);   /* normalized: a real mixture */
    enum { N = 3 };
    float *x = malloc((size_t)N * (size_t)g.d * sizeof *x);
    double *xd = calloc((size_t)g.d, sizeof *xd);
    int32_t labels[N];
    FUZZ_CHECK(x && xd);
    FUZZ_CHECK(ug_gmm_sample(&g, 0, N, 1, x, labels) == UG_OK);
    for (int i = 0; i < N; i++) FUZZ_CHECK(labels[i] >= 0 && labels[i] < g.K);
    (void)ug_gmm_logpdf(&g, xd, 0.5);
    free(x);
    free(xd);
    ug_gmm_free(&g);
    return 0;
}
