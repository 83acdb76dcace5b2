/* mlp.c — the MLP denoiser network (see mlp.h). Parameter names follow the PyTorch module
 * layout nn.Sequential(Linear, SiLU, ...) so checkpoints load in Python unchanged. */
#include "mlp.h"
#include "core/core.h"
#include <math.h>

ug_mlp_cfg ug_mlp_toy_cfg(int data_dim) {
    ug_mlp_cfg c = {data_dim, 256, 3, 32, 6.907755278982137 /* ln 1000 */, 0, 0};
    return c;
}

ug_status ug_mlp_declare(ug_mlp *m, ug_params *ps, const ug_mlp_cfg *cfg) {
    memset(m, 0, sizeof *m);
    if (cfg->data_dim < 1 || cfg->hidden < 1 || cfg->depth < 1 ||
        cfg->depth > UG_MLP_MAX_LAYERS - 1 || cfg->emb_dim < 2 || cfg->emb_dim % 2 ||
        cfg->num_classes < 0 || (cfg->num_classes > 0 && cfg->label_dim < 1))
        return ug_fail(UG_ERR_INVALID_ARG,
                       "mlp: data_dim %d, hidden %d, depth %d (1..%d), emb_dim %d (even >= 2), "
                       "num_classes %d, label_dim %d: out of range",
                       cfg->data_dim, cfg->hidden, cfg->depth, UG_MLP_MAX_LAYERS - 1, cfg->emb_dim,
                       cfg->num_classes, cfg->label_dim);
    m->cfg = *cfg;
    int in = cfg->data_dim + cfg->emb_dim + (cfg->num_classes ? cfg->label_dim : 0);
    m->nlayers = cfg->depth + 1;
    char name[64];
    for (int l = 0; l < m->nlayers; l++) {
        int out = l == m->nlayers - 1 ? cfg->data_dim : cfg->hidden;
        /* Sequential index: Linear layers sit at 0, 2, 4, ... with SiLU in between. */
        snprintf(name, sizeof name, "net.%d.weight", 2 * l);
        m->w[l] = ug_params_add(ps, name, 2, (int64_t[]){out, in});
        snprintf(name, sizeof name, "net.%d.bias", 2 * l);
        m->b[l] = ug_params_add(ps, name, 1, (int64_t[]){out});
        if (!m->w[l] || !m->b[l]) return UG_ERR_INVALID_ARG;
        in = out;
    }
    if (cfg->num_classes) {
        m->label_emb = ug_params_add(ps, "label_emb.weight", 2,
                                     (int64_t[]){cfg->num_classes + 1, cfg->label_dim});
        if (!m->label_emb) return UG_ERR_INVALID_ARG;
    }
    return UG_OK;
}

ug_tensor *ug_mlp_forward(ug_ctx *ctx, const ug_mlp *m, ug_tensor *x_in, ug_tensor *c_noise,
                          const int32_t *labels) {
    int64_t B = x_in->shape[0];
    ug_tensor *parts[3];
    int np = 0;
    parts[np++] = x_in;
    parts[np++] = ug_sinusoidal(ctx, c_noise, m->cfg.emb_dim, (float)m->cfg.emb_log_fmax, 0);
    if (m->cfg.num_classes) {
        UG_CHECK(labels, "mlp: a class-conditional network needs labels");
        parts[np++] = ug_embedding(ctx, m->label_emb, labels, B);
    }
    ug_tensor *h = ug_concat(ctx, parts, np, 1);
    for (int l = 0; l < m->nlayers; l++) {
        h = ug_linear(ctx, h, m->w[l], m->b[l]);
        if (l < m->nlayers - 1) h = ug_silu(ctx, h);
    }
    return h;
}
