/* flow.c — kernels of the normalizing flows (see flow.h for the formulas): NICE's parity
 * split as a gather, RealNVP / Glow affine couplings (Dinh et al. 2017 eq. 7-8, with the soft
 * clamp s = c tanh(s_raw / c) that keeps exp(s) bounded early in training), the standard
 * Gaussian and logistic priors (Dinh et al. 2014 sec. 3.4) and Glow's LU weight (Kingma &
 * Dhariwal 2018 eq. 10). */
#include "flow.h"
#include "core/core.h"
#include <math.h>

void ug_k_gather_cols(float *out, const float *x, const int32_t *idx, int64_t N, int64_t D,
                      int64_t m, int accumulate) {
#pragma omp parallel for schedule(static) if (N * m >= UG_PAR_MIN)
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * D;
        float *o = out + r * m;
        if (accumulate)
            for (int64_t j = 0; j < m; j++) o[j] += xr[idx[j]];
        else
            for (int64_t j = 0; j < m; j++) o[j] = xr[idx[j]];
    }
}

void ug_k_scatter_cols(float *out, const float *a, const int32_t *idx, int64_t N, int64_t D,
                       int64_t m, int accumulate) {
#pragma omp parallel for schedule(static) if (N * m >= UG_PAR_MIN)
    for (int64_t r = 0; r < N; r++) {
        const float *ar = a + r * m;
        float *o = out + r * D;
        if (accumulate)
            for (int64_t j = 0; j < m; j++) o[idx[j]] += ar[j];
        else
            for (int64_t j = 0; j < m; j++) o[idx[j]] = ar[j];
    }
}

/* s and ds/ds_raw = 1 - tanh^2 of the soft clamp. */
static inline float clamp_s(float raw, float c) { return c > 0 ? c * tanhf(raw / c) : raw; }
static inline float clamp_ds(float s, float c) { return c > 0 ? 1.0f - (s / c) * (s / c) : 1.0f; }

void ug_k_coupling_forward(float *y, const float *x, const float *h, const float *mask, float c,
                         int64_t N, int64_t n) {
#pragma omp parallel for schedule(static) if (N * n >= UG_PAR_MIN)
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * n, *sr = h + 2 * r * n, *tr = sr + n;
        float *yr = y + r * n;
        for (int64_t j = 0; j < n; j++)
            yr[j] = mask && mask[j] != 0 ? xr[j] : xr[j] * expf(clamp_s(sr[j], c)) + tr[j];
    }
}

void ug_k_coupling_inverse(float *x, const float *y, const float *h, const float *mask, float c,
                         int64_t N, int64_t n) {
#pragma omp parallel for schedule(static) if (N * n >= UG_PAR_MIN)
    for (int64_t r = 0; r < N; r++) {
        const float *yr = y + r * n, *sr = h + 2 * r * n, *tr = sr + n;
        float *xr = x + r * n;
        for (int64_t j = 0; j < n; j++)
            xr[j] = mask && mask[j] != 0 ? yr[j] : (yr[j] - tr[j]) * expf(-clamp_s(sr[j], c));
    }
}

void ug_k_coupling_backward(float *dx, float *dh, const float *dy, const float *x, const float *h,
                          const float *mask, float c, int64_t N, int64_t n) {
#pragma omp parallel for schedule(static) if (N * n >= UG_PAR_MIN)
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * n, *sr = h + 2 * r * n, *gy = dy + r * n;
        for (int64_t j = 0; j < n; j++) {
            if (mask && mask[j] != 0) {
                if (dx) dx[r * n + j] += gy[j];
                continue;
            }
            float s = clamp_s(sr[j], c), e = expf(s);
            if (dx) dx[r * n + j] += gy[j] * e;
            if (dh) {
                dh[2 * r * n + j] += gy[j] * xr[j] * e * clamp_ds(s, c);
                dh[2 * r * n + n + j] += gy[j];
            }
        }
    }
}

void ug_k_coupling_logdet_forward(float *ld, const float *h, const float *mask, float c, int64_t N,
                                int64_t n) {
#pragma omp parallel for schedule(static) if (N * n >= UG_PAR_MIN)
    for (int64_t r = 0; r < N; r++) {
        const float *sr = h + 2 * r * n;
        double acc = 0;
        for (int64_t j = 0; j < n; j++)
            if (!mask || mask[j] == 0) acc += clamp_s(sr[j], c);
        ld[r] = (float)acc;
    }
}

void ug_k_coupling_logdet_backward(float *dh, const float *dld, const float *h, const float *mask,
                                 float c, int64_t N, int64_t n) {
#pragma omp parallel for schedule(static) if (N * n >= UG_PAR_MIN)
    for (int64_t r = 0; r < N; r++) {
        const float *sr = h + 2 * r * n;
        for (int64_t j = 0; j < n; j++)
            if (!mask || mask[j] == 0) dh[2 * r * n + j] += dld[r] * clamp_ds(clamp_s(sr[j], c), c);
    }
}

void ug_k_prior_logp_forward(float *lp, const float *z, int logistic, int64_t N, int64_t n) {
    const double half_log_2pi = 0.91893853320467274178;
#pragma omp parallel for schedule(static) if (N * n >= UG_PAR_MIN)
    for (int64_t r = 0; r < N; r++) {
        const float *zr = z + r * n;
        double acc = 0;
        if (logistic) {
            for (int64_t j = 0; j < n; j++) {
                double a = fabs((double)zr[j]);
                acc -= a + 2.0 * log1p(exp(-a));
            }
        } else {
            for (int64_t j = 0; j < n; j++) acc -= 0.5 * (double)zr[j] * zr[j] + half_log_2pi;
        }
        lp[r] = (float)acc;
    }
}

void ug_k_prior_logp_backward(float *dz, const float *dlp, const float *z, int logistic,
                              int64_t N, int64_t n) {
#pragma omp parallel for schedule(static) if (N * n >= UG_PAR_MIN)
    for (int64_t r = 0; r < N; r++) {
        const float *zr = z + r * n;
        float g = dlp[r], *d = dz + r * n;
        if (logistic)
            for (int64_t j = 0; j < n; j++) d[j] -= g * tanhf(0.5f * zr[j]);
        else
            for (int64_t j = 0; j < n; j++) d[j] -= g * zr[j];
    }
}

/* Lower factor with the unit diagonal, upper factor with sign exp(logs) on it. */
static inline double lo_at(const float *l, int64_t C, int64_t i, int64_t k) {
    return k < i ? l[i * C + k] : (k == i ? 1.0 : 0.0);
}
static inline double up_at(const float *u, const float *logs, const float *sign, int64_t C,
                           int64_t k, int64_t j) {
    return j > k ? u[k * C + j] : (j == k ? sign[k] * exp((double)logs[k]) : 0.0);
}

void ug_k_lu_weight_forward(float *W, const float *l, const float *u, const float *logs,
                            const int32_t *perm, const float *sign, int64_t C) {
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++) {
            double acc = 0;
            for (int64_t k = 0; k <= i && k <= j; k++)
                acc += lo_at(l, C, i, k) * up_at(u, logs, sign, C, k, j);
            W[perm[i] * C + j] = (float)acc;
        }
}

void ug_k_lu_weight_backward(float *dl, float *du, float *dlogs, const float *dW, const float *l,
                             const float *u, const float *logs, const int32_t *perm,
                             const float *sign, int64_t C) {
    /* M = L U', W[perm[i]] = M[i]: dM[i] = dW[perm[i]], dL = dM U'^T, dU' = L^T dM. */
    for (int64_t i = 0; i < C; i++)
        for (int64_t k = 0; k < i && dl; k++) {
            double acc = 0;
            for (int64_t j = k; j < C; j++) acc += dW[perm[i] * C + j] * up_at(u, logs, sign, C, k, j);
            dl[i * C + k] += (float)acc;
        }
    for (int64_t k = 0; k < C; k++)
        for (int64_t j = k; j < C; j++) {
            double acc = 0;
            for (int64_t i = k; i < C; i++) acc += lo_at(l, C, i, k) * dW[perm[i] * C + j];
            if (j > k && du) du[k * C + j] += (float)acc;
            if (j == k && dlogs) dlogs[k] += (float)(acc * sign[k] * exp((double)logs[k]));
        }
}
