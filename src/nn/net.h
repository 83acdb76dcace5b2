/* net.h — the network F(x_in; c_noise [, label]) of the diffusion family, whatever its kind.
 * x_in is (B, d) with d the flattened example size; an image network views it as
 * (B, C, H, W) itself. Every kind declares its parameters in a ug_params and keeps pointers to
 * them; forward builds the graph on a context. */
#ifndef UG_NN_NET_H
#define UG_NN_NET_H
#include "nn/mlp.h"

typedef enum { UG_NET_MLP, UG_NET_UNET, UG_NET_COUNT } ug_net_kind;

/* What a training call passes its network (evaluation, sampling, likelihoods and guidance pass
 * none, so they run without dropout): example b of the batch draws its random choices (dropout
 * masks) from Philox (seed, first_stream + b) at sub-streams sub, sub + 1, ... (ug_rng_make),
 * so they depend neither on how the batch is split nor on the thread count. */
typedef struct ug_net_train {
    uint64_t seed, first_stream;
    uint32_t sub;
} ug_net_train;

typedef struct ug_net ug_net;
typedef ug_tensor *(*ug_net_forward_fn)(ug_ctx *ctx, const ug_net *n, ug_tensor *x_in,
                                        ug_tensor *c_noise, const int32_t *labels,
                                        const ug_net_train *train);
struct ug_net {
    ug_net_kind kind;
    int data_dim;          /* d */
    int num_classes;       /* 0: unconditional; label num_classes is the null label */
    ug_mlp mlp;            /* UG_NET_MLP */
    void *impl;            /* other kinds: their own struct, freed with free_impl */
    void (*free_impl)(void *impl);
    ug_net_forward_fn forward;
    /* Rows per network call when sampling (the last call padded unless rows_alone): a sample's
     * value then does not depend on how many samples share its batch. Large for cheap rows
     * (MLP: 512), small for images (U-Net: 16), where padding 64 images to 256 would cost 4x. */
    int row_tile;
    /* 1 when, without a tape, every row's output is computed alone, the same way whatever the
     * number of rows (the MLP's feature-major layers): the last call needs no padding. The
     * U-Net's batched sgemm calls (time embedding, attention) may round otherwise. */
    int rows_alone;
};

/* The MLP kind over a declared ug_mlp. */
void ug_net_from_mlp(ug_net *n, const ug_mlp *m);
/* Evaluation mode. */
static inline ug_tensor *ug_net_forward(ug_ctx *ctx, const ug_net *n, ug_tensor *x_in,
                                        ug_tensor *c_noise, const int32_t *labels) {
    return n->forward(ctx, n, x_in, c_noise, labels, NULL);
}
/* Training mode (train may be NULL: evaluation). */
static inline ug_tensor *ug_net_forward_train(ug_ctx *ctx, const ug_net *n, ug_tensor *x_in,
                                              ug_tensor *c_noise, const int32_t *labels,
                                              const ug_net_train *train) {
    return n->forward(ctx, n, x_in, c_noise, labels, train);
}
void ug_net_free(ug_net *n);
#endif
