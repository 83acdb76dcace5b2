/* unet.h — the DDPM-style U-Net denoiser of the image diffusion models (Ho et al. 2020, with
 * the layout of ../shared/peers/unet.py, W2): three resolutions (H, H/2, H/4) of widths
 * ch[0..2], one ResBlock per level going down and two going up, a skip stack concatenated on
 * the channel axis, single-head self-attention between two ResBlocks at the lowest level, a
 * sinusoidal time embedding through Linear-SiLU-Linear added per channel inside every ResBlock.
 * The preset ug_unet_fmnist_cfg() is the peer network exactly: 1,062,497 parameters with the
 * PyTorch module's state_dict names (t1, t2, conv_in, d0, ds0, ..., u0b, norm_out, conv_out), so
 * checkpoints load in Python unchanged. Optional class conditioning adds a learned label
 * embedding "label_emb.weight" (num_classes + 1 rows, the last the null label of
 * classifier-free guidance) to the time embedding. */
#ifndef UG_NN_UNET_H
#define UG_NN_UNET_H
#include "nn/net.h"

typedef struct ug_unet_cfg {
    int in_channels;       /* C of the images (the output has the same) */
    int height, width;     /* H, W: divisible by 4 (two stride-2 downsamplings and back) */
    int ch[3];             /* widths at H, H/2, H/4 (peer: 32, 64, 64) */
    int groups;            /* GroupNorm groups; divide every width and concatenation (peer: 8) */
    int emb_dim;           /* sinusoidal embedding size, even (peer: 32) */
    int temb_dim;          /* time-embedding width after the MLP (peer: 128) */
    int attn_heads;        /* heads of the lowest-level attention, divide ch[2] (peer: 1) */
    double emb_log_fmax;   /* frequencies exp(log_fmax k/(half-1)); DDPM index t: -ln 10000 */
    int num_classes;       /* 0: unconditional */
} ug_unet_cfg;

typedef struct ug_resblock {
    ug_tensor *n1w, *n1b, *c1w, *c1b, *tw, *tb, *n2w, *n2b, *c2w, *c2b;
    ug_tensor *skw, *skb;  /* NULL when in == out (identity skip) */
} ug_resblock;

typedef struct ug_unet {
    ug_unet_cfg cfg;
    ug_tensor *t1w, *t1b, *t2w, *t2b, *label_emb;
    ug_tensor *cinw, *cinb;
    ug_resblock d0, d1, d2, m1, m2, u2a, u2b, u1a, u1b, u0a, u0b;
    ug_tensor *ds0w, *ds0b, *ds1w, *ds1b, *us2w, *us2b, *us1w, *us1b;
    ug_tensor *anw, *anb, *aqw, *aqb, *akw, *akb, *avw, *avb, *apw, *apb;
    ug_tensor *now, *nob, *coutw, *coutb;
} ug_unet;

/* The peer's network for (channels, height, width) images (peer: 1, 28, 28), DDPM embedding
 * range -ln 10000, unconditional. */
ug_unet_cfg ug_unet_fmnist_cfg(int channels, int height, int width);
/* Declares the parameters in ps (before ug_params_finalize) in the state_dict order. */
ug_status ug_unet_declare(ug_unet *u, ug_params *ps, const ug_unet_cfg *c);
/* x (B, C, H, W), c_noise (B), labels (B) in [0, num_classes] (NULL only when unconditional)
 * -> (B, C, H, W). */
ug_tensor *ug_unet_forward(ug_ctx *ctx, const ug_unet *u, ug_tensor *x, ug_tensor *c_noise,
                           const int32_t *labels);
/* The U-Net kind of ug_net: copies *u to the heap (freed by ug_net_free); its forward views
 * x_in (B, d) as (B, C, H, W) and returns F flattened to (B, d). */
ug_status ug_net_from_unet(ug_net *n, const ug_unet *u);
#endif
