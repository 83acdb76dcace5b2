/* eval.h — evaluation: exact log-likelihood of diffusion models through the probability-flow
 * ODE (SPEC section 6), bits/dim, and two-sample metrics (SPEC section 10): MMD^2, energy
 * distance, sliced Wasserstein-2, Fréchet distance, precision / recall.
 * Written to move into unigen.h as is (ug_ prefix, ug_status returns, out-params), except the
 * parts marked "internal" that name ug_diffusion. */
#ifndef UG_EVAL_H
#define UG_EVAL_H
#include "unigen.h"

/* ================================================================ ODE integrator */
/* dy/dt = f(t, y) for a state of n doubles. A non-OK status stops the solve. */
typedef ug_status (*ug_ode_fn)(void *self, double t, const double *y, double *dydt);

typedef struct ug_rk45_cfg {
    double rtol, atol;      /* 1e-5, 1e-5 (score_sde's likelihood.py) */
    double first_step;      /* 0: chosen as scipy / Hairer (one extra evaluation) */
    double max_step;        /* 0: unbounded */
    int64_t max_nfe;        /* 0: 1,000,000; beyond it UG_ERR_NUMERIC */
} ug_rk45_cfg;
ug_rk45_cfg ug_rk45_default(void);

typedef struct ug_ode_stats {
    int64_t nfe;            /* evaluations of f (one per batch call) */
    int64_t steps;          /* accepted steps */
    int64_t rejected;       /* rejected steps */
} ug_ode_stats;

/* Integrates y from t0 to t1 (either direction) in place with Dormand-Prince 5(4), FSAL,
 * scipy.integrate.RK45's step control: error norm = RMS over the state of
 * err / (atol + rtol max(|y|, |y_new|)), factor safety 0.9 err^(-1/5) clipped to [0.2, 10]
 * (<= 1 right after a rejection). stats may be NULL. */
ug_status ug_rk45_solve(const ug_rk45_cfg *c, ug_ode_fn f, void *self, int64_t n, double *y,
                        double t0, double t1, ug_ode_stats *stats);

/* ================================================================ divergence of a denoiser */
/* D(x~; sigma) and div_x D on n points of dimension dim, in double (the sampler's ug_denoiser
 * plus the divergence). div may be NULL when only D is needed. */
typedef struct ug_div_denoiser {
    int64_t dim;
    ug_status (*fn)(void *self, int64_t n, const double *x, double sigma, double *D, double *div);
    void *self;
} ug_div_denoiser;

/* The exact mixture (SPEC section 6): with v_k = s_k^2 + sigma^2, f_k = s_k^2 / v_k,
 * m_k = mu_k + f_k (x - mu_k), responsibilities r_k and grad r_k = r_k (g_k - sum_l r_l g_l),
 * g_k = -(x - mu_k) / v_k:
 *   div D = d sum_k r_k f_k - sum_k r_k (m_k - D) . (x - mu_k) / v_k.
 * x (d) -> D (d), *div. */
void ug_gmm_denoise_div(const ug_gmm *g, const double *x, double sigma, double *D, double *div);
ug_div_denoiser ug_gmm_div_denoiser(const ug_gmm *g);

typedef enum {
    UG_DIV_AUTO,        /* exact for d <= 64, Hutchinson above */
    UG_DIV_EXACT,       /* d vector-Jacobian products on one forward tape */
    UG_DIV_HUTCHINSON,  /* mean over probes of v^T (dD/dx) v, Rademacher v */
    UG_DIV_COUNT
} ug_div_kind;
const char *ug_div_name(ug_div_kind k);
int ug_div_from_name(const char *name, ug_div_kind *out);   /* 0 ok, -1 unknown */

typedef struct ug_div_cfg {
    ug_div_kind kind;
    int probes;             /* Hutchinson probes per point (0: 1, as score_sde) */
    uint64_t seed;          /* probe k of point i: Philox (seed, first_stream + i), K*d draws */
    uint64_t first_stream;
} ug_div_cfg;
ug_div_cfg ug_div_default(void);    /* auto, 1 probe, seed 0, stream 0 */

/* A trained diffusion model's D and divergence. The probes are drawn once and kept for the whole
 * solve (as score_sde does): the adaptive solver needs one smooth vector field. The network
 * runs with its parameters frozen (their requires-grad flags are restored after each call).
 * labels: one per point or NULL; they and m must outlive the denoiser. The point count is
 * fixed by the first call (n); calls with another n fail. Release with ug_model_div_free. */
ug_status ug_model_div_denoiser(ug_model *m, const int32_t *labels, const ug_div_cfg *c,
                                ug_div_denoiser *out, void **state);
void ug_model_div_free(void *state);

/* ================================================================ likelihood */
typedef struct ug_lik_cfg {
    double sigma_min, sigma_max;   /* 0.002, 80 */
    ug_rk45_cfg ode;               /* rtol = atol = 1e-5 */
} ug_lik_cfg;
ug_lik_cfg ug_lik_default(void);

/* log p_{sigma_min}(x) by the probability-flow ODE in sigma-space (s = 1):
 *   dx/dsigma = (x - D(x; sigma)) / sigma,   d delta/dsigma = (d - div_x D) / sigma,
 *   log p_{smin}(x) = log N(x(smax); 0, smax^2 I) + delta(smax),   delta(smin) = 0,
 * integrated from sigma_min up to sigma_max. The n points form ONE ODE of n (d + 1) unknowns
 * with one step size and scipy's RMS error norm over the whole augmented state, exactly as
 * score_sde flattens its batch into solve_ivp: a point's value moves with its batch mates
 * by at most the tolerance. Models whose formulation has s != 1 are evaluated in the scaled-out
 * variable x~ = x_t / s(t) (the denoiser's own input), i.e. this is the density of x0 + sigma_min
 * eps. x (n, d); logp (n) out; z (n, d) = x(sigma_max) and delta (n) may be NULL. */
ug_status ug_likelihood_ode(const ug_lik_cfg *c, const ug_div_denoiser *dn, int64_t n,
                            const double *x, double *logp, double *z, double *delta,
                            ug_ode_stats *stats);

/* Bits per dimension of an NLL in nats of d-dimensional data, on the 8-bit scale when the data
 * are pixel values mapped affinely with `levels` 8-bit steps per data unit:
 *   bpd = (nll + d ln(levels)) / (d ln 2).
 * levels: 1 (no change of scale), 127.5 (data in [-1, 1]: x = p / 127.5 - 1), 255 (p / 255),
 * 256 (uniformly dequantized (p + u) / 256). */
double ug_bits_per_dim(double nll_nats, int64_t d, double levels);
typedef enum {
    UG_SCALE_RAW,        /* levels 1 */
    UG_SCALE_PM1,        /* [-1, 1]: 127.5 (SPEC section 6) */
    UG_SCALE_UNIT,       /* pixel / 255: 255 */
    UG_SCALE_DEQUANT256, /* (pixel + u) / 256: 256 */
    UG_SCALE_COUNT
} ug_data_scale;
double ug_data_scale_levels(ug_data_scale s);

/* ================================================================ two-sample metrics
 * x (m, d) and y (n, d) in float, row-major; sums in double, O(mn d) loops over OpenMP threads. */

/* Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with k(a, b) = exp(-|a - b|^2 / (2 h^2)), h the
 * median pairwise distance of the pooled sample (median heuristic; pairs i < j, on at most 1024
 * evenly strided points of each set). bandwidth: NULL, or in: > 0 to use that h; out: the h used
 * when *bandwidth <= 0. m, n >= 2. Can be slightly negative. */
ug_status ug_mmd2(const float *x, int64_t m, const float *y, int64_t n, int64_t d,
                  double *bandwidth, double *out);
/* Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Székely & Rizzo 2013), within-set means
 * over i != j (unbiased). m, n >= 2. */
ug_status ug_energy_distance(const float *x, int64_t m, const float *y, int64_t n, int64_t d,
                             double *out);
/* Sliced Wasserstein-2: sqrt of the mean over K directions theta_k (uniform on the sphere,
 * normals from Philox stream k of seed, normalized) of W2^2 between the projected empirical
 * measures. W2^2 in 1-D is the exact integral of (F^-1 - G^-1)^2 over the merged quantile
 * breakpoints, so unequal sizes need no resampling. */
ug_status ug_sliced_w2(const float *x, int64_t m, const float *y, int64_t n, int64_t d,
                       int K, uint64_t seed, double *out);
/* Fréchet distance between N(mu1, S1) and N(mu2, S2):
 *   ||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr (S1^{1/2} S2 S1^{1/2})^{1/2}
 * (equal to Tr (S1 S2)^{1/2}), both roots from symmetric eigendecompositions (LAPACK dsyevd),
 * negative eigenvalues from rounding clipped to 0. S (d, d) row-major. */
ug_status ug_frechet_from_stats(int64_t d, const double *mu1, const double *S1,
                                const double *mu2, const double *S2, double *out);
/* Mean and covariance (divisor n - 1, as numpy.cov / pytorch-fid) of each set, then the above. */
ug_status ug_frechet_distance(const float *x, int64_t m, const float *y, int64_t n, int64_t d,
                              double *out);
/* Improved precision and recall (Kynkäänniemi et al. 2019): the manifold of a set is the union
 * of balls around its points with radius the distance to the k-th nearest other point of the
 * set. precision = share of y inside the manifold of x (real), recall = share of x inside the
 * manifold of y (generated). k = 3 in the paper; k < m, k < n. Either out may be NULL. */
ug_status ug_precision_recall(const float *real, int64_t m, const float *fake, int64_t n,
                              int64_t d, int k, double *precision, double *recall);

/* ---------------------------------------------------------------- internal */
#include "models/diffusion.h"
/* Defined in models/model.c (no header declares it yet). */
const ug_diffusion *ug_model_diffusion(const ug_model *m);
#endif
