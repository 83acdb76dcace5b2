/* ar.h — internals of the autoregressive family (models/ar.c) that tests reach past the model
 * handle: build the family by hand with ug_ar_family.declare / ug_params_finalize /
 * ug_params_init_uniform / ug_ar_family.init, then look at logits, orderings and masks. */
#ifndef UG_MODELS_AR_H
#define UG_MODELS_AR_H
#include "models/family.h"

/* Logits (B, d) of x (B, d) on ctx, on the tape when grad mode is on and x or a parameter
 * requires grad. mask: MADE's connectivity (0..K-1, or any k >= 0: masks are a function of the
 * configuration and k); ignored by fvsbn and nade. The mask stays valid until the next call
 * that asks for another mask, so run backward before that. */
ug_tensor *ug_ar_logits(void *impl, ug_ctx *ctx, ug_tensor *x, int mask);
/* The ordering of mask k: order[p] = the variable at position p (0-based). fvsbn, nade and
 * made without random orders: the identity. Valid as ug_ar_logits's mask. */
const int64_t *ug_ar_order(void *impl, int mask);
/* MADE's 0/1 mask of layer l (0..hidden layers; the last is the output layer, (d, H_L)) and
 * the direct mask (l = -1, (d, d), NULL without direct connections); NULL for other nets. */
const float *ug_ar_made_mask(void *impl, int mask, int layer);
/* The mask training step `step` uses (mask_cycle 1: step mod K; 0: a Philox draw). */
int ug_ar_step_mask(const void *impl, int64_t step);
#endif
