/* test_data.c — data sets: 2-D toys (determinism, independence of n, shape statistics), the
 * Gaussian mixture JSON (valid and refused files) and its exact log-density, IDX files (Fashion-
 * MNIST from Debian, handmade good and broken files), PNG folders, transforms, split, loader. */
#include "test.h"
#include "core/core.h"
#include "unigen.h"
#include "unigen.h"
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---------------------------------------------------------------- temp files */
static void tmp_dir(char *buf, size_t n) {
    snprintf(buf, n, "/tmp/ug_test_data_XXXXXX");
    if (!mkdtemp(buf)) buf[0] = 0;
}

static void rm_dir(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static void write_file(const char *path, const void *data, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f) return;
        gzwrite(f, data, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        if (!f) return;
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void write_text(const char *path, const char *s) { write_file(path, s, strlen(s), 0); }

/* ---------------------------------------------------------------- toys */
TEST(toy_deterministic_and_independent_of_n) {
    enum { N = 5000 };   /* above the parallel threshold: threads must not change a point */
    float *a = malloc(2 * N * sizeof *a), *b = malloc(2 * N * sizeof *b), c[20];
    for (int t = 0; t < UG_TOY_COUNT; t++) {
        const char *name = ug_toy2d_name((ug_toy2d)t);
        ASSERT_OK(ug_toy2d_sample(name, N, 7, a));
        ASSERT_OK(ug_toy2d_sample(name, N, 7, b));
        EXPECT(memcmp(a, b, 2 * N * sizeof *a) == 0, "%s: same seed, different points", name);
        ASSERT_OK(ug_toy2d_sample(name, 10, 7, c));
        EXPECT(memcmp(a, c, 20 * sizeof *a) == 0, "%s: first 10 of n=10 differ from n=%d", name, N);
        ASSERT_OK(ug_toy2d_sample_at((ug_toy2d)t, 1234, 10, 7, c));
        EXPECT(memcmp(a + 2 * 1234, c, 20 * sizeof *a) == 0, "%s: sample_at(1234) differs", name);
        ASSERT_OK(ug_toy2d_sample(name, N, 8, b));
        EXPECT(memcmp(a, b, 2 * N * sizeof *a) != 0, "%s: seed has no effect", name);
        int finite = 1;
        for (int i = 0; i < 2 * N; i++) finite &= isfinite(a[i]) && fabsf(a[i]) < 8;
        EXPECT(finite, "%s: non-finite or far point (|x| >= 8)", name);
    }
    free(a);
    free(b);
}

TEST(toy_unknown_name_lists_valid) {
    float x[2];
    EXPECT(ug_toy2d_sample("moon", 1, 0, x) == UG_ERR_INVALID_ARG, "unknown name accepted");
    EXPECT(strstr(ug_last_error(), "'moon'") && strstr(ug_last_error(), "2spirals") &&
               strstr(ug_last_error(), "checkerboard"),
           "message does not name the bad and valid names: %s", ug_last_error());
    ug_dataset ds;
    EXPECT(ug_dataset_load("fashion_mnist", 1, 0, 0, &ds) == UG_ERR_INVALID_ARG, "bad spec");
    EXPECT(strstr(ug_last_error(), "fashion-mnist") && strstr(ug_last_error(), "gmm:"),
           "spec message lacks valid forms: %s", ug_last_error());
}

TEST(toy_8gaussians_centres) {
    enum { N = 8000 };
    float *p = malloc(2 * N * sizeof *p);
    ASSERT_OK(ug_toy2d_sample("8gaussians", N, 3, p));
    int hits[8] = {0}, far = 0;
    double std = 0.5 / 1.414, ss = 0;
    for (int i = 0; i < N; i++) {
        int best = 0;
        double bd = 1e9;
        for (int k = 0; k < 8; k++) {
            double a = k * M_PI / 4, cx = 4 * cos(a) / 1.414, cy = 4 * sin(a) / 1.414;
            double d2 = pow(p[2 * i] - cx, 2) + pow(p[2 * i + 1] - cy, 2);
            if (d2 < bd) { bd = d2; best = k; }
        }
        hits[best]++;
        ss += bd;
        far += sqrt(bd) > 5 * std;   /* radius beyond 5 std: probability e^-12.5 */
    }
    EXPECT(far == 0, "%d points farther than 5 std from every centre", far);
    for (int k = 0; k < 8; k++)
        EXPECT(hits[k] > 850 && hits[k] < 1150, "centre %d got %d of %d points", k, hits[k], N);
    double got_std = sqrt(ss / (2.0 * N));
    EXPECT(fabs(got_std / std - 1) < 0.05, "noise std %.4f, expected %.4f", got_std, std);
    free(p);
}

TEST(toy_moons_and_circles_statistics) {
    enum { N = 20000 };
    float *p = malloc(2 * N * sizeof *p);
    ASSERT_OK(ug_toy2d_sample("moons", N, 5, p));
    /* Outer moon mean (0, 2/pi), inner (1, 1/2 - 2/pi): mixture (0.5, 0.25) -> *2 + (-1, -0.2). */
    double mx = 0, my = 0, lo = 1e9, hi = -1e9;
    for (int i = 0; i < N; i++) {
        mx += p[2 * i]; my += p[2 * i + 1];
        lo = fmin(lo, p[2 * i]); hi = fmax(hi, p[2 * i]);
    }
    mx /= N; my /= N;
    EXPECT(fabs(mx) < 0.03 && fabs(my - 0.3) < 0.03, "moons mean (%.3f, %.3f), expected (0, 0.3)",
           mx, my);
    EXPECT(lo > -3.9 && lo < -3.0 && hi > 3.0 && hi < 3.9, "moons x range [%.2f, %.2f]", lo, hi);
    ASSERT_OK(ug_toy2d_sample("circles", N, 5, p));
    int inner = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        double r = hypot(p[2 * i], p[2 * i + 1]) / 3;   /* radii 1 and 0.5, noise 0.08 */
        inner += fabs(r - 0.5) < fabs(r - 1);
        bad += fabs(r - 0.5) > 0.5 && fabs(r - 1) > 0.5;
    }
    EXPECT(bad == 0 && abs(inner - N / 2) < 400, "circles: %d inner of %d, %d off both", inner, N,
           bad);
    free(p);
}

TEST(toy_checkerboard_dark_squares) {
    enum { N = 8000 };
    float *p = malloc(2 * N * sizeof *p);
    ASSERT_OK(ug_toy2d_sample("checkerboard", N, 9, p));
    int squares[4][4] = {{0}}, wrong = 0;
    for (int i = 0; i < N; i++) {
        int cx = (int)floorf(p[2 * i] / 2), cy = (int)floorf(p[2 * i + 1] / 2);
        if (cx < -2 || cx > 1 || cy < -2 || cy > 1 || ((cx + cy) & 1)) { wrong++; continue; }
        squares[cx + 2][cy + 2]++;
    }
    EXPECT(wrong == 0, "%d points outside the dark squares", wrong);
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            if (!((a + b) & 1))
                EXPECT(abs(squares[a][b] - N / 8) < 150, "square (%d, %d) has %d points", a - 2,
                       b - 2, squares[a][b]);
    free(p);
}

TEST(toy_dataset_train_test_disjoint) {
    ug_dataset tr, te;
    ASSERT_OK(ug_dataset_load("pinwheel", 1, 1000, 4, &tr));
    ASSERT_OK(ug_dataset_load("pinwheel", 0, 0, 4, &te));
    EXPECT(tr.n == 1000 && te.n == UG_DATA_TOY_TEST_N && tr.ndim == 1 && tr.shape[0] == 2 &&
               !tr.y, "toy data set shape");
    EXPECT(memcmp(tr.x, te.x, 2000 * sizeof(float)) != 0, "test split repeats the train split");
    ug_dataset_free(&tr);
    ug_dataset_free(&te);
}

/* ---------------------------------------------------------------- Gaussian mixture */
static const char *k_gmm_ok =
    "{\"name\": \"two\", \"description\": \"test\", \"dim\": 2, \"num_components\": 2,\n"
    " \"weights\": [1, 3], \"means\": [[-2, 0], [3, 1]], \"stds\": [0.5, 0.25]}";

TEST(gmm_json_valid) {
    ug_gmm g;
    ASSERT_OK(ug_gmm_parse(k_gmm_ok, "ok.json", &g));
    EXPECT(g.K == 2 && g.d == 2, "K %d d %d", g.K, g.d);
    EXPECT(fabs(g.w[0] - 0.25) < 1e-15 && fabs(g.w[1] - 0.75) < 1e-15, "weights not normalized");
    EXPECT(g.mu[2] == 3 && g.mu[3] == 1 && g.s[1] == 0.25, "means/stds");
    ug_gmm_free(&g);
    /* Optional keys may be absent. */
    ASSERT_OK(ug_gmm_parse("{\"weights\":[2],\"means\":[[1,2,3]],\"stds\":[1]}", "min", &g));
    EXPECT(g.K == 1 && g.d == 3 && g.w[0] == 1, "minimal mixture");
    ug_gmm_free(&g);
}

TEST(gmm_json_refused_with_key) {
    static const struct { const char *json, *needle; } cases[] = {
        {"{\"weights\":[1],\"means\":[[0]]}", "\"stds\""},                         /* missing */
        {"{\"weights\":[1],\"means\":[[0]],\"stds\":[1],\"std\":[1]}", "\"std\""},   /* unknown */
        {"{\"weights\":[1,1],\"means\":[[0],[1]],\"stds\":[1,-0.5]}", "stds\"[1]"},  /* negative */
        {"{\"weights\":[1,1],\"means\":[[0,0],[1]],\"stds\":[1,1]}", "means[1]"},    /* ragged */
        {"{\"weights\":[],\"means\":[],\"stds\":[]}", "\"weights\" is empty"},         /* K = 0 */
        {"{\"weights\":[1,2],\"means\":[[0]],\"stds\":[1,1]}", "\"means\" has 1 rows"},
        {"{\"weights\":[1],\"means\":[[0]],\"stds\":[1,2]}", "\"stds\" has 2"},
        {"{\"weights\":[-1,2],\"means\":[[0],[1]],\"stds\":[1,1]}", "weights\"[0]"},
        {"{\"weights\":[0,0],\"means\":[[0],[1]],\"stds\":[1,1]}", "sum to 0"},
        {"{\"weights\":[1],\"means\":[[0]],\"stds\":[1],\"dim\":2}", "\"dim\""},
        {"{\"weights\":[1],\"means\":[[0]],\"stds\":[1],\"num_components\":3}", "num_components"},
        {"{\"weights\":[1],\"means\":[[\"a\"]],\"stds\":[1]}", "means[0]\"[0]"},
        {"{\"weights\":[1],\"means\":[[0]],\"stds\":[1],\"name\":5}", "\"name\""},
        {"{\"weights\":[1],\"weights\":[1],\"means\":[[0]],\"stds\":[1]}", "twice"},
        {"{\"weights\":[1],\n\"means\":[[0]],,\"stds\":[1]}", "line 2"},         /* malformed */
        {"[1, 2]", "object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ug_gmm g;
        ug_status st = ug_gmm_parse(cases[i].json, "case.json", &g);
        EXPECT(st == UG_ERR_FORMAT, "case %zu accepted: %s", i, cases[i].json);
        EXPECT(strstr(ug_last_error(), cases[i].needle) && strstr(ug_last_error(), "case.json"),
               "case %zu: message '%s' lacks '%s'", i, ug_last_error(), cases[i].needle);
        EXPECT(g.w == NULL && g.mu == NULL && g.s == NULL, "case %zu leaves buffers", i);
    }
}

TEST(gmm_load_file_and_dataset) {
    char dir[64], path[128], spec[160];
    tmp_dir(dir, sizeof dir);
    ASSERT(dir[0], "mkdtemp failed");
    snprintf(path, sizeof path, "%s/two.json", dir);
    write_text(path, k_gmm_ok);
    ug_gmm g;
    ASSERT_OK(ug_gmm_load(path, &g));
    ug_gmm_free(&g);
    snprintf(spec, sizeof spec, "gmm:%s", path);
    ug_dataset ds;
    ASSERT_OK(ug_dataset_load(spec, 1, 20000, 11, &ds));
    EXPECT(ds.n == 20000 && ds.ndim == 1 && ds.shape[0] == 2 && ds.y && ds.num_classes == 2,
           "gmm data set shape");
    /* Component frequencies near the weights; per-component means near mu. */
    double cnt[2] = {0}, m[2][2] = {{0}};
    for (int64_t i = 0; i < ds.n; i++) {
        int k = ds.y[i];
        cnt[k]++;
        m[k][0] += ds.x[2 * i];
        m[k][1] += ds.x[2 * i + 1];
    }
    EXPECT(fabs(cnt[1] / ds.n - 0.75) < 0.015, "component 1 frequency %.4f", cnt[1] / ds.n);
    EXPECT(fabs(m[0][0] / cnt[0] + 2) < 0.03 && fabs(m[1][0] / cnt[1] - 3) < 0.02 &&
               fabs(m[1][1] / cnt[1] - 1) < 0.02, "component means off");
    ug_dataset_free(&ds);
    snprintf(path, sizeof path, "%s/missing.json", dir);
    EXPECT(ug_gmm_load(path, &g) == UG_ERR_IO && strstr(ug_last_error(), "missing.json"),
           "missing file: %s", ug_last_error());
    rm_dir(dir);
}

TEST(gmm_logpdf_exact) {
    /* K = 1, d = 3: log N(x; mu, (s^2 + sigma^2) I) in closed form. */
    ug_gmm g;
    ASSERT_OK(ug_gmm_parse("{\"weights\":[5],\"means\":[[0.5,-1,2]],\"stds\":[0.8]}", "k1", &g));
    const double x[3] = {1.1, -0.2, 1.5};
    for (int k = 0; k < 3; k++) {
        double sigma = k * 0.7, v = 0.64 + sigma * sigma, r2 = 0;
        for (int j = 0; j < 3; j++) r2 += (x[j] - g.mu[j]) * (x[j] - g.mu[j]);
        double ref = -1.5 * log(2 * M_PI * v) - 0.5 * r2 / v;
        double got = ug_gmm_logpdf(&g, x, sigma);
        EXPECT(fabs(got - ref) < 1e-12, "K=1 sigma %.1f: %.15g vs %.15g", sigma, got, ref);
    }
    ug_gmm_free(&g);
    /* d = 1, K = 2: the sigma-convolution checked by quadrature of p(y) N(x - y; 0, sigma^2). */
    ASSERT_OK(ug_gmm_parse("{\"weights\":[0.3,0.7],\"means\":[[-1],[2]],\"stds\":[0.5,0.3]}",
                           "k2", &g));
    const double sigma = 0.6, x1 = 0.4, h = 1e-3;
    double integral = 0;
    for (double y = -12; y <= 12; y += h) {
        double py = 0;
        for (int k = 0; k < 2; k++)
            py += g.w[k] * exp(-0.5 * pow((y - g.mu[k]) / g.s[k], 2)) / (g.s[k] * sqrt(2 * M_PI));
        integral += h * py * exp(-0.5 * pow((x1 - y) / sigma, 2)) / (sigma * sqrt(2 * M_PI));
    }
    double got = ug_gmm_logpdf(&g, &x1, sigma);
    EXPECT(fabs(got - log(integral)) < 1e-6, "convolution: %.10g vs quadrature %.10g", got,
           log(integral));
    /* Far from every mean the log-sum-exp must not underflow to -inf. */
    const double far = 60;
    double lf = ug_gmm_logpdf(&g, &far, 0);
    double l0 = log(0.3) - 0.5 * log(2 * M_PI * 0.25) - 0.5 * 61 * 61 / 0.25;
    double l1 = log(0.7) - 0.5 * log(2 * M_PI * 0.09) - 0.5 * 58 * 58 / 0.09;
    double ref = fmax(l0, l1) + log1p(exp(fmin(l0, l1) - fmax(l0, l1)));
    EXPECT(fabs(lf - ref) < 1e-9 * fabs(ref), "far tail %.12g vs %.12g", lf, ref);
    ug_gmm_free(&g);
}

/* ---------------------------------------------------------------- IDX */
TEST(idx_fashion_mnist) {
    struct stat sb;
    if (stat(UG_FASHION_MNIST_DIR, &sb) != 0) {
        ug_test_fail(__FILE__, __LINE__, "%s missing: run scripts/deps.sh (installs Debian's "
                     "dataset-fashion-mnist, a declared test dependency)", UG_FASHION_MNIST_DIR);
        return;
    }
    ug_dataset tr, te;
    ASSERT_OK(ug_dataset_load("fashion-mnist", 1, 0, 0, &tr));
    EXPECT(tr.n == 60000 && tr.ndim == 3 && tr.shape[0] == 1 && tr.shape[1] == 28 &&
               tr.shape[2] == 28 && tr.num_classes == 10, "train: n %lld, %d classes",
           (long long)tr.n, tr.num_classes);
    /* Reference values read with Python's gzip: first labels, pixel sum of image 0, counts. */
    static const int first[5] = {9, 0, 0, 3, 0};
    for (int i = 0; i < 5; i++) EXPECT(tr.y[i] == first[i], "train label %d = %d", i, tr.y[i]);
    double sum = 0, mx = 0;
    for (int i = 0; i < 784; i++) { sum += tr.x[i]; mx = fmax(mx, tr.x[i]); }
    EXPECT(fabs(sum * 255 - 76247) < 0.05 && mx == 1.0, "image 0: sum %.3f max %g", sum * 255, mx);
    int counts[10] = {0};
    for (int64_t i = 0; i < tr.n; i++) counts[tr.y[i]]++;
    for (int k = 0; k < 10; k++) EXPECT(counts[k] == 6000, "class %d has %d", k, counts[k]);
    ug_dataset_free(&tr);
    ASSERT_OK(ug_dataset_load("fashion-mnist", 0, 0, 0, &te));
    EXPECT(te.n == 10000 && te.y[0] == 9 && te.y[1] == 2 && te.y[2] == 1, "test split");
    ug_dataset_free(&te);
    ASSERT_OK(ug_dataset_load("fashion-mnist", 0, 100, 0, &te));
    EXPECT(te.n == 100, "n limit: %lld", (long long)te.n);
    ug_dataset_free(&te);
}

/* IDX header + data bytes. */
static size_t make_idx(uint8_t *buf, int type, int ndim, const uint32_t *dims,
                       const uint8_t *data, size_t ndata) {
    size_t k = 0;
    buf[k++] = 0; buf[k++] = 0; buf[k++] = (uint8_t)type; buf[k++] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        buf[k++] = (uint8_t)(dims[i] >> 24); buf[k++] = (uint8_t)(dims[i] >> 16);
        buf[k++] = (uint8_t)(dims[i] >> 8); buf[k++] = (uint8_t)dims[i];
    }
    memcpy(buf + k, data, ndata);
    return k + ndata;
}

TEST(idx_handmade_good_and_broken) {
    char dir[64], p[160];
    tmp_dir(dir, sizeof dir);
    ASSERT(dir[0], "mkdtemp failed");
    uint8_t pix[12], buf[256];
    for (int i = 0; i < 12; i++) pix[i] = (uint8_t)(i * 20);
    const uint32_t dims[3] = {3, 2, 2};
    size_t n = make_idx(buf, 0x08, 3, dims, pix, 12);
    for (int gz = 0; gz < 2; gz++) {
        snprintf(p, sizeof p, "%s/good%s", dir, gz ? ".gz" : "");
        write_file(p, buf, n, gz);
        ug_idx f;
        ASSERT_OK(ug_idx_read(p, &f));
        EXPECT(f.ndim == 3 && f.dims[0] == 3 && f.dims[1] == 2 && f.dims[2] == 2 &&
                   memcmp(f.data, pix, 12) == 0, "good idx (gz %d) misread", gz);
        ug_idx_free(&f);
    }
    /* idx:PATH as a data set: 3 examples of (1, 2, 2), pixel / 255. */
    char spec[200];
    snprintf(spec, sizeof spec, "idx:%s/good.gz", dir);
    ug_dataset ds;
    ASSERT_OK(ug_dataset_load(spec, 1, 0, 0, &ds));
    EXPECT(ds.n == 3 && ds.ndim == 3 && ds.shape[0] == 1 && ds.shape[2] == 2 && !ds.y &&
               fabsf(ds.x[5] - 100.0f / 255) < 1e-7f, "idx: data set");
    ug_dataset_free(&ds);

    static const struct { const char *name; int cut, byte, val; ug_status st; const char *msg; }
        bad[] = {
            {"truncated", 3, -1, 0, UG_ERR_FORMAT, "truncated"},
            {"short_header", 12 + 10, -1, 0, UG_ERR_FORMAT, "header"},
            {"bad_magic", 0, 0, 1, UG_ERR_FORMAT, "magic number 0x01000803"},
            {"float_type", 0, 2, 0x0D, UG_ERR_UNSUPPORTED, "float32"},
            {"no_type", 0, 2, 0x07, UG_ERR_FORMAT, "type byte 0x07"},
            {"ndim0", 0, 3, 0, UG_ERR_UNSUPPORTED, "0 dimensions"},
            {"ndim5", 0, 3, 5, UG_ERR_UNSUPPORTED, "5 dimensions"},
            {"trailing", -2, -1, 0, UG_ERR_FORMAT, "trailing"},
        };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t b2[256];
        size_t m = n;
        memcpy(b2, buf, n);
        if (bad[i].cut > 0) m = n - (size_t)bad[i].cut;
        if (bad[i].cut == -2) b2[m++] = 7;
        if (bad[i].byte >= 0) b2[bad[i].byte] = (uint8_t)bad[i].val;
        for (int gz = 0; gz < 2; gz++) {
            snprintf(p, sizeof p, "%s/%s%s", dir, bad[i].name, gz ? ".gz" : "");
            write_file(p, b2, m, gz);
            ug_idx f;
            ug_status st = ug_idx_read(p, &f);
            EXPECT(st == bad[i].st, "%s (gz %d): status %s", bad[i].name, gz, ug_status_str(st));
            EXPECT(strstr(ug_last_error(), bad[i].msg) && strstr(ug_last_error(), bad[i].name),
                   "%s: message '%s' lacks '%s'", bad[i].name, ug_last_error(), bad[i].msg);
            EXPECT(f.data == NULL, "%s: data left allocated", bad[i].name);
        }
    }
    snprintf(p, sizeof p, "%s/none", dir);
    ug_idx f;
    EXPECT(ug_idx_read(p, &f) == UG_ERR_IO, "missing file");

    /* mnist:DIR with standard names; labels must match the image count. */
    const uint8_t labels[3] = {2, 0, 1};
    const uint32_t ldim[1] = {3};
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    write_file(p, buf, n, 0);
    n = make_idx(buf, 0x08, 1, ldim, labels, 3);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
    write_file(p, buf, n, 1);
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    ASSERT_OK(ug_dataset_load(spec, 1, 0, 0, &ds));
    EXPECT(ds.n == 3 && ds.y[0] == 2 && ds.y[2] == 1 && ds.num_classes == 3 &&
               ds.x[11] == 220.0f / 255, "mnist:DIR data set");
    ug_dataset_free(&ds);
    EXPECT(ug_dataset_load(spec, 0, 0, 0, &ds) == UG_ERR_IO &&
               strstr(ug_last_error(), "t10k-images-idx3-ubyte"), "missing test split: %s",
           ug_last_error());
    n = make_idx(buf, 0x08, 1, (const uint32_t[]){2}, labels, 2);
    write_file(p, buf, n, 1);
    EXPECT(ug_dataset_load(spec, 1, 0, 0, &ds) == UG_ERR_FORMAT &&
               strstr(ug_last_error(), "2 labels"), "label count mismatch: %s", ug_last_error());
    rm_dir(dir);
}

/* Pixels kept as bytes (ug_dataset_load_bytes) read back, split and batch to exactly the floats
 * ug_dataset_load gives: every byte value 0..255 appears. */
TEST(bytes_storage_matches_floats) {
    char dir[64], p[160], spec[200];
    tmp_dir(dir, sizeof dir);
    ASSERT(dir[0], "mkdtemp failed");
    uint8_t pix[256], lab[64], buf[512];
    for (int i = 0; i < 256; i++) pix[i] = (uint8_t)((i * 97 + 13) % 256);
    for (int i = 0; i < 64; i++) lab[i] = (uint8_t)(i % 10);
    size_t n = make_idx(buf, 0x08, 3, (const uint32_t[]){64, 2, 2}, pix, 256);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    write_file(p, buf, n, 0);
    n = make_idx(buf, 0x08, 1, (const uint32_t[]){64}, lab, 64);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    write_file(p, buf, n, 0);
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    ug_dataset f, b;
    ASSERT_OK(ug_dataset_load(spec, 1, 0, 0, &f));
    ASSERT_OK(ug_dataset_load_bytes(spec, 1, 0, 0, &b));
    EXPECT(f.x && !f.u8 && !b.x && b.u8 && b.n == 64 && b.ndim == 3 && b.shape[1] == 2 &&
               b.num_classes == 10 && b.y[13] == 3, "storage or shape of the two loads");
    EXPECT(memcmp(b.u8, pix, 256) == 0, "bytes differ from the file's pixels");
    int64_t ids[64];
    for (int i = 0; i < 64; i++) ids[i] = (i * 37 + 5) % 64;
    float rf[256], rb[256];
    ug_dataset_rows(&f, ids, 64, rf);
    ug_dataset_rows(&b, ids, 64, rb);
    EXPECT(memcmp(rf, rb, sizeof rf) == 0, "rows from bytes differ from rows from floats");
    EXPECT(rb[0] == (float)pix[ids[0] * 4] / 255.0f && rb[3] == (float)pix[ids[0] * 4 + 3] / 255.0f,
           "row values are not pixel / 255");
    /* The loader: the same batches, labels and ids over two epochs. */
    ug_loader lf, lb;
    ASSERT_OK(ug_loader_init(&lf, &f, 10, 3, 0, 1, 1, 0));
    ASSERT_OK(ug_loader_init(&lb, &b, 10, 3, 0, 1, 1, 0));
    int same = 1;
    for (uint32_t e = 0; e < 2; e++) {
        ug_loader_start_epoch(&lf, e);
        ug_loader_start_epoch(&lb, e);
        float xf[40], xb[40];
        int32_t yf[10], yb[10];
        int64_t kf[10], kb[10], gf, gb;
        while ((gf = ug_loader_next(&lf, xf, yf, kf)) > 0) {
            gb = ug_loader_next(&lb, xb, yb, kb);
            same &= gb == gf && !memcmp(xf, xb, (size_t)gf * 4 * sizeof *xf) &&
                    !memcmp(yf, yb, (size_t)gf * sizeof *yf) && !memcmp(kf, kb, (size_t)gf * sizeof *kf);
        }
        same &= ug_loader_next(&lb, NULL, NULL, NULL) == 0;
    }
    EXPECT(same, "loader batches from bytes differ from batches from floats");
    ug_loader_free(&lf);
    ug_loader_free(&lb);
    /* A split keeps the storage; both splits read back as the float split does. */
    ug_dataset ft, fe, bt, be;
    ASSERT_OK(ug_dataset_split(&f, 0.25, 9, &ft, &fe));
    ASSERT_OK(ug_dataset_split(&b, 0.25, 9, &bt, &be));
    EXPECT(!bt.x && bt.u8 && !be.x && be.u8 && bt.n == ft.n && be.n == fe.n, "split storage");
    ug_dataset_rows(&ft, NULL, ft.n, rf);
    ug_dataset_rows(&bt, NULL, bt.n, rb);
    EXPECT(!memcmp(rf, rb, (size_t)(ft.n * 4) * sizeof *rf) && !memcmp(ft.y, bt.y, (size_t)ft.n * 4),
           "train split from bytes differs");
    ug_dataset_rows(&fe, NULL, fe.n, rf);
    ug_dataset_rows(&be, NULL, be.n, rb);
    EXPECT(!memcmp(rf, rb, (size_t)(fe.n * 4) * sizeof *rf), "test split from bytes differs");
    ug_dataset_free(&ft);
    ug_dataset_free(&fe);
    ug_dataset_free(&bt);
    ug_dataset_free(&be);
    /* To floats in place: the floats of ug_dataset_load, bit for bit, and the bytes freed. */
    ASSERT_OK(ug_dataset_to_float(&b));
    EXPECT(b.x && !b.u8 && !memcmp(b.x, f.x, 256 * sizeof *b.x), "ug_dataset_to_float");
    ASSERT_OK(ug_dataset_to_float(&b));
    EXPECT(b.x && !memcmp(b.x, f.x, 256 * sizeof *b.x), "ug_dataset_to_float twice");
    ug_dataset_free(&b);
    ug_dataset_free(&f);
    /* Generated sets have no bytes: floats either way. */
    ASSERT_OK(ug_dataset_load_bytes("moons", 1, 100, 1, &b));
    EXPECT(b.x && !b.u8 && b.n == 100, "a generated set through ug_dataset_load_bytes");
    ug_dataset_free(&b);
    rm_dir(dir);
}

/* ---------------------------------------------------------------- PNG folders */
TEST(png_folder_dataset) {
    char dir[64], p[160], spec[160];
    tmp_dir(dir, sizeof dir);
    ASSERT(dir[0], "mkdtemp failed");
    /* RGB 3 x 2 images; b.png then a.png: loading sorts by name. */
    uint8_t px[18];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 18; i++) px[i] = (uint8_t)(k * 100 + i);
        snprintf(p, sizeof p, "%s/%s.png", dir, k ? "a" : "b");
        ASSERT_OK(ug_png_write(p, px, 3, 2, 3));
    }
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    write_text(p, "not an image");
    snprintf(spec, sizeof spec, "png:%s", dir);
    ug_dataset ds;
    ASSERT_OK(ug_dataset_load(spec, 1, 0, 0, &ds));
    EXPECT(ds.n == 2 && ds.ndim == 3 && ds.shape[0] == 3 && ds.shape[1] == 2 && ds.shape[2] == 3,
           "png folder shape");
    /* a.png first; channel-major: x[c][y][x] = pixel (y, x) channel c. */
    EXPECT(ds.x[0] == 100.0f / 255 && ds.x[1] == 103.0f / 255 && ds.x[6] == 101.0f / 255 &&
               ds.x[18] == 0, "png folder order or CHW layout");
    ug_dataset_free(&ds);
    snprintf(p, sizeof p, "%s/c.png", dir);
    ASSERT_OK(ug_png_write(p, px, 2, 3, 3));
    EXPECT(ug_dataset_load(spec, 1, 0, 0, &ds) == UG_ERR_FORMAT &&
               strstr(ug_last_error(), "c.png") && strstr(ug_last_error(), "a.png"),
           "mixed sizes: %s", ug_last_error());
    rm_dir(dir);
}

/* ---------------------------------------------------------------- transforms */
TEST(transforms) {
    float a[4] = {0, 0.25f, 0.5f, 1};
    ug_data_scale_pm1(a, 4);
    EXPECT(a[0] == -1 && a[1] == -0.5f && a[2] == 0 && a[3] == 1, "scale_pm1");
    float b[4] = {0.1f, 0.5f, 0.51f, 1};
    ug_data_binarize_fixed(b, 4, 0.5f);
    EXPECT(b[0] == 0 && b[1] == 0 && b[2] == 1 && b[3] == 1, "binarize_fixed");

    enum { D = 4000 };
    float *x = malloc(3 * D * sizeof *x), *y = malloc(3 * D * sizeof *y);
    for (int i = 0; i < 3 * D; i++) x[i] = 0.3f;
    memcpy(y, x, 3 * D * sizeof *x);
    int64_t ids[3] = {5, 9, 2};
    ug_data_binarize_stochastic(x, 3, D, ids, 1, 0);
    double mean = 0;
    int binary = 1;
    for (int i = 0; i < 3 * D; i++) { mean += x[i]; binary &= x[i] == 0 || x[i] == 1; }
    EXPECT(binary && fabs(mean / (3 * D) - 0.3) < 0.015, "stochastic binarization mean %.4f",
           mean / (3 * D));
    /* Example 9 alone gives the same row as inside the batch. */
    float *row = malloc(D * sizeof *row);
    for (int i = 0; i < D; i++) row[i] = 0.3f;
    ug_data_binarize_stochastic(row, 1, D, &ids[1], 1, 0);
    EXPECT(memcmp(row, x + D, D * sizeof *row) == 0, "binarization depends on the batch");
    ug_data_binarize_stochastic(y, 3, D, ids, 1, 1);
    EXPECT(memcmp(x, y, 3 * D * sizeof *x) != 0, "same binarization in two epochs");

    for (int i = 0; i < D; i++) row[i] = (float)(i % 256) / 255.0f;
    memcpy(x, row, D * sizeof *x);
    ug_data_dequantize(row, 1, D, &ids[0], 3, 0);
    ug_data_dequantize(x, 1, D, &ids[0], 3, 0);
    int ok = memcmp(row, x, D * sizeof *x) == 0, in_bin = 1;
    for (int i = 0; i < D; i++) in_bin &= (int)floorf(row[i] * 256) == i % 256;
    EXPECT(ok && in_bin, "dequantize: reproducible %d, (pixel + u) / 256 in its bin %d", ok,
           in_bin);
    free(x); free(y); free(row);
}

/* ---------------------------------------------------------------- split and loader */
static ug_dataset index_set(int64_t n) {
    ug_dataset ds = {0};
    ds.n = n;
    ds.ndim = 1;
    ds.shape[0] = 2;
    ds.x = malloc((size_t)n * 2 * sizeof *ds.x);
    ds.y = malloc((size_t)n * sizeof *ds.y);
    for (int64_t i = 0; i < n; i++) {
        ds.x[2 * i] = (float)i;
        ds.x[2 * i + 1] = -(float)i;
        ds.y[i] = (int32_t)(i % 7);
    }
    ds.num_classes = 7;
    return ds;
}

TEST(dataset_split_partitions) {
    ug_dataset ds = index_set(101), tr, te;
    ASSERT_OK(ug_dataset_split(&ds, 0.2, 5, &tr, &te));
    EXPECT(tr.n == 81 && te.n == 20 && tr.num_classes == 7, "split sizes %lld + %lld",
           (long long)tr.n, (long long)te.n);
    int seen[101] = {0}, ok = 1;
    const ug_dataset *parts[2] = {&tr, &te};
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < parts[s]->n; i++) {
            int k = (int)parts[s]->x[2 * i];
            seen[k]++;
            ok &= parts[s]->y[i] == k % 7;
        }
    for (int k = 0; k < 101; k++) ok &= seen[k] == 1;
    EXPECT(ok, "split is not a partition with matching labels");
    ug_dataset_free(&tr);
    ug_dataset_free(&te);
    ug_dataset_free(&ds);
}

TEST(loader_epochs_and_shards) {
    enum { N = 103, B = 10 };
    ug_dataset ds = index_set(N);
    ug_loader L;
    ASSERT_OK(ug_loader_init(&L, &ds, B, 42, 0, 1, 1, 0));
    float x[2 * B];
    int32_t y[B];
    int64_t ids[B], order[2][N];
    for (uint32_t e = 0; e < 2; e++) {
        ug_loader_start_epoch(&L, e);
        int seen[N] = {0}, ok = 1, batches = 0;
        int64_t got, pos = 0;
        while ((got = ug_loader_next(&L, x, y, ids)) > 0) {
            batches++;
            for (int64_t i = 0; i < got; i++) {
                seen[ids[i]]++;
                order[e][pos++] = ids[i];
                ok &= x[2 * i] == (float)ids[i] && x[2 * i + 1] == -(float)ids[i] &&
                      y[i] == ids[i] % 7;
            }
        }
        EXPECT(ok, "epoch %u: gathered rows do not match their ids", e);
        EXPECT(batches == 11 && pos == N, "epoch %u: %d batches, %lld examples", e, batches,
               (long long)pos);
        for (int k = 0; k < N; k++)
            EXPECT(seen[k] == 1, "epoch %u: index %d seen %d times", e, k, seen[k]);
    }
    EXPECT(memcmp(order[0], order[1], sizeof order[0]) != 0, "epochs 0 and 1 in the same order");
    ug_loader_start_epoch(&L, 0);
    ug_loader_next(&L, NULL, NULL, ids);
    EXPECT(memcmp(ids, order[0], sizeof ids) == 0, "epoch 0 not reproducible");
    ug_loader_free(&L);

    ASSERT_OK(ug_loader_init(&L, &ds, B, 42, 0, 1, 1, 1));
    EXPECT(ug_loader_batches_per_epoch(&L) == 10, "drop_last batches %lld",
           (long long)ug_loader_batches_per_epoch(&L));
    int nb = 0;
    while (ug_loader_next(&L, NULL, NULL, NULL) == B) nb++;
    EXPECT(nb == 10, "drop_last gave %d full batches", nb);
    ug_loader_free(&L);

    /* Four ranks: their shards partition the same epoch. */
    int seen[N] = {0};
    for (int r = 0; r < 4; r++) {
        ASSERT_OK(ug_loader_init(&L, &ds, 8, 42, r, 4, 1, 0));
        ug_loader_start_epoch(&L, 3);
        int64_t got, count = 0;
        while ((got = ug_loader_next(&L, NULL, NULL, ids)) > 0) {
            for (int64_t i = 0; i < got; i++) seen[ids[i]]++;
            count += got;
        }
        EXPECT(count == (r < 3 ? 26 : 25), "rank %d shard of %lld", r, (long long)count);
        EXPECT(ug_loader_batches_per_epoch(&L) == 4, "batches per epoch under 4 ranks");
        ug_loader_free(&L);
    }
    for (int k = 0; k < N; k++) EXPECT(seen[k] == 1, "sharded: index %d seen %d times", k, seen[k]);
    EXPECT(ug_loader_init(&L, &ds, 8, 0, 4, 4, 1, 0) == UG_ERR_INVALID_ARG, "rank == world");
    ug_dataset_free(&ds);
}
