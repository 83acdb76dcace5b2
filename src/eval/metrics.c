/* metrics.c — two-sample metrics between a data set and generated samples (SPEC section 10):
 *   MMD^2, unbiased (Gretton et al. 2012, JMLR, eq. 3), RBF kernel with the median heuristic;
 *   energy distance (Székely & Rizzo 2013); sliced Wasserstein-2 (Rabin et al. 2011; Bonneel
 *   et al. 2015); Fréchet distance of Gaussians fitted to features (Dowson & Landau 1982; FID,
 *   Heusel et al. 2017); improved precision / recall (Kynkäänniemi et al. 2019).
 * Inputs are float rows; every distance and sum is in double. The O(mn) pair loops run over
 * OpenMP threads, each row's sum in a fixed order, so results depend on the thread count only
 * through the order the row sums are added. */
#include "eval/eval.h"
#include "core/core.h"
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <omp.h>

static double sqdist(const float *a, const float *b, int64_t d) {
    double s = 0;
    for (int64_t j = 0; j < d; j++) {
        double t = (double)a[j] - (double)b[j];
        s += t * t;
    }
    return s;
}

static int cmp_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

static ug_status check_sets(const char *what, int64_t m, int64_t n, int64_t d, int64_t min_n) {
    if (m < min_n || n < min_n || d < 1)
        return ug_fail(UG_ERR_INVALID_ARG, "%s: sets of %lld and %lld points of dimension %lld, "
                       "expected >= %lld points each and d >= 1", what, (long long)m,
                       (long long)n, (long long)d, (long long)min_n);
    return UG_OK;
}

/* ---------------------------------------------------------------- MMD^2 */
#define MMD_MEDIAN_MAX 1024

/* Median of the pairwise distances of the pooled sample, on at most MMD_MEDIAN_MAX evenly
 * strided points of each set (the median is a robust statistic: a subsample estimates it well
 * and keeps the pair list at 2M entries). */
static ug_status median_distance(const float *x, int64_t m, const float *y, int64_t n, int64_t d,
                                 double *out) {
    int64_t cm = m < MMD_MEDIAN_MAX ? m : MMD_MEDIAN_MAX, cn = n < MMD_MEDIAN_MAX ? n : MMD_MEDIAN_MAX;
    int64_t P = cm + cn, npair = P * (P - 1) / 2;
    const float **pts = malloc((size_t)P * sizeof *pts);
    double *dd = malloc((size_t)npair * sizeof *dd);
    if (!pts || !dd) {
        free(pts);
        free(dd);
        return ug_fail(UG_ERR_NOMEM, "mmd: out of memory for %lld pairs", (long long)npair);
    }
    for (int64_t i = 0; i < cm; i++) pts[i] = x + (i * m / cm) * d;
    for (int64_t i = 0; i < cn; i++) pts[cm + i] = y + (i * n / cn) * d;
#pragma omp parallel for schedule(dynamic, 16) if (npair * d >= UG_PAR_MIN)
    for (int64_t i = 0; i < P; i++) {
        /* pairs (i, j > i) start at offset i P - i (i + 1) / 2 */
        int64_t off = i * P - i * (i + 1) / 2;
        for (int64_t j = i + 1; j < P; j++) dd[off + j - i - 1] = sqdist(pts[i], pts[j], d);
    }
    qsort(dd, (size_t)npair, sizeof *dd, cmp_double);
    double med = npair % 2 ? dd[npair / 2] : 0.5 * (dd[npair / 2 - 1] + dd[npair / 2]);
    *out = sqrt(med);
    free(pts);
    free(dd);
    return UG_OK;
}

/* sum over i < j of k(a_i, a_j) (same = 1) or over all i, j of k(a_i, b_j); kind 0: RBF with
 * gamma, 1: Euclidean distance. */
static double pair_sum(const float *a, int64_t m, const float *b, int64_t n, int64_t d, int same,
                       int kind, double gamma) {
    double total = 0;
#pragma omp parallel for schedule(dynamic, 8) reduction(+ : total) if (m * n * d >= UG_PAR_MIN)
    for (int64_t i = 0; i < m; i++) {
        double row = 0;
        for (int64_t j = same ? i + 1 : 0; j < n; j++) {
            double q = sqdist(a + i * d, b + j * d, d);
            row += kind == 0 ? exp(-gamma * q) : sqrt(q);
        }
        total += row;
    }
    return total;
}

ug_status ug_mmd2(const float *x, int64_t m, const float *y, int64_t n, int64_t d,
                  double *bandwidth, double *out) {
    ug_status st = check_sets("mmd", m, n, d, 2);
    if (st) return st;
    double h = bandwidth && *bandwidth > 0 ? *bandwidth : 0;
    if (!(h > 0)) {
        if ((st = median_distance(x, m, y, n, d, &h))) return st;
        if (!(h > 0))
            return ug_fail(UG_ERR_NUMERIC, "mmd: the median pairwise distance is %g (all points "
                           "equal?); pass a bandwidth", h);
        if (bandwidth) *bandwidth = h;
    }
    double gamma = 1 / (2 * h * h);
    double kxx = 2 * pair_sum(x, m, x, m, d, 1, 0, gamma) / ((double)m * (m - 1));
    double kyy = 2 * pair_sum(y, n, y, n, d, 1, 0, gamma) / ((double)n * (n - 1));
    double kxy = pair_sum(x, m, y, n, d, 0, 0, gamma) / ((double)m * n);
    *out = kxx + kyy - 2 * kxy;
    return UG_OK;
}

ug_status ug_energy_distance(const float *x, int64_t m, const float *y, int64_t n, int64_t d,
                             double *out) {
    ug_status st = check_sets("energy distance", m, n, d, 2);
    if (st) return st;
    double exx = 2 * pair_sum(x, m, x, m, d, 1, 1, 0) / ((double)m * (m - 1));
    double eyy = 2 * pair_sum(y, n, y, n, d, 1, 1, 0) / ((double)n * (n - 1));
    double exy = pair_sum(x, m, y, n, d, 0, 1, 0) / ((double)m * n);
    *out = 2 * exy - exx - eyy;
    return UG_OK;
}

/* ---------------------------------------------------------------- sliced Wasserstein-2 */
/* W2^2 between the empirical measures of sorted a (m) and b (n), uniform weights: the quantile
 * functions are steps at i/m and j/n, so the integral is exact over the merged breakpoints. */
static double w2sq_sorted(const double *a, int64_t m, const double *b, int64_t n) {
    double acc = 0, u = 0;
    int64_t i = 0, j = 0;
    while (i < m && j < n) {
        /* compare (i+1)/m with (j+1)/n exactly in integers */
        int64_t lhs = (i + 1) * n, rhs = (j + 1) * m;
        double next = lhs <= rhs ? (double)(i + 1) / m : (double)(j + 1) / n;
        double t = a[i] - b[j];
        acc += (next - u) * t * t;
        u = next;
        if (lhs <= rhs) i++;
        if (rhs <= lhs) j++;
    }
    return acc;
}

ug_status ug_sliced_w2(const float *x, int64_t m, const float *y, int64_t n, int64_t d, int K,
                       uint64_t seed, double *out) {
    ug_status st = check_sets("sliced w2", m, n, d, 1);
    if (st) return st;
    if (K < 1) return ug_fail(UG_ERR_INVALID_ARG, "sliced w2: %d directions, expected >= 1", K);
    int nth = omp_get_max_threads();
    if ((int64_t)K * (m + n) * d < UG_PAR_MIN) nth = 1;
    size_t per = (size_t)(m + n + d);
    double *buf = malloc((size_t)nth * per * sizeof *buf);
    float *dirs = malloc((size_t)K * (size_t)d * sizeof *dirs);
    if (!buf || !dirs) {
        free(buf);
        free(dirs);
        return ug_fail(UG_ERR_NOMEM, "sliced w2: out of memory");
    }
    for (int k = 0; k < K; k++) {
        ug_rng r = ug_rng_make(seed, (uint64_t)k, 0);
        ug_rng_normal(&r, dirs + (size_t)k * d, d);
    }
    double total = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : total) num_threads(nth)
    for (int k = 0; k < K; k++) {
        double *pa = buf + (size_t)omp_get_thread_num() * per, *pb = pa + m, *th = pb + n;
        double nrm = 0;
        for (int64_t j = 0; j < d; j++) nrm += (double)dirs[(size_t)k * d + j] * dirs[(size_t)k * d + j];
        nrm = sqrt(nrm);
        for (int64_t j = 0; j < d; j++) th[j] = nrm > 0 ? dirs[(size_t)k * d + j] / nrm : (j == 0);
        for (int64_t i = 0; i < m; i++) {
            double s = 0;
            for (int64_t j = 0; j < d; j++) s += th[j] * x[i * d + j];
            pa[i] = s;
        }
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t j = 0; j < d; j++) s += th[j] * y[i * d + j];
            pb[i] = s;
        }
        qsort(pa, (size_t)m, sizeof *pa, cmp_double);
        qsort(pb, (size_t)n, sizeof *pb, cmp_double);
        total += w2sq_sorted(pa, m, pb, n);
    }
    free(buf);
    free(dirs);
    *out = sqrt(total / K);
    return UG_OK;
}

/* ---------------------------------------------------------------- Fréchet distance */
/* Symmetric a (d, d) -> its eigenvalues w (d, ascending); with vectors, column j of a (row-major)
 * becomes eigenvector j. a is symmetrized first so rounding in a product cannot skew it. */
static ug_status sym_eig(double *a, double *w, int64_t d, int vectors) {
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < i; j++) a[i * d + j] = a[j * d + i] = 0.5 * (a[i * d + j] + a[j * d + i]);
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, vectors ? 'V' : 'N', 'U', (lapack_int)d, a,
                                     (lapack_int)d, w);
    if (info != 0)
        return ug_fail(UG_ERR_NUMERIC, "frechet: eigendecomposition failed (dsyevd info %d)", (int)info);
    return UG_OK;
}

ug_status ug_frechet_from_stats(int64_t d, const double *mu1, const double *S1,
                                const double *mu2, const double *S2, double *out) {
    if (d < 1) return ug_fail(UG_ERR_INVALID_ARG, "frechet: dimension %lld, expected >= 1", (long long)d);
    size_t dd = (size_t)(d * d);
    double *buf = malloc((dd * 3 + (size_t)d) * sizeof *buf);
    if (!buf) return ug_fail(UG_ERR_NOMEM, "frechet: out of memory for d = %lld", (long long)d);
    double *V = buf, *R = buf + dd, *T = buf + 2 * dd, *w = buf + 3 * dd;
    for (size_t i = 0; i < dd; i++)
        if (!isfinite(S1[i]) || !isfinite(S2[i])) {
            free(buf);
            return ug_fail(UG_ERR_NUMERIC, "frechet: non-finite covariance entry %zu", i);
        }
    memcpy(V, S1, dd * sizeof *V);
    ug_status st = sym_eig(V, w, d, 1);
    if (!st) {
        /* R = S1^{1/2} = V diag(sqrt w) V^T: scale V's columns into T, then T V^T. */
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j < d; j++) T[i * d + j] = V[i * d + j] * sqrt(fmax(w[j], 0));
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d, (int)d, (int)d, 1, T, (int)d,
                    V, (int)d, 0, R, (int)d);
        /* M = R S2 R into V (eigenvalues only). */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)d, (int)d, 1, R, (int)d,
                    S2, (int)d, 0, T, (int)d);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)d, (int)d, 1, T, (int)d,
                    R, (int)d, 0, V, (int)d);
        st = sym_eig(V, w, d, 0);
    }
    if (!st) {
        double tr_sqrt = 0, tr = 0, dm = 0;
        for (int64_t j = 0; j < d; j++) tr_sqrt += sqrt(fmax(w[j], 0));
        for (int64_t j = 0; j < d; j++) {
            tr += S1[j * d + j] + S2[j * d + j];
            dm += (mu1[j] - mu2[j]) * (mu1[j] - mu2[j]);
        }
        *out = dm + tr - 2 * tr_sqrt;
    }
    free(buf);
    return st;
}

/* Mean (d) and covariance (d, d) with divisor n - 1. */
static ug_status fit_gaussian(const float *x, int64_t n, int64_t d, double *mu, double *S) {
    double *c = malloc((size_t)(n * d) * sizeof *c);
    if (!c) return ug_fail(UG_ERR_NOMEM, "frechet: out of memory for %lld points", (long long)n);
    for (int64_t j = 0; j < d; j++) mu[j] = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) mu[j] += x[i * d + j];
    for (int64_t j = 0; j < d; j++) mu[j] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) c[i * d + j] = x[i * d + j] - mu[j];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)n,
                1.0 / (double)(n - 1), c, (int)d, c, (int)d, 0, S, (int)d);
    free(c);
    return UG_OK;
}

ug_status ug_frechet_distance(const float *x, int64_t m, const float *y, int64_t n, int64_t d,
                              double *out) {
    ug_status st = check_sets("frechet", m, n, d, 2);
    if (st) return st;
    double *buf = malloc((size_t)(2 * d + 2 * d * d) * sizeof *buf);
    if (!buf) return ug_fail(UG_ERR_NOMEM, "frechet: out of memory for d = %lld", (long long)d);
    double *mu1 = buf, *mu2 = buf + d, *S1 = buf + 2 * d, *S2 = S1 + d * d;
    st = fit_gaussian(x, m, d, mu1, S1);
    if (!st) st = fit_gaussian(y, n, d, mu2, S2);
    if (!st) st = ug_frechet_from_stats(d, mu1, S1, mu2, S2, out);
    free(buf);
    return st;
}

/* ---------------------------------------------------------------- precision / recall */
/* radius[i] = squared distance from a_i to its k-th nearest other point of a. */
static void knn_radii(const float *a, int64_t m, int64_t d, int k, double *radius) {
#pragma omp parallel for schedule(dynamic, 8) if (m * m * d >= UG_PAR_MIN)
    for (int64_t i = 0; i < m; i++) {
        double best[64];   /* the k smallest so far, ascending */
        int nb = 0;
        for (int64_t j = 0; j < m; j++) {
            if (j == i) continue;
            double q = sqdist(a + i * d, a + j * d, d);
            if (nb == k && q >= best[k - 1]) continue;
            int p = nb < k ? nb++ : k - 1;
            while (p > 0 && best[p - 1] > q) {
                best[p] = best[p - 1];
                p--;
            }
            best[p] = q;
        }
        radius[i] = best[k - 1];
    }
}

/* Share of the points of b inside the union of the balls (a_i, radius_i). */
static double coverage(const float *a, int64_t m, const double *radius, const float *b, int64_t n,
                       int64_t d) {
    int64_t hit = 0;
#pragma omp parallel for schedule(dynamic, 8) reduction(+ : hit) if (m * n * d >= UG_PAR_MIN)
    for (int64_t j = 0; j < n; j++) {
        for (int64_t i = 0; i < m; i++)
            if (sqdist(a + i * d, b + j * d, d) <= radius[i]) {
                hit++;
                break;
            }
    }
    return (double)hit / (double)n;
}

ug_status ug_precision_recall(const float *real, int64_t m, const float *fake, int64_t n,
                              int64_t d, int k, double *precision, double *recall) {
    if (k < 1 || k > 64)
        return ug_fail(UG_ERR_INVALID_ARG, "precision/recall: k = %d, expected 1..64", k);
    ug_status st = check_sets("precision/recall", m, n, d, (int64_t)k + 1);
    if (st) return st;
    double *rr = malloc((size_t)(m + n) * sizeof *rr);
    if (!rr) return ug_fail(UG_ERR_NOMEM, "precision/recall: out of memory");
    double *rf = rr + m;
    if (precision) {
        knn_radii(real, m, d, k, rr);
        *precision = coverage(real, m, rr, fake, n, d);
    }
    if (recall) {
        knn_radii(fake, n, d, k, rf);
        *recall = coverage(fake, n, rf, real, m, d);
    }
    free(rr);
    return UG_OK;
}
