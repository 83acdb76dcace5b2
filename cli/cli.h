/* cli.h — shared by the subcommands of the `unigen` program. Includes only the public API. */
#ifndef UG_CLI_H
#define UG_CLI_H
#include "options.h"
#include "unigen.h"

typedef struct {
    const char *name;
    unsigned bit;          /* CMD_* */
    const char *summary;
    int (*run)(const cli_cfg *cfg);   /* returns the exit status */
} cli_command;

/* Prints "unigen: error: ..." and returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
