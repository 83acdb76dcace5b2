/* mlp.h — the MLP denoiser network F(c_in x, c_noise [, label]) of the 2-D diffusion models:
 * input = concat(x_in, sinusoidal(c_noise) [, label embedding]), then depth Linear+SiLU layers
 * and a final Linear. The preset mlp-toy is exactly ../shared/peers/toy2d.py's network:
 * in 2 + 32, hidden 256, depth 3, out 2 -> 141,058 parameters, names net.0 ... net.6. */
#ifndef UG_NN_MLP_H
#define UG_NN_MLP_H
#include "unigen.h"

#define UG_MLP_MAX_LAYERS 16

typedef struct ug_mlp_cfg {
    int data_dim;      /* d: input and output size */
    int hidden;        /* width */
    int depth;         /* number of hidden Linear+SiLU layers (toy2d: 3) */
    int emb_dim;       /* sinusoidal embedding size, even (toy2d: 32) */
    double emb_log_fmax;   /* frequencies exp(log_fmax k/(half-1)); toy2d: ln 1000 */
    int num_classes;   /* 0: unconditional; else a learned (num_classes + 1, label_dim) table,
                          the last row being the null label of classifier-free guidance */
    int label_dim;
} ug_mlp_cfg;

typedef struct ug_mlp {
    ug_mlp_cfg cfg;
    int nlayers;
    ug_tensor *w[UG_MLP_MAX_LAYERS], *b[UG_MLP_MAX_LAYERS];
    ug_tensor *label_emb;
} ug_mlp;

ug_mlp_cfg ug_mlp_toy_cfg(int data_dim);
/* Declares the parameters in ps (before ug_params_finalize). */
ug_status ug_mlp_declare(ug_mlp *m, ug_params *ps, const ug_mlp_cfg *cfg);
/* x_in (B, d), c_noise (B), labels (B) in [0, num_classes] or NULL -> F (B, d). */
ug_tensor *ug_mlp_forward(ug_ctx *ctx, const ug_mlp *m, ug_tensor *x_in, ug_tensor *c_noise,
                          const int32_t *labels);
#endif
