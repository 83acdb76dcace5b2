/* fuzz_idx.c — libFuzzer harness of the IDX reader (src/data/idx.c), raw and gzip. The first
 * input byte picks the form: odd, the harness gzips the rest before ug_idx_read sees it, so the
 * fuzzer can mutate the IDX header and sizes behind a valid gzip stream (whose CRC it could
 * never fix by itself); even, the rest is handed over as is, which covers raw IDX files and
 * broken gzip streams (zlib's gzread reads both). */
#include "unigen.h"
#include "fuzz.h"
#include <zlib.h>

static unsigned char *gzip_bytes(const uint8_t *p, size_t n, size_t *out_n) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    unsigned char *out = malloc(cap);
    if (!out) abort();
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *path;
    if (data[0] & 1) {
        size_t n;
        unsigned char *gz = gzip_bytes(data + 1, size - 1, &n);
        path = fuzz_file(0, gz, n);
        free(gz);
    } else {
        path = fuzz_file(0, data + 1, size - 1);
    }
    ug_idx f;
    if (ug_idx_read(path, &f) != UG_OK) {
        FUZZ_CHECK(f.data == NULL && f.ndim == 0);
        return 0;
    }
    FUZZ_CHECK(f.ndim >= 1 && f.ndim <= 4 && f.data);
    int64_t total = 1;
    for (int k = 0; k < f.ndim; k++) total *= f.dims[k];
    unsigned sum = 0;   /* touch every byte: the data must be exactly that long */
    for (int64_t i = 0; i < total; i++) sum += f.data[i];
    (void)sum;
    ug_idx_free(&f);
    return 0;
}
