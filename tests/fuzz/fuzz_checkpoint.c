/* fuzz_checkpoint.c — libFuzzer harness of the checkpoint reader (src/io/checkpoint.c): the
 * input is loaded as a checkpoint of a fixed small model (weights, EMA copy, Adam moments and
 * the step / adam_t / format metadata), once with and once without the optimizer state, and its
 * stored configuration JSON is read back. The seed corpus holds ug_ckpt_save files of this same
 * model (tests/fuzz/gen_corpus.c), so the fuzzer starts from checkpoints that load. */
#include "unigen.h"
#include "fuzz.h"

static ug_params *g_ps;
static ug_ema g_ema;
static ug_adam g_adam;

/* The model of gen_corpus.c: keep the two in step. */
static void setup(void) {
    if (g_ps) return;
    if (ug_params_create(&g_ps) != UG_OK ||
        !ug_params_add(g_ps, "net.0.weight", 2, (int64_t[]){3, 2}) ||
        !ug_params_add(g_ps, "net.0.bias", 1, (int64_t[]){3}) ||
        !ug_params_add(g_ps, "out.scale", 1, (int64_t[]){1}) || ug_params_finalize(g_ps) != UG_OK ||
        ug_ema_init(&g_ema, g_ps, 0.99f) != UG_OK ||
        ug_adam_init(&g_adam, g_ps, ug_adam_default()) != UG_OK) {
        fprintf(stderr, "fuzz_checkpoint: cannot build the model: %s\n", ug_last_error());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    const char *path = fuzz_file(0, data, size);
    int64_t step = -1;
    (void)ug_ckpt_load(path, g_ps, &g_ema, &g_adam, &step);
    (void)ug_ckpt_load(path, g_ps, NULL, NULL, NULL);
    char *config = NULL;
    if (ug_ckpt_config(path, &config) == UG_OK) FUZZ_CHECK(config != NULL);
    else FUZZ_CHECK(config == NULL);
    free(config);
    return 0;
}
