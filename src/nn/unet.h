/* unet.h — the DDPM-style U-Net denoiser of the image diffusion models (Ho et al. 2020; the
 * layout of improved-diffusion, Nichol & Dhariwal 2021, without its scale-shift norm):
 *   conv_in -> per level l = 0 .. levels-1 of width base * mult[l]: `blocks` ResBlocks (each
 *   followed by self-attention when the level's feature-map height is in attn_res), then a
 *   stride-2 Conv3 downsampling except at the last level; every output of conv_in, of a down
 *   ResBlock (after its attention) and of a downsampling is pushed on a skip stack;
 *   middle: ResBlock, AttnBlock, ResBlock;
 *   per level from the last back to 0: blocks + 1 ResBlocks (+ attention as going down), each
 *   on concat(h, popped skip) along channels, then nearest-2x upsampling + Conv3 except at
 *   level 0; out = Conv3(SiLU(GN(h))).
 * A sinusoidal time embedding through Linear-SiLU-Linear is added per channel inside every
 * ResBlock; optional class conditioning adds a learned label embedding "label_emb.weight"
 * (num_classes + 1 rows, the last the null label of classifier-free guidance). Dropout (p)
 * sits in every ResBlock between SiLU(GN(h)) and the second conv, as in DDPM, only in
 * training calls.
 *
 * Parameter names (PyTorch state_dict names; declaration order = the order listed):
 *   t1, t2 (time MLP), conv_in;
 *   down, level l: ResBlocks d{l}, d{l}b, d{l}c, ... (the first one is plain d{l}), the
 *     downsampling ds{l}.conv after the level's blocks (l < levels - 1);
 *   middle: m1, attn, m2;
 *   up, level l from levels - 1 to 0: ResBlocks u{l}a, u{l}b, u{l}c, ..., then the
 *     upsampling us{l}.conv (l > 0);
 *   norm_out, conv_out, label_emb.
 * A ResBlock X owns norm1, conv1, temb, norm2, conv2, skip (a 1x1 conv, only when its input
 * and output widths differ), and the attention that follows it at an attention resolution is
 * X.attn (norm, q, k, v, proj). The preset ug_unet_fmnist_cfg() (base 32, mult 1,2,2, one block,
 * no level attention) is thus exactly ../shared/peers/unet.py's network: 1,062,497 parameters
 * named t1, t2, conv_in, d0, ds0, d1, ds1, d2, m1, attn, m2, u2a, u2b, us2, u1a, u1b, us1, u0a,
 * u0b, norm_out, conv_out, so checkpoints load in PyTorch unchanged and the other way round. */
#ifndef UG_NN_UNET_H
#define UG_NN_UNET_H
#include "nn/net.h"

enum { UG_UNET_MAX_LEVELS = 5, UG_UNET_MAX_BLOCKS = 8 };

typedef struct ug_unet_cfg {
    int in_channels;       /* C of the images (the output has the same) */
    int height, width;     /* H, W: divisible by 2^(levels - 1) */
    int base;              /* conv_in width (peer: 32) */
    int mult[UG_UNET_MAX_LEVELS];   /* level l has width base * mult[l] (peer: 1, 2, 2) */
    int levels;            /* entries of mult, 1 .. UG_UNET_MAX_LEVELS (peer: 3) */
    int blocks;            /* ResBlocks per level going down, 1 .. UG_UNET_MAX_BLOCKS; going up
                              blocks + 1 (peer: 1) */
    int attn_res[UG_UNET_MAX_LEVELS];   /* feature-map heights H / 2^l with attention after
                                           every ResBlock of level l (peer: none) */
    int n_attn;            /* entries of attn_res */
    double dropout;        /* ResBlock dropout in training calls, [0, 1) (peer: 0) */
    int groups;            /* GroupNorm groups; divide every width and concatenation (peer: 8) */
    int emb_dim;           /* sinusoidal embedding size, even (peer: 32) */
    int temb_dim;          /* time-embedding width after the MLP (peer: 128) */
    int attn_heads;        /* heads of every attention block; divide their widths (peer: 1) */
    double emb_log_fmax;   /* frequencies exp(log_fmax k/(half-1)); DDPM index t: -ln 10000 */
    int num_classes;       /* 0: unconditional */
} ug_unet_cfg;

typedef struct ug_unet_attn {
    ug_tensor *nw, *nb, *qw, *qb, *kw, *kb, *vw, *vb, *pw, *pb;
} ug_unet_attn;

typedef struct ug_resblock {
    ug_tensor *n1w, *n1b, *c1w, *c1b, *tw, *tb, *n2w, *n2b, *c2w, *c2b;
    ug_tensor *skw, *skb;  /* NULL when in == out (identity skip) */
    int has_attn;          /* followed by attn (X.attn) */
    ug_unet_attn attn;
} ug_resblock;

typedef struct ug_unet {
    ug_unet_cfg cfg;
    ug_tensor *t1w, *t1b, *t2w, *t2b, *label_emb;
    ug_tensor *cinw, *cinb;
    ug_resblock down[UG_UNET_MAX_LEVELS][UG_UNET_MAX_BLOCKS];
    ug_tensor *dsw[UG_UNET_MAX_LEVELS], *dsb[UG_UNET_MAX_LEVELS];     /* l < levels - 1 */
    ug_resblock m1, m2;
    ug_unet_attn mid_attn;
    ug_resblock up[UG_UNET_MAX_LEVELS][UG_UNET_MAX_BLOCKS + 1];
    ug_tensor *usw[UG_UNET_MAX_LEVELS], *usb[UG_UNET_MAX_LEVELS];     /* l > 0 */
    ug_tensor *now, *nob, *coutw, *coutb;
} ug_unet;

/* The peer's network for (channels, height, width) images (peer: 1, 28, 28), DDPM embedding
 * range -ln 10000, unconditional, no dropout. */
ug_unet_cfg ug_unet_fmnist_cfg(int channels, int height, int width);
/* Declares the parameters in ps (before ug_params_finalize) in the state_dict order; checks
 * the configuration first (UG_ERR_INVALID_ARG naming the field). */
ug_status ug_unet_declare(ug_unet *u, ug_params *ps, const ug_unet_cfg *c);
/* x (B, C, H, W), c_noise (B), labels (B) in [0, num_classes] (NULL only when unconditional)
 * -> (B, C, H, W). Evaluation: no dropout. */
ug_tensor *ug_unet_forward(ug_ctx *ctx, const ug_unet *u, ug_tensor *x, ug_tensor *c_noise,
                           const int32_t *labels);
/* The same in training mode when train is non-NULL: ResBlock k (in forward order) of example b
 * draws its dropout mask from Philox (seed, first_stream + b, sub + k). */
ug_tensor *ug_unet_forward_train(ug_ctx *ctx, const ug_unet *u, ug_tensor *x,
                                 ug_tensor *c_noise, const int32_t *labels,
                                 const ug_net_train *train);
/* The U-Net kind of ug_net: copies *u to the heap (freed by ug_net_free); its forward views
 * x_in (B, d) as (B, C, H, W) and returns F flattened to (B, d). */
ug_status ug_net_from_unet(ug_net *n, const ug_unet *u);
#endif
