/* eval.h — evaluation: exact log-likelihood of diffusion models through the probability-flow
 * ODE (SPEC section 6), bits/dim, and two-sample metrics (SPEC section 10): MMD^2, energy
 * distance, sliced Wasserstein-2, Fréchet distance, precision / recall.
 * The public part is declared in unigen.h; this header keeps the internal links. */
#ifndef UG_EVAL_H
#define UG_EVAL_H
#include "unigen.h"

/* ---------------------------------------------------------------- internal */
#include "models/diffusion.h"
#endif
