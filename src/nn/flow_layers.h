/* flow_layers.h — the invertible layers of the normalizing flows (SPEC section 7), each with a
 * forward pass on the tape that also adds its log|det J| to a per-example accumulator, and an
 * inverse without gradients:
 *
 *   additive coupling (NICE)   y_b = x_b + m(x_a)                          log|det| = 0
 *   affine coupling (RealNVP)  y_b = x_b exp(s(x_a)) + t(x_a), y_a = x_a   log|det| = sum s
 *       masks: parity of the index (vectors), checkerboard and channel halves (images);
 *       Glow's split form takes x_a = the first half of the channels
 *   diagonal scaling (NICE)    y = x exp(s)                                log|det| = sum s
 *   actnorm (Glow)             y = (x + b) exp(logs) per channel           log|det| = H W sum logs
 *   invertible 1x1 conv (Glow) y = W x per pixel, W = P L (U + diag(sign exp(logs)))
 *                                                                          log|det| = H W sum logs
 *   squeeze                    (C, H, W) -> (4C, H/2, W/2): 2x2 blocks into channels, c' = 4c + 2dy + dx
 *   factor-out (multi-scale)   the first half of the channels leaves the flow as latents
 *
 * s = c tanh(s_raw / c) (soft clamp c, documented in models/flow.c). Parameter names are
 * PyTorch-style under the prefix each layer is declared with. */
#ifndef UG_NN_FLOW_LAYERS_H
#define UG_NN_FLOW_LAYERS_H
#include "core/core.h"

#define UG_FL_NET_MAX 16

/* Conditioner network: Linear / conv layers with an activation between them; the last layer
 * gives the coupling's output. Layer l is named prefix.(2 l) (nn.Sequential with activations
 * in between). */
typedef struct ug_fl_net {
    int conv;                    /* 0: MLP on (N, n); 1: convolutions on (N, C, H, W) */
    int nlayers;
    int relu;                    /* activation: 1 ReLU (every model here), 0 SiLU */
    int residual;                /* middle layers are h + act(layer(h)) */
    int ksize[UG_FL_NET_MAX];    /* conv kernel sizes (padding keeps the size) */
    ug_tensor *w[UG_FL_NET_MAX], *b[UG_FL_NET_MAX];
} ug_fl_net;

typedef enum {
    UG_FL_ADDITIVE, UG_FL_AFFINE, UG_FL_AFFINE_SPLIT, UG_FL_SCALE, UG_FL_ACTNORM, UG_FL_INVCONV,
    UG_FL_SQUEEZE, UG_FL_FACTOR, UG_FL_KIND_COUNT
} ug_fl_kind;

typedef enum { UG_FL_MASK_PARITY, UG_FL_MASK_CHECKER, UG_FL_MASK_CHANNEL } ug_fl_mask;

typedef struct ug_fl_layer {
    ug_fl_kind kind;
    int image;              /* state (N, C, H, W); else (N, C) with H = W = 1 */
    int C, H, W;            /* the input of the layer, per example */
    float clamp;            /* affine couplings: soft clamp of s */
    float *mask;            /* affine: (C H W), 1 = conditioning entry (unchanged) */
    int32_t *ia, *ib;       /* additive: conditioning and updated columns */
    int na, nb;
    ug_fl_net net;
    ug_tensor *logs;        /* scale (C), actnorm (C), invconv (C) */
    ug_tensor *loc;         /* actnorm (C) */
    ug_tensor *lower, *upper;   /* invconv (C, C) */
    int32_t *perm;          /* invconv: fixed permutation and signs of U's diagonal */
    float *sign;
} ug_fl_layer;

/* Declarations (before ug_params_finalize); each fills L and adds its parameters to ps.
 * additive: d columns split by parity; parity 0 updates the odd columns from the even ones
 * (NICE's couplings 0, 2, ...), 1 the even from the odd. MLP of depth hidden ReLU layers. */
ug_status ug_fl_declare_additive(ug_fl_layer *L, ug_params *ps, const char *prefix, int d,
                                 int parity, int hidden, int depth);
/* Masked affine coupling on vectors (image 0: mask parity, MLP of depth ReLU layers) or images
 * (checker / channel, conv3x3 ReLU, depth - 1 residual conv3x3 ReLU blocks, conv3x3).
 * parity flips the mask. */
ug_status ug_fl_declare_affine(ug_fl_layer *L, ug_params *ps, const char *prefix, int image,
                               int C, int H, int W, ug_fl_mask mask, int parity, int hidden,
                               int depth, float clamp);
/* Glow's coupling: x_a = channels [0, C/2), conv3x3 - ReLU - conv1x1 - ReLU - conv3x3. */
ug_status ug_fl_declare_affine_split(ug_fl_layer *L, ug_params *ps, const char *prefix, int C,
                                     int H, int W, int hidden, float clamp);
/* name: the full parameter name of s (NICE: "s"). */
ug_status ug_fl_declare_scale(ug_fl_layer *L, ug_params *ps, const char *name, int d);
ug_status ug_fl_declare_actnorm(ug_fl_layer *L, ug_params *ps, const char *prefix, int C, int H,
                                int W);
ug_status ug_fl_declare_invconv(ug_fl_layer *L, ug_params *ps, const char *prefix, int C, int H,
                                int W);
ug_status ug_fl_declare_squeeze(ug_fl_layer *L, int C, int H, int W);
ug_status ug_fl_declare_factor(ug_fl_layer *L, int C, int H, int W);

/* After PyTorch's default init: couplings of RealNVP / Glow get a zero last layer (identity
 * at init), scale and actnorm 0 (identity until data_init), the 1x1 conv a random rotation
 * drawn from Philox (key, stream) and LU-factored with partial pivoting. NICE's additive
 * couplings keep PyTorch's init (zero_last 0). */
void ug_fl_init(ug_fl_layer *L, uint64_t key, uint64_t stream, int zero_last);
void ug_fl_free(ug_fl_layer *L);

/* The state after the layer; *logdet (N) gets the layer's log|det J| added. A factor-out
 * layer sets *zout to the latents it removes (N, C/2, H, W). data_init: actnorm first sets
 * its parameters so that its output has zero mean and unit variance per channel on x. */
ug_tensor *ug_fl_forward(ug_ctx *ctx, ug_fl_layer *L, ug_tensor *x, ug_tensor **logdet,
                         ug_tensor **zout, int data_init);
/* The input that gives y (no gradients); zin: the latents a factor-out layer removed. */
ug_tensor *ug_fl_inverse(ug_ctx *ctx, const ug_fl_layer *L, ug_tensor *y, ug_tensor *zin);
/* The additive coupling on halves held apart (NICE keeps its two halves through all four
 * couplings): yb = xb + m(xa) and xb = yb - m(xa). */
ug_tensor *ug_fl_additive_halves(ug_ctx *ctx, const ug_fl_layer *L, ug_tensor *xa,
                                 ug_tensor *xb, int inverse);
/* Output shape per example of a layer (C, H, W): squeeze and factor-out change it. */
void ug_fl_out_shape(const ug_fl_layer *L, int *C, int *H, int *W);
#endif
