/* gmm.c — an isotropic Gaussian mixture read from JSON: sampling, and the exact log-density of
 * the mixture convolved with N(0, sigma^2 I), p_sigma(x) = sum_k w_k N(x; mu_k, (s_k^2 +
 * sigma^2) I) — the marginal of the diffusion forward process x + sigma eps (Karras et al. 2022,
 * EDM), against which samplers and likelihoods are checked exactly.
 * The JSON is strict: required weights / means / stds, a few descriptive keys, nothing else, so a
 * typo ("std") is an error rather than a silently ignored field. */
#include "core/core.h"
#include "unigen.h"
#include <cjson/cJSON.h>
#include <math.h>

static const char *const k_allowed[] = {"weights", "means", "stds", "name", "dim",
                                        "num_components", "description"};
#define N_ALLOWED ((int)(sizeof k_allowed / sizeof k_allowed[0]))

void ug_gmm_free(ug_gmm *g) {
    if (!g) return;
    free(g->w);
    free(g->mu);
    free(g->s);
    memset(g, 0, sizeof *g);
}

/* Line and column of a byte offset, for parse-error messages. */
static void line_col(const char *text, size_t off, int *line, int *col) {
    *line = 1; *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n') { (*line)++; *col = 1; } else (*col)++;
    }
}

static const char *json_type(const cJSON *v) {
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "something else";
}

/* A number array of expected length (or any length >= 1 when want < 0). */
static ug_status num_array(const cJSON *a, const char *what, const char *key, int want,
                           double *dst, int *len) {
    if (!cJSON_IsArray(a))
        return ug_fail(UG_ERR_FORMAT, "%s: \"%s\" must be an array of numbers, found %s", what,
                       key, json_type(a));
    int n = cJSON_GetArraySize(a);
    if (want >= 0 && n != want)
        return ug_fail(UG_ERR_FORMAT, "%s: \"%s\" has %d entries, expected %d", what, key, n,
                       want);
    int i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            return ug_fail(UG_ERR_FORMAT, "%s: \"%s\"[%d] must be a finite number, found %s",
                           what, key, i, json_type(e));
        if (dst) dst[i] = e->valuedouble;
    }
    if (len) *len = n;
    return UG_OK;
}

static ug_status parse_obj(const cJSON *root, const char *what, ug_gmm *g) {
    if (!cJSON_IsObject(root))
        return ug_fail(UG_ERR_FORMAT, "%s: expected a JSON object at the top, found %s", what,
                       json_type(root));
    const cJSON *jw = NULL, *jm = NULL, *js = NULL, *jdim = NULL, *jk = NULL;
    for (const cJSON *e = root->child; e; e = e->next) {
        int known = -1;
        for (int i = 0; i < N_ALLOWED; i++)
            if (strcmp(e->string, k_allowed[i]) == 0) known = i;
        if (known < 0)
            return ug_fail(UG_ERR_FORMAT,
                           "%s: unknown key \"%s\" (allowed: weights, means, stds, name, dim, "
                           "num_components, description)", what, e->string);
        for (const cJSON *f = root->child; f != e; f = f->next)
            if (strcmp(f->string, e->string) == 0)
                return ug_fail(UG_ERR_FORMAT, "%s: key \"%s\" appears twice", what, e->string);
        if ((known == 3 || known == 6) && !cJSON_IsString(e))
            return ug_fail(UG_ERR_FORMAT, "%s: \"%s\" must be a string, found %s", what,
                           e->string, json_type(e));
        if (known == 0) jw = e;
        if (known == 1) jm = e;
        if (known == 2) js = e;
        if (known == 4) jdim = e;
        if (known == 5) jk = e;
    }
    const char *missing = !jw ? "weights" : !jm ? "means" : !js ? "stds" : NULL;
    if (missing) return ug_fail(UG_ERR_FORMAT, "%s: missing required key \"%s\"", what, missing);

    int K;
    ug_status st = num_array(jw, what, "weights", -1, NULL, &K);
    if (st) return st;
    if (K < 1) return ug_fail(UG_ERR_FORMAT, "%s: \"weights\" is empty, expected K >= 1", what);
    if (!cJSON_IsArray(jm))
        return ug_fail(UG_ERR_FORMAT, "%s: \"means\" must be an array of K arrays, found %s",
                       what, json_type(jm));
    if (cJSON_GetArraySize(jm) != K)
        return ug_fail(UG_ERR_FORMAT, "%s: \"means\" has %d rows, expected %d (len of weights)",
                       what, cJSON_GetArraySize(jm), K);
    int d = cJSON_IsArray(jm->child) ? cJSON_GetArraySize(jm->child) : 0;
    if (d < 1)
        return ug_fail(UG_ERR_FORMAT, "%s: \"means\"[0] must be a non-empty array of numbers",
                       what);
    g->K = K;
    g->d = d;
    g->w = malloc((size_t)K * sizeof *g->w);
    g->mu = malloc((size_t)K * (size_t)d * sizeof *g->mu);
    g->s = malloc((size_t)K * sizeof *g->s);
    if (!g->w || !g->mu || !g->s) return ug_fail(UG_ERR_NOMEM, "%s: out of memory", what);
    if ((st = num_array(jw, what, "weights", K, g->w, NULL))) return st;
    if ((st = num_array(js, what, "stds", K, g->s, NULL))) return st;
    int k = 0;
    for (const cJSON *row = jm->child; row; row = row->next, k++) {
        char key[32];
        snprintf(key, sizeof key, "means[%d]", k);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != d)
            return ug_fail(UG_ERR_FORMAT, "%s: \"%s\" must have %d numbers like means[0], found %s"
                           " of size %d", what, key, d, json_type(row),
                           cJSON_IsArray(row) ? cJSON_GetArraySize(row) : 0);
        if ((st = num_array(row, what, key, d, g->mu + (size_t)k * d, NULL))) return st;
    }
    double total = 0;
    for (k = 0; k < K; k++) {
        if (g->w[k] < 0)
            return ug_fail(UG_ERR_FORMAT, "%s: \"weights\"[%d] = %g, expected >= 0", what, k,
                           g->w[k]);
        if (!(g->s[k] > 0))
            return ug_fail(UG_ERR_FORMAT, "%s: \"stds\"[%d] = %g, expected > 0", what, k, g->s[k]);
        total += g->w[k];
    }
    /* An infinite sum would normalize every weight to 0: no mixture left to sample. */
    if (!(total > 0) || !isfinite(total))
        return ug_fail(UG_ERR_FORMAT, "%s: \"weights\" sum to %g, expected a finite sum > 0",
                       what, total);
    for (k = 0; k < K; k++) g->w[k] /= total;
    if (jdim && (!cJSON_IsNumber(jdim) || jdim->valuedouble != d))
        return ug_fail(UG_ERR_FORMAT, "%s: \"dim\" is %s%g, but the means have %d coordinates",
                       what, cJSON_IsNumber(jdim) ? "" : "not a number: ",
                       cJSON_IsNumber(jdim) ? jdim->valuedouble : 0.0, d);
    if (jk && (!cJSON_IsNumber(jk) || jk->valuedouble != K))
        return ug_fail(UG_ERR_FORMAT,
                       "%s: \"num_components\" is %s%g, but there are %d weights", what,
                       cJSON_IsNumber(jk) ? "" : "not a number: ",
                       cJSON_IsNumber(jk) ? jk->valuedouble : 0.0, K);
    return UG_OK;
}

ug_status ug_gmm_parse(const char *json, const char *what, ug_gmm *out) {
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int line = 0, col = 0;
        if (at && at >= json) line_col(json, (size_t)(at - json), &line, &col);
        return ug_fail(UG_ERR_FORMAT, "%s: malformed JSON near line %d, column %d", what, line,
                       col);
    }
    ug_status st = parse_obj(root, what, out);
    cJSON_Delete(root);
    if (st) ug_gmm_free(out);
    return st;
}

ug_status ug_gmm_load(const char *path, ug_gmm *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return ug_fail(UG_ERR_IO, "%s: cannot open the Gaussian mixture file", path);
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return ug_fail(UG_ERR_IO, "%s: cannot seek", path);
    }
    long len = ftell(f);
    rewind(f);
    if (len < 0 || len > (64L << 20)) {
        fclose(f);
        return ug_fail(UG_ERR_FORMAT, "%s: size %ld bytes, expected a JSON file under 64 MiB",
                       path, len);
    }
    char *buf = malloc((size_t)len + 1);
    if (!buf) { fclose(f); return ug_fail(UG_ERR_NOMEM, "%s: out of memory", path); }
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    if (got != (size_t)len) {
        free(buf);
        return ug_fail(UG_ERR_IO, "%s: read %zu of %ld bytes", path, got, len);
    }
    buf[len] = 0;
    ug_status st = ug_gmm_parse(buf, path, out);
    free(buf);
    return st;
}

ug_status ug_gmm_sample(const ug_gmm *g, int64_t first_index, int64_t n, uint64_t seed,
                        float *out, int32_t *labels) {
    if (n < 0 || first_index < 0)
        return ug_fail(UG_ERR_INVALID_ARG, "ug_gmm_sample: n = %lld, first = %lld (need >= 0)",
                       (long long)n, (long long)first_index);
    const int d = g->d;
#pragma omp parallel for schedule(static) if (n * d >= 8192)
    for (int64_t i = 0; i < n; i++) {
        ug_rng r = ug_rng_make(seed, (uint64_t)(first_index + i), 0);
        int32_t k;
        ug_rng_categorical(&r, g->w, g->K, &k, 1);
        float *o = out + i * d;
        ug_rng_normal(&r, o, d);
        for (int j = 0; j < d; j++) o[j] = (float)(g->mu[(size_t)k * d + j] + g->s[k] * o[j]);
        if (labels) labels[i] = k;
    }
    return UG_OK;
}

double ug_gmm_logpdf(const ug_gmm *g, const double *x, double sigma) {
    const double log2pi = 1.8378770664093454836;
    double best = -INFINITY, sum = 0;
    /* One pass: the running maximum rescales the partial sum (streaming log-sum-exp). */
    for (int k = 0; k < g->K; k++) {
        if (!(g->w[k] > 0)) continue;
        double v = g->s[k] * g->s[k] + sigma * sigma, r2 = 0;
        for (int j = 0; j < g->d; j++) {
            double t = x[j] - g->mu[(size_t)k * g->d + j];
            r2 += t * t;
        }
        double lk = log(g->w[k]) - 0.5 * g->d * (log2pi + log(v)) - 0.5 * r2 / v;
        if (lk == -INFINITY) continue;
        if (lk > best) { sum = sum * exp(best - lk) + 1; best = lk; }
        else sum += exp(lk - best);
    }
    return best + log(sum);
}
