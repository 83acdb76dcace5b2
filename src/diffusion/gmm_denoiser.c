/* gmm_denoiser.c — the exact denoiser of a Gaussian mixture (SPEC section 6):
 *   p_sigma(x) = sum_k w_k N(x; mu_k, (s_k^2 + sigma^2) I)
 *   D(x; sigma) = E[x0 | x] = sum_k r_k(x) [mu_k + s_k^2 / (s_k^2 + sigma^2) (x - mu_k)]
 * with responsibilities r_k from a log-sum-exp in double. The ground truth every sampler and
 * likelihood is tested against. */
#include "sampler.h"
#include "core/core.h"
#include <math.h>

void ug_gmm_denoise(const ug_gmm *g, const double *x, double sigma, double *out) {
    int K = g->K, d = g->d;
    double lr[64], *logr = K <= 64 ? lr : malloc((size_t)K * sizeof *logr);
    double mx = -INFINITY;
    for (int k = 0; k < K; k++) {
        double v = g->s[k] * g->s[k] + sigma * sigma, q = 0;
        for (int j = 0; j < d; j++) {
            double e = x[j] - g->mu[k * d + j];
            q += e * e;
        }
        logr[k] = (g->w[k] > 0 ? log(g->w[k]) : -INFINITY) - 0.5 * q / v - 0.5 * d * log(v);
        if (logr[k] > mx) mx = logr[k];
    }
    double z = 0;
    for (int k = 0; k < K; k++) z += (logr[k] = exp(logr[k] - mx));
    for (int j = 0; j < d; j++) out[j] = 0;
    for (int k = 0; k < K; k++) {
        double r = logr[k] / z, v = g->s[k] * g->s[k], f = v / (v + sigma * sigma);
        if (r == 0) continue;
        for (int j = 0; j < d; j++) {
            double mu = g->mu[k * d + j];
            out[j] += r * (mu + f * (x[j] - mu));
        }
    }
    if (logr != lr) free(logr);
}

static ug_status gmm_fn(void *self, int64_t n, const double *x, double sigma, double *out) {
    const ug_gmm *g = self;
#pragma omp parallel for schedule(static) if (n * g->K * g->d >= UG_PAR_MIN / 4)
    for (int64_t i = 0; i < n; i++) ug_gmm_denoise(g, x + i * g->d, sigma, out + i * g->d);
    return UG_OK;
}

ug_denoiser ug_gmm_denoiser(const ug_gmm *g) {
    ug_denoiser dn = {g->d, gmm_fn, (void *)g};
    return dn;
}
