/* data.h — data sets: seeded 2-D toys (FFJORD's toy_data.py), a Gaussian mixture read from JSON
 * with its exact log-density, IDX files (MNIST, Fashion-MNIST), folders of PNG images, pixel
 * transforms (binarization, dequantization) and a shuffling, rank-sharded batch loader.
 *
 * Every random draw goes through Philox (ug_rng) keyed by the seed with the EXAMPLE INDEX as the
 * stream, so example i is the same whatever n, batch, thread count or MPI rank.
 * Written so the whole header can move into unigen.h as is: ug_ prefix, ug_status returns,
 * out-params, messages through ug_fail naming the file, the field, the expected and found value.
 */
#ifndef UG_DATA_H
#define UG_DATA_H

#include "unigen.h"

/* ---------------------------------------------------------------- 2-D toys */
typedef enum ug_toy2d {
    UG_TOY_MOONS,        /* sklearn make_moons(noise 0.1) * 2 + (-1, -0.2) */
    UG_TOY_CIRCLES,      /* sklearn make_circles(factor 0.5, noise 0.08) * 3 */
    UG_TOY_8GAUSSIANS,   /* centres 4 (cos, sin)(k pi/4), std 0.5, all / 1.414 */
    UG_TOY_25GAUSSIANS,  /* WGAN-GP: centres 2 (i, j), i, j in -2..2, std 0.05, all / 2.828 */
    UG_TOY_CHECKERBOARD, /* uniform on the 8 dark unit squares of [-2,2]^2, then * 2 */
    UG_TOY_SWISSROLL,    /* sklearn make_swiss_roll(noise 1.0), coordinates (x, z) / 5 */
    UG_TOY_PINWHEEL,     /* 5 arms, radial std 0.3, tangential std 0.1, rate 0.25, * 2 */
    UG_TOY_2SPIRALS,     /* two arms of 540 degrees, uniform jitter 0.5, / 3, + N(0, 0.1^2) */
    UG_TOY_COUNT
} ug_toy2d;

const char *ug_toy2d_name(ug_toy2d t);   /* "moons", ...; "?" out of range */
/* Exact name; an unknown one fails with UG_ERR_INVALID_ARG listing every valid name. */
ug_status ug_toy2d_from_name(const char *name, ug_toy2d *out);
/* Examples first_index .. first_index + n - 1 into out (n, 2); example i uses the Philox stream
 * i, so a point never depends on n or on which call drew it. */
ug_status ug_toy2d_sample_at(ug_toy2d t, int64_t first_index, int64_t n, uint64_t seed,
                             float *out);
/* By name, examples 0 .. n-1. */
ug_status ug_toy2d_sample(const char *name, int64_t n, uint64_t seed, float *out);

/* Test splits of generated sets draw from streams starting here: disjoint from any train set
 * smaller than 2^62 examples, so train and test never share a point. */
#define UG_DATA_TEST_STREAM ((uint64_t)1 << 62)

/* ---------------------------------------------------------------- Gaussian mixture */
/* p(x) = sum_k w_k N(x; mu_k, s_k^2 I). Weights are normalized to sum to 1 on load. */
typedef struct ug_gmm {
    int K, d;
    double *w;    /* (K) */
    double *mu;   /* (K, d) */
    double *s;    /* (K) isotropic standard deviations */
} ug_gmm;

/* JSON object, required keys "weights" [K], "means" [K][d], "stds" [K]; optional "name",
 * "description" (strings), "dim", "num_components" (must match). Any other key is an error. */
ug_status ug_gmm_load(const char *path, ug_gmm *out);
/* Same, from a JSON text; `what` names the source in messages. */
ug_status ug_gmm_parse(const char *json, const char *what, ug_gmm *out);
void ug_gmm_free(ug_gmm *g);
/* Examples first_index .. first_index + n - 1 into out (n, d); labels (n) the component, or
 * NULL. Example i uses stream i: a categorical draw for the component, then mu + s * z. */
ug_status ug_gmm_sample(const ug_gmm *g, int64_t first_index, int64_t n, uint64_t seed,
                        float *out, int32_t *labels);
/* log p_sigma(x) of the mixture convolved with N(0, sigma^2 I) (the diffusion marginal):
 * log sum_k w_k N(x; mu_k, (s_k^2 + sigma^2) I), by log-sum-exp in double. x (d). */
double ug_gmm_logpdf(const ug_gmm *g, const double *x, double sigma);

/* ---------------------------------------------------------------- IDX files */
/* IDX (LeCun's MNIST format): 0, 0, dtype byte, ndim byte, ndim big-endian uint32 sizes, data.
 * Read through zlib, so gzip-compressed and raw files both work. Only dtype 0x08 (ubyte). */
typedef struct ug_idx {
    int ndim;
    int64_t dims[4];
    uint8_t *data;    /* prod(dims) bytes */
} ug_idx;
ug_status ug_idx_read(const char *path, ug_idx *out);
void ug_idx_free(ug_idx *f);

/* ---------------------------------------------------------------- data sets */
typedef struct ug_dataset {
    int64_t n;            /* examples */
    int ndim;             /* dims per example: 1 for vectors (d), 3 for images (C, H, W) */
    int64_t shape[4];
    float *x;             /* (n, shape...) */
    int32_t *y;           /* (n) labels, or NULL */
    int num_classes;      /* 0 when y is NULL */
} ug_dataset;

#define UG_DATA_TOY_TRAIN_N 65536
#define UG_DATA_TOY_TEST_N 8192
#define UG_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Loads a data set from a spec string:
 *   moons, circles, 8gaussians, 25gaussians, checkerboard, swissroll, pinwheel, 2spirals
 *                   n examples (n <= 0: 65536 train, 8192 test); the test split draws from
 *                   streams UG_DATA_TEST_STREAM + i, so it is disjoint from the train split
 *   gmm:FILE.json   n examples of the mixture (defaults as above), y = component, K classes
 *   fashion-mnist   Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)
 *   mnist:DIR       train-images-idx3-ubyte[.gz] / t10k-... (and labels) in DIR
 *   idx:PATH        one IDX file of n examples (first dimension), no labels; train ignored
 *   png:DIR         every *.png in DIR (sorted by name), same size and channels; train ignored
 * Pixels are stored as pixel / 255 in [0, 1]; images have shape (C, H, W). For file sets,
 * n > 0 keeps only the first n examples. The seed only affects generated sets. */
ug_status ug_dataset_load(const char *spec, int train, int64_t n, uint64_t seed,
                          ug_dataset *out);
void ug_dataset_free(ug_dataset *ds);
/* Floats per example (product of shape). */
int64_t ug_dataset_dim(const ug_dataset *ds);
/* Splits src by a seeded permutation: the last round(test_frac * n) shuffled examples go to
 * test, the rest to train (both keep the permuted order). For sets with no test split of
 * their own (png:, idx:); src is unchanged. */
ug_status ug_dataset_split(const ug_dataset *src, double test_frac, uint64_t seed,
                           ug_dataset *train, ug_dataset *test);

/* ---------------------------------------------------------------- transforms */
/* [0, 1] -> [-1, 1]. */
void ug_data_scale_pm1(float *x, int64_t n);
/* x > threshold -> 1, else 0. */
void ug_data_binarize_fixed(float *x, int64_t n, float threshold);
/* In place on a batch x (n, d) of intensities in [0, 1]: x <- 1 with probability x (Salakhutdinov
 * & Murray 2008). Row i uses stream ids[i] (the example's index in the data set; ids NULL means
 * 0..n-1) and the epoch, so each example is re-binarized every epoch, reproducibly. */
void ug_data_binarize_stochastic(float *x, int64_t n, int64_t d, const int64_t *ids,
                                 uint64_t seed, uint32_t epoch);
/* In place on a batch x (n, d) stored as pixel / 255: x <- (pixel + u) / 256, u ~ U(0, 1)
 * (uniform dequantization, NICE / RealNVP; Theis et al. 2016). Streams as above. */
void ug_data_dequantize(float *x, int64_t n, int64_t d, const int64_t *ids, uint64_t seed,
                        uint32_t epoch);

/* ---------------------------------------------------------------- batch loader */
/* perm <- a uniformly random permutation of 0..n-1: Fisher-Yates (Durstenfeld 1964) driven by
 * Philox at (seed, stream), so it is the same on every rank and thread count. */
void ug_data_permutation(int64_t *perm, int64_t n, uint64_t seed, uint64_t stream);

/* Each epoch is a Philox-seeded Fisher-Yates permutation of 0..n-1 (stream = epoch). Rank r of
 * world w takes positions r, r + w, r + 2w, ... of it, so the ranks' shards partition the epoch.
 * Batches are gathered into caller buffers: nothing is allocated after init. */
typedef struct ug_loader {
    const ug_dataset *ds;
    int64_t batch;
    uint64_t seed;
    int rank, world;
    int shuffle;          /* 0: identity order every epoch */
    int drop_last;        /* 1: skip the last incomplete batch */
    int64_t *perm;        /* (n) this epoch's order */
    uint32_t epoch;
    int64_t pos;          /* next position in this rank's shard */
    int64_t shard_n;      /* examples in this rank's shard */
} ug_loader;

ug_status ug_loader_init(ug_loader *L, const ug_dataset *ds, int64_t batch, uint64_t seed,
                         int rank, int world, int shuffle, int drop_last);
void ug_loader_free(ug_loader *L);
/* Starts epoch e (builds its permutation, rewinds). */
void ug_loader_start_epoch(ug_loader *L, uint32_t epoch);
/* Next batch of this rank's shard into x (batch, dim), y (batch) and ids (batch) — each may be
 * NULL. Returns the number of examples written, 0 when the epoch is over. */
int64_t ug_loader_next(ug_loader *L, float *x, int32_t *y, int64_t *ids);
/* Batches every rank can take this epoch (the smallest shard's count): under MPI all ranks
 * stop after this many so their allreduces stay paired. */
int64_t ug_loader_batches_per_epoch(const ug_loader *L);

#endif
