/* info.c — `unigen info --ckpt FILE`: what a checkpoint holds (tensors, shapes, configuration,
 * step), read with the validating safetensors reader. */
#include "cli.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_info(cli_cfg *cfg) {
    if (!cfg->ckpt) return cli_error("info: --ckpt FILE is required");
    ug_st_file *f;
    if (ug_st_open(cfg->ckpt, &f)) return cli_error("%s", ug_last_error());
    int n = ug_st_count(f);
    int64_t weights = 0, total = 0;
    for (int i = 0; i < n; i++) {
        const char *name = ug_st_name(f, i);
        int64_t k = ug_st_numel(f, name);
        total += k;
        if (strncmp(name, "ema.", 4) && strncmp(name, "optim.", 6)) weights += k;
    }
    const char *step = ug_st_meta(f, "step"), *conf = ug_st_meta(f, "config");
    if (cfg->json) {
        cJSON *o = cJSON_CreateObject(), *ts = cJSON_AddArrayToObject(o, "tensors");
        cJSON_AddStringToObject(o, "file", cfg->ckpt);
        for (int i = 0; i < n; i++) {
            const char *name = ug_st_name(f, i);
            ug_dtype dt;
            int nd;
            int64_t sh[UG_MAX_DIMS];
            cJSON *t = cJSON_CreateObject();
            cJSON_AddStringToObject(t, "name", name);
            if (ug_st_info(f, name, &dt, &nd, sh) == UG_OK) {
                cJSON_AddStringToObject(t, "dtype", ug_dtype_name(dt));
                cJSON *s = cJSON_AddArrayToObject(t, "shape");
                for (int k = 0; k < nd; k++) cJSON_AddItemToArray(s, cJSON_CreateNumber((double)sh[k]));
            }
            cJSON_AddItemToArray(ts, t);
        }
        cJSON_AddNumberToObject(o, "parameters", (double)weights);
        cJSON *meta = cJSON_AddObjectToObject(o, "metadata");
        for (int i = 0; i < ug_st_meta_count(f); i++) {
            const char *k = ug_st_meta_key(f, i);
            cJSON *parsed = !strcmp(k, "config") ? cJSON_Parse(ug_st_meta(f, k)) : NULL;
            if (parsed) cJSON_AddItemToObject(meta, k, parsed);
            else cJSON_AddStringToObject(meta, k, ug_st_meta(f, k));
        }
        char *txt = cJSON_PrintUnformatted(o);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        printf("%s: %d tensors, %lld values, %lld model parameters, step %s\n", cfg->ckpt, n,
               (long long)total, (long long)weights, step ? step : "?");
        for (int i = 0; i < ug_st_meta_count(f); i++) {
            const char *k = ug_st_meta_key(f, i);
            if (strcmp(k, "config")) printf("  %-10s %s\n", k, ug_st_meta(f, k));
        }
        if (conf) {
            cJSON *c = cJSON_Parse(conf);
            printf("configuration:\n");
            for (cJSON *it = c ? c->child : NULL; it; it = it->next) {
                char *v = cJSON_PrintUnformatted(it);
                printf("  %-14s %s\n", it->string, v);
                free(v);
            }
            cJSON_Delete(c);
        }
        printf("%-40s %-5s %s\n", "tensor", "dtype", "shape");
        for (int i = 0; i < n; i++) {
            const char *name = ug_st_name(f, i);
            ug_dtype dt;
            int nd;
            int64_t sh[UG_MAX_DIMS];
            if (ug_st_info(f, name, &dt, &nd, sh)) continue;
            char shape[128] = "(";
            size_t p = 1;
            for (int k = 0; k < nd && p < sizeof shape - 24; k++)
                p += (size_t)snprintf(shape + p, sizeof shape - p, k ? ", %lld" : "%lld", (long long)sh[k]);
            snprintf(shape + p, sizeof shape - p, ")");
            printf("%-40s %-5s %s\n", name, ug_dtype_name(dt), shape);
        }
    }
    ug_st_close(f);
    return 0;
}
