/* lanes.h — sums of floats in double, in 32 independent lanes added at the end. A single running
 * double is one dependent add per element (3-4 cycles each); the lanes vectorize, with no
 * -ffast-math: lane k sums the elements i = k mod 32 in index order, and the lanes are added as
 * a fixed tree, so the result depends on n alone, not on the machine or the thread count.
 * 32 lanes are four independent vector adds in flight: 8 lanes (two chains of 4) were bound by
 * the add's latency, 2 elements a cycle, and group norm's statistics spent a third of its time
 * there. */
#ifndef UG_K_LANES_H
#define UG_K_LANES_H
#include <stdint.h>
#include <string.h>

#define UG_LANES 32

/* lanes k, k + 8, k + 16, k + 24 first, then the 8 partial sums as a tree */
static inline double ug_lanes_total(const double *acc) {
    double t[8];
    for (int k = 0; k < 8; k++) t[k] = (acc[k] + acc[k + 8]) + (acc[k + 16] + acc[k + 24]);
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

/* 8 lanes as one vector of 8 doubles (GCC's vector extension; -O2 leaves scalar lane loops
 * unvectorized). Macros and pointers: a vector argument would change the ABI on machines
 * without AVX. */
typedef double ug_v8d __attribute__((vector_size(64)));
typedef float ug_v8f __attribute__((vector_size(32)));
#define UG_LOAD8_F32(v, p) memcpy(&(v), (p), sizeof(ug_v8f))
#define UG_LOAD8_F64(v, p)                                                 \
    do {                                                                   \
        ug_v8f f_;                                                         \
        UG_LOAD8_F32(f_, p);                                               \
        (v) = __builtin_convertvector(f_, ug_v8d);                         \
    } while (0)

/* The loop shape every lane sum here uses: elements [0, n) of a row, 32 at a time into the four
 * vectors a[0..3] (lanes 0-7, 8-15, 16-23, 24-31), then up to three runs of 8 into a[0], a[1],
 * a[2] in turn; i is left at the first element not yet added, for the caller's scalar tail
 * (each element into lane i mod 32). STEP(v, i) adds elements i..i+7 into the vector v. */
#define UG_LANES_ROW(a, n, i, STEP)                                        \
    do {                                                                   \
        for ((i) = 0; (i) + 32 <= (n); (i) += 32) {                        \
            STEP((a)[0], (i));                                             \
            STEP((a)[1], (i) + 8);                                         \
            STEP((a)[2], (i) + 16);                                        \
            STEP((a)[3], (i) + 24);                                        \
        }                                                                  \
        for (int r_ = 0; r_ < 3 && (i) + 8 <= (n); r_++, (i) += 8)        \
            STEP((a)[r_], (i));                                            \
    } while (0)

static inline void ug_lanes_load(ug_v8d *a, const double *acc) { memcpy(a, acc, 4 * sizeof *a); }
static inline void ug_lanes_store(double *acc, const ug_v8d *a) { memcpy(acc, a, 4 * sizeof *a); }

/* The 32 lanes of sum x[i], i < n, added into acc (UG_LANES doubles): chain calls over several
 * rows (each row's element i into lane i mod 32) and finish with ug_lanes_total. */
static inline void ug_lanes_add(double *acc, const float *x, int64_t n) {
    ug_v8d a[4], v;
    ug_lanes_load(a, acc);
    int64_t i;
#define UG_SUM_STEP(dst, j) do { UG_LOAD8_F64(v, x + (j)); (dst) += v; } while (0)
    UG_LANES_ROW(a, n, i, UG_SUM_STEP);
#undef UG_SUM_STEP
    ug_lanes_store(acc, a);
    for (; i < n; i++) acc[i % UG_LANES] += x[i];
}

/* sum x[i], i < n */
static inline double ug_sum_f64(const float *x, int64_t n) {
    double acc[UG_LANES] = {0};
    ug_lanes_add(acc, x, n);
    return ug_lanes_total(acc);
}
#endif
