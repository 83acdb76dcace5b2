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

/* 1 when every row has the same noise level and label (or none): a sampler's call. */
static int rows_share_conditioning(const ug_tensor *c_noise, const int32_t *labels, int64_t B) {
    for (int64_t b = 1; b < B; b++)
        if (c_noise->data[b] != c_noise->data[0] || (labels && labels[b] != labels[0])) return 0;
    return 1;
}

/* The first layer when every row shares its conditioning and nothing is taped: the inputs
 * [x, e] meet W = [W_x, W_e], and W_e e + b is the same for every row, so it is computed once
 * and the rows multiply W_x alone. For the toy MLP that skips 32 of the first layer's 34
 * inputs, 5.8 % of a sampling step's multiply-adds. (Summed in another order than the
 * full product: equal to rounding, not bit for bit.) */
static ug_tensor *first_layer_shared(ug_ctx *ctx, const ug_mlp *m, ug_tensor *x_in,
                                     ug_tensor *c_noise, const int32_t *labels) {
    const int64_t H = m->w[0]->shape[0], in = m->w[0]->shape[1], dd = m->cfg.data_dim;
    ug_tensor *parts[2], *c1 = ug_tensor_new(ctx, 1, (int64_t[]){1});
    c1->data[0] = c_noise->data[0];
    int np = 0;
    parts[np++] = ug_sinusoidal(ctx, c1, m->cfg.emb_dim, (float)m->cfg.emb_log_fmax, 0);
    if (m->cfg.num_classes) parts[np++] = ug_embedding(ctx, m->label_emb, labels, 1);
    const ug_tensor *e = np == 1 ? parts[0] : ug_concat(ctx, parts, np, 1);
    ug_tensor *wx = ug_tensor_new(ctx, 2, (int64_t[]){H, dd});
    ug_tensor *bias = ug_tensor_new(ctx, 1, (int64_t[]){H});
    const float *w = m->w[0]->data;
    for (int64_t o = 0; o < H; o++) {
        float acc = m->b[0]->data[o];
        for (int64_t k = dd; k < in; k++) acc += w[o * in + k] * e->data[k - dd];
        bias->data[o] = acc;
        memcpy(wx->data + o * dd, w + o * in, (size_t)dd * sizeof *w);
    }
    return ug_linear(ctx, x_in, wx, bias);
}

ug_tensor *ug_mlp_forward(ug_ctx *ctx, const ug_mlp *m, ug_tensor *x_in, ug_tensor *c_noise,
                          const int32_t *labels) {
    int64_t B = x_in->shape[0];
    UG_CHECK(labels || !m->cfg.num_classes, "mlp: a class-conditional network needs labels");
    ug_tensor *h;
    if (!ug_ctx_grad_enabled(ctx) && rows_share_conditioning(c_noise, labels, B)) {
        h = first_layer_shared(ctx, m, x_in, c_noise, labels);
    } else {
        ug_tensor *parts[3];
        int np = 0;
        parts[np++] = x_in;
        parts[np++] = ug_sinusoidal(ctx, c_noise, m->cfg.emb_dim, (float)m->cfg.emb_log_fmax, 0);
        if (m->cfg.num_classes) parts[np++] = ug_embedding(ctx, m->label_emb, labels, B);
        h = ug_linear(ctx, ug_concat(ctx, parts, np, 1), m->w[0], m->b[0]);
    }
    /* h is read by nothing else: a sampler's SiLU overwrites it. */
    for (int l = 1; l < m->nlayers; l++)
        h = ug_linear(ctx, ug_silu_inplace(ctx, h), m->w[l], m->b[l]);
    return h;
}
