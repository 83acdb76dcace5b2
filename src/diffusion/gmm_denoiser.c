/* gmm_denoiser.c — the exact denoiser of a Gaussian mixture (SPEC section 6):
 *   p_sigma(x) = sum_k w_k N(x; mu_k, (s_k^2 + sigma^2) I)
 *   D(x; sigma) = E[x0 | x] = sum_k r_k(x) [mu_k + s_k^2 / (s_k^2 + sigma^2) (x - mu_k)]
 * with responsibilities r_k from a log-sum-exp in double. The ground truth every sampler and
 * likelihood is tested against. For flow matching's x_t = a x0 + t eps (a = 1 - t) the same
 * posterior written in x_t stays finite at t = 1 (sigma = inf):
 *   x_t | k ~ N(a mu_k, (a^2 s_k^2 + t^2) I),  E[x0 | x_t, k] = mu_k + a s_k^2/(a^2 s_k^2 + t^2) (x_t - a mu_k). */
#include "sampler.h"
#include "core/core.h"
#include <math.h>

void ug_gmm_responsibilities(const ug_gmm *g, const double *x, double a, double c, double *r) {
    int K = g->K, d = g->d;
    double mx = -INFINITY;
    for (int k = 0; k < K; k++) {
        double v = a * a * g->s[k] * g->s[k] + c * c, q = 0;
        for (int j = 0; j < d; j++) {
            double e = x[j] - a * g->mu[(size_t)k * d + j];
            q += e * e;
        }
        r[k] = (g->w[k] > 0 ? log(g->w[k]) : -INFINITY) - 0.5 * q / v - 0.5 * d * log(v);
        if (r[k] > mx) mx = r[k];
    }
    double z = 0;
    for (int k = 0; k < K; k++) z += (r[k] = exp(r[k] - mx));
    for (int k = 0; k < K; k++) r[k] /= z;
}

/* x ~ sum_k w_k N(a mu_k, (a^2 s_k^2 + c^2) I): E[x0 | x] for x0 | k ~ N(mu_k, s_k^2 I). */
static void posterior_mean(const ug_gmm *g, const double *x, double a, double c, double *out) {
    int K = g->K, d = g->d;
    double buf[64], *r = K <= 64 ? buf : malloc((size_t)K * sizeof *r);
    UG_CHECK(r, "gmm denoiser: out of memory for %d components", K);
    ug_gmm_responsibilities(g, x, a, c, r);
    for (int j = 0; j < d; j++) out[j] = 0;
    for (int k = 0; k < K; k++) {
        double v = g->s[k] * g->s[k], f = a * v / (a * a * v + c * c);
        if (r[k] == 0) continue;
        for (int j = 0; j < d; j++) {
            double mu = g->mu[(size_t)k * d + j];
            out[j] += r[k] * (mu + f * (x[j] - a * mu));
        }
    }
    if (r != buf) free(r);
}

void ug_gmm_denoise(const ug_gmm *g, const double *x, double sigma, double *out) {
    if (isinf(sigma)) {   /* no information left in x: the mixture mean */
        for (int j = 0; j < g->d; j++) {
            out[j] = 0;
            for (int k = 0; k < g->K; k++) out[j] += g->w[k] * g->mu[k * g->d + j];
        }
        return;
    }
    posterior_mean(g, x, 1.0, sigma, out);
}

void ug_gmm_denoise_fm(const ug_gmm *g, const double *x_t, double t, double *out) {
    posterior_mean(g, x_t, 1.0 - t, t, out);
}

static ug_status gmm_fn(void *self, int64_t n, const double *x, double sigma, double *out) {
    const ug_gmm *g = self;
#pragma omp parallel for schedule(static) if (n * g->K * g->d >= UG_PAR_MIN / 4)
    for (int64_t i = 0; i < n; i++) ug_gmm_denoise(g, x + i * g->d, sigma, out + i * g->d);
    return UG_OK;
}

static ug_status gmm_fm_fn(void *self, int64_t n, const double *x, double t, double *out) {
    const ug_gmm *g = self;
#pragma omp parallel for schedule(static) if (n * g->K * g->d >= UG_PAR_MIN / 4)
    for (int64_t i = 0; i < n; i++) ug_gmm_denoise_fm(g, x + i * g->d, t, out + i * g->d);
    return UG_OK;
}

ug_denoiser ug_gmm_denoiser(const ug_gmm *g) {
    ug_denoiser dn = {g->d, gmm_fn, (void *)g, gmm_fm_fn};
    return dn;
}
