/* conv_simd.h — the register-block vocabulary shared by the direct 3x3 convolution (conv.c)
 * and the Winograd one (winograd.c): vector width VW, NV vectors x DB_O output channels per
 * register block, the vector type and its fused multiply-add with a broadcast scalar (FMAV) or
 * a vector (FMAVV). UG_DIRECT_CONV is defined where both paths run (AVX-512, or AVX2 + FMA);
 * elsewhere the sizes still exist for the scratch arithmetic and the im2col path runs. */
#ifndef UG_K_CONV_SIMD_H
#define UG_K_CONV_SIMD_H
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#define UG_DIRECT_CONV 1
#define VW 16                       /* floats per vector */
#define NV 2                        /* vectors per register block */
#define DB_O 8                      /* output channels per register block */
typedef float ug_vf __attribute__((vector_size(64)));
#define FMAV(a, s, x) ((ug_vf)_mm512_fmadd_ps(_mm512_set1_ps(s), (__m512)(x), (__m512)(a)))
#define FMAVV(a, y, x) ((ug_vf)_mm512_fmadd_ps((__m512)(y), (__m512)(x), (__m512)(a)))
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define UG_DIRECT_CONV 1
#define VW 8
#define NV 3
#define DB_O 4
typedef float ug_vf __attribute__((vector_size(32)));
#define FMAV(a, s, x) ((ug_vf)_mm256_fmadd_ps(_mm256_set1_ps(s), (__m256)(x), (__m256)(a)))
#define FMAVV(a, y, x) ((ug_vf)_mm256_fmadd_ps((__m256)(y), (__m256)(x), (__m256)(a)))
#else
#define VW 8                        /* (sizes for the scratch arithmetic; the path is off) */
#define NV 3
#define DB_O 4
typedef float ug_vf __attribute__((vector_size(32)));
#define FMAV(a, s, x) ((a) + (s) * (x))
#define FMAVV(a, y, x) ((a) + (y) * (x))
#endif
#define DB_P (VW * NV)              /* positions per register block */
/* Keeps a loaded vector in a register: without it GCC folds the load into every FMA that uses
 * the vector (one load per use instead of one), and the block becomes load-bound (0.7x). */
#if defined(UG_DIRECT_CONV)
#define IN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define IN_REGISTER(v) ((void)0)
#endif

static inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/* Unaligned vector load (a macro: a function returning the vector would change the ABI on
 * machines without the vector width). */
#define LOADV(v, p) memcpy(&(v), (p), sizeof(ug_vf))

/* A register block of DB_O output channels x NV vectors of positions (the direct and Winograd
 * kernels' inner step): load NV vectors from p (kept in registers: see IN_REGISTER), add the DB_O
 * broadcast weights w times them, store the accumulators to rows dst + j ld from position p0. */
static inline __attribute__((always_inline)) void block_load(ug_vf x[NV], const float *p) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        LOADV(x[v], p + v * VW);
        IN_REGISTER(x[v]);   /* one load per vector, not one per use */
    }
}
/* The accumulators zeroed in registers (a memset of the array became a libc call on a stack copy
 * that only an empty channel loop reads: 1 % of W2 sampling). */
static inline __attribute__((always_inline)) void block_zero(ug_vf a[DB_O][NV]) {
#pragma GCC unroll 8
    for (int j = 0; j < DB_O; j++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) a[j][v] = (ug_vf){0};
}
static inline __attribute__((always_inline)) void block_fma(ug_vf a[DB_O][NV], const float *w,
                                                            const ug_vf x[NV]) {
#pragma GCC unroll 8
    for (int j = 0; j < DB_O; j++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) a[j][v] = FMAV(a[j][v], w[j], x[v]);
}
static inline __attribute__((always_inline)) void block_store(float *dst, int64_t ld, int64_t p0,
                                                              ug_vf a[DB_O][NV]) {
    for (int j = 0; j < DB_O; j++)
        for (int v = 0; v < NV; v++) memcpy(dst + j * ld + p0 + v * VW, &a[j][v], sizeof a[j][v]);
}
#endif
