/* fuzz_cli.c — libFuzzer harness of the CLI's option parser (cli/options.c, compiled into this
 * harness): cli_parse over fuzzed argv and a fuzzed --config JSON file, then the resolved
 * configuration written back as JSON (cli_cfg_to_json, what checkpoints store) and re-applied
 * (cli_cfg_apply_model_json, what `unigen sample --ckpt` does).
 * Input: byte 0 picks the subcommand; the rest up to the first 0xFF byte is argv, split at NUL
 * bytes; what follows the 0xFF is the config file. Every --config value is pointed at that
 * file, so the fuzzer never opens a host path (a FIFO or /dev/stdin would hang it).
 * cli_parse returns codes and never exits, so every input returns here. */
#include "options.h"
#include "fuzz.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const struct { int bit; const char *name; } k_cmds[] = {
        {CMD_TRAIN, "train"}, {CMD_SAMPLE, "sample"}, {CMD_EVAL, "eval"},
        {CMD_INFO, "info"},   {CMD_DATA, "data"}};
    if (size < 1) return 0;
    int c = data[0] % 5;
    const uint8_t *args = data + 1, *sep = memchr(args, 0xFF, size - 1);
    size_t nargs_bytes = sep ? (size_t)(sep - args) : size - 1;
    const char *cfg_path = sep ? fuzz_file(0, sep + 1, size - 1 - nargs_bytes - 1)
                               : fuzz_file(0, "", 0);
    char config_flag[64];
    snprintf(config_flag, sizeof config_flag, "--config=%s", cfg_path);

    char *buf = fuzz_cstr(args, nargs_bytes);
    char *argv[MAX_ARGS];
    int argc = 0;
    for (size_t i = 0; i <= nargs_bytes && argc < MAX_ARGS;) {   /* buf[nargs_bytes] is NUL */
        char *a = buf + i;
        size_t len = strlen(a);
        if (!strncmp(a, "--config=", 9)) a = config_flag;
        else if (argc && !strcmp(argv[argc - 1], "--config")) a = (char *)cfg_path;
        argv[argc++] = a;
        i += len + 1;
    }
    if (nargs_bytes == 0) argc = 0;

    cli_cfg cfg;
    char err[512];
    err[0] = 0;
    int rc = cli_parse(k_cmds[c].bit, k_cmds[c].name, argc, argv, &cfg, err, sizeof err);
    FUZZ_CHECK(rc == 0 || err[0]);   /* a refusal always says why */
    if (rc == 0) {
        char *json = cli_cfg_to_json(k_cmds[c].bit, &cfg);
        FUZZ_CHECK(json);
        (void)cli_cfg_apply_model_json(json, "round trip", &cfg, err, sizeof err);
        free(json);
    }
    cli_cfg_free(&cfg);
    free(buf);
    return 0;
}
