/* main.c — the `unigen` command line: dispatch to subcommands. Library errors become
 * "unigen: error: ..." with exit status 1; usage errors (unknown flag, wrong type, value out of
 * range: check.c) exit with status 2; a training run stopped by SIGINT / SIGTERM exits with
 * 130 / 143 after saving its checkpoint (guard.c). Under mpirun (an MPI build) rank 0 speaks,
 * the other ranks' output goes to /dev/null but their errors still reach the terminal, tagged
 * with the rank, and a rank that fails ends the whole job (cli/dist.c). */
#include "cli.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Where errors go: stderr, or on a muted rank a copy of the terminal's stderr. */
static FILE *g_errf;

static const cli_command k_commands[] = {
    {"train", CMD_TRAIN, "train a model; writes a run directory (config, metrics, checkpoint, previews); "
                         "--resume DIR continues one; SIGINT/SIGTERM save and exit 130/143", cli_train},
    {"sample", CMD_SAMPLE, "draw samples from a checkpoint or an exact Gaussian mixture (--model gmm:FILE)", cli_sample},
    {"eval", CMD_EVAL, "likelihood (--nll) and two-sample metrics (--metrics) on held-out data, with the protocol", cli_eval},
    {"info", CMD_INFO, "tensors, shapes, configuration and step of a checkpoint", cli_info},
    {"data", CMD_DATA, "counts, shapes, value range and a preview picture of a data set", cli_data},
    {0},
};

int cli_error(const char *fmt, ...) {
    va_list ap;
    FILE *f = g_errf ? g_errf : stderr;
    va_start(ap, fmt);
    fputs("unigen: error: ", f);
    if (ug_dist_world() > 1) fprintf(f, "rank %d of %d: ", ug_dist_rank(), ug_dist_world());
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
    va_end(ap);
    return 1;
}

/* Ranks other than 0: stdout and stderr to /dev/null, errors to the saved stderr. */
static void mute_rank(void) {
    int fd = dup(2);
    if (fd >= 0) g_errf = fdopen(fd, "w");
    fflush(stdout);
    fflush(stderr);
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) return;
}

static int run_command(const cli_command *c, int argc, char **argv) {
    cli_cfg cfg;
    char err[512];
    int rc = cli_parse(c->bit, c->name, argc - 2, argv + 2, &cfg, err, sizeof err);
    if (rc) {
        /* The same on every rank: rank 0 says it, every rank leaves. */
        fprintf(stderr, "unigen: error: %s\n", err);
        cli_cfg_free(&cfg);
        return rc;
    }
    /* train --resume DIR: the run's stored configuration under the flags given now. */
    if (c->bit == CMD_TRAIN && cfg.resume &&
        (rc = cli_resume_config(c->bit, c->name, argc - 2, argv + 2, &cfg))) {
        cli_cfg_free(&cfg);
        return rc;
    }
    ug_set_threads(cfg.threads);
    rc = c->run(&cfg);
    cli_cfg_free(&cfg);
    if (rc && ug_dist_world() > 1) {
        /* The others may wait in a collective for this rank: end them all. */
        cli_error("failed (exit status %d); ending all %d ranks", rc, ug_dist_world());
        ug_dist_abort(rc);
    }
    return rc;
}

static void usage(FILE *f) {
    fprintf(f, "usage: unigen <command> [options]   (unigen <command> --help for its options)\n\n"
               "commands:\n");
    for (const cli_command *c = k_commands; c->name; c++) fprintf(f, "  %-8s %s\n", c->name, c->summary);
    fprintf(f, "\nunigen %s; threads from --threads or UNIGEN_THREADS\n", ug_version());
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("unigen %s\nmpi: %s\n", ug_version(), ug_dist_available() ? "yes" : "no");
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (const cli_command *c = k_commands; c->name; c++) {
        if (strcmp(argv[1], c->name) != 0) continue;
        for (int i = 2; i < argc; i++)
            if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
                cli_print_help(c->bit, c->name, c->summary);
                return 0;
            }
        if (ug_dist_init(&argc, &argv)) {
            fprintf(stderr, "unigen: error: %s\n", ug_last_error());
            return 1;
        }
        if (!cli_dist_root()) mute_rank();
        int rc = run_command(c, argc, argv);
        ug_dist_finalize();
        if (g_errf) fclose(g_errf);
        return rc;
    }
    fprintf(stderr, "unigen: error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
