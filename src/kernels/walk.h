/* walk.h — an incrementing multi-index over an nd-dim box that carries up to three strided
 * offsets along (e.g. into a, b and out). Kernels that read broadcast or permuted operands seek
 * it once per thread chunk (one div/mod per dim) and then step it, so the per-element cost is
 * an add, not a div/mod per dimension. Internal to src/kernels. */
#ifndef UG_K_WALK_H
#define UG_K_WALK_H
#include "unigen.h"
#include <stdint.h>

typedef struct {
    int nd, nst;
    int64_t shape[UG_MAX_DIMS];
    int64_t st[3][UG_MAX_DIMS];
    int64_t idx[UG_MAX_DIMS];
    int64_t off[3];
} ug_walk;

/* dims[0..nd) pick which dims of shape / strides[k] the walk covers (in that order). */
static inline void ug_walk_init(ug_walk *w, int nd, const int *dims, const int64_t *shape,
                                int nst, const int64_t *const *strides) {
    w->nd = nd;
    w->nst = nst;
    for (int d = 0; d < nd; d++) {
        w->shape[d] = shape[dims[d]];
        for (int k = 0; k < nst; k++) w->st[k][d] = strides[k][dims[d]];
    }
}

/* Positions the walk at linear (row-major) index lin. */
static inline void ug_walk_seek(ug_walk *w, int64_t lin) {
    for (int k = 0; k < w->nst; k++) w->off[k] = 0;
    for (int d = w->nd - 1; d >= 0; d--) {
        w->idx[d] = lin % w->shape[d];
        lin /= w->shape[d];
        for (int k = 0; k < w->nst; k++) w->off[k] += w->idx[d] * w->st[k][d];
    }
}

static inline void ug_walk_next(ug_walk *w) {
    for (int d = w->nd - 1; d >= 0; d--) {
        for (int k = 0; k < w->nst; k++) w->off[k] += w->st[k][d];
        if (++w->idx[d] < w->shape[d]) return;
        for (int k = 0; k < w->nst; k++) w->off[k] -= w->st[k][d] * w->shape[d];
        w->idx[d] = 0;
    }
}

/* The static share [*lo, *hi) of n items for the calling thread of an OpenMP team (the whole
 * range outside one). Each item is then computed by exactly one thread in a fixed order, so
 * results do not depend on the thread count. */
#ifdef _OPENMP
#include <omp.h>
#endif
static inline void ug_thread_range(int64_t n, int64_t *lo, int64_t *hi) {
#ifdef _OPENMP
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    int64_t t = 0, nt = 1;
#endif
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}
#endif
