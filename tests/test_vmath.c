/* test_vmath.c — the vectorizable expf of src/kernels/vmath.h and the activation kernels built
 * on it (and lanes.h's sums in double, at the end). Accuracy is measured in ulps of the float
 * nearest the double-precision exp() reference, over a dense sweep of every 251st float in
 * [-104, 89] plus every float near the overflow/underflow thresholds and near 0; special values
 * must match glibc expf bit for bit in class (NaN, inf, 0). The kernels must stay within 2.5 ulp
 * of the accuracy the libm formulas had before (the "no result change beyond ~2 ulp" rule of the
 * speed work), both on the single-thread path and on the OpenMP + SIMD path (n >= UG_PAR_MIN,
 * odd n for the tail). */
#include "test.h"
#include "core/core.h"
#include "kernels/elementwise.h"
#include "kernels/vmath.h"
#include "kernels/lanes.h"
#include <float.h>
#include <stdint.h>

/* ulp of the float binade holding |ref| (2^-149 below the normal range). */
static double ulp_of(double ref) {
    int e;
    frexp(fabs(ref), &e);
    double u = ldexp(1.0, e - 24);
    return u < 0x1p-149 ? 0x1p-149 : u;
}

static double ulp_err(float got, double ref) {
    if (isnan(ref) || isnan(got)) return isnan(ref) && isnan(got) ? 0 : INFINITY;
    if (isinf((float)ref) || isinf(got)) return got == (float)ref ? 0 : INFINITY;
    return fabs((double)got - ref) / ulp_of(ref);
}

/* Same class as glibc expf: NaN, +inf, exact zero, or finite nonzero. */
static int exp_class(float y) { return isnan(y) ? 0 : isinf(y) ? 1 : y == 0 ? 2 : 3; }

static int check_exp_at(float x, double *worst, float *wx) {
    float got = ug_expf(x), lib = expf(x);
    if (exp_class(got) != exp_class(lib)) {
        ug_test_fail(__FILE__, __LINE__, "ug_expf(%a) = %a but expf gives %a", x, got, lib);
        return 0;
    }
    double e = ulp_err(got, exp((double)x));
    if (e > *worst) *worst = e, *wx = x;
    return 1;
}

TEST(vmath_expf_ulp_sweep) {
    double worst = 0;
    float wx = 0;
    int ok = 1;
    /* every 251st float of [-104, 89] (bit patterns count up from 0 on both sides) */
    for (float x = -0.0f; x > -104.0f && ok; x = ug_bits_to_f32(ug_f32_to_bits(x) + 251))
        ok = check_exp_at(x, &worst, &wx);
    for (float x = 0.0f; x < 89.0f && ok; x = ug_bits_to_f32(ug_f32_to_bits(x) + 251))
        ok = check_exp_at(x, &worst, &wx);
    /* every float within 20000 ulps of the thresholds, of +-1 and of +-0 (tiny x: exp = 1) */
    const float centers[] = {UG_EXPF_HI, UG_EXPF_LO, -87.336544f /* normal/subnormal edge */,
                             1.0f, -1.0f, FLT_MIN, -FLT_MIN};
    for (size_t c = 0; c < sizeof centers / sizeof *centers && ok; c++) {
        uint32_t b = ug_f32_to_bits(centers[c]);
        for (int32_t d = -20000; d <= 20000 && ok; d++)
            ok = check_exp_at(ug_bits_to_f32(b + (uint32_t)d), &worst, &wx);
    }
    EXPECT(ok, "class mismatch against expf");
    EXPECT(worst <= 2.0, "ug_expf worst error %.3f ulp at x = %a (%.9g)", worst, wx, wx);
}

/* ug_expf_1p (one scale, argument clamped to [-86, 89]) must leave sigmoid, SiLU and SiLU's
 * derivative bit for bit what they were with ug_expf: every 1021st float bit pattern (all of
 * them, NaNs and infinities included) and every float within 20000 ulps of the points where its
 * clamp or its scale changes. (Session 14 checked all 2^32 floats once; this is the lasting
 * guard.) */
static float ref_sigmoid(float x) { return 1.0f / (1.0f + ug_expf(-x)); }
static float ref_silu(float x) { return x / (1.0f + ug_expf(-x)); }
static float ref_silu_grad(float dz, float x) {
    float e = ug_expf(-x), s = 1.0f / (1.0f + e);
    float one_minus_s = x > 0 ? e * s : 1.0f - s;
    return dz * s * (1.0f + x * one_minus_s);
}
static int same_bits(float a, float b) {
    return (isnan(a) && isnan(b)) || ug_f32_to_bits(a) == ug_f32_to_bits(b);
}
static int check_1p_at(float x) {
    struct { const char *f; float got, ref; } c[] = {
        {"ug_sigmoidf", ug_sigmoidf(x), ref_sigmoid(x)},
        {"ug_siluf", ug_siluf(x), ref_silu(x)},
        {"ug_silu_grad(0.37, .)", ug_silu_grad(0.37f, x), ref_silu_grad(0.37f, x)},
        {"ug_silu_grad(-3, .)", ug_silu_grad(-3.0f, x), ref_silu_grad(-3.0f, x)}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        if (!same_bits(c[i].got, c[i].ref)) {
            ug_test_fail(__FILE__, __LINE__, "%s at x = %a: %a, with ug_expf %a", c[i].f, x,
                         c[i].got, c[i].ref);
            return 0;
        }
    return 1;
}

TEST(vmath_expf_1p_leaves_activations_bitwise) {
    int ok = 1;
    for (uint64_t u = 0; u < ((uint64_t)1 << 32) && ok; u += 1021) ok = check_1p_at(ug_bits_to_f32((uint32_t)u));
    const float centers[] = {86.0f, -86.0f, 89.0f, -89.0f, 88.3762589f, -88.3762589f, UG_EXPF_HI,
                             -UG_EXPF_HI, 87.336544f, -87.336544f, 16.6f, 6.8e29f, 1e30f};
    for (size_t c = 0; c < sizeof centers / sizeof *centers && ok; c++) {
        uint32_t b = ug_f32_to_bits(centers[c]);
        for (int32_t d = -20000; d <= 20000 && ok; d++) ok = check_1p_at(ug_bits_to_f32(b + (uint32_t)d));
    }
    /* ug_expf_1p itself: ug_expf's value from -86 up (overflow included) */
    for (uint32_t b = ug_f32_to_bits(-0.0f); b <= ug_f32_to_bits(-86.0f) && ok; b += 997)
        ok = same_bits(ug_expf_1p(ug_bits_to_f32(b)), ug_expf(ug_bits_to_f32(b)));
    for (uint32_t b = 0; b <= ug_f32_to_bits(100.0f) && ok; b += 997)
        ok = same_bits(ug_expf_1p(ug_bits_to_f32(b)), ug_expf(ug_bits_to_f32(b)));
    EXPECT(ok, "ug_expf_1p differs from ug_expf above -86");
}

/* The 16-lane AVX-512 versions (vmath.h) against the scalar functions, bit for bit: every 61st
 * float bit pattern (NaNs and infinities included), every float within 20000 ulps of the
 * clamps' and the derivative's switch points, each with several dz; then the SiLU kernels,
 * whose last vector is masked, at lengths around the vector width. */
#ifdef __AVX512F__
static int check_v16_at(const float *x) {
    float e[16], y[16], g[16], dz[16];
    for (int k = 0; k < 16; k++)
        dz[k] = k % 4 == 0 ? 0.37f : k % 4 == 1 ? -3.0f : k % 4 == 2 ? 1e-30f : -x[k];
    const __m512 vx = _mm512_loadu_ps(x);
    _mm512_storeu_ps(e, ug_expf_1p_v16(vx));
    _mm512_storeu_ps(y, ug_siluf_v16(vx));
    _mm512_storeu_ps(g, ug_silu_grad_v16(_mm512_loadu_ps(dz), vx));
    for (int k = 0; k < 16; k++)
        if (!same_bits(e[k], ug_expf_1p(x[k])) || !same_bits(y[k], ug_siluf(x[k])) ||
            !same_bits(g[k], ug_silu_grad(dz[k], x[k]))) {
            ug_test_fail(__FILE__, __LINE__, "x = %a: e^x %a / %a, silu %a / %a, grad(%a) %a / %a",
                         x[k], e[k], ug_expf_1p(x[k]), y[k], ug_siluf(x[k]), dz[k], g[k],
                         ug_silu_grad(dz[k], x[k]));
            return 0;
        }
    return 1;
}

TEST(vmath_v16_matches_scalar_bitwise) {
    float x[16];
    int ok = 1, k = 0;
    for (uint64_t u = 0; u < ((uint64_t)1 << 32) && ok; u += 61) {
        x[k++] = ug_bits_to_f32((uint32_t)u);
        if (k == 16) ok = check_v16_at(x), k = 0;
    }
    const float centers[] = {0.0f, -0.0f, 86.0f, -86.0f, 89.0f, -89.0f, UG_EXPF_HI, -UG_EXPF_HI,
                             16.6f, -16.6f, 1e30f, -1e30f};
    for (size_t c = 0; c < sizeof centers / sizeof *centers && ok; c++) {
        uint32_t b = ug_f32_to_bits(centers[c]);
        for (int32_t d = -20000; d <= 20000 && ok; d++) {
            x[k++] = ug_bits_to_f32(b + (uint32_t)d);
            if (k == 16) ok = check_v16_at(x), k = 0;
        }
    }
    /* The kernels: forward, and backward adding into dx, at lengths 1..40 and one parallel. */
    enum { BIG = UG_PAR_MIN + 21 };
    static float in[BIG], dout[BIG], out[BIG], dx[BIG];
    for (int64_t i = 0; i < BIG; i++) {
        in[i] = (float)((i * 7919) % 4001) / 100.0f - 20.0f;
        dout[i] = (float)((i * 104729) % 2003) / 1000.0f - 1.0f;
    }
    const int64_t lens[] = {1, 15, 16, 17, 31, 33, 40, BIG};
    for (size_t l = 0; l < sizeof lens / sizeof *lens && ok; l++) {
        const int64_t n = lens[l];
        for (int64_t i = 0; i < BIG; i++) out[i] = dx[i] = 0.5f;
        ug_k_act_forward(UG_ACT_SILU, out, in, n);
        ug_k_act_backward(UG_ACT_SILU, dx, dout, in, out, n, 1);
        for (int64_t i = 0; i < BIG && ok; i++) {
            const float yf = i < n ? ug_siluf(in[i]) : 0.5f,
                        gf = i < n ? 0.5f + ug_silu_grad(dout[i], in[i]) : 0.5f;
            ok = same_bits(out[i], yf) && same_bits(dx[i], gf);
            if (!ok)
                ug_test_fail(__FILE__, __LINE__, "n %lld, i %lld: silu %a / %a, dx %a / %a",
                             (long long)n, (long long)i, out[i], yf, dx[i], gf);
        }
    }
    EXPECT(ok, "the 16-lane functions differ from the scalar ones");
}
#endif

TEST(vmath_expf_specials) {
    const float xs[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, FLT_MAX, -FLT_MAX,
                        0x1p-149f, -0x1p-149f, UG_EXPF_HI, nextafterf(UG_EXPF_HI, INFINITY),
                        UG_EXPF_LO, nextafterf(UG_EXPF_LO, -INFINITY), 88.0f, -103.0f, 1e10f,
                        -1e10f};
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
        float got = ug_expf(xs[i]), lib = expf(xs[i]);
        EXPECT(exp_class(got) == exp_class(lib), "ug_expf(%a) = %a, expf gives %a", xs[i], got,
               lib);
        if (exp_class(lib) != 3)
            EXPECT(isnan(lib) || ug_f32_to_bits(got) == ug_f32_to_bits(lib),
                   "ug_expf(%a) = %a, expf gives %a", xs[i], got, lib);
    }
    EXPECT(ug_expf(0.0f) == 1.0f && ug_expf(-0.0f) == 1.0f, "exp(0) = %a", ug_expf(0.0f));
    EXPECT(ug_expf(1.0f) == expf(1.0f), "exp(1) = %a, expf %a", ug_expf(1.0f), expf(1.0f));
    /* sigmoid saturates like the libm formula and keeps NaN */
    EXPECT(ug_sigmoidf(-INFINITY) == 0.0f && ug_sigmoidf(INFINITY) == 1.0f, "sigmoid(+-inf)");
    EXPECT(ug_sigmoidf(-200.0f) == 0.0f && ug_sigmoidf(200.0f) == 1.0f, "sigmoid(+-200)");
    EXPECT(isnan(ug_sigmoidf(NAN)), "sigmoid(NaN)");
}

/* The formulas as the kernels computed them with libm before the vector exp. */
static float old_sig(float x) { return 1.0f / (1.0f + expf(-x)); }
static double d_sig(double x) { return 1.0 / (1.0 + exp(-x)); }

typedef struct {
    ug_act a;
    float (*old_fwd)(float);
    double (*ref_fwd)(double);
    float (*old_bwd)(float);    /* f'(x) with dout = 1 */
    double (*ref_bwd)(double);
} act_ref;

static float of_silu(float x) { return x * old_sig(x); }
static double rf_silu(double x) { return x * d_sig(x); }
static float ob_silu(float x) { float s = old_sig(x); return s * (1.0f + x * (1.0f - s)); }
static double rb_silu(double x) { double s = d_sig(x); return s * (1.0 + x * (1.0 - s)); }
static double rf_sig(double x) { return d_sig(x); }
static float of_exp(float x) { return expf(x); }
static double rf_exp(double x) { return exp(x); }
static float of_softplus(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }
static double rf_softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }
static float ob_gelu(float x) {
    return 0.5f * (1.0f + erff(x * (float)M_SQRT1_2)) + x * (expf(-0.5f * x * x) * 0.3989422804014327f);
}
static double rb_gelu(double x) {
    return 0.5 * (1.0 + erf(x * M_SQRT1_2)) + x * exp(-0.5 * x * x) * 0.3989422804014327;
}

/* New error <= old error + 2.5 ulp against the double reference, at every x: ug_expf's own
 * 1 ulp (libm's is 0.5) goes through the division and products of the composite formulas;
 * the worst case seen is 2.17 (SiLU backward near x = -10.6). */
static void check_kernel(const char *what, const float *got, const float *old, const float *x,
                         double (*ref)(double), int64_t n) {
    double worst = -INFINITY;
    int64_t wi = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = ref((double)x[i]);
        double slack = ulp_err(got[i], r) - ulp_err(old[i], r);
        if (isnan(slack)) slack = isnan(got[i]) == isnan(old[i]) ? 0 : INFINITY;
        if (slack > worst) worst = slack, wi = i;
    }
    EXPECT(worst <= 2.5, "%s: %.3f ulp worse than libm at x = %.9g (got %.9g, libm %.9g)",
           what, worst, x[wi], got[wi], old[wi]);
}

TEST(vmath_activation_kernels_match_libm) {
    const act_ref acts[] = {
        {UG_ACT_SILU, of_silu, rf_silu, ob_silu, rb_silu},
        {UG_ACT_SIGMOID, old_sig, rf_sig, NULL, NULL},
        {UG_ACT_EXP, of_exp, rf_exp, NULL, NULL},
        {UG_ACT_SOFTPLUS, of_softplus, rf_softplus, old_sig, rf_sig},
        {UG_ACT_GELU, NULL, NULL, ob_gelu, rb_gelu},
    };
    const char *names[] = {"silu", "sigmoid", "exp", "softplus", "gelu"};
    /* small n: one thread, scalar tail; large odd n: OpenMP + SIMD with a remainder */
    const int64_t sizes[] = {37, UG_PAR_MIN + 13};
    for (int si = 0; si < 2; si++) {
        int64_t n = sizes[si];
        float *x = malloc((size_t)n * sizeof *x), *got = malloc((size_t)n * sizeof *x),
              *old = malloc((size_t)n * sizeof *x), *ones = malloc((size_t)n * sizeof *x);
        ASSERT(x && got && old && ones, "malloc");
        for (int64_t i = 0; i < n; i++) {
            x[i] = -110.0f + 200.0f * (float)i / (float)(n - 1);   /* past both exp limits */
            ones[i] = 1.0f;
        }
        x[n / 2] = INFINITY, x[n / 2 + 1] = -INFINITY, x[n / 2 + 2] = NAN;
        for (size_t k = 0; k < sizeof acts / sizeof *acts; k++) {
            char what[64];
            if (acts[k].old_fwd) {
                ug_k_act_forward(acts[k].a, got, x, n);
                for (int64_t i = 0; i < n; i++) old[i] = acts[k].old_fwd(x[i]);
                snprintf(what, sizeof what, "%s forward n=%lld", names[k], (long long)n);
                check_kernel(what, got, old, x, acts[k].ref_fwd, n);
            }
            if (acts[k].old_bwd) {
                /* Written over NaNs (add 0), then added to what is there (add 1). */
                for (int64_t i = 0; i < n; i++) got[i] = NAN;
                ug_k_act_backward(acts[k].a, got, ones, x, x /* y unused by these */, n, 0);
                for (int64_t i = 0; i < n; i++) old[i] = acts[k].old_bwd(x[i]);
                snprintf(what, sizeof what, "%s backward n=%lld", names[k], (long long)n);
                check_kernel(what, got, old, x, acts[k].ref_bwd, n);
                for (int64_t i = 0; i < n; i++) {
                    old[i] = 0.25f + got[i];   /* the written gradient, added to 0.25 */
                    got[i] = 0.25f;
                }
                ug_k_act_backward(acts[k].a, got, ones, x, x, n, 1);
                int64_t bad = -1;
                for (int64_t i = 0; i < n && bad < 0; i++)
                    if (memcmp(got + i, old + i, sizeof *got)) bad = i;
                EXPECT(bad < 0, "%s backward n=%lld: added %.9g at %lld, expected %.9g", names[k],
                       (long long)n, bad < 0 ? 0.0 : got[bad], (long long)bad,
                       bad < 0 ? 0.0 : old[bad]);
            }
        }
        free(x), free(got), free(old), free(ones);
    }
}

/* log(1 + e^-a) for a >= 0: every 251st float in [0, 104] (beyond, e^-a rounds to 0 or is
 * subnormal and the answer is e^-a itself), within 2 ulp of the double-precision value; the
 * special values +inf -> 0 and NaN -> NaN. */
TEST(vmath_log1p_expneg_ulp_sweep) {
    double worst = 0;
    float wa = 0;
    uint32_t lo = ug_f32_to_bits(0.0f), hi = ug_f32_to_bits(104.0f);
    for (uint32_t u = lo; u <= hi; u += 251) {
        float a = ug_bits_to_f32(u);
        double e = ulp_err(ug_log1p_expnegf(a), log1p(exp(-(double)a)));
        if (e > worst) { worst = e; wa = a; }
    }
    printf("    ug_log1p_expnegf: worst %.2f ulp at a = %a\n", worst, wa);
    EXPECT(worst <= 2.0, "ug_log1p_expnegf worst error %.3f ulp at a = %a (%.9g)", worst, wa, wa);
    EXPECT(ug_log1p_expnegf(INFINITY) == 0.0f, "a = inf: %g", ug_log1p_expnegf(INFINITY));
    EXPECT(isnan(ug_log1p_expnegf(NAN)), "NaN stays NaN");
    EXPECT(ug_log1p_expnegf(0.0f) == (float)log(2.0), "a = 0: ln 2, got %.9g", ug_log1p_expnegf(0.0f));
}

/* lanes.h's sums against their definition, written out one element at a time: element i of a
 * row into lane i mod 32 in index order, the lanes added as ug_lanes_total's tree. Bit for bit,
 * at every length up to 100 (each of the vector loop, the runs of 8 and the scalar tail), and
 * chained over rows of different lengths. */
TEST(lanes_sum_matches_definition) {
    float x[100];
    uint64_t s = 12345;
    for (int i = 0; i < 100; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        /* magnitudes 2^-20 .. 2^20: rounding differs with the order of the adds */
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5) *
               ldexpf(1.0f, (int)(s % 41) - 20);
    }
    int bad = -1;
    for (int n = 0; n <= 100 && bad < 0; n++) {
        double ref[UG_LANES] = {0};
        for (int i = 0; i < n; i++) ref[i % UG_LANES] += x[i];
        double want = ug_lanes_total(ref), got = ug_sum_f64(x, n);
        if (memcmp(&want, &got, sizeof got) != 0) bad = n;
    }
    EXPECT(bad < 0, "ug_sum_f64 differs from the lane definition at n = %d", bad);
    /* rows of 37, 0, 64 and 9 values chained into the same lanes */
    const int len[4] = {37, 0, 64, 9}, off[4] = {0, 37, 20, 90};
    double acc[UG_LANES] = {0}, ref[UG_LANES] = {0};
    for (int r = 0; r < 4; r++) {
        ug_lanes_add(acc, x + off[r], len[r]);
        for (int i = 0; i < len[r]; i++) ref[i % UG_LANES] += x[off[r] + i];
    }
    EXPECT(memcmp(acc, ref, sizeof acc) == 0, "chained rows: the lanes differ");
}
