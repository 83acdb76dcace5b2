/* test_vmath_tanh.c — the vectorizable tanhf of src/kernels/vmath.h (used by the tanh
 * activation kernel): ulps against tanh() in double over a dense sweep of floats (every 211th
 * bit pattern of [-12, 12], every float around 0, the 0.625 branch point and the saturation
 * point), specials (+-0 keep their sign, +-inf -> +-1, NaN -> NaN), and the kernel's
 * single-thread and OpenMP + SIMD paths (n >= UG_PAR_MIN, odd n for the tail). */
#include "test.h"
#include "core/core.h"
#include "kernels/elementwise.h"
#include "kernels/vmath.h"
#include <float.h>

static double ulp_err(float got, double ref) {
    int e;
    frexp(fabs(ref), &e);
    double u = ldexp(1.0, e - 24);
    if (u < 0x1p-149) u = 0x1p-149;
    return fabs((double)got - ref) / u;
}

static void sweep(float x, double *worst, float *wx) {
    double e = ulp_err(ug_tanhf(x), tanh((double)x));
    if (!(e <= *worst)) *worst = e, *wx = x;
}

TEST(vmath_tanhf_ulp_sweep) {
    double worst = 0;
    float wx = 0;
    for (float x = 0.0f; x < 12.0f; x = ug_bits_to_f32(ug_f32_to_bits(x) + 211)) {
        sweep(x, &worst, &wx);
        sweep(-x, &worst, &wx);
    }
    const float centers[] = {0.625f, -0.625f, 9.01f, -9.01f, FLT_MIN, -FLT_MIN, 1.0f};
    for (size_t c = 0; c < sizeof centers / sizeof *centers; c++) {
        uint32_t b = ug_f32_to_bits(centers[c]);
        for (int32_t d = -20000; d <= 20000; d++) sweep(ug_bits_to_f32(b + (uint32_t)d), &worst, &wx);
    }
    for (int32_t d = 0; d <= 20000; d++) sweep(ug_bits_to_f32((uint32_t)d), &worst, &wx);  /* subnormals */
    printf("    ug_tanhf: worst %.2f ulp at %a\n", worst, wx);
    EXPECT(worst <= 2.0, "ug_tanhf: %.2f ulp at %a (tanh %a)", worst, wx, (float)tanh((double)wx));
    EXPECT(ug_tanhf(INFINITY) == 1.0f && ug_tanhf(-INFINITY) == -1.0f, "tanh(+-inf)");
    EXPECT(ug_tanhf(100.0f) == 1.0f && ug_tanhf(-100.0f) == -1.0f, "tanh(+-100)");
    EXPECT(isnan(ug_tanhf(NAN)), "tanh(NaN)");
    EXPECT(ug_tanhf(0.0f) == 0 && !signbit(ug_tanhf(0.0f)) && signbit(ug_tanhf(-0.0f)),
           "tanh(+-0) must keep the sign");
}

TEST(vmath_tanh_kernel_paths) {
    /* Odd lengths on both sides of UG_PAR_MIN: the threaded SIMD loop, its tail, and the
     * serial loop must all give ug_tanhf's values exactly. */
    const int64_t ns[2] = {1001, UG_PAR_MIN + 37};
    for (int t = 0; t < 2; t++) {
        int64_t n = ns[t];
        float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
        ASSERT(x && y, "out of memory");
        for (int64_t i = 0; i < n; i++) x[i] = (float)(-9.0 + 18.0 * (double)i / (double)(n - 1));
        ug_k_act_forward(UG_ACT_TANH, y, x, n);
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += y[i] != ug_tanhf(x[i]);
        EXPECT(!bad, "n = %lld: %lld values differ from ug_tanhf", (long long)n, (long long)bad);
        free(x);
        free(y);
    }
}
