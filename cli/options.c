/* options.c — the option table and its three readers (flags, config file, --help). */
#include "options.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFF(f) offsetof(cli_cfg, f)

const opt_def cli_options[] = {
    {"threads", OPT_INT, OFF(threads), "0", CMD_ALL,
     "threads for kernels and BLAS (0: UNIGEN_THREADS or all cores)"},
    {"seed", OPT_INT, OFF(seed), "0", CMD_ALL, "random seed"},
    {"config", OPT_STRING, OFF(config), NULL, CMD_ALL,
     "JSON file of options (same keys as the flags; flags win)"},
    {"out", OPT_STRING, OFF(out), NULL, CMD_TRAIN | CMD_SAMPLE | CMD_DATA, "output path"},
    {"data", OPT_STRING, OFF(data), NULL, CMD_TRAIN | CMD_EVAL | CMD_DATA, "data set"},
    {"n", OPT_INT, OFF(n), "0", CMD_SAMPLE | CMD_EVAL | CMD_DATA, "number of examples"},
    {"json", OPT_BOOL, OFF(json), "0", CMD_ALL, "print one JSON line instead of a table"},
    {"ckpt", OPT_STRING, OFF(ckpt), NULL, CMD_SAMPLE | CMD_EVAL | CMD_INFO, "checkpoint file"},
};
const int cli_num_options = (int)(sizeof cli_options / sizeof *cli_options);

static const opt_def *find_opt(const char *key) {
    for (int i = 0; i < cli_num_options; i++)
        if (strcmp(cli_options[i].key, key) == 0) return &cli_options[i];
    return NULL;
}

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

const char *cli_suggest(int cmd, const char *key) {
    const char *best = NULL;
    int bestd = INT_MAX;
    for (int i = 0; i < cli_num_options; i++) {
        if (!(cli_options[i].cmds & (unsigned)cmd)) continue;
        int d = edit_distance(key, cli_options[i].key);
        if (d < bestd) { bestd = d; best = cli_options[i].key; }
    }
    int limit = (int)strlen(key) / 3 + 1;
    return bestd <= (limit < 2 ? 2 : limit) ? best : NULL;
}

/* Stores text into the field; 0 ok, else a message in err. */
static int set_value(const opt_def *o, const char *text, cli_cfg *cfg, const char *where,
                     char *err, size_t errlen) {
    char *field = (char *)cfg + o->offset;
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case OPT_INT: {
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno) {
            snprintf(err, errlen, "%s: --%s expects an integer, found '%s'", where, o->key, text);
            return 2;
        }
        if (o->offset == OFF(threads)) {
            if (v < 0 || v > 1024) {
                snprintf(err, errlen, "%s: --threads expects 0..1024, found %lld", where, v);
                return 2;
            }
            *(int *)field = (int)v;
        } else {
            *(int64_t *)field = v;
        }
        return 0;
    }
    case OPT_FLOAT: {
        double v = strtod(text, &end);
        if (!*text || *end || errno || !isfinite(v)) {
            snprintf(err, errlen, "%s: --%s expects a finite number, found '%s'", where, o->key,
                     text);
            return 2;
        }
        *(double *)field = v;
        return 0;
    }
    case OPT_BOOL:
        if (!strcmp(text, "1") || !strcmp(text, "true")) *(int *)field = 1;
        else if (!strcmp(text, "0") || !strcmp(text, "false")) *(int *)field = 0;
        else {
            snprintf(err, errlen, "%s: --%s expects true/false, found '%s'", where, o->key, text);
            return 2;
        }
        return 0;
    case OPT_STRING: {
        char **s = (char **)field;
        free(*s);
        *s = strdup(text);
        return 0;
    }
    }
    return 2;
}

static void unknown_key(int cmd, const char *cmd_name, const char *key, const char *where,
                        char *err, size_t errlen) {
    const char *s = cli_suggest(cmd, key);
    const opt_def *o = find_opt(key);
    if (o)
        snprintf(err, errlen, "%s: --%s is not an option of 'unigen %s'", where, key, cmd_name);
    else if (s)
        snprintf(err, errlen, "%s: unknown option --%s (did you mean --%s?)", where, key, s);
    else
        snprintf(err, errlen, "%s: unknown option --%s (see 'unigen %s --help')", where, key,
                 cmd_name);
}

static int load_config(int cmd, const char *cmd_name, const char *path, cli_cfg *cfg, char *err,
                       size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open config file: %s", path, strerror(errno));
        return 1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 8192;
            if (cap > ((size_t)16 << 20)) {
                snprintf(err, errlen, "%s: config file larger than 16 MiB", path);
                free(buf); fclose(f);
                return 1;
            }
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); snprintf(err, errlen, "out of memory"); return 1; }
            buf = nb;
        }
        size_t k = fread(buf + len, 1, 4096, f);
        len += k;
        if (k < 4096) break;
    }
    fclose(f);
    buf[len] = 0;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: config file is not a JSON object%s", path,
                 root ? "" : " (malformed JSON)");
        cJSON_Delete(root);
        free(buf);
        return 1;
    }
    int rc = 0;
    for (cJSON *it = root->child; it && !rc; it = it->next) {
        const opt_def *o = find_opt(it->string);
        if (!o || !(o->cmds & (unsigned)cmd) || o->offset == OFF(config)) {
            unknown_key(cmd, cmd_name, it->string, path, err, errlen);
            rc = 1;
            break;
        }
        char text[64];
        const char *val = text;
        if (cJSON_IsString(it)) val = it->valuestring;
        else if (cJSON_IsBool(it)) val = cJSON_IsTrue(it) ? "true" : "false";
        else if (cJSON_IsNumber(it)) {
            if (o->type == OPT_INT || o->type == OPT_BOOL) {
                if (it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 9e15) {
                    snprintf(err, errlen, "%s: key \"%s\" expects an integer, found %g", path,
                             it->string, it->valuedouble);
                    rc = 1;
                    break;
                }
                snprintf(text, sizeof text, "%.0f", it->valuedouble);
            } else {
                snprintf(text, sizeof text, "%.17g", it->valuedouble);
            }
        } else {
            snprintf(err, errlen, "%s: key \"%s\" must be a string, number or boolean", path,
                     it->string);
            rc = 1;
            break;
        }
        if (set_value(o, val, cfg, path, err, errlen)) rc = 1;
    }
    cJSON_Delete(root);
    free(buf);
    return rc;
}

void cli_cfg_free(cli_cfg *cfg) {
    for (int i = 0; i < cli_num_options; i++)
        if (cli_options[i].type == OPT_STRING) {
            char **s = (char **)((char *)cfg + cli_options[i].offset);
            free(*s);
            *s = NULL;
        }
}

int cli_parse(int cmd, const char *cmd_name, int argc, char **argv, cli_cfg *cfg, char *err,
              size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < cli_num_options; i++)
        if (cli_options[i].def && (cli_options[i].cmds & (unsigned)cmd))
            set_value(&cli_options[i], cli_options[i].def, cfg, "default", err, errlen);
    /* The config file first, so that flags override it whatever their order. */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--config=", 9) || (!strcmp(a, "--config") && i + 1 < argc)) {
            const char *path = a[8] == '=' ? a + 9 : argv[i + 1];
            int rc = load_config(cmd, cmd_name, path, cfg, err, errlen);
            if (rc) return rc;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            snprintf(err, errlen, "unexpected argument '%s' (options start with --)", a);
            return 2;
        }
        char key[128];
        const char *eq = strchr(a + 2, '=');
        size_t kl = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (kl >= sizeof key) kl = sizeof key - 1;
        memcpy(key, a + 2, kl);
        key[kl] = 0;
        const opt_def *o = find_opt(key);
        if (!o || !(o->cmds & (unsigned)cmd)) {
            unknown_key(cmd, cmd_name, key, "command line", err, errlen);
            return 2;
        }
        const char *val;
        if (eq) val = eq + 1;
        else if (o->type == OPT_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0 ||
                                         (strcmp(argv[i + 1], "true") && strcmp(argv[i + 1], "false") &&
                                          strcmp(argv[i + 1], "0") && strcmp(argv[i + 1], "1"))))
            val = "true";
        else if (i + 1 < argc) val = argv[++i];
        else {
            snprintf(err, errlen, "--%s needs a value", key);
            return 2;
        }
        if (o->offset == OFF(config)) continue;   /* already read */
        int rc = set_value(o, val, cfg, "command line", err, errlen);
        if (rc) return rc;
    }
    return 0;
}

void cli_print_help(int cmd, const char *cmd_name, const char *summary) {
    printf("usage: unigen %s [options]\n\n%s\n\noptions:\n", cmd_name, summary);
    for (int i = 0; i < cli_num_options; i++) {
        const opt_def *o = &cli_options[i];
        if (!(o->cmds & (unsigned)cmd)) continue;
        const char *meta = o->type == OPT_INT ? " N" : o->type == OPT_FLOAT ? " X"
                         : o->type == OPT_STRING ? " S" : "";
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s", o->key, meta);
        printf("  %-24s %s", flag, o->help);
        if (o->def && o->type != OPT_BOOL) printf(" (default %s)", o->def);
        printf("\n");
    }
}
