/* embed_ops.h — private ops of embed.c: dropout whose mask is drawn per example, so a training
 * network call (the U-Net's ResBlocks, see nn/net.h ug_net_train) gets the same masks for an
 * example whatever the batch it sits in and the thread count. */
#ifndef UG_OPS_EMBED_OPS_H
#define UG_OPS_EMBED_OPS_H
#include "core/core.h"

/* Inverted dropout of x (B, ...): row b (its numel / B values) keeps each value with
 * probability 1 - p, scaled by 1/(1-p), from ug_rng_bernoulli on the cursor
 * ug_rng_make(seed, first_stream + b, sub). p = 0 is an identity copy and p = 1 drops
 * everything, both drawing nothing (as ug_dropout). */
ug_tensor *ug_dropout_rows(ug_ctx *ctx, ug_tensor *x, float p, uint64_t seed,
                           uint64_t first_stream, uint32_t sub);
#endif
