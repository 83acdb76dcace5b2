/* npy.c — NumPy .npy reader and writer
 * (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
 *   "\x93NUMPY" major minor, header length (1.0: u16 LE; 2.0, 3.0: u32 LE), then a Python
 *   literal dict {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with
 *   spaces and ended by '\n', then numel * itemsize bytes of C-order data.
 * The dict is parsed by a small grammar rather than evaluated: exactly the three keys, in any
 * order, with or without a trailing comma. Refused: bad magic or version, a header beyond the
 * file, fortran_order True, object / structured / string / complex / big-endian dtypes, shapes
 * that are not tuples of non-negative integers or whose byte size overflows, and data shorter
 * or longer than the shape requires. */
#include "io/io.h"
#include "core/core.h"

#define NPY_MAGIC "\x93NUMPY"

typedef struct {
    const char *path;
    const char *s;      /* the header text */
    size_t n, i;
} hparser;

static void skip_ws(hparser *h) {
    while (h->i < h->n && (h->s[h->i] == ' ' || h->s[h->i] == '\t' || h->s[h->i] == '\n' ||
                           h->s[h->i] == '\r'))
        h->i++;
}

/* What the parser sees at the cursor, for "found ..." in messages. */
static const char *found_at(const hparser *h, char *buf, size_t n) {
    if (h->i >= h->n) return "the end of the header";
    size_t k = 0;
    while (k < 12 && h->i + k < h->n && h->s[h->i + k] >= 0x20 && h->s[h->i + k] < 0x7f) k++;
    if (k == 0) snprintf(buf, n, "the byte 0x%02x", (unsigned char)h->s[h->i]);
    else snprintf(buf, n, "\"%.*s\"", (int)k, h->s + h->i);
    return buf;
}

static ug_status expect_char(hparser *h, char c, const char *what) {
    char fb[48];
    skip_ws(h);
    if (h->i < h->n && h->s[h->i] == c) {
        h->i++;
        return UG_OK;
    }
    return ug_fail(UG_ERR_FORMAT, "%s: header: %s: expected '%c', found %s at header byte %zu",
                   h->path, what, c, found_at(h, fb, sizeof fb), h->i);
}

/* A quoted Python string without escapes (none of the valid keys or descrs need one). */
static ug_status parse_str(hparser *h, char *out, size_t cap, const char *what) {
    char fb[48];
    skip_ws(h);
    if (h->i >= h->n || (h->s[h->i] != '\'' && h->s[h->i] != '"'))
        return ug_fail(UG_ERR_FORMAT, "%s: header: %s: expected a quoted string, found %s at "
                       "header byte %zu", h->path, what, found_at(h, fb, sizeof fb), h->i);
    char q = h->s[h->i++];
    size_t k = 0;
    while (h->i < h->n && h->s[h->i] != q) {
        if (h->s[h->i] == '\\' || k + 1 >= cap)
            return ug_fail(UG_ERR_FORMAT, "%s: header: %s: expected a short string without "
                           "escapes, found a longer one", h->path, what);
        out[k++] = h->s[h->i++];
    }
    if (h->i >= h->n)
        return ug_fail(UG_ERR_FORMAT, "%s: header: %s: expected a closing quote, found the end "
                       "of the header", h->path, what);
    h->i++;
    out[k] = 0;
    return UG_OK;
}

/* shape: "(" [int ("," int)* [","]] ")" — a one-element tuple needs its comma, as in Python. */
static ug_status parse_shape(hparser *h, int *ndim, int64_t *shape) {
    char fb[48];
    ug_status st = expect_char(h, '(', "shape");
    if (st != UG_OK) return st;
    int nd = 0, trailing_comma = 0;
    for (;;) {
        skip_ws(h);
        if (h->i < h->n && h->s[h->i] == ')') {
            h->i++;
            break;
        }
        if (h->i >= h->n || h->s[h->i] < '0' || h->s[h->i] > '9')
            return ug_fail(UG_ERR_FORMAT, "%s: header: shape[%d]: expected a non-negative "
                           "integer, found %s at header byte %zu", h->path, nd,
                           found_at(h, fb, sizeof fb), h->i);
        uint64_t v = 0;
        while (h->i < h->n && h->s[h->i] >= '0' && h->s[h->i] <= '9') {
            v = v * 10 + (uint64_t)(h->s[h->i++] - '0');
            if (v > (uint64_t)INT64_MAX)
                return ug_fail(UG_ERR_FORMAT, "%s: header: shape[%d]: expected at most %lld, "
                               "found a larger integer", h->path, nd, (long long)INT64_MAX);
        }
        if (h->i < h->n && h->s[h->i] == 'L') h->i++;   /* Python 2 long literal */
        if (nd == UG_MAX_DIMS)
            return ug_fail(UG_ERR_UNSUPPORTED, "%s: header: shape: expected at most %d dims, "
                           "found more", h->path, UG_MAX_DIMS);
        shape[nd++] = (int64_t)v;
        skip_ws(h);
        trailing_comma = 0;
        if (h->i < h->n && h->s[h->i] == ',') {
            h->i++;
            trailing_comma = 1;
        } else if (h->i >= h->n || h->s[h->i] != ')') {
            return ug_fail(UG_ERR_FORMAT, "%s: header: shape: expected ',' or ')', found %s at "
                           "header byte %zu", h->path, found_at(h, fb, sizeof fb), h->i);
        }
    }
    if (nd == 1 && !trailing_comma)
        return ug_fail(UG_ERR_FORMAT, "%s: header: shape: expected a tuple such as (%lld,), "
                       "found (%lld) without the comma", h->path, (long long)shape[0],
                       (long long)shape[0]);
    *ndim = nd;
    return UG_OK;
}

static ug_status parse_descr(const char *path, const char *d, ug_dtype *out) {
    char order = d[0];
    char kind = order ? d[1] : 0;
    char *end = NULL;
    long size = kind ? strtol(d + 2, &end, 10) : 0;
    int ok_form = order && kind && end && end != d + 2 && *end == 0;
    if (order == '>' && ok_form && size > 1)
        return ug_fail(UG_ERR_UNSUPPORTED, "%s: header: descr: expected little-endian data, "
                       "found '%s' (big-endian): convert with arr.astype('<%c%ld')", path, d, kind,
                       size);
    if (strchr(d, 'O'))
        return ug_fail(UG_ERR_UNSUPPORTED, "%s: header: descr: found '%s', an object dtype "
                       "(pickled Python objects), which unigen never reads", path, d);
    static const struct { char kind; long size; ug_dtype dt; } k_map[] = {
        {'b', 1, UG_DT_BOOL}, {'u', 1, UG_DT_U8},  {'i', 1, UG_DT_I8},  {'i', 2, UG_DT_I16},
        {'u', 2, UG_DT_U16},  {'f', 2, UG_DT_F16}, {'i', 4, UG_DT_I32}, {'u', 4, UG_DT_U32},
        {'f', 4, UG_DT_F32},  {'i', 8, UG_DT_I64}, {'u', 8, UG_DT_U64}, {'f', 8, UG_DT_F64},
    };
    if (ok_form && strchr("<|=>", order))
        for (size_t i = 0; i < sizeof k_map / sizeof *k_map; i++)
            if (k_map[i].kind == kind && k_map[i].size == size) {
                *out = k_map[i].dt;
                return UG_OK;
            }
    return ug_fail(UG_ERR_UNSUPPORTED, "%s: header: descr: expected one of '<f4', '<f8', '<f2', "
                   "'<i8', '<i4', '<i2', '|i1', '<u8', '<u4', '<u2', '|u1', '|b1', found '%s' "
                   "(unsupported dtype)", path, d);
}

static ug_status parse_header(hparser *h, ug_npy_array *a) {
    char fb[48];
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0;
    char descr[64] = "";
    ug_status st = expect_char(h, '{', "dict");
    if (st != UG_OK) return st;
    for (;;) {
        skip_ws(h);
        if (h->i < h->n && h->s[h->i] == '}') {
            h->i++;
            break;
        }
        char key[32];
        if ((st = parse_str(h, key, sizeof key, "key")) != UG_OK) return st;
        char what[48];
        snprintf(what, sizeof what, "after key '%.30s'", key);
        if ((st = expect_char(h, ':', what)) != UG_OK) return st;
        skip_ws(h);
        int *seen = strcmp(key, "descr") == 0           ? &have_descr
                    : strcmp(key, "fortran_order") == 0 ? &have_fortran
                    : strcmp(key, "shape") == 0         ? &have_shape
                                                        : NULL;
        if (!seen)
            return ug_fail(UG_ERR_FORMAT, "%s: header: expected only the keys 'descr', "
                           "'fortran_order', 'shape', found '%s'", h->path, key);
        if (*seen)
            return ug_fail(UG_ERR_FORMAT, "%s: header: key '%s' appears twice", h->path, key);
        *seen = 1;
        if (seen == &have_descr) {
            if (h->i < h->n && h->s[h->i] == '[')
                return ug_fail(UG_ERR_UNSUPPORTED, "%s: header: descr: expected a plain dtype "
                               "string, found a structured dtype (a list of fields)", h->path);
            if ((st = parse_str(h, descr, sizeof descr, "descr")) != UG_OK) return st;
        } else if (seen == &have_fortran) {
            if (h->n - h->i >= 4 && memcmp(h->s + h->i, "True", 4) == 0) {
                fortran = 1;
                h->i += 4;
            } else if (h->n - h->i >= 5 && memcmp(h->s + h->i, "False", 5) == 0) {
                h->i += 5;
            } else {
                return ug_fail(UG_ERR_FORMAT, "%s: header: fortran_order: expected True or "
                               "False, found %s", h->path, found_at(h, fb, sizeof fb));
            }
        } else if ((st = parse_shape(h, &a->ndim, a->shape)) != UG_OK) {
            return st;
        }
        skip_ws(h);
        if (h->i < h->n && h->s[h->i] == ',') h->i++;
        else if (h->i >= h->n || h->s[h->i] != '}')
            return ug_fail(UG_ERR_FORMAT, "%s: header: dict: expected ',' or '}', found %s at "
                           "header byte %zu", h->path, found_at(h, fb, sizeof fb), h->i);
    }
    skip_ws(h);
    if (h->i < h->n)
        return ug_fail(UG_ERR_FORMAT, "%s: header: expected only spaces after the dict, found "
                       "%s at header byte %zu", h->path, found_at(h, fb, sizeof fb), h->i);
    const char *missing = !have_descr ? "descr" : !have_fortran ? "fortran_order"
                          : !have_shape ? "shape" : NULL;
    if (missing)
        return ug_fail(UG_ERR_FORMAT, "%s: header: missing key '%s'", h->path, missing);
    if ((st = parse_descr(h->path, descr, &a->dtype)) != UG_OK) return st;
    if (fortran)
        return ug_fail(UG_ERR_UNSUPPORTED, "%s: header: fortran_order: expected False (C order), "
                       "found True: save with np.ascontiguousarray(arr)", h->path);
    return UG_OK;
}

ug_status ug_npy_read(const char *path, ug_npy_array *out) {
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t size;
    ug_status st = ug_file_read_all(path, &buf, &size);
    if (st != UG_OK) return st;
    ug_npy_array a = {0};
    if (size < 10 || memcmp(buf, NPY_MAGIC, 6) != 0) {
        char found[32] = "";
        for (size_t i = 0; i < 6 && i < size; i++)
            snprintf(found + 4 * i, sizeof found - 4 * i, "\\x%02x", buf[i]);
        st = size < 10 && (size < 6 || memcmp(buf, NPY_MAGIC, 6) == 0)
                 ? ug_fail(UG_ERR_FORMAT, "%s: expected at least 10 bytes (magic, version, header "
                           "length), found a file of %zu bytes", path, size)
                 : ug_fail(UG_ERR_FORMAT, "%s: magic: expected \\x93NUMPY, found %s (not a .npy "
                           "file)", path, found);
        goto fail;
    }
    int major = buf[6], minor = buf[7];
    size_t prefix = major == 1 ? 10 : 12;
    if ((major < 1 || major > 3) || minor != 0) {
        st = ug_fail(UG_ERR_UNSUPPORTED, "%s: version: expected 1.0, 2.0 or 3.0, found %d.%d",
                     path, major, minor);
        goto fail;
    }
    if (size < prefix) {
        st = ug_fail(UG_ERR_FORMAT, "%s: expected at least %zu bytes for a version %d.0 prefix, "
                     "found %zu", path, prefix, major, size);
        goto fail;
    }
    size_t hlen = major == 1 ? (size_t)buf[8] | (size_t)buf[9] << 8
                             : (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 |
                                   (size_t)buf[11] << 24;
    if (hlen > size - prefix) {
        st = ug_fail(UG_ERR_FORMAT, "%s: header length: expected at most %zu (the rest of the "
                     "file), found %zu (header beyond the end of the file)", path, size - prefix,
                     hlen);
        goto fail;
    }
    hparser h = {path, (const char *)buf + prefix, hlen, 0};
    if ((st = parse_header(&h, &a)) != UG_OK) goto fail;
    uint64_t numel = 1, isz = ug_dtype_size(a.dtype);
    for (int i = 0; i < a.ndim; i++) {
        uint64_t d = (uint64_t)a.shape[i];
        if (d && numel > (uint64_t)INT64_MAX / isz / d) {
            st = ug_fail(UG_ERR_FORMAT, "%s: header: shape: the byte size overflows 64 bits "
                         "(shape[%d] = %llu)", path, i, (unsigned long long)d);
            goto fail;
        }
        numel *= d;
    }
    a.numel = (int64_t)numel;
    uint64_t nbytes = numel * isz, have = size - prefix - hlen;
    if (have != nbytes) {
        st = ug_fail(UG_ERR_FORMAT, "%s: data: expected %llu bytes (%llu elements of %s), found "
                     "%llu: %s", path, (unsigned long long)nbytes, (unsigned long long)numel,
                     ug_dtype_name(a.dtype), (unsigned long long)have,
                     have < nbytes ? "truncated data" : "trailing bytes after the data");
        goto fail;
    }
    a.data = malloc(nbytes ? (size_t)nbytes : 1);
    if (!a.data) {
        st = ug_fail(UG_ERR_NOMEM, "%s: cannot allocate %llu bytes", path,
                     (unsigned long long)nbytes);
        goto fail;
    }
    memcpy(a.data, buf + prefix + hlen, (size_t)nbytes);
    free(buf);
    *out = a;
    return UG_OK;
fail:
    free(buf);
    return st;
}

void ug_npy_free(ug_npy_array *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

void ug_npy_to_f32(const ug_npy_array *a, float *dst) {
    ug_dtype_to_f32(a->dtype, a->data, a->numel, dst);
}

void ug_npy_to_f64(const ug_npy_array *a, double *dst) {
    ug_dtype_to_f64(a->dtype, a->data, a->numel, dst);
}

static ug_status npy_write(const char *path, int ndim, const int64_t *shape, const void *data,
                           const char *descr, size_t isz) {
    if (!path || ndim < 0 || ndim > UG_MAX_DIMS || (ndim && !shape))
        return ug_fail(UG_ERR_INVALID_ARG, "ug_npy_write: %s: expected 0..%d dims, found %d",
                       path ? path : "(null path)", UG_MAX_DIMS, ndim);
    uint64_t numel = 1;
    char h[256];
    int k = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] && numel > (uint64_t)INT64_MAX / isz / (uint64_t)shape[i]))
            return ug_fail(UG_ERR_INVALID_ARG, "ug_npy_write: %s: shape[%d] = %lld is negative or "
                           "overflows", path, i, (long long)shape[i]);
        numel *= (uint64_t)shape[i];
        k += snprintf(h + k, sizeof h - (size_t)k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    }
    if (numel && !data) return ug_fail(UG_ERR_INVALID_ARG, "ug_npy_write: %s: data is NULL", path);
    k += snprintf(h + k, sizeof h - (size_t)k, "%s), }", ndim == 1 ? "," : "");
    /* Pad with spaces and a final '\n' so the data starts at a multiple of 64 bytes. */
    size_t total = (10 + (size_t)k + 1 + 63) / 64 * 64, hlen = total - 10;
    memset(h + k, ' ', hlen - (size_t)k - 1);
    h[hlen - 1] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 255),
                             (unsigned char)(hlen >> 8)};
    ug_atomic_file af;
    ug_status st = ug_atomic_open(&af, path);
    if (st == UG_OK) st = ug_atomic_write(&af, pre, sizeof pre);
    if (st == UG_OK) st = ug_atomic_write(&af, h, hlen);
    if (st == UG_OK) st = ug_atomic_write(&af, data, (size_t)(numel * isz));
    if (st == UG_OK) st = ug_atomic_commit(&af);
    return st;
}

ug_status ug_npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data) {
    return npy_write(path, ndim, shape, data, "<f4", 4);
}

ug_status ug_npy_write_f64(const char *path, int ndim, const int64_t *shape, const double *data) {
    return npy_write(path, ndim, shape, data, "<f8", 8);
}
