/* vmath.h — a branch-free expf that GCC vectorizes inside `#pragma omp simd` loops, so the
 * pointwise activations (SiLU, sigmoid, GELU's density) run 16 lanes wide instead of one libm
 * call per element. No -ffast-math: every step is an ordinary IEEE operation.
 *
 *   exp(x) = 2^n exp(r),  n = round(x / ln 2),  r = x - n ln2  (Cody-Waite: ln2 split in a
 *   head and a tail, applied with fma so n ln2_hi is exact), |r| <= ln2 / 2,
 *   exp(r) ~= 1 + r + r^2 P(r), P the degree-5 minimax polynomial of Cephes' expf.
 *
 * Max error about 1 ulp against exp() in double over every float (tests/test_vmath.c sweeps it).
 * Specials match glibc expf exactly: NaN propagates, +inf -> +inf, -inf -> 0, x above
 * 0x1.62e42ep6 (the largest float whose exp is finite) -> +inf, x below -0x1.9fe368p6
 * (exp < 2^-150 rounds to 0) -> 0; subnormal results are produced with one rounding by scaling
 * in two halves 2^(n/2) 2^(n - n/2), each a normal float. */
#ifndef UG_K_VMATH_H
#define UG_K_VMATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float ug_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline uint32_t ug_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

#define UG_EXPF_HI 0x1.62e42ep6f    /* largest x with expf(x) finite (88.7228317) */
#define UG_EXPF_LO -0x1.9fe368p6f   /* smallest x with expf(x) > 0 (-103.972076) */

/* The shared core: for xc already clamped, e^xc = p 2^n with n = round(xc log2 e) returned in
 * *n and p = exp(r), r = xc - n ln 2. Round-to-nearest of xc log2(e) by adding 1.5 * 2^23: the
 * integer lands in the low mantissa bits of t, read back without a float-to-int conversion
 * (undefined for NaN). */
static inline float ug_expf_reduced(float xc, int32_t *n) {
    const float shifter = 0x1.8p23f;
    float t = fmaf(xc, 0x1.715476p0f, shifter);
    float kf = t - shifter;
    *n = (int32_t)(ug_f32_to_bits(t) - ug_f32_to_bits(shifter));
    float r = fmaf(kf, -0x1.62e4p-1f, xc);      /* ln2_hi: 16 significant bits, kf*hi exact */
    r = fmaf(kf, -0x1.7f7d1cp-20f, r);          /* ln2_lo */
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    return fmaf(p * r, r, r) + 1.0f;
}

static inline float ug_expf(float x) {
    /* Clamp so the rounding trick stays valid and n stays within [-151, 129]; the true
     * out-of-range answers are selected at the end. Comparisons are false for NaN, which
     * therefore flows through unchanged. */
    float xc = x > 89.0f ? 89.0f : x;
    xc = xc < -104.0f ? -104.0f : xc;
    int32_t n;
    float p = ug_expf_reduced(xc, &n);
    int32_t n1 = n >> 1, n2 = n - n1;            /* both in [-76, 65]: normal scales */
    float s1 = ug_bits_to_f32((uint32_t)(n1 + 127) << 23);
    float s2 = ug_bits_to_f32((uint32_t)(n2 + 127) << 23);
    float y = (p * s1) * s2;
    y = x > UG_EXPF_HI ? INFINITY : y;
    y = x < UG_EXPF_LO ? 0.0f : y;
    return y;
}

/* e^x where only 1 + e^x is used (sigmoid, SiLU and its derivative): the same polynomial with
 * one scale instead of two. The argument is clamped to [-86, 89]; the result is then p 2^(n-1)
 * times 2, n in [-124, 128]: exact products (p 2^n rounded once, an overflow to +inf where e^x
 * overflows), so bit for bit ug_expf's for every x >= -86 and NaN. Below -86 the result is some
 * value in (0, e^-86] instead of the exact e^x (subnormal below -87.3): both vanish next to 1
 * (1 + u rounds to 1 for u < 2^-24, x < -16.6), so 1 + e^x, and every formula below that adds
 * it to 1, come out the same. About half the operations of ug_expf (no second scale, no
 * out-of-range selects): SiLU is 16 % of W1's sampling (bench/NOTES.md, session 14). */
static inline float ug_expf_1p(float x) {
    float xc = 89.0f < x ? 89.0f : x;        /* NaN fails both tests and flows through */
    xc = -86.0f > xc ? -86.0f : xc;
    int32_t n;
    float p = ug_expf_reduced(xc, &n);
    float s = ug_bits_to_f32((uint32_t)(n + 126) << 23);   /* 2^(n-1), n + 126 in [2, 254] */
    return (p * s) * 2.0f;
}

/* Logistic sigmoid 1 / (1 + e^-x): for x -> -inf e^-x overflows to inf and the result is 0,
 * as with expf; NaN stays NaN. */
static inline float ug_sigmoidf(float x) { return 1.0f / (1.0f + ug_expf_1p(-x)); }

/* SiLU x sigmoid(x), as PyTorch computes it: x / (1 + e^-x). Its backward: dz silu'(x) with
 * silu' = s (1 + x (1 - s)), s = sigmoid(x); 1 - s = e s with e = e^-x, free of the cancellation
 * 1 - s for x > 0; for x < 0 e may overflow (inf * 0), where 1 - s has no cancellation anyway.
 * The one definition: the elementwise kernel and the fused group norm + SiLU both use these. */
static inline float ug_siluf(float x) { return x / (1.0f + ug_expf_1p(-x)); }
static inline float ug_silu_grad(float dz, float x) {
    float e = ug_expf_1p(-x), s = 1.0f / (1.0f + e);
    /* Above 86, e is not e^-x but at most e^-86, and x e would not vanish next to 1 for huge x:
     * there x (1 - s) is below 86 e^-86 (nothing next to 1), so it is taken as 0. */
    float one_minus_s = x > 86.0f ? 0.0f : x > 0 ? e * s : 1.0f - s;
    return dz * s * (1.0f + x * one_minus_s);
}

#ifdef __AVX512F__
#include <immintrin.h>
/* ---- 16 lanes at a time, bit for bit ug_expf_1p, ug_siluf and ug_silu_grad above (checked
 * once over all 2^32 floats; test_vmath keeps every 61st and the switch points). GCC's
 * vectorization of the scalar code builds each clamp from a compare, a mask operation and a
 * blend, and 2^(n-1) from integer adds and shifts; here the clamps are vminps / vmaxps (which
 * keep a NaN x, as the C selects do: min(a, b) is a < b ? a : b) and p 2^n is one vscalefps.
 * That product is exact, as the two it replaces: p 2^n is a normal float for n >= -124, and
 * overflows to inf alike. SiLU: 0.358 -> 0.263 ns an element on a Zen 4 core (bench/NOTES.md,
 * session 17). */
static inline __m512 ug_negf_v16(__m512 x) {
    const __m512i sign = _mm512_set1_epi32(INT32_MIN);
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), sign));
}

static inline __m512 ug_expf_1p_v16(__m512 x) {
    const __m512 shifter = _mm512_set1_ps(0x1.8p23f);
    __m512 xc = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
    xc = _mm512_max_ps(_mm512_set1_ps(-86.0f), xc);
    __m512 t = _mm512_fmadd_ps(xc, _mm512_set1_ps(0x1.715476p0f), shifter);
    __m512 kf = _mm512_sub_ps(t, shifter);
    __m512 r = _mm512_fmadd_ps(kf, _mm512_set1_ps(-0x1.62e4p-1f), xc);
    r = _mm512_fmadd_ps(kf, _mm512_set1_ps(-0x1.7f7d1cp-20f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, kf);
}

static inline __m512 ug_siluf_v16(__m512 x) {
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), ug_expf_1p_v16(ug_negf_v16(x))));
}

static inline __m512 ug_silu_grad_v16(__m512 dz, __m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f), e = ug_expf_1p_v16(ug_negf_v16(x)),
                 s = _mm512_div_ps(one, _mm512_add_ps(one, e));
    __m512 oms = _mm512_sub_ps(one, s);   /* x > 86 ? 0 : x > 0 ? e s : 1 - s (NaN: 1 - s) */
    oms = _mm512_mask_mul_ps(oms, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ), e, s);
    oms = _mm512_mask_mov_ps(oms, _mm512_cmp_ps_mask(x, _mm512_set1_ps(86.0f), _CMP_GT_OQ),
                             _mm512_setzero_ps());
    return _mm512_mul_ps(_mm512_mul_ps(dz, s), _mm512_add_ps(one, _mm512_mul_ps(x, oms)));
}

/* The lanes to load and store with `left` floats of a row still to do (all 16 from 16 up). */
static inline __mmask16 ug_mask_v16(int64_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}
#endif

/* softplus(-a) = log(1 + e^-a) for a >= 0 (the tail of the stable BCE-with-logits and of
 * log-sigmoid), branch-free. u = e^-a in (0, 1], w = 1 + u in [1, 2] rounded; log w by Cephes'
 * logf polynomial on x = w - 1 (or w/2 - 1 above sqrt 2, plus ln 2; both exact), then the
 * rounding error c = u - (w - 1) (exact) is added back as c / w, so tiny u (w == 1) gives u
 * itself. Within 2 ulp of the double-precision value (tests/test_vmath.c); a = +inf gives 0,
 * NaN stays NaN. */
static inline float ug_log1p_expnegf(float a) {
    float u = ug_expf(-a);
    float w = 1.0f + u;
    int hi = w > 1.41421356f;
    float x = hi ? fmaf(w, 0.5f, -1.0f) : w - 1.0f;
    float e = hi ? 1.0f : 0.0f;
    float c = u - (w - 1.0f);
    float z = x * x;
    float p = 7.0376836292e-2f;
    p = fmaf(p, x, -1.1514610310e-1f);
    p = fmaf(p, x, 1.1676998740e-1f);
    p = fmaf(p, x, -1.2420140846e-1f);
    p = fmaf(p, x, 1.4249322787e-1f);
    p = fmaf(p, x, -1.6668057665e-1f);
    p = fmaf(p, x, 2.0000714765e-1f);
    p = fmaf(p, x, -2.4999993993e-1f);
    p = fmaf(p, x, 3.3333331174e-1f);
    float y = p * x * z;
    y = fmaf(e, -2.12194440e-4f, y);
    y = fmaf(-0.5f, z, y);
    float r = fmaf(e, 0.693359375f, x + y);
    return r + c / w;
}

/* tanh as Cephes' tanhf computes it, branch-free: for a = |x| < 0.625 the odd minimax
 * polynomial a + a^3 P(a^2) (no cancellation near 0), above 1 - 2 / (e^(2a) + 1) (e^(2a)
 * overflowing to inf gives 1); the sign is copied back, so -0 stays -0 and NaN stays NaN.
 * Within 2 ulp of tanh (tests/test_vmath_tanh.c). */
static inline float ug_tanhf(float x) {
    float a = fabsf(x), z = a * a;
    float p = fmaf(-5.70498872745e-3f, z, 2.06390887954e-2f);
    p = fmaf(p, z, -5.37397155531e-2f);
    p = fmaf(p, z, 1.33314422036e-1f);
    p = fmaf(p, z, -3.33332819422e-1f);
    float small = fmaf(p * z, a, a);
    float big = 1.0f - 2.0f / (ug_expf(2.0f * a) + 1.0f);
    return copysignf(a < 0.625f ? small : big, x);
}
#endif
