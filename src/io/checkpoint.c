/* checkpoint.c — training state in one safetensors file, readable by any safetensors reader:
 * weights under their own names, "ema.<name>", "optim.m.<name>", "optim.v.<name>", and
 * __metadata__ {format, step, adam_t, ema_decay, config, train_state}. Written through ug_st_write (temp
 * file, fsync, rename): a crash never leaves a torn checkpoint. */
#include "core/core.h"
#include <inttypes.h>

#define CKPT_FORMAT "unigen-checkpoint-1"

ug_status ug_ckpt_save(const char *path, ug_params *ps, const ug_ema *ema, const ug_adam *adam,
                       int64_t step, const char *config_json) {
    return ug_ckpt_save_state(path, ps, ema, adam, step, config_json, NULL);
}

ug_status ug_ckpt_save_state(const char *path, ug_params *ps, const ug_ema *ema,
                             const ug_adam *adam, int64_t step, const char *config_json,
                             const char *train_state_json) {
    ug_st_writer *w;
    ug_status st = ug_st_writer_create(&w);
    if (st) return st;
    int n = ug_params_num_tensors(ps);
    const float *base = ug_params_data(ps);
    /* Names are built once and kept alive until the write. */
    size_t cap = 0;
    for (int i = 0; i < n; i++) cap += 3 * (strlen(ug_params_tensor(ps, i)->name) + 16);
    char *names = malloc(cap ? cap : 1), *p = names;
    if (!names) {
        ug_st_writer_free(w);
        return ug_fail(UG_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < n && !st; i++) {
        ug_tensor *t = ug_params_tensor(ps, i);
        int64_t off = t->data - base;
        st = ug_st_writer_add(w, t->name, UG_DT_F32, t->ndim, t->shape, t->data);
        if (!st && ema && ema->w) {
            sprintf(p, "ema.%s", t->name);
            st = ug_st_writer_add(w, p, UG_DT_F32, t->ndim, t->shape, ema->w + off);
            p += strlen(p) + 1;
        }
        if (!st && adam && adam->m) {
            sprintf(p, "optim.m.%s", t->name);
            st = ug_st_writer_add(w, p, UG_DT_F32, t->ndim, t->shape, adam->m + off);
            p += strlen(p) + 1;
            sprintf(p, "optim.v.%s", t->name);
            if (!st) st = ug_st_writer_add(w, p, UG_DT_F32, t->ndim, t->shape, adam->v + off);
            p += strlen(p) + 1;
        }
    }
    char num[64];
    if (!st) st = ug_st_writer_set_meta(w, "format", CKPT_FORMAT);
    snprintf(num, sizeof num, "%" PRId64, step);
    if (!st) st = ug_st_writer_set_meta(w, "step", num);
    if (!st && adam) {
        snprintf(num, sizeof num, "%" PRId64, adam->t);
        st = ug_st_writer_set_meta(w, "adam_t", num);
    }
    if (!st && ema && ema->w) {
        snprintf(num, sizeof num, "%.9g", (double)ema->decay);
        st = ug_st_writer_set_meta(w, "ema_decay", num);
    }
    if (!st && config_json) st = ug_st_writer_set_meta(w, "config", config_json);
    if (!st && train_state_json) st = ug_st_writer_set_meta(w, "train_state", train_state_json);
    if (!st) st = ug_st_write(w, path);
    ug_st_writer_free(w);
    free(names);
    return st;
}

static ug_status load_tensor(const char *path, const ug_st_file *f, const char *name,
                             const ug_tensor *t, float *dst) {
    int ndim;
    int64_t shape[UG_MAX_DIMS];
    ug_dtype dt;
    if (ug_st_find(f, name) < 0)
        return ug_fail(UG_ERR_FORMAT, "%s: tensor '%s' is missing", path, name);
    ug_status st = ug_st_info(f, name, &dt, &ndim, shape);
    if (st) return st;
    int same = ndim == t->ndim;
    for (int k = 0; same && k < ndim; k++) same = shape[k] == t->shape[k];
    if (!same) {
        char want[96], got[96] = "(";
        size_t g = 1;
        for (int k = 0; k < ndim && g < sizeof got - 24; k++)
            g += (size_t)snprintf(got + g, sizeof got - g, k ? ", %lld" : "%lld", (long long)shape[k]);
        snprintf(got + g, sizeof got - g, ")");
        return ug_fail(UG_ERR_SHAPE, "%s: tensor '%s' has shape %s, the model expects %s", path,
                       name, got, ug_shape_str(t, want, sizeof want));
    }
    return ug_st_read_f32(f, name, dst, t->numel);
}

static int64_t meta_int(const ug_st_file *f, const char *key, int64_t dflt) {
    const char *v = ug_st_meta(f, key);
    if (!v) return dflt;
    char *end;
    long long x = strtoll(v, &end, 10);
    return *end ? dflt : (int64_t)x;
}

ug_status ug_ckpt_load(const char *path, ug_params *ps, ug_ema *ema, ug_adam *adam,
                       int64_t *step) {
    ug_st_file *f;
    ug_status st = ug_st_open(path, &f);
    if (st) return st;
    const char *fmt = ug_st_meta(f, "format");
    if (!fmt || strcmp(fmt, CKPT_FORMAT)) {
        /* fmt points into f: build the message before closing it. */
        st = ug_fail(UG_ERR_FORMAT, "%s: __metadata__ \"format\" is %s%s%s, expected \"%s\"",
                     path, fmt ? "\"" : "", fmt ? fmt : "missing", fmt ? "\"" : "", CKPT_FORMAT);
        ug_st_close(f);
        return st;
    }
    int n = ug_params_num_tensors(ps);
    const float *base = ug_params_data(ps);
    char name[600];
    for (int i = 0; i < n && !st; i++) {
        ug_tensor *t = ug_params_tensor(ps, i);
        int64_t off = t->data - base;
        st = load_tensor(path, f, t->name, t, t->data);
        if (!st && ema && ema->w) {
            snprintf(name, sizeof name, "ema.%s", t->name);
            st = load_tensor(path, f, name, t, ema->w + off);
        }
        if (!st && adam && adam->m) {
            snprintf(name, sizeof name, "optim.m.%s", t->name);
            st = load_tensor(path, f, name, t, adam->m + off);
            snprintf(name, sizeof name, "optim.v.%s", t->name);
            if (!st) st = load_tensor(path, f, name, t, adam->v + off);
        }
    }
    if (!st && adam) adam->t = meta_int(f, "adam_t", 0);
    if (!st && step) *step = meta_int(f, "step", 0);
    ug_st_close(f);
    return st;
}

ug_status ug_ckpt_config(const char *path, char **config_json) {
    *config_json = NULL;
    ug_st_file *f;
    ug_status st = ug_st_open(path, &f);
    if (st) return st;
    const char *c = ug_st_meta(f, "config");
    if (!c) st = ug_fail(UG_ERR_FORMAT, "%s: __metadata__ has no \"config\"", path);
    else if (!(*config_json = strdup(c))) st = ug_fail(UG_ERR_NOMEM, "%s: out of memory", path);
    ug_st_close(f);
    return st;
}
