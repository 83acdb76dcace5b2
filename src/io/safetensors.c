/* safetensors.c — reader and writer of the safetensors format
 * (https://github.com/huggingface/safetensors, checks as in its src/tensor.rs):
 *   [u64 little-endian N][N bytes of UTF-8 JSON header][data area]
 *   header = {"__metadata__"?: {str: str}, name: {"dtype": str, "shape": [uint...],
 *             "data_offsets": [begin, end]}, ...}, offsets relative to the data area.
 * The reader refuses, with a message naming the file, the field, the expectation and the
 * finding: header length above 100,000,000 or beyond the file, non-UTF-8 or malformed JSON,
 * a non-object root, entries without exactly dtype/shape/data_offsets, unknown dtypes, dims
 * or offsets that are not non-negative integers, element-count overflow, a byte size that
 * disagrees with the shape, offsets out of bounds, gaps or overlaps between tensors (sorted
 * by offset they must tile the data area exactly), duplicate names, non-string metadata.
 * Trailing spaces in the header (the reference pads it to 8 bytes) are accepted. */
#include "io/io.h"
#include "core/core.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>

/* Numbers in the header are JSON; cJSON holds them as double, exact up to 2^53. */
#define ST_MAX_INT 9007199254740992.0

typedef struct {
    char *name;
    ug_dtype dtype;
    int ndim;
    int64_t *shape;
    int64_t numel;
    uint64_t begin, end;
} st_entry;

struct ug_st_file {
    char *path;
    unsigned char *buf;             /* the whole file */
    size_t size;
    const unsigned char *data;      /* data area: buf + 8 + N */
    uint64_t data_size;
    st_entry *e;                    /* in data-offset order */
    int n;
    int *by_name;                   /* indices into e sorted by name, for lookup */
    char **meta_key, **meta_val;
    int nmeta;
};

/* ---------------------------------------------------------------- reading */

/* Byte offset of the first invalid UTF-8 sequence (RFC 3629: no overlongs, no surrogates,
 * at most U+10FFFF), or -1 when all n bytes are valid. */
static int64_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return (int64_t)i;
        if (n - i < len) return (int64_t)i;
        if (s[i + 1] < lo || s[i + 1] > hi) return (int64_t)i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return (int64_t)i;
        i += len;
    }
    return -1;
}

static const char *json_type_name(const cJSON *j) {
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "an invalid value";
}

/* A non-negative integer as JSON number, into *v; 0 when it is anything else. */
static int json_uint(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!isfinite(d) || d < 0 || d != floor(d) || d > ST_MAX_INT) return 0;
    *v = (uint64_t)d;
    return 1;
}

/* "found" text for a value that failed json_uint. */
static const char *json_found(const cJSON *j, char *buf, size_t n) {
    if (cJSON_IsNumber(j)) snprintf(buf, n, "%.17g", j->valuedouble);
    else snprintf(buf, n, "%s", json_type_name(j));
    return buf;
}

/* Valid safetensors dtypes that unigen cannot convert (sub-byte and 8-bit floats, complex). */
static int known_unsupported(const char *s) {
    static const char *const names[] = {"F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3",
                                        "F8_E8M0", "C64"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(s, names[i]) == 0) return 1;
    return 0;
}

static ug_status parse_entry(ug_st_file *f, const cJSON *j, st_entry *e) {
    const char *p = f->path, *nm = j->string;
    char fb[64];
    if (!cJSON_IsObject(j))
        return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': expected an object, found %s", p,
                       nm, json_type_name(j));
    const cJSON *dt = NULL, *sh = NULL, *off = NULL;
    for (const cJSON *c = j->child; c; c = c->next) {
        const cJSON **slot = strcmp(c->string, "dtype") == 0          ? &dt
                             : strcmp(c->string, "shape") == 0        ? &sh
                             : strcmp(c->string, "data_offsets") == 0 ? &off
                                                                      : NULL;
        if (!slot)
            return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': expected only the fields "
                           "dtype, shape, data_offsets, found \"%s\"", p, nm, c->string);
        if (*slot)
            return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': field \"%s\" appears twice",
                           p, nm, c->string);
        *slot = c;
    }
    const char *missing = !dt ? "dtype" : !sh ? "shape" : !off ? "data_offsets" : NULL;
    if (missing)
        return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': missing field \"%s\"", p, nm,
                       missing);
    if (!cJSON_IsString(dt))
        return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': dtype: expected a string, found %s",
                       p, nm, json_type_name(dt));
    if (ug_dtype_from_name(dt->valuestring, &e->dtype) != UG_OK) {
        if (known_unsupported(dt->valuestring))
            return ug_fail(UG_ERR_UNSUPPORTED, "%s: header: tensor '%s': dtype %s is valid "
                           "safetensors but not supported by unigen", p, nm, dt->valuestring);
        return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': unknown dtype: expected one of "
                       "BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64, found "
                       "\"%s\"", p, nm, dt->valuestring);
    }
    if (!cJSON_IsArray(sh))
        return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': shape: expected a list, found %s",
                       p, nm, json_type_name(sh));
    int nd = cJSON_GetArraySize(sh);
    e->ndim = nd;
    e->shape = malloc((size_t)(nd ? nd : 1) * sizeof *e->shape);
    if (!e->shape) return ug_fail(UG_ERR_NOMEM, "%s: cannot allocate a shape of %d dims", p, nd);
    uint64_t numel = 1;
    int k = 0;
    for (const cJSON *c = sh->child; c; c = c->next, k++) {
        uint64_t d;
        if (!json_uint(c, &d))
            return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': shape[%d]: expected a "
                           "non-negative integer, found %s", p, nm, k, json_found(c, fb, sizeof fb));
        e->shape[k] = (int64_t)d;
        if (d && numel > (uint64_t)INT64_MAX / d)
            return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': shape: the element count "
                           "overflows 64 bits (dims up to shape[%d] = %llu)", p, nm, k,
                           (unsigned long long)d);
        numel *= d;
    }
    e->numel = (int64_t)numel;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': data_offsets: expected a list of "
                       "2 integers, found %s of %d", p, nm, json_type_name(off),
                       cJSON_IsArray(off) ? cJSON_GetArraySize(off) : 1);
    if (!json_uint(off->child, &e->begin) || !json_uint(off->child->next, &e->end))
        return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': data_offsets: expected "
                       "non-negative integers, found %s", p, nm,
                       json_found(json_uint(off->child, &e->begin) ? off->child->next : off->child,
                                  fb, sizeof fb));
    if (e->begin > e->end)
        return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': data_offsets: expected begin <= "
                       "end, found [%llu, %llu]", p, nm, (unsigned long long)e->begin,
                       (unsigned long long)e->end);
    size_t isz = ug_dtype_size(e->dtype);
    if (numel > UINT64_MAX / isz)
        return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': byte size overflows 64 bits "
                       "(%llu elements of %s)", p, nm, (unsigned long long)numel, dt->valuestring);
    if (e->end - e->begin != numel * isz)
        return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': data_offsets: expected %llu bytes "
                       "(%llu elements of %s), found [%llu, %llu] = %llu bytes: size mismatch", p,
                       nm, (unsigned long long)(numel * isz), (unsigned long long)numel,
                       dt->valuestring, (unsigned long long)e->begin, (unsigned long long)e->end,
                       (unsigned long long)(e->end - e->begin));
    if (e->end > f->data_size)
        return ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': data_offsets: end %llu is beyond "
                       "the data area of %llu bytes", p, nm, (unsigned long long)e->end,
                       (unsigned long long)f->data_size);
    e->name = strdup(nm);
    if (!e->name) return ug_fail(UG_ERR_NOMEM, "%s: cannot allocate a tensor name", p);
    return UG_OK;
}

static ug_status parse_meta(ug_st_file *f, const cJSON *j) {
    const char *p = f->path;
    if (!cJSON_IsObject(j))
        return ug_fail(UG_ERR_FORMAT, "%s: header: __metadata__: expected an object of strings, "
                       "found %s", p, json_type_name(j));
    int n = cJSON_GetArraySize(j);
    f->meta_key = calloc((size_t)n + 1, sizeof *f->meta_key);
    f->meta_val = calloc((size_t)n + 1, sizeof *f->meta_val);
    if (!f->meta_key || !f->meta_val) return ug_fail(UG_ERR_NOMEM, "%s: cannot allocate metadata", p);
    for (const cJSON *c = j->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return ug_fail(UG_ERR_FORMAT, "%s: header: __metadata__: key \"%s\": expected a "
                           "string value, found %s", p, c->string, json_type_name(c));
        for (int i = 0; i < f->nmeta; i++)
            if (strcmp(f->meta_key[i], c->string) == 0)
                return ug_fail(UG_ERR_FORMAT, "%s: header: __metadata__: duplicate key \"%s\"", p,
                               c->string);
        f->meta_key[f->nmeta] = strdup(c->string);
        f->meta_val[f->nmeta] = strdup(c->valuestring);
        f->nmeta++;
        if (!f->meta_key[f->nmeta - 1] || !f->meta_val[f->nmeta - 1])
            return ug_fail(UG_ERR_NOMEM, "%s: cannot allocate metadata", p);
    }
    return UG_OK;
}

/* cJSON keeps the number's value, not its spelling: 3.0 and 3e0 would pass json_uint. The
 * reference parses dims and offsets as integers, so any fraction or exponent outside a string
 * is refused (metadata values are strings, so every bare number is a dim or an offset). */
static ug_status check_integer_spelling(const char *p, const char *h, size_t n) {
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') { in_str = 1; continue; }
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t b = i;
            int frac = 0;
            while (i < n && strchr("0123456789+-.eE", h[i]) && h[i]) {
                if (h[i] == '.' || h[i] == 'e' || h[i] == 'E') frac = 1;
                i++;
            }
            if (frac)
                return ug_fail(UG_ERR_FORMAT, "%s: header: byte %zu: expected an integer (shape "
                               "and data_offsets entries), found the number %.*s", p, b,
                               (int)(i - b > 40 ? 40 : i - b), h + b);
            i--;
        }
    }
    return UG_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* qsort has no user pointer; the base is thread-local so concurrent opens do not clash. */
static _Thread_local const st_entry *t_sort_base;
static int cmp_name_idx(const void *a, const void *b) {
    return strcmp(t_sort_base[*(const int *)a].name, t_sort_base[*(const int *)b].name);
}

static ug_status parse_header(ug_st_file *f, const char *h, size_t hn) {
    const char *p = f->path;
    int64_t bad = utf8_invalid_at((const unsigned char *)h, hn);
    if (bad >= 0)
        return ug_fail(UG_ERR_FORMAT, "%s: header: expected UTF-8 text, found the byte 0x%02x at "
                       "header byte %lld", p, (unsigned char)h[bad], (long long)bad);
    for (size_t i = 0; i < hn; i++)
        if ((unsigned char)h[i] < 0x20 && (h[i] == 0 || !strchr("\t\r\n", h[i])))
            return ug_fail(UG_ERR_FORMAT, "%s: header: expected JSON text, found the control byte "
                           "0x%02x at header byte %zu", p, (unsigned char)h[i], i);
    if (hn == 0 || h[0] != '{')
        return ug_fail(UG_ERR_FORMAT, "%s: header: expected a JSON object starting with '{', "
                       "found %s", p, hn ? "another character" : "an empty header");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, hn, &end, 0);
    if (!root) {
        size_t at = end && end >= h && end <= h + hn ? (size_t)(end - h) : 0;
        return ug_fail(UG_ERR_FORMAT, "%s: header: expected well-formed JSON, found an error near "
                       "header byte %zu of %zu (not JSON or truncated)", p, at, hn);
    }
    ug_status st = UG_OK;
    for (const char *q = end; q < h + hn; q++)
        if (!strchr(" \t\r\n", *q) || !*q) {
            st = ug_fail(UG_ERR_FORMAT, "%s: header: expected only spaces after the JSON object, "
                         "found other bytes at header byte %zu", p, (size_t)(q - h));
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        st = ug_fail(UG_ERR_FORMAT, "%s: header: expected a JSON object, found %s", p,
                     json_type_name(root));
        goto done;
    }
    int nkeys = cJSON_GetArraySize(root);
    f->e = calloc((size_t)nkeys + 1, sizeof *f->e);
    f->by_name = calloc((size_t)nkeys + 1, sizeof *f->by_name);
    if (!f->e || !f->by_name) {
        st = ug_fail(UG_ERR_NOMEM, "%s: cannot allocate %d header entries", p, nkeys);
        goto done;
    }
    int seen_meta = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if (seen_meta++) {
                st = ug_fail(UG_ERR_FORMAT, "%s: header: duplicate key \"__metadata__\"", p);
                goto done;
            }
            if ((st = parse_meta(f, c)) != UG_OK) goto done;
            continue;
        }
        st_entry *e = &f->e[f->n];
        st = parse_entry(f, c, e);
        if (e->name) f->n++;
        else free(e->shape), e->shape = NULL;
        if (st != UG_OK) goto done;
    }
    if ((st = check_integer_spelling(p, h, hn)) != UG_OK) goto done;
    for (int i = 0; i < f->n; i++) f->by_name[i] = i;
    t_sort_base = f->e;
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name_idx);
    for (int i = 1; i < f->n; i++)
        if (strcmp(f->e[f->by_name[i]].name, f->e[f->by_name[i - 1]].name) == 0) {
            st = ug_fail(UG_ERR_FORMAT, "%s: header: duplicate tensor name '%s'", p,
                         f->e[f->by_name[i]].name);
            goto done;
        }
    qsort(f->e, (size_t)f->n, sizeof *f->e, cmp_offset);
    uint64_t at = 0;
    for (int i = 0; i < f->n; i++) {
        const st_entry *e = &f->e[i];
        if (e->begin != at) {
            st = ug_fail(UG_ERR_FORMAT, "%s: header: tensor '%s': data_offsets: expected begin %llu "
                         "(%s%s%s), found %llu: %s between tensors", p, e->name,
                         (unsigned long long)at, i ? "the end of tensor '" : "the start of the data area",
                         i ? f->e[i - 1].name : "", i ? "'" : "", (unsigned long long)e->begin,
                         e->begin > at ? "gap" : "overlap");
            goto done;
        }
        at = e->end;
    }
    if (at != f->data_size) {
        st = ug_fail(UG_ERR_FORMAT, "%s: data area: expected the tensors to cover all %llu bytes, "
                     "found them covering %llu: %llu trailing bytes not covered", p,
                     (unsigned long long)f->data_size, (unsigned long long)at,
                     (unsigned long long)(f->data_size - at));
        goto done;
    }
    /* by_name indexed the pre-sort order: rebuild it over the offset-sorted entries. */
    for (int i = 0; i < f->n; i++) f->by_name[i] = i;
    t_sort_base = f->e;
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name_idx);
done:
    cJSON_Delete(root);
    return st;
}

ug_status ug_st_open(const char *path, ug_st_file **out) {
    *out = NULL;
    if (!path) return ug_fail(UG_ERR_INVALID_ARG, "ug_st_open: path is NULL");
    ug_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return ug_fail(UG_ERR_NOMEM, "%s: cannot allocate the reader", path);
    }
    ug_status st = ug_file_read_all(path, &f->buf, &f->size);
    if (st != UG_OK) goto fail;
    if (f->size < 8) {
        st = ug_fail(UG_ERR_FORMAT, "%s: expected at least 8 bytes (the header length), found a "
                     "file of %zu bytes", path, f->size);
        goto fail;
    }
    uint64_t hn;
    memcpy(&hn, f->buf, 8);
    if (hn > UG_ST_MAX_HEADER) {
        st = ug_fail(UG_ERR_FORMAT, "%s: header length: expected at most %u bytes, found %llu "
                     "(header too large)", path, UG_ST_MAX_HEADER, (unsigned long long)hn);
        goto fail;
    }
    if (hn > f->size - 8) {
        st = ug_fail(UG_ERR_FORMAT, "%s: header length: expected at most the file size - 8 = %zu, "
                     "found %llu (header beyond the end of the file)", path, f->size - 8,
                     (unsigned long long)hn);
        goto fail;
    }
    f->data = f->buf + 8 + hn;
    f->data_size = f->size - 8 - hn;
    if ((st = parse_header(f, (const char *)f->buf + 8, (size_t)hn)) != UG_OK) goto fail;
    *out = f;
    return UG_OK;
fail:
    ug_st_close(f);
    return st;
}

void ug_st_close(ug_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) {
        free(f->e[i].name);
        free(f->e[i].shape);
    }
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_key[i]);
        free(f->meta_val[i]);
    }
    free(f->meta_key);
    free(f->meta_val);
    free(f->e);
    free(f->by_name);
    free(f->buf);
    free(f->path);
    free(f);
}

int ug_st_count(const ug_st_file *f) { return f->n; }

const char *ug_st_name(const ug_st_file *f, int i) {
    return i >= 0 && i < f->n ? f->e[i].name : NULL;
}

int ug_st_find(const ug_st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->e[f->by_name[mid]].name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return -1;
}

static ug_status lookup(const ug_st_file *f, const char *name, const st_entry **e) {
    int i = name ? ug_st_find(f, name) : -1;
    if (i < 0)
        return ug_fail(UG_ERR_INVALID_ARG, "%s: no tensor named '%s' (the file has %d)", f->path,
                       name ? name : "(null)", f->n);
    *e = &f->e[i];
    return UG_OK;
}

ug_status ug_st_info(const ug_st_file *f, const char *name, ug_dtype *dtype, int *ndim,
                     int64_t *shape) {
    const st_entry *e = NULL;
    ug_status st = lookup(f, name, &e);
    if (st != UG_OK) return st;
    if (shape && e->ndim > UG_MAX_DIMS)
        return ug_fail(UG_ERR_UNSUPPORTED, "%s: tensor '%s': expected at most %d dims, found %d",
                       f->path, name, UG_MAX_DIMS, e->ndim);
    if (dtype) *dtype = e->dtype;
    if (ndim) *ndim = e->ndim;
    if (shape) memcpy(shape, e->shape, (size_t)e->ndim * sizeof *shape);
    return UG_OK;
}

int64_t ug_st_numel(const ug_st_file *f, const char *name) {
    int i = name ? ug_st_find(f, name) : -1;
    return i < 0 ? -1 : f->e[i].numel;
}

static ug_status lookup_n(const ug_st_file *f, const char *name, int64_t n, const st_entry **e) {
    ug_status st = lookup(f, name, e);
    if (st != UG_OK) return st;
    if (n != (*e)->numel)
        return ug_fail(UG_ERR_SHAPE, "%s: tensor '%s': expected a buffer of %lld elements, "
                       "found %lld", f->path, name, (long long)(*e)->numel, (long long)n);
    return UG_OK;
}

ug_status ug_st_read_f32(const ug_st_file *f, const char *name, float *dst, int64_t n) {
    const st_entry *e = NULL;
    ug_status st = lookup_n(f, name, n, &e);
    if (st == UG_OK) ug_dtype_to_f32(e->dtype, f->data + e->begin, n, dst);
    return st;
}

ug_status ug_st_read_f64(const ug_st_file *f, const char *name, double *dst, int64_t n) {
    const st_entry *e = NULL;
    ug_status st = lookup_n(f, name, n, &e);
    if (st == UG_OK) ug_dtype_to_f64(e->dtype, f->data + e->begin, n, dst);
    return st;
}

ug_status ug_st_raw(const ug_st_file *f, const char *name, const void **data, size_t *nbytes) {
    const st_entry *e = NULL;
    ug_status st = lookup(f, name, &e);
    if (st != UG_OK) return st;
    *data = f->data + e->begin;
    if (nbytes) *nbytes = (size_t)(e->end - e->begin);
    return UG_OK;
}

const char *ug_st_meta(const ug_st_file *f, const char *key) {
    for (int i = 0; key && i < f->nmeta; i++)
        if (strcmp(f->meta_key[i], key) == 0) return f->meta_val[i];
    return NULL;
}

int ug_st_meta_count(const ug_st_file *f) { return f->nmeta; }

const char *ug_st_meta_key(const ug_st_file *f, int i) {
    return i >= 0 && i < f->nmeta ? f->meta_key[i] : NULL;
}

/* ---------------------------------------------------------------- writing */

typedef struct {
    char *name;
    ug_dtype dtype;
    int ndim;
    int64_t shape[UG_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
} wr_entry;

struct ug_st_writer {
    wr_entry *e;
    int n, cap;
    char **mkey, **mval;
    int nmeta, capmeta;
};

ug_status ug_st_writer_create(ug_st_writer **out) {
    *out = calloc(1, sizeof **out);
    return *out ? UG_OK : ug_fail(UG_ERR_NOMEM, "ug_st_writer_create: out of memory");
}

void ug_st_writer_free(ug_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->e);
    free(w->mkey);
    free(w->mval);
    free(w);
}

ug_status ug_st_writer_add(ug_st_writer *w, const char *name, ug_dtype dtype, int ndim,
                           const int64_t *shape, const void *data) {
    if (!name || !*name || strcmp(name, "__metadata__") == 0 ||
        utf8_invalid_at((const unsigned char *)name, strlen(name)) >= 0)
        return ug_fail(UG_ERR_INVALID_ARG, "ug_st_writer_add: tensor name: expected non-empty "
                       "UTF-8 other than __metadata__, found \"%s\"", name ? name : "(null)");
    if ((unsigned)dtype >= UG_DT_COUNT)
        return ug_fail(UG_ERR_INVALID_ARG, "ug_st_writer_add: tensor '%s': bad dtype %d", name,
                       (int)dtype);
    if (ndim < 0 || ndim > UG_MAX_DIMS || (ndim && !shape))
        return ug_fail(UG_ERR_INVALID_ARG, "ug_st_writer_add: tensor '%s': expected 0..%d dims, "
                       "found %d", name, UG_MAX_DIMS, ndim);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] && numel > (uint64_t)INT64_MAX / (uint64_t)shape[i]))
            return ug_fail(UG_ERR_INVALID_ARG, "ug_st_writer_add: tensor '%s': shape[%d] = %lld "
                           "is negative or overflows the element count", name, i,
                           (long long)shape[i]);
        numel *= (uint64_t)shape[i];
    }
    if (numel > (uint64_t)INT64_MAX / 8)
        return ug_fail(UG_ERR_INVALID_ARG, "ug_st_writer_add: tensor '%s': too large", name);
    if (numel && !data)
        return ug_fail(UG_ERR_INVALID_ARG, "ug_st_writer_add: tensor '%s': data is NULL", name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return ug_fail(UG_ERR_INVALID_ARG, "ug_st_writer_add: duplicate tensor name '%s'", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        wr_entry *e = realloc(w->e, (size_t)cap * sizeof *e);
        if (!e) return ug_fail(UG_ERR_NOMEM, "ug_st_writer_add: out of memory");
        w->e = e;
        w->cap = cap;
    }
    wr_entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return ug_fail(UG_ERR_NOMEM, "ug_st_writer_add: out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    if (ndim) memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->nbytes = numel * ug_dtype_size(dtype);
    e->data = data;
    w->n++;
    return UG_OK;
}

ug_status ug_st_writer_set_meta(ug_st_writer *w, const char *key, const char *value) {
    if (!key || !value || utf8_invalid_at((const unsigned char *)key, strlen(key)) >= 0 ||
        utf8_invalid_at((const unsigned char *)value, strlen(value)) >= 0)
        return ug_fail(UG_ERR_INVALID_ARG, "ug_st_writer_set_meta: key \"%s\": expected UTF-8 "
                       "key and value", key ? key : "(null)");
    char *v = strdup(value);
    if (!v) return ug_fail(UG_ERR_NOMEM, "ug_st_writer_set_meta: out of memory");
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->mkey[i], key) == 0) {
            free(w->mval[i]);
            w->mval[i] = v;
            return UG_OK;
        }
    if (w->nmeta == w->capmeta) {
        int cap = w->capmeta ? 2 * w->capmeta : 16;
        char **k = realloc(w->mkey, (size_t)cap * sizeof *k);
        if (k) w->mkey = k;
        char **vv = k ? realloc(w->mval, (size_t)cap * sizeof *vv) : NULL;
        if (vv) w->mval = vv;
        if (!k || !vv) {
            free(v);
            return ug_fail(UG_ERR_NOMEM, "ug_st_writer_set_meta: out of memory");
        }
        w->capmeta = cap;
    }
    if (!(w->mkey[w->nmeta] = strdup(key))) {
        free(v);
        return ug_fail(UG_ERR_NOMEM, "ug_st_writer_set_meta: out of memory");
    }
    w->mval[w->nmeta++] = v;
    return UG_OK;
}

/* A growing byte string; oom sticks so callers check once at the end. */
typedef struct { char *p; size_t n, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) UG_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* A JSON string literal: quotes, backslashes and control characters escaped; UTF-8 as is. */
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

ug_status ug_st_write(const ug_st_writer *w, const char *path) {
    if (!w || !path) return ug_fail(UG_ERR_INVALID_ARG, "ug_st_write: NULL writer or path");
    sbuf h = {0};
    sb_put(&h, "{", 1);
    int first = 1;
    if (w->nmeta) {
        sb_put(&h, "\"__metadata__\":{", 16);
        for (int i = 0; i < w->nmeta; i++) {
            if (i) sb_put(&h, ",", 1);
            sb_json_str(&h, w->mkey[i]);
            sb_put(&h, ":", 1);
            sb_json_str(&h, w->mval[i]);
        }
        sb_put(&h, "}", 1);
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const wr_entry *e = &w->e[i];
        if (!first) sb_put(&h, ",", 1);
        first = 0;
        sb_json_str(&h, e->name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", ug_dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++) sb_printf(&h, "%s%lld", d ? "," : "", (long long)e->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%llu,", (unsigned long long)off);
        off += e->nbytes;
        sb_printf(&h, "%llu]}", (unsigned long long)off);
    }
    sb_put(&h, "}", 1);
    while (!h.oom && h.n % 8) sb_put(&h, " ", 1);
    if (h.oom) {
        free(h.p);
        return ug_fail(UG_ERR_NOMEM, "%s: cannot allocate the safetensors header", path);
    }
    if (h.n > UG_ST_MAX_HEADER) {
        free(h.p);
        return ug_fail(UG_ERR_INVALID_ARG, "%s: header of %zu bytes exceeds the limit of %u", path,
                       h.n, UG_ST_MAX_HEADER);
    }
    ug_atomic_file af;
    ug_status st = ug_atomic_open(&af, path);
    uint64_t hn = h.n;
    if (st == UG_OK) st = ug_atomic_write(&af, &hn, 8);
    if (st == UG_OK) st = ug_atomic_write(&af, h.p, h.n);
    for (int i = 0; st == UG_OK && i < w->n; i++)
        st = ug_atomic_write(&af, w->e[i].data, (size_t)w->e[i].nbytes);
    if (st == UG_OK) st = ug_atomic_commit(&af);
    free(h.p);
    return st;
}
