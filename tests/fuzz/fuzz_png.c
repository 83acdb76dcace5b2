/* fuzz_png.c — libFuzzer harness of the PNG loader (src/io/image.c, ug_png_read over libpng's
 * simplified API plus the IEND trailer check): every pixel of an accepted image is read, so a
 * size mismatch between the header and the buffer shows up under ASan.
 * libpng refuses a chunk whose CRC is wrong, and a random mutation breaks the CRC, so nearly
 * every mutant would die in libpng's first check. The first input byte picks the form: odd, the
 * harness recomputes the CRC of every complete chunk of the rest (so IHDR sizes, palettes and
 * IDAT contents get fuzzed); even, the rest is handed over as is (bad CRCs, bad signatures). */
#include "unigen.h"
#include "fuzz.h"
#include <zlib.h>

static void fix_crcs(uint8_t *p, size_t n) {
    size_t at = 8;   /* after the signature */
    while (at + 12 <= n) {
        size_t len = (size_t)p[at] << 24 | (size_t)p[at + 1] << 16 | (size_t)p[at + 2] << 8 |
                     p[at + 3];
        if (len > n - at - 12) break;
        uLong crc = crc32(0, p + at + 4, (uInt)(len + 4));
        for (int k = 0; k < 4; k++) p[at + 8 + len + (size_t)k] = (uint8_t)(crc >> (24 - 8 * k));
        at += len + 12;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t *copy = malloc(size);
    FUZZ_CHECK(copy);
    memcpy(copy, data + 1, size - 1);
    if (data[0] & 1) fix_crcs(copy, size - 1);
    const char *path = fuzz_file(0, copy, size - 1);
    free(copy);
    uint8_t *pix = NULL;
    int w = 0, h = 0, c = 0;
    if (ug_png_read(path, &pix, &w, &h, &c) != UG_OK) {
        FUZZ_CHECK(pix == NULL);
        return 0;
    }
    FUZZ_CHECK(pix && w >= 1 && h >= 1 && (c == 1 || c == 3));
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)w * (size_t)h * (size_t)c; i++) sum += pix[i];
    (void)sum;
    free(pix);
    return 0;
}
