/* dataset.c — one entry point from a spec string ("moons", "gmm:f.json", "fashion-mnist",
 * "mnist:DIR", "idx:PATH", "png:DIR") to an in-memory data set, a seeded train/test split, and
 * the per-example pixel transforms: stochastic binarization (Salakhutdinov & Murray 2008) and
 * uniform dequantization (Theis, van den Oord & Bethge 2016; NICE, RealNVP).
 * Images are pixel / 255 in [0, 1], (C, H, W) per example. The 8-bit sources are read into
 * bytes (u8); ug_dataset_load turns them into floats, ug_dataset_load_bytes keeps the bytes (a
 * quarter of the memory) and ug_dataset_rows converts the rows a batch needs. */
#include "core/core.h"
#include "unigen.h"
#include <dirent.h>
#include <math.h>
#include <strings.h>
#include <sys/stat.h>

void ug_dataset_free(ug_dataset *ds) {
    if (!ds) return;
    free(ds->x);
    free(ds->u8);
    free(ds->y);
    memset(ds, 0, sizeof *ds);
}

int64_t ug_dataset_dim(const ug_dataset *ds) {
    int64_t d = 1;
    for (int i = 0; i < ds->ndim; i++) d *= ds->shape[i];
    return d;
}

static ug_status alloc_x(ug_dataset *ds, const char *what) {
    int64_t d = ug_dataset_dim(ds);
    ds->x = malloc((size_t)(ds->n * d) * sizeof *ds->x);
    if (!ds->x)
        return ug_fail(UG_ERR_NOMEM, "%s: cannot allocate %lld x %lld floats", what,
                       (long long)ds->n, (long long)d);
    return UG_OK;
}

/* The 8-bit sources: n x dim bytes. */
static ug_status alloc_u8(ug_dataset *ds, const char *what) {
    int64_t d = ug_dataset_dim(ds);
    ds->u8 = malloc((size_t)(ds->n * d > 0 ? ds->n * d : 1));
    if (!ds->u8)
        return ug_fail(UG_ERR_NOMEM, "%s: cannot allocate %lld x %lld bytes", what,
                       (long long)ds->n, (long long)d);
    return UG_OK;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* ---------------------------------------------------------------- generated sets */
/* The first Philox stream of a generated split: the splits never share a stream. */
static uint64_t split_stream(int split) {
    return split == UG_SPLIT_TRAIN ? 0 : split == UG_SPLIT_VALID ? UG_DATA_VALID_STREAM
                                                                 : UG_DATA_TEST_STREAM;
}

static ug_status load_toy(ug_toy2d t, int train, int64_t n, uint64_t seed, ug_dataset *ds) {
    ds->n = n;
    ds->ndim = 1;
    ds->shape[0] = 2;
    ug_status st = alloc_x(ds, ug_toy2d_name(t));
    if (st) return st;
    return ug_toy2d_sample_at(t, (int64_t)split_stream(train), n, seed, ds->x);
}

static ug_status load_gmm(const char *path, int train, int64_t n, uint64_t seed,
                          ug_dataset *ds) {
    ug_gmm g;
    ug_status st = ug_gmm_load(path, &g);
    if (st) return st;
    ds->n = n;
    ds->ndim = 1;
    ds->shape[0] = g.d;
    ds->num_classes = g.K;
    if (!(st = alloc_x(ds, path))) {
        ds->y = malloc((size_t)n * sizeof *ds->y);
        if (!ds->y) st = ug_fail(UG_ERR_NOMEM, "%s: out of memory for labels", path);
    }
    if (!st)
        st = ug_gmm_sample(&g, (int64_t)split_stream(train), n, seed, ds->x, ds->y);
    ug_gmm_free(&g);
    return st;
}

/* ---------------------------------------------------------------- pixels as floats */
/* The one map from a stored pixel to the data value: p / 255 in [0, 1]. */
static void bytes_to_unit(float *dst, const uint8_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = (float)src[i] / 255.0f;
}

ug_status ug_dataset_to_float(ug_dataset *ds) {
    if (ds->x || !ds->u8) return UG_OK;
    ug_status st = alloc_x(ds, "ug_dataset_to_float");
    if (st) return st;
    int64_t n = ds->n * ug_dataset_dim(ds);
    float *x = ds->x;
    const uint8_t *u = ds->u8;
#pragma omp parallel for schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t c = 0; c < n; c += 4096) bytes_to_unit(x + c, u + c, n - c < 4096 ? n - c : 4096);
    free(ds->u8);
    ds->u8 = NULL;
    return UG_OK;
}

void ug_dataset_rows(const ug_dataset *ds, const int64_t *ids, int64_t n, float *out) {
    int64_t d = ug_dataset_dim(ds);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = ids ? ids[i] : i;
        if (ds->x) memcpy(out + i * d, ds->x + k * d, (size_t)d * sizeof *out);
        else bytes_to_unit(out + i * d, ds->u8 + k * d, d);
    }
}

/* ---------------------------------------------------------------- IDX sets */

static ug_status load_idx_file(const char *path, int64_t nmax, ug_dataset *ds) {
    ug_idx f;
    ug_status st = ug_idx_read(path, &f);
    if (st) return st;
    ds->n = f.dims[0];
    if (nmax > 0 && nmax < ds->n) ds->n = nmax;
    switch (f.ndim) {
    case 1: ds->ndim = 1; ds->shape[0] = 1; break;
    case 2: ds->ndim = 1; ds->shape[0] = f.dims[1]; break;
    case 3:
        ds->ndim = 3;
        ds->shape[0] = 1;
        ds->shape[1] = f.dims[1];
        ds->shape[2] = f.dims[2];
        break;
    default:
        ds->ndim = 3;
        for (int i = 0; i < 3; i++) ds->shape[i] = f.dims[i + 1];
    }
    if (!(st = alloc_u8(ds, path))) memcpy(ds->u8, f.data, (size_t)(ds->n * ug_dataset_dim(ds)));
    ug_idx_free(&f);
    return st;
}

/* First existing DIR/PREFIX-KIND-idxN-ubyte[.gz] (or the dotted name some mirrors use). */
static int find_idx(const char *dir, const char *prefix, const char *kind, int nd, char *out,
                    size_t cap) {
    static const char *const forms[] = {"%s/%s-%s-idx%d-ubyte.gz", "%s/%s-%s-idx%d-ubyte",
                                        "%s/%s-%s.idx%d-ubyte.gz", "%s/%s-%s.idx%d-ubyte"};
    for (int i = 0; i < 4; i++) {
        snprintf(out, cap, forms[i], dir, prefix, kind, nd);
        if (file_exists(out)) return 1;
    }
    snprintf(out, cap, forms[0], dir, prefix, kind, nd);
    return 0;
}

/* An MNIST-layout folder: PREFIX-images-idx3-ubyte[.gz] with, when present,
 * PREFIX-labels-idx1-ubyte[.gz]. Prefixes: train; t10k or test; valid (binarized MNIST). */
static ug_status load_mnist_dir(const char *dir, int split, int64_t nmax, const char *hint,
                                ug_dataset *ds) {
    char ipath[4096], lpath[4096];
    const char *prefix = split == UG_SPLIT_TRAIN ? "train" : split == UG_SPLIT_VALID ? "valid" : "t10k";
    int found = find_idx(dir, prefix, "images", 3, ipath, sizeof ipath);
    char tpath[4096];
    if (!found && split == UG_SPLIT_TEST && find_idx(dir, "test", "images", 3, tpath, sizeof tpath)) {
        prefix = "test";
        found = 1;
        memcpy(ipath, tpath, sizeof ipath);
    }
    if (!found)
        return ug_fail(UG_ERR_IO, "%s: not found (nor without .gz%s)%s", ipath,
                       split == UG_SPLIT_TEST ? ", nor test-images-idx3-ubyte" : "",
                       split == UG_SPLIT_VALID ? " — this data set has no validation split" : hint);
    int labelled = find_idx(dir, prefix, "labels", 1, lpath, sizeof lpath);
    ug_idx im, lb;
    memset(&lb, 0, sizeof lb);
    ug_status st = ug_idx_read(ipath, &im);
    if (st) return st;
    if (labelled && (st = ug_idx_read(lpath, &lb))) { ug_idx_free(&im); return st; }
    if (im.ndim != 3)
        st = ug_fail(UG_ERR_FORMAT, "%s: %d dimensions, expected 3 (n, rows, cols) for images",
                     ipath, im.ndim);
    else if (labelled && lb.ndim != 1)
        st = ug_fail(UG_ERR_FORMAT, "%s: %d dimensions, expected 1 (n) for labels", lpath,
                     lb.ndim);
    else if (labelled && lb.dims[0] != im.dims[0])
        st = ug_fail(UG_ERR_FORMAT, "%s: %lld labels, but %s has %lld images", lpath,
                     (long long)lb.dims[0], ipath, (long long)im.dims[0]);
    if (!st) {
        ds->n = im.dims[0];
        if (nmax > 0 && nmax < ds->n) ds->n = nmax;
        ds->ndim = 3;
        ds->shape[0] = 1;
        ds->shape[1] = im.dims[1];
        ds->shape[2] = im.dims[2];
        st = alloc_u8(ds, ipath);
    }
    if (!st) memcpy(ds->u8, im.data, (size_t)(ds->n * ug_dataset_dim(ds)));
    if (!st && labelled) {
        ds->y = malloc((size_t)ds->n * sizeof *ds->y);
        if (!ds->y) st = ug_fail(UG_ERR_NOMEM, "%s: out of memory for labels", lpath);
    }
    if (!st && labelled) {
        int maxl = 0;
        for (int64_t i = 0; i < ds->n; i++) {
            ds->y[i] = lb.data[i];
            if (lb.data[i] > maxl) maxl = lb.data[i];
        }
        ds->num_classes = maxl + 1;
    }
    ug_idx_free(&im);
    if (labelled) ug_idx_free(&lb);
    return st;
}

/* ---------------------------------------------------------------- PNG folders */
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_png_name(const char *name) {
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0 && name[0] != '.';
}

static ug_status load_png_dir(const char *dir, int64_t nmax, ug_dataset *ds) {
    DIR *d = opendir(dir);
    if (!d) return ug_fail(UG_ERR_IO, "%s: cannot open the image folder", dir);
    char **names = NULL;
    int64_t count = 0, cap = 0;
    ug_status st = UG_OK;
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_png_name(e->d_name)) continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 256;
            char **nn = realloc(names, (size_t)cap * sizeof *names);
            if (!nn) { st = ug_fail(UG_ERR_NOMEM, "%s: out of memory", dir); break; }
            names = nn;
        }
        if (!(names[count] = strdup(e->d_name))) {
            st = ug_fail(UG_ERR_NOMEM, "%s: out of memory", dir);
            break;
        }
        count++;
    }
    closedir(d);
    if (!st && count == 0) st = ug_fail(UG_ERR_FORMAT, "%s: no .png files in the folder", dir);
    if (!st) {
        /* Sorted: the example order, and so every seeded shuffle, is the same on any system. */
        qsort(names, (size_t)count, sizeof *names, cmp_str);
        ds->n = nmax > 0 && nmax < count ? nmax : count;
    }
    int w0 = 0, h0 = 0, c0 = 0;
    char path[4096], first[4096] = "";
    for (int64_t i = 0; !st && i < ds->n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        uint8_t *pix;
        int w, h, c;
        if ((st = ug_png_read(path, &pix, &w, &h, &c))) break;
        if (i == 0) {
            w0 = w; h0 = h; c0 = c;
            snprintf(first, sizeof first, "%s", path);
            ds->ndim = 3;
            ds->shape[0] = c; ds->shape[1] = h; ds->shape[2] = w;
            if ((st = alloc_u8(ds, dir))) { free(pix); break; }
        } else if (w != w0 || h != h0 || c != c0) {
            st = ug_fail(UG_ERR_FORMAT, "%s: %d x %d with %d channel(s), expected %d x %d with %d "
                         "like %s (all images in a folder must match)", path, w, h, c, w0, h0, c0,
                         first);
            free(pix);
            break;
        }
        uint8_t *dst = ds->u8 + i * (int64_t)c * h * w;
        for (int ch = 0; ch < c; ch++)
            for (int64_t p = 0; p < (int64_t)h * w; p++) dst[ch * (int64_t)h * w + p] = pix[p * c + ch];
        free(pix);
    }
    for (int64_t i = 0; i < count; i++) free(names[i]);
    free(names);
    return st;
}

/* ---------------------------------------------------------------- dispatch */
ug_status ug_dataset_load_bytes(const char *spec, int train, int64_t n, uint64_t seed,
                                ug_dataset *out) {
    memset(out, 0, sizeof *out);
    if (!spec || !*spec) return ug_fail(UG_ERR_INVALID_ARG, "data set spec is empty");
    if (train < UG_SPLIT_TEST || train > UG_SPLIT_VALID)
        return ug_fail(UG_ERR_INVALID_ARG, "data set %s: split %d, expected 0 (test), 1 (train) "
                       "or 2 (validation)", spec, train);
    int64_t ngen = n > 0 ? n : train == UG_SPLIT_TRAIN ? UG_DATA_TOY_TRAIN_N : UG_DATA_TOY_TEST_N;
    ug_status st;
    ug_toy2d t;
    if (strncmp(spec, "gmm:", 4) == 0) {
        st = load_gmm(spec + 4, train, ngen, seed, out);
    } else if (strcmp(spec, "fashion-mnist") == 0) {
        st = load_mnist_dir(UG_FASHION_MNIST_DIR, train, n,
                            " — install Debian's dataset-fashion-mnist (scripts/deps.sh)", out);
    } else if (strncmp(spec, "mnist:", 6) == 0) {
        st = load_mnist_dir(spec + 6, train, n, "", out);
    } else if (strncmp(spec, "idx:", 4) == 0) {
        st = load_idx_file(spec + 4, n, out);
    } else if (strncmp(spec, "png:", 4) == 0) {
        st = load_png_dir(spec + 4, n, out);
    } else if (ug_toy2d_from_name(spec, &t) == UG_OK) {
        st = load_toy(t, train, ngen, seed, out);
    } else {
        char names[256] = "";
        for (int i = 0; i < UG_TOY_COUNT; i++) {
            strncat(names, ug_toy2d_name((ug_toy2d)i), sizeof names - strlen(names) - 1);
            strncat(names, ", ", sizeof names - strlen(names) - 1);
        }
        return ug_fail(UG_ERR_INVALID_ARG, "unknown data set '%s' (valid: %sgmm:FILE.json, "
                       "fashion-mnist, mnist:DIR, idx:PATH, png:DIR)", spec, names);
    }
    if (st) ug_dataset_free(out);
    return st;
}

ug_status ug_dataset_load(const char *spec, int train, int64_t n, uint64_t seed,
                          ug_dataset *out) {
    ug_status st = ug_dataset_load_bytes(spec, train, n, seed, out);
    if (!st && (st = ug_dataset_to_float(out))) ug_dataset_free(out);
    return st;
}

ug_status ug_dataset_split(const ug_dataset *src, double test_frac, uint64_t seed,
                           ug_dataset *train, ug_dataset *test) {
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!(test_frac >= 0 && test_frac <= 1))
        return ug_fail(UG_ERR_INVALID_ARG, "ug_dataset_split: test fraction %g outside [0, 1]",
                       test_frac);
    int64_t nt = (int64_t)llround(test_frac * (double)src->n), d = ug_dataset_dim(src);
    int64_t *perm = malloc((size_t)(src->n > 0 ? src->n : 1) * sizeof *perm);
    if (!perm) return ug_fail(UG_ERR_NOMEM, "ug_dataset_split: out of memory");
    /* A stream no loader epoch uses, so the split is not the first epoch's order. */
    ug_data_permutation(perm, src->n, seed, UINT64_MAX);
    ug_dataset *parts[2] = {train, test};
    int64_t starts[2] = {0, src->n - nt}, counts[2] = {src->n - nt, nt};
    for (int p = 0; p < 2; p++) {
        ug_dataset *o = parts[p];
        *o = *src;
        o->x = NULL;
        o->u8 = NULL;
        o->y = NULL;
        o->n = counts[p];
        size_t rows = (size_t)(counts[p] * d > 0 ? counts[p] * d : 1);
        if (src->x) o->x = malloc(rows * sizeof *o->x);
        else o->u8 = malloc(rows);
        if (src->y) o->y = malloc((size_t)(counts[p] > 0 ? counts[p] : 1) * sizeof *o->y);
        if ((!o->x && !o->u8) || (src->y && !o->y)) {
            free(perm);
            ug_dataset_free(train);
            ug_dataset_free(test);
            return ug_fail(UG_ERR_NOMEM, "ug_dataset_split: out of memory");
        }
        for (int64_t i = 0; i < counts[p]; i++) {
            int64_t k = perm[starts[p] + i];
            if (src->x) memcpy(o->x + i * d, src->x + k * d, (size_t)d * sizeof *o->x);
            else memcpy(o->u8 + i * d, src->u8 + k * d, (size_t)d);
            if (src->y) o->y[i] = src->y[k];
        }
    }
    free(perm);
    return UG_OK;
}

/* ---------------------------------------------------------------- transforms */
void ug_data_scale_pm1(float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = 2 * x[i] - 1;
}

void ug_data_binarize_fixed(float *x, int64_t n, float threshold) {
#pragma omp parallel for schedule(static) if (n >= UG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] > threshold ? 1.0f : 0.0f;
}

/* Different keys keep binarization and dequantization noise apart under one seed. */
#define KEY_BINARIZE 0x62696e6172697a65ull
#define KEY_DEQUANT 0x64657175616e7421ull

/* Row i of x (d) gets uniforms from stream ids[i] at sub-counter epoch, 256 at a time (a
 * multiple of 4, so chunking does not change which uniforms a row sees). */
#define ROW_CHUNK 256

void ug_data_binarize_stochastic(float *x, int64_t n, int64_t d, const int64_t *ids,
                                 uint64_t seed, uint32_t epoch) {
#pragma omp parallel for schedule(static) if (n * d >= UG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        ug_rng r = ug_rng_make(seed ^ KEY_BINARIZE, (uint64_t)(ids ? ids[i] : i), epoch);
        float u[ROW_CHUNK];
        for (int64_t j0 = 0; j0 < d; j0 += ROW_CHUNK) {
            int64_t m = d - j0 < ROW_CHUNK ? d - j0 : ROW_CHUNK;
            ug_rng_uniform(&r, u, m);
            float *row = x + i * d + j0;
            for (int64_t j = 0; j < m; j++) row[j] = u[j] < row[j] ? 1.0f : 0.0f;
        }
    }
}

void ug_data_dequantize(float *x, int64_t n, int64_t d, const int64_t *ids, uint64_t seed,
                        uint32_t epoch) {
#pragma omp parallel for schedule(static) if (n * d >= UG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        ug_rng r = ug_rng_make(seed ^ KEY_DEQUANT, (uint64_t)(ids ? ids[i] : i), epoch);
        float u[ROW_CHUNK];
        for (int64_t j0 = 0; j0 < d; j0 += ROW_CHUNK) {
            int64_t m = d - j0 < ROW_CHUNK ? d - j0 : ROW_CHUNK;
            ug_rng_uniform(&r, u, m);
            float *row = x + i * d + j0;
            for (int64_t j = 0; j < m; j++) {
                float pixel = rintf(row[j] * 255.0f);   /* back to the integer level */
                row[j] = (pixel + u[j]) * (1.0f / 256.0f);
            }
        }
    }
}
