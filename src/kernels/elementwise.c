/* elementwise.c — pointwise activations and their derivatives, in one place:
 *   silu x s(x)           d: s(x) (1 + x (1 - s(x)))
 *   gelu x Phi(x)         d: Phi(x) + x phi(x)           (exact erf form, PyTorch default)
 *   relu max(x, 0)        d: 1[x > 0]
 *   tanh                  d: 1 - y^2
 *   sigmoid s(x)          d: y (1 - y)
 *   softplus ln(1 + e^x)  d: s(x)            (computed as max(x,0) + log1p(e^-|x|))
 *   exp, log (d: 1/x), square (d: 2x), sqrt (d: 1 / (2 y)) */
#include "elementwise.h"
#include "core/core.h"
#include "vmath.h"
#include <math.h>

static const char *const k_names[UG_ACT_COUNT] = {
    "silu", "gelu", "relu", "tanh", "sigmoid", "softplus", "exp", "log", "square", "sqrt"};
const char *ug_act_name(ug_act a) { return (unsigned)a < UG_ACT_COUNT ? k_names[a] : "?"; }

/* `simd` lets GCC vectorize the loops whose body is plain arithmetic plus ug_expf (vmath.h);
 * loops calling libm (erff, log1pf, logf) stay scalar, which is correct either way. */
#define PAR_FOR _Pragma("omp parallel for simd schedule(static) if (n >= UG_PAR_MIN)") \
    for (int64_t i = 0; i < n; i++)

/* SiLU and its gradient 16 lanes at a time where AVX-512 is there (vmath.h; the last vector
 * of a row by masked loads and stores), bit for bit the scalar loops below. */
#ifdef __AVX512F__
#define PAR_FOR16 _Pragma("omp parallel for schedule(static) if (n >= UG_PAR_MIN)") \
    for (int64_t i = 0; i < n; i += 16)

static void silu_forward(float *out, const float *x, int64_t n) {
    PAR_FOR16 {
        const __mmask16 m = ug_mask_v16(n - i);
        _mm512_mask_storeu_ps(out + i, m, ug_siluf_v16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static void silu_backward(float *dx, const float *dout, const float *x, int64_t n, int add) {
    PAR_FOR16 {
        const __mmask16 m = ug_mask_v16(n - i);
        const __m512 g =
            ug_silu_grad_v16(_mm512_maskz_loadu_ps(m, dout + i), _mm512_maskz_loadu_ps(m, x + i));
        _mm512_mask_storeu_ps(dx + i, m,
                              add ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, dx + i), g) : g);
    }
}
#else
static void silu_forward(float *out, const float *x, int64_t n) { PAR_FOR out[i] = ug_siluf(x[i]); }
static void silu_backward(float *dx, const float *dout, const float *x, int64_t n, int add) {
    if (add) PAR_FOR dx[i] += ug_silu_grad(dout[i], x[i]);
    else PAR_FOR dx[i] = ug_silu_grad(dout[i], x[i]);
}
#endif

void ug_k_act_forward(ug_act a, float *out, const float *x, int64_t n) {
    switch (a) {
    case UG_ACT_SILU: silu_forward(out, x, n); break;
    case UG_ACT_GELU: PAR_FOR out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2)); break;
    case UG_ACT_RELU: PAR_FOR out[i] = x[i] > 0 ? x[i] : 0.0f; break;
    case UG_ACT_TANH: PAR_FOR out[i] = ug_tanhf(x[i]); break;
    case UG_ACT_SIGMOID: PAR_FOR out[i] = ug_sigmoidf(x[i]); break;
    case UG_ACT_SOFTPLUS:
        PAR_FOR out[i] = fmaxf(x[i], 0.0f) + log1pf(ug_expf(-fabsf(x[i])));
        break;
    case UG_ACT_EXP: PAR_FOR out[i] = ug_expf(x[i]); break;
    case UG_ACT_LOG: PAR_FOR out[i] = logf(x[i]); break;
    case UG_ACT_SQUARE: PAR_FOR out[i] = x[i] * x[i]; break;
    case UG_ACT_SQRT: PAR_FOR out[i] = sqrtf(x[i]); break;
    default: UG_CHECK(0, "activation %d unknown", (int)a);
    }
}

/* dx += g (add) or dx = g, g the gradient expression of i (written, dx's old values unread). */
#define GRAD_TO_DX(g) do { if (add) PAR_FOR dx[i] += (g); else PAR_FOR dx[i] = (g); } while (0)

void ug_k_act_backward(ug_act a, float *dx, const float *dout, const float *x, const float *y,
                       int64_t n, int add) {
    switch (a) {
    case UG_ACT_SILU: silu_backward(dx, dout, x, n, add); break;
    case UG_ACT_GELU:
        GRAD_TO_DX(dout[i] * (0.5f * (1.0f + erff(x[i] * (float)M_SQRT1_2)) +
                              x[i] * (expf(-0.5f * x[i] * x[i]) * 0.3989422804014327f)));
        break;
    case UG_ACT_RELU: GRAD_TO_DX(x[i] > 0 ? dout[i] : 0.0f); break;
    case UG_ACT_TANH: GRAD_TO_DX(dout[i] * (1.0f - y[i] * y[i])); break;
    case UG_ACT_SIGMOID: GRAD_TO_DX(dout[i] * y[i] * (1.0f - y[i])); break;
    case UG_ACT_SOFTPLUS: GRAD_TO_DX(dout[i] * ug_sigmoidf(x[i])); break;
    case UG_ACT_EXP: GRAD_TO_DX(dout[i] * y[i]); break;
    case UG_ACT_LOG: GRAD_TO_DX(dout[i] / x[i]); break;
    case UG_ACT_SQUARE: GRAD_TO_DX(2.0f * dout[i] * x[i]); break;
    case UG_ACT_SQRT: GRAD_TO_DX(dout[i] * 0.5f / y[i]); break;
    default: UG_CHECK(0, "activation %d unknown", (int)a);
    }
}

void ug_k_affine_forward(float *out, const float *x, float a, float b, int64_t n) {
    PAR_FOR out[i] = a * x[i] + b;
}
