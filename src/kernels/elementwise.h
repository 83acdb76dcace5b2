/* elementwise.h — pointwise activations. forward: out[i] = f(x[i]).
 * backward: dx[i] += dout[i] * f'(x[i]) (some use the saved output y = f(x) instead of x). */
#ifndef UG_K_ELEMENTWISE_H
#define UG_K_ELEMENTWISE_H
#include <stdint.h>

typedef enum {
    UG_ACT_SILU, UG_ACT_GELU, UG_ACT_RELU, UG_ACT_TANH, UG_ACT_SIGMOID, UG_ACT_SOFTPLUS,
    UG_ACT_EXP, UG_ACT_LOG, UG_ACT_SQUARE, UG_ACT_SQRT, UG_ACT_COUNT
} ug_act;

const char *ug_act_name(ug_act a);
void ug_k_act_forward(ug_act a, float *out, const float *x, int64_t n);
/* dx += (add) or = (add 0: dx's old contents unread, see ug_grad_add) dout times the
 * derivative; x: the input, y: the forward output (both always available). */
void ug_k_act_backward(ug_act a, float *dx, const float *dout, const float *x, const float *y,
                       int64_t n, int add);
/* out = a x + b */
void ug_k_affine_forward(float *out, const float *x, float a, float b, int64_t n);
#endif
