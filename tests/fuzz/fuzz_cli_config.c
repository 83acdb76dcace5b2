/* fuzz_cli_config.c — libFuzzer harness of cli_cfg_apply_model_json (cli/options.c, compiled
 * into this harness): the configuration JSON stored in a checkpoint's __metadata__ applied over
 * the defaults of `unigen sample`, as cli/sample.c does before building the model. */
#include "options.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cli_cfg cfg;
    char err[512];
    FUZZ_CHECK(cli_parse(CMD_SAMPLE, "sample", 0, NULL, &cfg, err, sizeof err) == 0);
    char *json = fuzz_cstr(data, size);
    err[0] = 0;
    if (cli_cfg_apply_model_json(json, "fuzz.safetensors", &cfg, err, sizeof err) != 0)
        FUZZ_CHECK(err[0]);
    char *back = cli_cfg_to_json(CMD_SAMPLE, &cfg);
    FUZZ_CHECK(back);
    free(back);
    free(json);
    cli_cfg_free(&cfg);
    return 0;
}
