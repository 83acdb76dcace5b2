/* mlp.c — the worked example of unigen.h as a program: fit y = sin(3 x0) x1 with a
 * 2 -> 64 -> 1 MLP, Adam, the arena reset after every step.
 * Build against an installed unigen:  cc mlp.c $(pkg-config --cflags --libs --static unigen) */
#include <math.h>
#include <stdio.h>
#include <unigen.h>

int main(void) {
    ug_ctx *ctx;
    ug_params *ps;
    if (ug_ctx_create(&ctx, 0) != UG_OK || ug_params_create(&ps) != UG_OK) {
        fprintf(stderr, "%s\n", ug_last_error());
        return 1;
    }
    ug_tensor *w1 = ug_params_add(ps, "fc1.weight", 2, (int64_t[]){64, 2});
    ug_tensor *b1 = ug_params_add(ps, "fc1.bias", 1, (int64_t[]){64});
    ug_tensor *w2 = ug_params_add(ps, "fc2.weight", 2, (int64_t[]){1, 64});
    ug_tensor *b2 = ug_params_add(ps, "fc2.bias", 1, (int64_t[]){1});
    if (ug_params_finalize(ps) != UG_OK) return 1;
    ug_params_init_uniform(ps, 42);
    ug_adam adam;
    if (ug_adam_init(&adam, ps, ug_adam_default()) != UG_OK) return 1;

    enum { N = 256 };
    float xs[N * 2], ys[N];
    ug_rng r = ug_rng_make(7, 0, 0);
    ug_rng_uniform(&r, xs, N * 2);
    for (int i = 0; i < N; i++) {
        xs[2 * i] = 2 * xs[2 * i] - 1;
        xs[2 * i + 1] = 2 * xs[2 * i + 1] - 1;
        ys[i] = sinf(3 * xs[2 * i]) * xs[2 * i + 1];
    }
    float first = 0, last = 0;
    for (int step = 0; step < 2000; step++) {
        ug_tensor *x = ug_tensor_from(ctx, 2, (int64_t[]){N, 2}, xs);
        ug_tensor *y = ug_tensor_from(ctx, 2, (int64_t[]){N, 1}, ys);
        ug_tensor *h = ug_tanh(ctx, ug_linear(ctx, x, w1, b1));
        ug_tensor *loss = ug_mean_all(ctx, ug_mse(ctx, ug_linear(ctx, h, w2, b2), y, NULL));
        ug_params_zero_grad(ps);
        if (ug_backward(ctx, loss) != UG_OK) return 1;
        ug_adam_step(&adam, ps, 3e-3f);
        if (step == 0) first = loss->data[0];
        last = loss->data[0];
        ug_ctx_reset(ctx);
    }
    printf("mse %.5f -> %.5f after 2000 steps (%lld parameters)\n", first, last,
           (long long)ug_params_count(ps));
    ug_adam_free(&adam);
    ug_params_free(ps);
    ug_ctx_free(ctx);
    return last < 0.1f * first ? 0 : 1;
}
