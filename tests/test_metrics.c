/* test_metrics.c — two-sample metrics (SPEC section 10): identical sets give ~0 (exactly where the
 * estimator allows), MMD^2 and energy distance against naive double loops written here, shifted
 * sets score worse than independent draws of the same law, the Fréchet distance against closed
 * forms (2x2 trace root, commuting covariances) and against large samples of known Gaussians,
 * sliced W2 against exact 1-D W2 of Gaussians and of tiny empirical sets, precision/recall
 * of identical and disjoint sets. */
#include "test.h"
#include "eval/eval.h"

/* n points of N(mu, diag(sd^2)) in d dims, streams first..first+n-1. */
static float *gauss_set(int64_t n, int d, double mu, double sd, uint64_t seed) {
    float *x = malloc((size_t)(n * d) * sizeof *x);
    ug_rng_normal_rows(seed, 0, 0, x, n, d);
    for (int64_t j = 0; j < n * d; j++) x[j] = (float)(mu + sd * x[j]);
    return x;
}

static double dist2(const float *a, const float *b, int d) {
    double s = 0;
    for (int j = 0; j < d; j++) s += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
    return s;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

TEST(mmd_energy_match_naive_loops) {
    const int m = 40, n = 30, d = 3;
    float *x = gauss_set(m, d, 0, 1, 1), *y = gauss_set(n, d, 0.5, 1.3, 2);
    /* naive median of pooled pairwise distances */
    float pool[(40 + 30) * 3];
    memcpy(pool, x, sizeof(float) * m * d);
    memcpy(pool + m * d, y, sizeof(float) * n * d);
    int P = m + n, np = 0;
    double *dd = malloc(sizeof(double) * P * P);
    for (int i = 0; i < P; i++)
        for (int j = i + 1; j < P; j++) dd[np++] = sqrt(dist2(pool + i * d, pool + j * d, d));
    qsort(dd, (size_t)np, sizeof *dd, cmpd);
    double h = np % 2 ? dd[np / 2] : 0.5 * (dd[np / 2 - 1] + dd[np / 2]);
    free(dd);
    double kxx = 0, kyy = 0, kxy = 0, exx = 0, eyy = 0, exy = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            if (i != j) {
                kxx += exp(-dist2(x + i * d, x + j * d, d) / (2 * h * h));
                exx += sqrt(dist2(x + i * d, x + j * d, d));
            }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j) {
                kyy += exp(-dist2(y + i * d, y + j * d, d) / (2 * h * h));
                eyy += sqrt(dist2(y + i * d, y + j * d, d));
            }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            kxy += exp(-dist2(x + i * d, y + j * d, d) / (2 * h * h));
            exy += sqrt(dist2(x + i * d, y + j * d, d));
        }
    double mmd_ref = kxx / (m * (m - 1.0)) + kyy / (n * (n - 1.0)) - 2 * kxy / ((double)m * n);
    double en_ref = 2 * exy / ((double)m * n) - exx / (m * (m - 1.0)) - eyy / (n * (n - 1.0));
    double bw = 0, mmd, en;
    ASSERT_OK(ug_mmd2(x, m, y, n, d, &bw, &mmd));
    ASSERT_OK(ug_energy_distance(x, m, y, n, d, &en));
    EXPECT(fabs(bw - h) < 1e-12 * h, "bandwidth %.15g vs naive median %.15g", bw, h);
    EXPECT(fabs(mmd - mmd_ref) < 1e-12, "mmd %.15g vs naive %.15g", mmd, mmd_ref);
    EXPECT(fabs(en - en_ref) < 1e-12, "energy %.15g vs naive %.15g", en, en_ref);
    /* A given bandwidth is used as is. */
    double bw2 = 0.7, mmd2;
    ASSERT_OK(ug_mmd2(x, m, y, n, d, &bw2, &mmd2));
    EXPECT(bw2 == 0.7 && fabs(mmd2 - mmd) > 1e-6, "fixed bandwidth ignored");
    free(x);
    free(y);
}

TEST(metrics_identical_sets_are_zero) {
    const int n = 400, d = 3;
    float *x = gauss_set(n, d, 0, 1, 3);
    double mmd, en, swd, fd, p, r;
    ASSERT_OK(ug_mmd2(x, n, x, n, d, NULL, &mmd));
    ASSERT_OK(ug_energy_distance(x, n, x, n, d, &en));
    ASSERT_OK(ug_sliced_w2(x, n, x, n, d, 50, 1, &swd));
    ASSERT_OK(ug_frechet_distance(x, n, x, n, d, &fd));
    ASSERT_OK(ug_precision_recall(x, n, x, n, d, 3, &p, &r));
    /* Unbiased within-set terms against a biased cross term: exactly in [-2/n, 0] for X = Y. */
    EXPECT(mmd <= 1e-12 && mmd >= -2.0 / n, "mmd %g", mmd);
    EXPECT(en <= 1e-12 && en >= -2 * 3.0 / n, "energy %g", en);
    EXPECT(swd == 0, "swd %g", swd);
    EXPECT(fabs(fd) < 1e-10, "fd %g", fd);
    EXPECT(p == 1 && r == 1, "precision %g recall %g", p, r);
    free(x);
}

TEST(metrics_shift_scores_worse_than_fresh_draws) {
    const int n = 500, d = 4;
    float *x = gauss_set(n, d, 0, 1, 4), *same = gauss_set(n, d, 0, 1, 5),
          *shift = gauss_set(n, d, 0.5, 1, 6);
    double a, b;
    ASSERT_OK(ug_mmd2(x, n, same, n, d, NULL, &a));
    ASSERT_OK(ug_mmd2(x, n, shift, n, d, NULL, &b));
    printf("    mmd^2: same law %.2e, shifted by 0.5 %.2e\n", a, b);
    EXPECT(b > 0.02 && b > 10 * fabs(a), "mmd same %g shifted %g", a, b);
    ASSERT_OK(ug_energy_distance(x, n, same, n, d, &a));
    ASSERT_OK(ug_energy_distance(x, n, shift, n, d, &b));
    printf("    energy: same law %.2e, shifted %.2e\n", a, b);
    EXPECT(b > 10 * fabs(a), "energy same %g shifted %g", a, b);
    ASSERT_OK(ug_sliced_w2(x, n, same, n, d, 100, 2, &a));
    ASSERT_OK(ug_sliced_w2(x, n, shift, n, d, 100, 2, &b));
    printf("    sliced w2: same law %.3f, shifted %.3f (expected ~%.3f)\n", a, b, sqrt(4 * 0.25 / 4));
    EXPECT(b > 2 * a, "swd same %g shifted %g", a, b);
    ASSERT_OK(ug_frechet_distance(x, n, same, n, d, &a));
    ASSERT_OK(ug_frechet_distance(x, n, shift, n, d, &b));
    EXPECT(fabs(b - 1.0) < 0.15 && a < 0.1, "fd same %g shifted %g (expected 1)", a, b);
    free(x); free(same); free(shift);
}

/* Tr sqrtm(A) for A = S1 S2 in 2-D: (sqrt l1 + sqrt l2)^2 = tr A + 2 sqrt(det A). */
static double fd_2x2(const double *m1, const double *S1, const double *m2, const double *S2) {
    double A[4] = {S1[0] * S2[0] + S1[1] * S2[2], S1[0] * S2[1] + S1[1] * S2[3],
                   S1[2] * S2[0] + S1[3] * S2[2], S1[2] * S2[1] + S1[3] * S2[3]};
    double trA = A[0] + A[3], detA = A[0] * A[3] - A[1] * A[2];
    double tr_sqrt = sqrt(trA + 2 * sqrt(detA));
    double dm = (m1[0] - m2[0]) * (m1[0] - m2[0]) + (m1[1] - m2[1]) * (m1[1] - m2[1]);
    return dm + S1[0] + S1[3] + S2[0] + S2[3] - 2 * tr_sqrt;
}

TEST(frechet_closed_forms) {
    const double m1[2] = {0.3, -1}, m2[2] = {1.2, 0.4};
    const double S1[4] = {2.0, 0.7, 0.7, 1.0}, S2[4] = {0.5, -0.2, -0.2, 1.5};
    double fd, ref = fd_2x2(m1, S1, m2, S2);
    ASSERT_OK(ug_frechet_from_stats(2, m1, S1, m2, S2, &fd));
    EXPECT(fabs(fd - ref) < 1e-12 * (1 + ref), "2x2: %.15g vs closed form %.15g", fd, ref);
    /* Commuting (diagonal) covariances: sum (sqrt a - sqrt b)^2 + |dmu|^2. */
    enum { DD = 5 };
    double a[DD * DD] = {0}, b[DD * DD] = {0}, u[DD], v[DD], dref = 0;
    for (int j = 0; j < DD; j++) {
        a[j * DD + j] = 0.5 + j;
        b[j * DD + j] = 2.0 / (1 + j);
        u[j] = j;
        v[j] = 0.5 * j;
        dref += (sqrt(a[j * DD + j]) - sqrt(b[j * DD + j])) * (sqrt(a[j * DD + j]) - sqrt(b[j * DD + j]))
                + (u[j] - v[j]) * (u[j] - v[j]);
    }
    ASSERT_OK(ug_frechet_from_stats(DD, u, a, v, b, &fd));
    EXPECT(fabs(fd - dref) < 1e-12 * (1 + dref), "diagonal: %.15g vs %.15g", fd, dref);
    /* Symmetric in its arguments, and 0 against itself. */
    double fd2;
    ASSERT_OK(ug_frechet_from_stats(2, m2, S2, m1, S1, &fd2));
    EXPECT(fabs(fd2 - ref) < 1e-12 * (1 + ref), "swapped %.15g", fd2);
    ASSERT_OK(ug_frechet_from_stats(2, m1, S1, m1, S1, &fd2));
    EXPECT(fabs(fd2) < 1e-12, "self %g", fd2);
}

TEST(frechet_of_samples_matches_true_parameters) {
    const double m1[2] = {0.3, -1}, m2[2] = {1.2, 0.4};
    const double S1[4] = {2.0, 0.7, 0.7, 1.0}, S2[4] = {0.5, -0.2, -0.2, 1.5};
    const int64_t n = 40000;
    float *x = malloc(sizeof(float) * 2 * n), *y = malloc(sizeof(float) * 2 * n);
    /* Cholesky factors of the 2x2 covariances. */
    const double *Ss[2] = {S1, S2}, *ms[2] = {m1, m2};
    float *outs[2] = {x, y};
    for (int s = 0; s < 2; s++) {
        const double *S = Ss[s];
        double l00 = sqrt(S[0]), l10 = S[2] / l00, l11 = sqrt(S[3] - l10 * l10);
        ug_rng_normal_rows(30 + s, 0, 0, outs[s], n, 2);
        for (int64_t i = 0; i < n; i++) {
            double z0 = outs[s][2 * i], z1 = outs[s][2 * i + 1];
            outs[s][2 * i] = (float)(ms[s][0] + l00 * z0);
            outs[s][2 * i + 1] = (float)(ms[s][1] + l10 * z0 + l11 * z1);
        }
    }
    double fd, ref = fd_2x2(m1, S1, m2, S2);
    ASSERT_OK(ug_frechet_distance(x, n, y, n, 2, &fd));
    /* Sampling error: dominated by 2 dmu . (mean errors), sd ~ 2 |dmu| sqrt(tr S / n) ~ 0.03. */
    printf("    FD from %lld samples %.4f, true %.4f\n", (long long)n, fd, ref);
    EXPECT(fabs(fd - ref) < 0.1, "fd %g vs %g", fd, ref);
    free(x);
    free(y);
}

TEST(sliced_w2_exact_cases) {
    /* {0, 1} against {0, 0.5, 1}: the quantile steps differ on [1/3, 2/3] by 0.5: W2^2 = 1/12. */
    float a[2] = {0, 1}, b[3] = {0.5f, 1, 0};
    double w;
    ASSERT_OK(ug_sliced_w2(a, 2, b, 3, 1, 3, 0, &w));
    EXPECT(fabs(w - sqrt(1.0 / 12)) < 1e-12, "tiny sets: %.15g vs %.15g", w, sqrt(1.0 / 12));
    /* 1-D Gaussians of unequal sizes: W2^2 = (m1 - m2)^2 + (s1 - s2)^2. */
    float *x = gauss_set(20000, 1, 1, 2, 7), *y = gauss_set(15000, 1, -0.5, 0.5, 8);
    double ref = sqrt(1.5 * 1.5 + 1.5 * 1.5);
    ASSERT_OK(ug_sliced_w2(x, 20000, y, 15000, 1, 4, 0, &w));
    printf("    1-D W2 %.4f, exact %.4f\n", w, ref);
    EXPECT(fabs(w - ref) < 0.03 * ref, "1-D: %g vs %g", w, ref);
    free(x);
    free(y);
    /* Isotropic in 3-D: E_theta W2^2 = |dmu|^2 / d + (s1 - s2)^2. */
    x = gauss_set(5000, 3, 0, 1, 9);
    y = gauss_set(5000, 3, 1, 0.5, 10);
    ref = sqrt(3.0 / 3 + 0.25);
    ASSERT_OK(ug_sliced_w2(x, 5000, y, 5000, 3, 400, 11, &w));
    printf("    3-D sliced W2 %.4f, expected %.4f\n", w, ref);
    EXPECT(fabs(w - ref) < 0.05 * ref, "3-D: %g vs %g", w, ref);
    free(x);
    free(y);
}

TEST(precision_recall_disjoint_and_partial) {
    const int n = 300, d = 2;
    float *x = gauss_set(n, d, 0, 1, 12), *far = gauss_set(n, d, 100, 1, 13);
    double p, r;
    ASSERT_OK(ug_precision_recall(x, n, far, n, d, 3, &p, &r));
    EXPECT(p == 0 && r == 0, "disjoint: precision %g recall %g", p, r);
    /* Mode dropping: the fakes copy the real points of the half-plane x0 < 0 and put the rest
     * far away. precision = the copied share exactly; recall covers that half and a rim. */
    float *mix = malloc(sizeof(float) * n * d);
    int cnt = 0;
    for (int i = 0; i < n; i++)
        if (x[i * d] < 0) memcpy(mix + (cnt++) * d, x + i * d, sizeof(float) * d);
    memcpy(mix + cnt * d, far, sizeof(float) * (n - cnt) * d);
    ASSERT_OK(ug_precision_recall(x, n, mix, n, d, 3, &p, &r));
    printf("    left half copied, rest far: precision %.3f (share %.3f) recall %.3f\n", p,
           (double)cnt / n, r);
    EXPECT(fabs(p - (double)cnt / n) < 1e-12, "precision %g", p);
    EXPECT(r >= (double)cnt / n && r < 0.75, "recall %g", r);
    EXPECT(ug_precision_recall(x, 3, x, 3, d, 3, &p, &r) == UG_ERR_INVALID_ARG, "k >= n rejected");
    free(x);
    free(far);
    free(mix);
}
