/* test_rng.c — Philox4x32-10 known answers (Random123's kat_vectors) and the distributions built
 * on it. Statistical bounds come from the sample size: a moment is accepted within 6 standard
 * errors of its exact value (two-sided false-failure probability 2e-9 per check under the
 * normal approximation), a chi-square below its 1 - 1e-9 quantile, and a Kolmogorov-Smirnov
 * statistic below the level where 2 exp(-2 n D^2) = 1e-9. A correct generator fails none of
 * them in practice; a biased one (wrong scale, shifted mean, a lost bit) fails at once. */
#include "test.h"
#include <omp.h>

#define Z6 6.0   /* standard errors allowed for a moment */

/* chi-square quantile for df degrees of freedom at z standard normal deviations above the
 * median (Wilson & Hilferty 1931): z = 6 is the 1 - 1e-9 quantile, accurate for df >= 10. */
static double chi2_crit(int df, double z) {
    double a = 2.0 / (9.0 * df);
    double c = 1.0 - a + z * sqrt(a);
    return df * c * c * c;
}

static double mean_of(const float *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s / (double)n;
}

/* Central moment k about mu. */
static double moment(const float *x, int64_t n, double mu, int k) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += pow((double)x[i] - mu, k);
    return s / (double)n;
}

/* ---------------------------------------------------------------- known answers */
TEST(rng_philox_known_answers) {
    /* Random123 tests/kat_vectors, philox4x32 10: counter, key -> output, words in order. */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int v = 0; v < 3; v++) {
        uint32_t out[4];
        ug_philox4x32_10(kat[v], kat[v] + 4, out);
        for (int j = 0; j < 4; j++)
            EXPECT(out[j] == kat[v][6 + j], "vector %d word %d: %08x, expected %08x", v, j,
                   out[j], kat[v][6 + j]);
    }
}

TEST(rng_cursor_layout) {
    /* The cursor's counter is (block lo, block hi, stream lo, stream hi), key (seed lo, hi):
     * ug_rng_uniform's first draw is the first Philox word mapped to (0, 1). */
    ug_rng r = ug_rng_make(0x0123456789abcdefULL, 0xfedcba9876543210ULL, 5);
    EXPECT(r.block == (uint64_t)5 << 32, "sub must start the block counter at sub << 32");
    uint32_t ctr[4] = {0, 5, 0x76543210u, 0xfedcba98u}, key[2] = {0x89abcdefu, 0x01234567u};
    uint32_t w[4];
    ug_philox4x32_10(ctr, key, w);
    float u[4];
    ug_rng_uniform(&r, u, 4);
    for (int j = 0; j < 4; j++)
        EXPECT(u[j] == ((float)(w[j] >> 9) + 0.5f) / 8388608.0f, "word %d maps to %.9g", j, u[j]);
    EXPECT(r.block == ((uint64_t)5 << 32) + 1, "one block consumed");
    /* Whole blocks per call: 3 values still consume one block, 5 consume two. */
    ug_rng a = ug_rng_make(1, 2, 0), b = a;
    float x[8], y[8];
    ug_rng_uniform(&a, x, 3);
    ug_rng_uniform(&a, x + 4, 4);
    ug_rng_uniform(&b, y, 8);
    EXPECT(a.block == 2 && memcmp(x, y, 3 * sizeof(float)) == 0 &&
               memcmp(x + 4, y + 4, 4 * sizeof(float)) == 0,
           "a call of 3 must consume exactly one block");
    ug_rng c = ug_rng_make(1, 2, 0);
    float z[5];
    ug_rng_normal(&c, z, 5);
    EXPECT(c.block == 2, "5 normals consume 2 blocks, cursor at %llu", (unsigned long long)c.block);
    double d[3];
    ug_rng_uniform_f64(&c, d, 3);
    EXPECT(c.block == 4, "3 doubles consume 2 blocks, cursor at %llu", (unsigned long long)c.block);
}

/* ---------------------------------------------------------------- uniform */
TEST(rng_uniform_extremes_stay_open) {
    /* Found by search: at seed 0, stream 0, block 2330056 word 2 is 0xffffff45 (the top 24 bits
     * all ones, which the former 24-bit mapping rounded to exactly 1.0f), and block 14883995
     * word 0 is 0x00000093 (the smallest mapping). */
    uint32_t ctr[4] = {2330056, 0, 0, 0}, key[2] = {0, 0}, w[4];
    ug_philox4x32_10(ctr, key, w);
    ASSERT(w[2] == 0xffffff45u, "search result changed: %08x", w[2]);
    ug_rng r = ug_rng_make(0, 0, 0);
    r.block = 2330056;
    float u[4];
    ug_rng_uniform(&r, u, 4);
    EXPECT(u[2] < 1.0f && u[2] == 1.0f - 0x1p-24f, "largest uniform %.9g, expected 1 - 2^-24",
           u[2]);
    r.block = 14883995;
    ug_rng_uniform(&r, u, 4);
    EXPECT(u[0] > 0.0f && u[0] == 0x1p-24f, "smallest uniform %.9g, expected 2^-24", u[0]);
    /* Bernoulli with p = 1 is always 1 even at the top of the range. */
    r.block = 2330056;
    ug_rng_bernoulli(&r, 1.0f, u, 4);
    EXPECT(u[2] == 1.0f, "bernoulli(1) gave 0 at the top uniform");
}

TEST(rng_uniform_moments_and_range) {
    const int64_t n = 1 << 20;
    float *x = malloc((size_t)n * sizeof *x);
    ug_rng r = ug_rng_make(11, 3, 0);
    ug_rng_uniform(&r, x, n);
    int64_t out_of_range = 0;
    for (int64_t i = 0; i < n; i++) out_of_range += !(x[i] > 0.0f && x[i] < 1.0f);
    EXPECT(out_of_range == 0, "%lld uniforms outside the open interval (0, 1)",
           (long long)out_of_range);
    /* Var U = 1/12, Var (U - 1/2)^2 = 1/80 - 1/144 = 1/180. */
    double mu = mean_of(x, n), var = moment(x, n, 0.5, 2);
    EXPECT(fabs(mu - 0.5) <= Z6 * sqrt(1.0 / 12 / n), "uniform mean %.6f", mu);
    EXPECT(fabs(var - 1.0 / 12) <= Z6 * sqrt(1.0 / 180 / n), "uniform variance %.6f", var);
    /* 256 equal bins: chi-square with 255 degrees of freedom. */
    enum { B = 256 };
    int64_t cnt[B] = {0};
    for (int64_t i = 0; i < n; i++) cnt[(int)(x[i] * B)]++;
    double chi = 0, e = (double)n / B;
    for (int b = 0; b < B; b++) chi += (cnt[b] - e) * (cnt[b] - e) / e;
    EXPECT(chi <= chi2_crit(B - 1, 6.0), "uniform chi-square %.1f above %.1f", chi,
           chi2_crit(B - 1, 6.0));
    /* Lag-1 correlation of consecutive draws (within and across blocks): sd 1/sqrt(n). */
    double c = 0;
    for (int64_t i = 0; i + 1 < n; i++) c += ((double)x[i] - 0.5) * ((double)x[i + 1] - 0.5);
    c = c / (double)(n - 1) * 12.0;
    EXPECT(fabs(c) <= Z6 / sqrt((double)n), "lag-1 correlation %.5f", c);
    free(x);

    double *d = malloc((size_t)n * sizeof *d);
    ug_rng r2 = ug_rng_make(11, 4, 0);
    ug_rng_uniform_f64(&r2, d, n);
    double s = 0, s2 = 0;
    out_of_range = 0;
    for (int64_t i = 0; i < n; i++) {
        out_of_range += !(d[i] > 0.0 && d[i] < 1.0);
        s += d[i];
        s2 += (d[i] - 0.5) * (d[i] - 0.5);
    }
    EXPECT(out_of_range == 0, "%lld doubles outside (0, 1)", (long long)out_of_range);
    EXPECT(fabs(s / n - 0.5) <= Z6 * sqrt(1.0 / 12 / n), "f64 uniform mean %.6f", s / n);
    EXPECT(fabs(s2 / n - 1.0 / 12) <= Z6 * sqrt(1.0 / 180 / n), "f64 variance %.6f", s2 / n);
    free(d);
}

/* ---------------------------------------------------------------- normal */
TEST(rng_normal_moments_and_ks) {
    const int64_t n = 1 << 20;
    float *x = malloc((size_t)n * sizeof *x);
    ug_rng r = ug_rng_make(12, 0, 7);
    ug_rng_normal(&r, x, n);
    int finite = 1;
    for (int64_t i = 0; i < n; i++) finite &= isfinite(x[i]);
    EXPECT(finite, "a normal draw is not finite");
    /* Standard errors from the moments of N(0, 1): E z^2 = 1, E z^4 = 3, E z^6 = 15,
     * E z^8 = 105, so Var z = 1, Var z^2 = 2, Var z^3 = 15, Var z^4 = 96. */
    double m1 = mean_of(x, n), m2 = moment(x, n, 0, 2), m3 = moment(x, n, 0, 3),
           m4 = moment(x, n, 0, 4);
    EXPECT(fabs(m1) <= Z6 * sqrt(1.0 / n), "normal mean %.5f", m1);
    EXPECT(fabs(m2 - 1) <= Z6 * sqrt(2.0 / n), "normal variance %.5f", m2);
    EXPECT(fabs(m3) <= Z6 * sqrt(15.0 / n), "normal third moment %.5f", m3);
    EXPECT(fabs(m4 - 3) <= Z6 * sqrt(96.0 / n), "normal fourth moment %.5f (kurtosis)", m4);

    /* Kolmogorov-Smirnov against Phi on the first 2^18 draws: P(sqrt(n) D > t) <= 2 exp(-2 t^2)
     * (Dvoretzky-Kiefer-Wolfowitz, Massart's constant), so t = sqrt(ln(2e9) / 2) gives 1e-9. */
    const int64_t m = 1 << 18;
    double *s = malloc((size_t)m * sizeof *s);
    for (int64_t i = 0; i < m; i++) s[i] = x[i];
    qsort(s, (size_t)m, sizeof *s, ug_test_cmp_double);
    double D = 0;
    for (int64_t i = 0; i < m; i++) {
        double F = 0.5 * erfc(-s[i] / sqrt(2.0));
        double a = fabs(F - (double)i / m), b = fabs((double)(i + 1) / m - F);
        if (a > D) D = a;
        if (b > D) D = b;
    }
    double t = sqrt(log(2e9) / 2) / sqrt((double)m);
    EXPECT(D <= t, "KS statistic %.5f above %.5f", D, t);

    /* Chi-square of Phi(z) in 200 equal-probability bins over all n draws: checks the tails
     * (each end bin holds |z| > 2.58 on one side) with 199 degrees of freedom. */
    enum { B = 200 };
    int64_t cnt[B] = {0};
    for (int64_t i = 0; i < n; i++) {
        int b = (int)(0.5 * erfc(-(double)x[i] / sqrt(2.0)) * B);
        cnt[b < B ? b : B - 1]++;
    }
    double chi = 0, e = (double)n / B;
    for (int b = 0; b < B; b++) chi += (cnt[b] - e) * (cnt[b] - e) / e;
    EXPECT(chi <= chi2_crit(B - 1, 6.0), "normal PIT chi-square %.1f above %.1f", chi,
           chi2_crit(B - 1, 6.0));
    free(s);
    free(x);
}

/* ---------------------------------------------------------------- discrete */
TEST(rng_bernoulli_frequency) {
    const int64_t n = 1 << 20;
    float *x = malloc((size_t)n * sizeof *x);
    const float ps[3] = {0.3f, 0.5f, 0.01f};
    for (int k = 0; k < 3; k++) {
        ug_rng r = ug_rng_make(13, (uint64_t)k, 0);
        ug_rng_bernoulli(&r, ps[k], x, n);
        int64_t ones = 0, bad = 0;
        for (int64_t i = 0; i < n; i++) {
            ones += x[i] == 1.0f;
            bad += !(x[i] == 0.0f || x[i] == 1.0f);
        }
        double p = ps[k], f = (double)ones / n;
        EXPECT(bad == 0, "bernoulli gave %lld values other than 0/1", (long long)bad);
        EXPECT(fabs(f - p) <= Z6 * sqrt(p * (1 - p) / n), "bernoulli(%g) frequency %.5f", p, f);
    }
    ug_rng r = ug_rng_make(13, 9, 0);
    ug_rng_bernoulli(&r, 0.0f, x, 4096);
    EXPECT(mean_of(x, 4096) == 0.0, "bernoulli(0) gave a one");
    ug_rng_bernoulli(&r, 1.0f, x, 4096);
    EXPECT(mean_of(x, 4096) == 1.0, "bernoulli(1) gave a zero");
    free(x);
}

TEST(rng_rademacher_balance) {
    const int64_t n = 1 << 20;
    float *x = malloc((size_t)n * sizeof *x);
    ug_rng r = ug_rng_make(14, 0, 0);
    ug_rng_rademacher(&r, x, n);
    int64_t bad = 0, plus = 0, pairs_same = 0;
    for (int64_t i = 0; i < n; i++) {
        bad += !(x[i] == 1.0f || x[i] == -1.0f);
        plus += x[i] == 1.0f;
        if (i) pairs_same += x[i] == x[i - 1];
    }
    EXPECT(bad == 0, "%lld values other than +-1", (long long)bad);
    /* Each sign with probability 1/2: sd of the count sqrt(n)/2. */
    EXPECT(fabs((double)plus - n / 2.0) <= Z6 * sqrt((double)n) / 2, "%lld of %lld are +1",
           (long long)plus, (long long)n);
    /* Consecutive signs independent: agreements of neighbours ~ Binomial(n - 1, 1/2). */
    EXPECT(fabs((double)pairs_same - (n - 1) / 2.0) <= Z6 * sqrt((double)(n - 1)) / 2,
           "neighbour agreements %lld", (long long)pairs_same);
    free(x);
}

TEST(rng_categorical_frequencies) {
    const double w[7] = {0.0, 1.0, 2.0, 0.0, 3.5, 0.5, 0.0};
    const double total = 7.0;
    const int64_t n = 1 << 19;
    int32_t *idx = malloc((size_t)n * sizeof *idx);
    ug_rng r = ug_rng_make(15, 0, 0);
    ug_rng_categorical(&r, w, 7, idx, n);
    int64_t cnt[7] = {0}, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= 7) { bad++; continue; }
        cnt[idx[i]]++;
    }
    EXPECT(bad == 0, "%lld indices outside [0, 7)", (long long)bad);
    double chi = 0;
    for (int j = 0; j < 7; j++) {
        double p = w[j] / total;
        if (p == 0) {
            EXPECT(cnt[j] == 0, "zero-weight category %d drawn %lld times", j, (long long)cnt[j]);
            continue;
        }
        double e = p * n;
        EXPECT(fabs(cnt[j] - e) <= Z6 * sqrt(n * p * (1 - p)), "category %d: %lld, expected %.0f",
               j, (long long)cnt[j], e);
        chi += (cnt[j] - e) * (cnt[j] - e) / e;
    }
    /* 4 positive categories: 3 degrees of freedom; Wilson-Hilferty is rough this low, so the
     * quantile is taken at z = 7 (still far beyond anything a correct sampler produces). */
    EXPECT(chi <= chi2_crit(3, 7.0), "categorical chi-square %.2f", chi);

    /* One positive weight at either end: always that index, never its zero neighbours. */
    const double first[3] = {5.0, 0.0, 0.0}, last[3] = {0.0, 0.0, 7.0};
    int ok_first = 1, ok_last = 1;
    ug_rng_categorical(&r, first, 3, idx, 4096);
    for (int i = 0; i < 4096; i++) ok_first &= idx[i] == 0;
    ug_rng_categorical(&r, last, 3, idx, 4096);
    for (int i = 0; i < 4096; i++) ok_last &= idx[i] == 2;
    EXPECT(ok_first && ok_last, "single-category weights drew another index");
    free(idx);
}

/* ---------------------------------------------------------------- invariance */
TEST(rng_normal_rows_invariance) {
    /* rows * cols = 7000 is above normal_rows' threshold for the parallel loop. */
    const int64_t rows = 1000, cols = 7;
    const uint64_t seed = 2024, first = 100;
    const uint32_t sub = 3;
    size_t bytes = (size_t)(rows * cols) * sizeof(float);
    float *all = malloc(bytes), *one = malloc(bytes), *split = malloc(bytes),
          *t1 = malloc(bytes), *t2 = malloc(bytes);
    ug_rng_normal_rows(seed, first, sub, all, rows, cols);
    for (int64_t i = 0; i < rows; i++)
        ug_rng_normal_rows(seed, first + (uint64_t)i, sub, one + i * cols, 1, cols);
    ug_rng_normal_rows(seed, first, sub, split, 512, cols);
    ug_rng_normal_rows(seed, first + 512, sub, split + 512 * cols, rows - 512, cols);
    EXPECT(memcmp(all, one, bytes) == 0, "1000 rows at once differ from one row at a time");
    EXPECT(memcmp(all, split, bytes) == 0, "1000 rows at once differ from 512 + 488");
    omp_set_num_threads(1);
    ug_rng_normal_rows(seed, first, sub, t1, rows, cols);
    omp_set_num_threads(2);
    ug_rng_normal_rows(seed, first, sub, t2, rows, cols);
    ug_set_threads(0);
    EXPECT(memcmp(t1, t2, bytes) == 0, "normal_rows on 1 and 2 threads differ");
    EXPECT(memcmp(all, t1, bytes) == 0, "normal_rows depends on the thread count");
    /* Row i is stream first + i of ug_rng_normal. */
    float row[7];
    ug_rng r = ug_rng_make(seed, first + 777, sub);
    ug_rng_normal(&r, row, cols);
    EXPECT(memcmp(row, all + 777 * cols, sizeof row) == 0, "row 777 is not stream first + 777");
    free(all); free(one); free(split); free(t1); free(t2);
}

static int count_equal(const float *a, const float *b, int n) {
    int c = 0;
    for (int i = 0; i < n; i++) c += a[i] == b[i];
    return c;
}

TEST(rng_streams_subs_seeds_differ) {
    enum { N = 64 };
    /* Variations touching each half of each counter and key word. */
    const struct { uint64_t seed, stream; uint32_t sub; } v[] = {
        {1, 0, 0}, {2, 0, 0}, {1 + (1ULL << 32), 0, 0},
        {1, 1, 0}, {1, 1ULL << 32, 0}, {1, 0, 1}, {1, 0, 0xffffffffu},
    };
    const int nv = (int)(sizeof v / sizeof *v);
    float x[sizeof v / sizeof *v][N];
    for (int i = 0; i < nv; i++) {
        ug_rng r = ug_rng_make(v[i].seed, v[i].stream, v[i].sub);
        ug_rng_normal(&r, x[i], N);
    }
    for (int i = 0; i < nv; i++)
        for (int j = i + 1; j < nv; j++)
            EXPECT(count_equal(x[i], x[j], N) <= 1, "variants %d and %d share %d of %d values", i,
                   j, count_equal(x[i], x[j], N), N);
    /* The same cursor twice gives the same values. */
    float y[N];
    ug_rng r = ug_rng_make(v[3].seed, v[3].stream, v[3].sub);
    ug_rng_normal(&r, y, N);
    EXPECT(memcmp(x[3], y, sizeof y) == 0, "the same cursor gave different values");
    /* Consecutive calls continue the stream instead of repeating it. */
    ug_rng_normal(&r, y, N);
    EXPECT(count_equal(x[3], y, N) <= 1, "a second call repeated the first");
}
