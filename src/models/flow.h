/* flow.h — the flow family's map and inverse on raw rows, for tests and tools that need z
 * itself (the model handle only exposes the loss, nll and samples). impl is the state that
 * ug_flow_family.declare returned. */
#ifndef UG_MODELS_FLOW_H
#define UG_MODELS_FLOW_H
#include "models/family.h"

/* z (n, d) = f(x) and logdet (n) = log|det df/dx| of x (n, d), without gradients. */
ug_status ug_flow_encode(void *impl, int64_t n, const float *x, float *z, double *logdet);
/* x (n, d) = f^-1(z). */
ug_status ug_flow_decode(void *impl, int64_t n, const float *z, float *x);
#endif
