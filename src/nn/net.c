/* net.c — the network interface of the diffusion family (see net.h). */
#include "net.h"
#include "core/core.h"

/* The MLP has no dropout: training and evaluation calls are the same. */
static ug_tensor *mlp_forward(ug_ctx *ctx, const ug_net *n, ug_tensor *x_in, ug_tensor *c_noise,
                              const int32_t *labels, const ug_net_train *train) {
    (void)train;
    return ug_mlp_forward(ctx, &n->mlp, x_in, c_noise, labels);
}

void ug_net_from_mlp(ug_net *n, const ug_mlp *m) {
    memset(n, 0, sizeof *n);
    n->kind = UG_NET_MLP;
    n->data_dim = m->cfg.data_dim;
    n->num_classes = m->cfg.num_classes;
    n->mlp = *m;
    n->forward = mlp_forward;
    n->row_tile = 512;   /* W1 sampling: 512 rows beat 128, 256 and 1024 (bench/NOTES.md) */
    n->rows_alone = 1;   /* mlp.c's evaluation path */
}

void ug_net_free(ug_net *n) {
    if (n && n->impl && n->free_impl) n->free_impl(n->impl);
    if (n) n->impl = NULL;
}
