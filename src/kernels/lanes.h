/* lanes.h — sums of floats in double, in 8 independent lanes added at the end. A single running
 * double is one dependent add per element (4 cycles each); the lanes vectorize, with no
 * -ffast-math: lane k sums the elements i = k mod 8 in index order, and the lanes are added as
 * a fixed tree, so the result depends on n alone, not on the machine or the thread count. */
#ifndef UG_K_LANES_H
#define UG_K_LANES_H
#include <stdint.h>
#include <string.h>

#define UG_LANES 8

static inline double ug_lanes_total(const double *acc) {
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* The 8 lanes as two vectors of 4 doubles (GCC's vector extension; -O2 leaves the scalar lane
 * loops unvectorized). */
typedef double ug_v4d __attribute__((vector_size(32)));
typedef float ug_v4f __attribute__((vector_size(16)));
#define UG_LOAD8_F64(lo, hi, p)                                            \
    do {                                                                   \
        ug_v4f l_, h_;                                                     \
        memcpy(&l_, (p), sizeof l_);                                       \
        memcpy(&h_, (p) + 4, sizeof h_);                                   \
        (lo) = __builtin_convertvector(l_, ug_v4d);                        \
        (hi) = __builtin_convertvector(h_, ug_v4d);                        \
    } while (0)
/* (Pointers: a vector argument would change the ABI on machines without AVX.) */
static inline void ug_lanes_store(double *acc, const ug_v4d *lo, const ug_v4d *hi) {
    memcpy(acc, lo, sizeof *lo);
    memcpy(acc + 4, hi, sizeof *hi);
}

/* The 8 lanes of sum x[i], i < n, added into acc (UG_LANES doubles): chain calls over several
 * rows and finish with ug_lanes_total. */
static inline void ug_lanes_add(double *acc, const float *x, int64_t n) {
    ug_v4d a0, a1, x0, x1;
    memcpy(&a0, acc, sizeof a0);
    memcpy(&a1, acc + 4, sizeof a1);
    int64_t i = 0;
    for (; i + UG_LANES <= n; i += UG_LANES) {
        UG_LOAD8_F64(x0, x1, x + i);
        a0 += x0;
        a1 += x1;
    }
    ug_lanes_store(acc, &a0, &a1);
    for (; i < n; i++) acc[i % UG_LANES] += x[i];
}

/* sum x[i], i < n */
static inline double ug_sum_f64(const float *x, int64_t n) {
    double acc[UG_LANES] = {0};
    ug_lanes_add(acc, x, n);
    return ug_lanes_total(acc);
}
#endif
