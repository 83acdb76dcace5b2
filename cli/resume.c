/* resume.c — crash-safe training runs. A run directory holds:
 *   checkpoint.safetensors        always the newest saved state (every save updates it)
 *   checkpoint-STEP.safetensors   snapshots every --save-every steps (--keep N bounds them)
 * Every file is written to a temporary name, fsynced and renamed (src/io/file.c), so a reader
 * finds either the previous complete checkpoint or the new one, whenever the process dies.
 *
 * `train --resume DIR` continues from the readable checkpoint with the highest step. A
 * checkpoint holds everything the next step depends on: weights, Adam moments and t, the EMA
 * weights, the step, and the data loader's epoch and position (__metadata__ train_state).
 * Nothing else is random state: the loader's permutation is a pure function of (seed, epoch)
 * and the training noise of example b of step s is Philox stream s * batch + b. So a run killed
 * at any point and resumed ends with the same weights, bit for bit, as one never stopped (at a
 * fixed thread count). */
#include "cli.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_LATEST "checkpoint.safetensors"

/* "checkpoint.safetensors" -> -1, "checkpoint-STEP.safetensors" -> STEP, anything else -> -2. */
static int64_t ckpt_name_step(const char *name) {
    if (!strcmp(name, CKPT_LATEST)) return -1;
    if (strncmp(name, "checkpoint-", 11)) return -2;
    const char *p = name + 11;
    char *end;
    if (*p < '0' || *p > '9') return -2;
    long long s = strtoll(p, &end, 10);
    return strcmp(end, ".safetensors") ? -2 : (int64_t)s;
}

/* The step of a readable unigen checkpoint, or -1 (with the reason in why). */
static int64_t ckpt_step(const char *path, char *why, size_t n) {
    ug_st_file *f;
    if (ug_st_open(path, &f)) {
        snprintf(why, n, "%s", ug_last_error());
        return -1;
    }
    const char *fmt = ug_st_meta(f, "format"), *s = ug_st_meta(f, "step");
    char *end = NULL;
    long long step = s ? strtoll(s, &end, 10) : -1;
    int ok = fmt && !strcmp(fmt, "unigen-checkpoint-1") && s && !*end && step >= 0;
    if (!ok) snprintf(why, n, "%s: not a unigen training checkpoint (no format/step metadata)", path);
    ug_st_close(f);
    return ok ? (int64_t)step : -1;
}

/* The readable checkpoint of DIR with the highest step (ties: checkpoint.safetensors). Files
 * that do not parse are reported and passed over. Returns 0, or 1 with a message printed. */
static int find_latest(const char *dir, char *path, size_t n, int64_t *step) {
    DIR *d = opendir(dir);
    if (!d) return cli_error("--resume %s: cannot open the run directory: %s", dir, strerror(errno));
    int64_t best = -1;
    char p[4400], why[5000];
    for (struct dirent *e; (e = readdir(d));) {
        int64_t named = ckpt_name_step(e->d_name);
        if (named == -2) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        int64_t s = ckpt_step(p, why, sizeof why);
        if (s < 0) {
            fprintf(stderr, "unigen: passing over %s: %s\n", p, why);
            continue;
        }
        if (s > best || (s == best && named == -1)) {
            best = s;
            snprintf(path, n, "%s", p);
        }
    }
    closedir(d);
    if (best < 0)
        return cli_error("--resume %s: no readable checkpoint in the directory (expected %s or "
                         "checkpoint-STEP.safetensors written by unigen train)", dir, CKPT_LATEST);
    *step = best;
    return 0;
}

/* Leftovers of a save cut short ("<name>.tmp.<pid>"): never read, removed on resume. */
static void remove_partial_saves(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char p[4400];
    for (struct dirent *e; (e = readdir(d));)
        if (!strncmp(e->d_name, "checkpoint", 10) && strstr(e->d_name, ".safetensors.tmp.")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            remove(p);
        }
    closedir(d);
}

static int same_dir(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) || stat(b, &sb)) return !strcmp(a, b);
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cli_resume_config(int cmd, const char *cmd_name, int argc, char **argv, cli_cfg *cfg) {
    char dir[4096], path[4400], err[1024];
    snprintf(dir, sizeof dir, "%s", cfg->resume);
    if (!*dir) {
        fprintf(stderr, "unigen: error: --resume needs a run directory\n");
        return 2;
    }
    if (cfg->out && !same_dir(cfg->out, dir)) {
        fprintf(stderr, "unigen: error: --out %s and --resume %s name different directories (a "
                        "resumed run continues in its own directory)\n", cfg->out, dir);
        return 2;
    }
    int64_t step;
    if (find_latest(dir, path, sizeof path, &step)) return 1;
    char *json = NULL;
    if (ug_ckpt_config(path, &json)) return cli_error("%s", ug_last_error());
    cli_cfg_free(cfg);
    int rc = cli_parse_base(cmd, cmd_name, argc, argv, json, path, cfg, err, sizeof err);
    free(json);
    if (rc) {
        fprintf(stderr, "unigen: error: %s\n", err);
        return rc;
    }
    if (!cfg->out && !(cfg->out = strdup(dir))) return cli_error("out of memory");
    return 0;
}

int cli_run_check_out(const cli_cfg *cfg) {
    if (cfg->resume) return 0;
    DIR *d = opendir(cfg->out);
    if (!d) return 0;
    int found = 0;
    for (struct dirent *e; (e = readdir(d)) && !found;) found = ckpt_name_step(e->d_name) != -2;
    closedir(d);
    if (found)
        return cli_error("--out %s already holds the checkpoints of a run: continue it with "
                         "--resume %s, or choose another --out", cfg->out, cfg->out);
    return 0;
}

/* Loader state stored with each checkpoint: epoch and position (in examples) within it, and
 * the data set size they refer to. */
static void loader_state_json(const ug_loader *L, char *buf, size_t n) {
    snprintf(buf, n, "{\"epoch\": %" PRIu32 ", \"pos\": %" PRId64 ", \"n\": %" PRId64 "}",
             L->epoch, L->pos, L->ds->n);
}

/* The loader state of a checkpoint without train_state: replays the training loop's draws. */
static void loader_replay(ug_loader *L, int64_t step) {
    ug_loader_start_epoch(L, 0);
    for (int64_t s = 0; s < step; s++)
        if (!ug_loader_next(L, NULL, NULL, NULL)) {
            ug_loader_start_epoch(L, L->epoch + 1);
            ug_loader_next(L, NULL, NULL, NULL);
        }
}

int cli_resume_load(const cli_cfg *cfg, ug_params *ps, ug_ema *ema, ug_adam *adam, ug_loader *L,
                    int64_t *start_step) {
    char path[4400];
    int64_t step;
    *start_step = 0;
    if (!cfg->resume) return 0;
    if (find_latest(cfg->resume, path, sizeof path, &step)) return 1;
    if (ug_ckpt_load(path, ps, ema && ema->w ? ema : NULL, adam, &step))
        return cli_error("%s", ug_last_error());
    ug_st_file *f;
    if (ug_st_open(path, &f)) return cli_error("%s", ug_last_error());
    const char *ts = ug_st_meta(f, "train_state");
    cJSON *j = ts ? cJSON_Parse(ts) : NULL;
    const cJSON *je = cJSON_GetObjectItemCaseSensitive(j, "epoch"),
                *jp = cJSON_GetObjectItemCaseSensitive(j, "pos"),
                *jn = cJSON_GetObjectItemCaseSensitive(j, "n");
    int rc = 0;
    if (!ts) {
        loader_replay(L, step);
    } else if (!cJSON_IsNumber(je) || !cJSON_IsNumber(jp) || !cJSON_IsNumber(jn) ||
               je->valuedouble < 0 || je->valuedouble > 4294967295.0 || jp->valuedouble < 0 ||
               jp->valuedouble > (double)L->shard_n) {
        rc = cli_error("%s: __metadata__ train_state is malformed: %s", path, ts);
    } else if ((int64_t)jn->valuedouble != L->ds->n) {
        rc = cli_error("%s: the run was trained on %lld examples, --data %s now gives %lld (resume "
                       "needs the same data set)", path, (long long)jn->valuedouble, cfg->data,
                       (long long)L->ds->n);
    } else {
        ug_loader_start_epoch(L, (uint32_t)je->valuedouble);
        L->pos = (int64_t)jp->valuedouble;
    }
    cJSON_Delete(j);
    ug_st_close(f);
    if (rc) return rc;
    remove_partial_saves(cfg->resume);
    *start_step = step;
    if (step >= cfg->steps) {
        fprintf(stderr, "unigen: %s is already at step %lld of %lld (give more --steps to go on)\n",
                cfg->resume, (long long)step, (long long)cfg->steps);
        return -1;
    }
    fprintf(stderr, "unigen: resuming %s at step %lld (epoch %u) from %s\n", cfg->resume,
            (long long)step, (unsigned)L->epoch, path);
    return 0;
}

FILE *cli_metrics_open(const char *dir, int64_t resumed_step) {
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    if (resumed_step >= 0) {
        /* Keep the complete lines up to the checkpoint's step: later ones are logged again. */
        FILE *f = fopen(path, "r");
        if (f) {
            size_t cap = 1 << 16, len = 0;
            char *keep = malloc(cap), line[4096];
            while (keep && fgets(line, sizeof line, f)) {
                size_t l = strlen(line);
                if (!l || line[l - 1] != '\n') continue;   /* torn by a kill mid-write */
                const char *ps = strstr(line, "\"step\": ");
                if (ps && strtoll(ps + 8, NULL, 10) > resumed_step) continue;
                if (len + l + 1 > cap) {
                    char *k2 = realloc(keep, cap *= 2);
                    if (!k2) { free(keep); keep = NULL; break; }
                    keep = k2;
                }
                memcpy(keep + len, line, l + 1);
                len += l;
            }
            fclose(f);
            if (!keep) { cli_error("out of memory"); return NULL; }
            keep[len] = 0;
            int rc = cli_write_text(path, keep);
            free(keep);
            if (rc) return NULL;
        }
    }
    FILE *m = fopen(path, resumed_step >= 0 ? "a" : "w");
    if (!m) cli_error("%s: cannot write: %s", path, strerror(errno));
    return m;
}

static int snapshot_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* --keep N: removes all but the N newest snapshots. */
static void prune_snapshots(const char *dir, int64_t keep) {
    DIR *d = opendir(dir);
    if (!d) return;
    int64_t *steps = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        int64_t s = ckpt_name_step(e->d_name);
        if (s < 0) continue;
        if (n == cap) {
            int64_t *s2 = realloc(steps, (cap = cap ? 2 * cap : 64) * sizeof *steps);
            if (!s2) break;
            steps = s2;
        }
        steps[n++] = s;
    }
    closedir(d);
    if (steps && n > (size_t)keep) {
        qsort(steps, n, sizeof *steps, snapshot_cmp);
        char p[4400];
        for (size_t i = 0; i + (size_t)keep < n; i++) {
            snprintf(p, sizeof p, "%s/checkpoint-%lld.safetensors", dir, (long long)steps[i]);
            remove(p);
        }
    }
    free(steps);
}

/* Makes latest a second name of the complete file snap (link, then an atomic rename over
 * latest). Returns 0, or -1 where the file system has no hard links. */
static int link_latest(const char *snap, const char *latest) {
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", latest, (long)getpid());
    remove(tmp);
    if (link(snap, tmp) != 0) return -1;
    if (rename(tmp, latest) != 0) {
        remove(tmp);
        return -1;
    }
    const char *slash = strrchr(latest, '/');
    char dir[4400];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - latest) : 1, slash ? latest : ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    return 0;
}

int cli_ckpt_write(const cli_cfg *cfg, const char *cfg_json, int64_t step, ug_params *ps,
                   const ug_ema *ema, const ug_adam *adam, const ug_loader *L, int snapshot,
                   char *latest, size_t latest_n) {
    char state[256], snap[4400];
    loader_state_json(L, state, sizeof state);
    snprintf(latest, latest_n, "%s/" CKPT_LATEST, cfg->out);
    const ug_ema *e = ema && ema->w ? ema : NULL;
    if (snapshot) {
        snprintf(snap, sizeof snap, "%s/checkpoint-%lld.safetensors", cfg->out, (long long)step);
        if (ug_ckpt_save_state(snap, ps, e, adam, step, cfg_json, state))
            return cli_error("%s", ug_last_error());
        if (link_latest(snap, latest) == 0) {
            if (cfg->keep > 0) prune_snapshots(cfg->out, cfg->keep);
            return 0;
        }
    }
    if (ug_ckpt_save_state(latest, ps, e, adam, step, cfg_json, state))
        return cli_error("%s", ug_last_error());
    if (snapshot && cfg->keep > 0) prune_snapshots(cfg->out, cfg->keep);
    return 0;
}
