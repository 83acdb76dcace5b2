/* rng.c — Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
 * 1, 2, 3", SC 2011), checked against Random123's tests/kat_vectors.
 * Layout of one 128-bit counter: words 0-1 = block index, words 2-3 = stream; key = seed.
 * Every draw is a pure function of (seed, stream, block), so a sample's noise does not depend
 * on the batch it is drawn in, the thread that draws it or the MPI rank. */
#include "core.h"
#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void ug_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

ug_rng ug_rng_make(uint64_t seed, uint64_t stream, uint32_t sub) {
    ug_rng r = {seed, stream, (uint64_t)sub << 32};
    return r;
}

static inline void next_block(ug_rng *r, uint32_t out[4]) {
    uint32_t ctr[4] = {(uint32_t)r->block, (uint32_t)(r->block >> 32), (uint32_t)r->stream,
                       (uint32_t)(r->stream >> 32)};
    uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
    ug_philox4x32_10(ctr, key, out);
    r->block++;
}

/* 23 random bits -> the midpoints (k + 1/2) 2^-23, all exact in float: the open interval
 * (0, 1), never 0 (log) and never 1, symmetric about 1/2. 24 bits cannot do this: above 1/2
 * floats are 2^-24 apart, so (k + 1/2) 2^-24 rounds to even and k = 2^24 - 1 gave exactly 1. */
static inline float u32_to_unit(uint32_t x) {
    return ((float)(x >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

void ug_rng_uniform(ug_rng *r, float *out, int64_t n) {
    uint32_t b[4];
    for (int64_t i = 0; i < n; i += 4) {
        next_block(r, b);
        for (int j = 0; j < 4 && i + j < n; j++) out[i + j] = u32_to_unit(b[j]);
    }
}

static inline double u64_to_unit(uint32_t a, uint32_t b) {
    return ((double)(((uint64_t)(a >> 5) << 26) | (b >> 6)) + 0.5) * (1.0 / 9007199254740992.0);
}

void ug_rng_uniform_f64(ug_rng *r, double *out, int64_t n) {
    uint32_t b[4];
    for (int64_t i = 0; i < n; i += 2) {
        next_block(r, b);
        out[i] = u64_to_unit(b[0], b[1]);
        if (i + 1 < n) out[i + 1] = u64_to_unit(b[2], b[3]);
    }
}

void ug_rng_normal(ug_rng *r, float *out, int64_t n) {
    uint32_t b[4];
    const double two_pi = 6.283185307179586476925286766559;
    for (int64_t i = 0; i < n; i += 4) {
        next_block(r, b);
        for (int p = 0; p < 2; p++) {
            /* Box-Muller on 32-bit uniforms, computed in double. */
            double u1 = ((double)b[2 * p] + 0.5) * (1.0 / 4294967296.0);
            double u2 = (double)b[2 * p + 1] * (1.0 / 4294967296.0);
            double rad = sqrt(-2.0 * log(u1));
            double z0 = rad * cos(two_pi * u2), z1 = rad * sin(two_pi * u2);
            if (i + 2 * p < n) out[i + 2 * p] = (float)z0;
            if (i + 2 * p + 1 < n) out[i + 2 * p + 1] = (float)z1;
        }
    }
}

void ug_rng_bernoulli(ug_rng *r, float p, float *out, int64_t n) {
    uint32_t b[4];
    for (int64_t i = 0; i < n; i += 4) {
        next_block(r, b);
        for (int j = 0; j < 4 && i + j < n; j++) out[i + j] = u32_to_unit(b[j]) < p ? 1.0f : 0.0f;
    }
}

void ug_rng_rademacher(ug_rng *r, float *out, int64_t n) {
    uint32_t b[4];
    for (int64_t i = 0; i < n; i += 4) {
        next_block(r, b);
        /* The top bit: Philox's output bits are all equally good. */
        for (int j = 0; j < 4 && i + j < n; j++) out[i + j] = (b[j] >> 31) ? 1.0f : -1.0f;
    }
}

void ug_rng_categorical(ug_rng *r, const double *w, int k, int32_t *out, int64_t n) {
    double total = 0;
    for (int j = 0; j < k; j++) total += w[j] > 0 ? w[j] : 0;
    for (int64_t i = 0; i < n; i++) {
        double u;
        ug_rng_uniform_f64(r, &u, 1);
        double target = u * total, acc = 0;
        int pick = k - 1;
        for (int j = 0; j < k; j++) {
            acc += w[j] > 0 ? w[j] : 0;
            if (target < acc) { pick = j; break; }
        }
        /* Never return a zero-weight category because of rounding at the end. */
        while (pick > 0 && !(w[pick] > 0)) pick--;
        out[i] = pick;
    }
}

void ug_rng_normal_rows(uint64_t seed, uint64_t first_stream, uint32_t sub, float *out,
                        int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols >= UG_PAR_MIN / 8)
    for (int64_t i = 0; i < rows; i++) {
        ug_rng r = ug_rng_make(seed, first_stream + (uint64_t)i, sub);
        ug_rng_normal(&r, out + i * cols, cols);
    }
}
