/* idx.c — IDX files, the format of MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao et al.
 * 2017): bytes 0 0 TYPE NDIM, NDIM big-endian uint32 sizes, then the array in row-major order.
 * zlib's gz* functions read gzip and raw files alike, so "x.gz" and "x" need no special case.
 * Every check names the file and what it expected: a truncated download must not train on
 * zeros, and a wrong file (labels for images) must not be reinterpreted. */
#include "core/core.h"
#include "unigen.h"
#include <zlib.h>

/* 4 GiB: far above any IDX data set, small enough that a corrupt size field cannot ask
 * for terabytes. */
#define IDX_MAX_BYTES ((int64_t)1 << 32)

void ug_idx_free(ug_idx *f) {
    if (!f) return;
    free(f->data);
    memset(f, 0, sizeof *f);
}

static const char *idx_type_name(int t) {
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return NULL;
    }
}

/* Reads exactly n bytes unless the file ends; returns the count, or -1 on a zlib error. */
static int64_t gz_read_all(gzFile gz, uint8_t *dst, int64_t n) {
    int64_t got = 0;
    while (got < n) {
        int64_t want = n - got;
        unsigned chunk = want > (1 << 30) ? (1u << 30) : (unsigned)want;
        int r = gzread(gz, dst + got, chunk);
        if (r < 0) return -1;
        if (r == 0) break;
        got += r;
    }
    return got;
}

static ug_status gz_error(gzFile gz, const char *path, const char *what) {
    int errnum = 0;
    const char *msg = gzerror(gz, &errnum);
    return ug_fail(errnum == Z_ERRNO ? UG_ERR_IO : UG_ERR_FORMAT, "%s: %s: %s", path, what,
                   msg && *msg ? msg : "read error");
}

ug_status ug_idx_read(const char *path, ug_idx *out) {
    memset(out, 0, sizeof *out);
    gzFile gz = gzopen(path, "rb");
    if (!gz) return ug_fail(UG_ERR_IO, "%s: cannot open the IDX file", path);
    ug_status st = UG_OK;
    uint8_t head[4 + 4 * 4];
    int64_t got = gz_read_all(gz, head, 4);
    if (got < 0) { st = gz_error(gz, path, "reading the IDX header"); goto done; }
    if (got < 4) {
        st = ug_fail(UG_ERR_FORMAT, "%s: file has %lld bytes, expected an IDX header of 4",
                     path, (long long)got);
        goto done;
    }
    uint32_t magic = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 |
                     head[3];
    if (head[0] != 0 || head[1] != 0) {
        st = ug_fail(UG_ERR_FORMAT, "%s: magic number 0x%08x, expected 0x000008NN (IDX: two zero "
                     "bytes, type, number of dimensions) — not an IDX file?", path, magic);
        goto done;
    }
    const char *tname = idx_type_name(head[2]);
    if (!tname) {
        st = ug_fail(UG_ERR_FORMAT, "%s: magic 0x%08x: type byte 0x%02x is not an IDX type "
                     "(0x08, 0x09, 0x0B-0x0E)", path, magic, head[2]);
        goto done;
    }
    if (head[2] != 0x08) {
        st = ug_fail(UG_ERR_UNSUPPORTED, "%s: magic 0x%08x: type 0x%02x (%s); only 0x08 (unsigned "
                     "byte) is supported", path, magic, head[2], tname);
        goto done;
    }
    int ndim = head[3];
    if (ndim < 1 || ndim > 4) {
        st = ug_fail(UG_ERR_UNSUPPORTED, "%s: magic 0x%08x: %d dimensions, expected 1 to 4", path,
                     magic, ndim);
        goto done;
    }
    got = gz_read_all(gz, head + 4, 4 * ndim);
    if (got < 0) { st = gz_error(gz, path, "reading the IDX sizes"); goto done; }
    if (got < 4 * ndim) {
        st = ug_fail(UG_ERR_FORMAT, "%s: truncated header: %lld of %d size bytes", path,
                     (long long)got, 4 * ndim);
        goto done;
    }
    int64_t total = 1;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *b = head + 4 + 4 * i;
        int64_t v = (int64_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
                              (uint32_t)b[2] << 8 | b[3]);
        if (v == 0) {
            st = ug_fail(UG_ERR_FORMAT, "%s: dimension %d has size 0", path, i);
            goto done;
        }
        out->dims[i] = v;
        if (v > IDX_MAX_BYTES / total) {   /* checked before multiplying: no overflow */
            st = ug_fail(UG_ERR_UNSUPPORTED, "%s: sizes multiply past %lld bytes (limit 4 GiB)",
                         path, (long long)IDX_MAX_BYTES);
            goto done;
        }
        total *= v;
    }
    out->ndim = ndim;
    /* The sizes are a claim until the bytes arrive: a 20-byte file announcing 4 GiB must not
     * allocate 4 GiB, so the buffer grows (doubling, from 1 MiB) only as data is read. */
    got = 0;
    for (int64_t cap = 0; got == cap && got < total;) {
        int64_t ncap = cap ? (cap > total / 2 ? total : 2 * cap)
                           : (total < (1 << 20) ? total : 1 << 20);
        uint8_t *p = realloc(out->data, (size_t)ncap);
        if (!p) {
            st = ug_fail(UG_ERR_NOMEM, "%s: cannot allocate %lld bytes", path, (long long)ncap);
            goto done;
        }
        out->data = p;
        int64_t r = gz_read_all(gz, out->data + cap, ncap - cap);
        if (r < 0) { st = gz_error(gz, path, "reading the IDX data"); goto done; }
        got = cap + r;
        cap = ncap;
    }
    if (got < total) {
        st = ug_fail(UG_ERR_FORMAT, "%s: truncated: %lld data bytes, expected %lld for the sizes "
                     "in the header", path, (long long)got, (long long)total);
        goto done;
    }
    uint8_t extra;
    got = gz_read_all(gz, &extra, 1);
    if (got != 0) {
        st = got < 0 ? gz_error(gz, path, "after the IDX data")
                     : ug_fail(UG_ERR_FORMAT, "%s: trailing bytes after the %lld data bytes the "
                               "header announces", path, (long long)total);
        goto done;
    }
done:
    gzclose(gz);
    if (st) ug_idx_free(out);
    return st;
}
