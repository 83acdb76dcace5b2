/* loader.c — mini-batches for training: a fresh Philox-seeded Fisher-Yates permutation every
 * epoch (stream = epoch number, so epoch e's order is reproducible alone, e.g. on resume), sharded
 * by rank the way PyTorch's DistributedSampler does (rank r takes positions r, r + w, ...), and
 * gathered into the caller's buffers with no allocation per batch. */
#include "core/core.h"
#include "unigen.h"

#define PERM_CHUNK 256

void ug_data_permutation(int64_t *perm, int64_t n, uint64_t seed, uint64_t stream) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    ug_rng r = ug_rng_make(seed, stream, 0);
    double u[PERM_CHUNK];
    int64_t have = 0, used = 0;
    for (int64_t i = n - 1; i > 0; i--) {
        if (used == have) {
            ug_rng_uniform_f64(&r, u, PERM_CHUNK);
            have = PERM_CHUNK;
            used = 0;
        }
        /* j uniform in [0, i]: the bias of a 53-bit uniform times i + 1 is below 2^-20 for any
         * data set that fits in memory. */
        int64_t j = (int64_t)(u[used++] * (double)(i + 1));
        if (j > i) j = i;
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

ug_status ug_loader_init(ug_loader *L, const ug_dataset *ds, int64_t batch, uint64_t seed,
                         int rank, int world, int shuffle, int drop_last) {
    memset(L, 0, sizeof *L);
    if (batch < 1)
        return ug_fail(UG_ERR_INVALID_ARG, "ug_loader_init: batch size %lld, expected >= 1",
                       (long long)batch);
    if (world < 1 || rank < 0 || rank >= world)
        return ug_fail(UG_ERR_INVALID_ARG, "ug_loader_init: rank %d of world %d, expected 0 <= "
                       "rank < world", rank, world);
    if (ds->n < 1) return ug_fail(UG_ERR_INVALID_ARG, "ug_loader_init: the data set is empty");
    L->ds = ds;
    L->batch = batch;
    L->seed = seed;
    L->rank = rank;
    L->world = world;
    L->shuffle = shuffle;
    L->drop_last = drop_last;
    L->perm = malloc((size_t)ds->n * sizeof *L->perm);
    if (!L->perm)
        return ug_fail(UG_ERR_NOMEM, "ug_loader_init: cannot allocate %lld indices",
                       (long long)ds->n);
    L->shard_n = ds->n > rank ? (ds->n - rank + world - 1) / world : 0;
    ug_loader_start_epoch(L, 0);
    return UG_OK;
}

void ug_loader_free(ug_loader *L) {
    if (!L) return;
    free(L->perm);
    memset(L, 0, sizeof *L);
}

void ug_loader_start_epoch(ug_loader *L, uint32_t epoch) {
    L->epoch = epoch;
    L->pos = 0;
    if (L->shuffle) {
        ug_data_permutation(L->perm, L->ds->n, L->seed, epoch);
    } else {
        for (int64_t i = 0; i < L->ds->n; i++) L->perm[i] = i;
    }
}

int64_t ug_loader_next(ug_loader *L, float *x, int32_t *y, int64_t *ids) {
    int64_t left = L->shard_n - L->pos;
    int64_t b = left < L->batch ? left : L->batch;
    if (b <= 0 || (L->drop_last && b < L->batch)) return 0;
    const ug_dataset *ds = L->ds;
    int64_t d = x ? ug_dataset_dim(ds) : 0;
    for (int64_t i = 0; i < b; i++) {
        int64_t k = L->perm[L->rank + (L->pos + i) * L->world];
        if (x) ug_dataset_rows(ds, &k, 1, x + i * d);
        if (y) y[i] = ds->y ? ds->y[k] : 0;
        if (ids) ids[i] = k;
    }
    L->pos += b;
    return b;
}

int64_t ug_loader_batches_per_epoch(const ug_loader *L) {
    int64_t smallest = L->ds->n / L->world;
    return L->drop_last ? smallest / L->batch : (smallest + L->batch - 1) / L->batch;
}
