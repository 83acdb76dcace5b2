/* image.c — 8-bit PNG files through libpng's simplified API (png_image: no setjmp, and errors
 * come back as a message instead of being printed), and grids of sample images. */
#include "core/core.h"
#include "unigen.h"
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <unistd.h>

ug_status ug_png_write(const char *path, const uint8_t *pix, int w, int h, int c) {
    if (w < 1 || h < 1 || (c != 1 && c != 3))
        return ug_fail(UG_ERR_INVALID_ARG, "%s: PNG of %d x %d with %d channels (expected w, h "
                       ">= 1 and 1 or 3 channels)", path, w, h, c);
    size_t n = strlen(path);
    char *tmp = malloc(n + 32);
    if (!tmp) return ug_fail(UG_ERR_NOMEM, "%s: out of memory", path);
    /* The pid keeps two processes writing the same picture off each other's temp file. */
    snprintf(tmp, n + 32, "%s.tmp%ld", path, (long)getpid());
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    ug_status st = UG_OK;
    if (!png_image_write_to_file(&img, tmp, 0, pix, (png_int_32)(w * c), NULL)) {
        st = ug_fail(UG_ERR_IO, "%s: cannot write PNG: %s", tmp, img.message);
        remove(tmp);
    } else if (rename(tmp, path) != 0) {
        st = ug_fail(UG_ERR_IO, "%s: cannot rename the finished picture from %s", path, tmp);
        remove(tmp);
    }
    png_image_free(&img);
    free(tmp);
    return st;
}

/* Largest decoded image ug_png_read accepts: 18918^2 RGB or 32768^2 gray, far above any data
 * set, and below libpng's own 4 GiB refusal. */
#define PNG_MAX_BYTES ((uint64_t)1 << 30)

ug_status ug_png_read(const char *path, uint8_t **pix, int *w, int *h, int *c) {
    *pix = NULL;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) {
        ug_status st = ug_fail(access(path, R_OK) == 0 ? UG_ERR_FORMAT : UG_ERR_IO,
                               "%s: cannot read PNG: %s", path, img.message);
        png_image_free(&img);
        return st;
    }
    int color = (img.format & PNG_FORMAT_FLAG_COLOR) != 0;
    img.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    /* The IHDR sizes are a claim until the rows decode: a 60-byte file may announce 100000 x
     * 100000 pixels. Refuse before allocating what no data-set image needs. */
    uint64_t want = (uint64_t)img.width * img.height * (color ? 3 : 1);
    if (want > PNG_MAX_BYTES) {
        ug_status st = ug_fail(UG_ERR_UNSUPPORTED, "%s: IHDR: %u x %u pixels x %d channels = "
                               "%llu bytes, expected at most %llu (1 GiB)", path, img.width,
                               img.height, color ? 3 : 1, (unsigned long long)want,
                               (unsigned long long)PNG_MAX_BYTES);
        png_image_free(&img);
        return st;
    }
    size_t bytes = PNG_IMAGE_SIZE(img);
    uint8_t *buf = malloc(bytes);
    if (!buf) {
        png_image_free(&img);
        return ug_fail(UG_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, bytes);
    }
    png_color black = {0, 0, 0};
    if (!png_image_finish_read(&img, &black, buf, 0, NULL)) {
        ug_status st = ug_fail(UG_ERR_FORMAT, "%s: cannot decode PNG: %s", path, img.message);
        png_image_free(&img);
        free(buf);
        return st;
    }
    png_image_free(&img);
    /* libpng's simplified reader stops after the image data; a file cut before its IEND chunk
     * is still truncated, so require the 12-byte IEND trailer at the very end. */
    static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
    uint8_t tail[12];
    FILE *f = fopen(path, "rb");
    int ok = f && fseek(f, -12, SEEK_END) == 0 && fread(tail, 1, 12, f) == 12 &&
             memcmp(tail, iend, 12) == 0;
    if (f) fclose(f);
    if (!ok) {
        free(buf);
        return ug_fail(UG_ERR_FORMAT, "%s: PNG does not end with an IEND chunk (truncated?)", path);
    }
    *pix = buf;
    *w = (int)img.width;
    *h = (int)img.height;
    *c = color ? 3 : 1;
    return UG_OK;
}

static inline uint8_t to_byte(float v, float lo, float inv) {
    float t = (v - lo) * inv;
    if (!(t > 0)) return 0;          /* also NaN */
    if (t >= 1) return 255;
    return (uint8_t)lrintf(t * 255.0f);
}

ug_status ug_image_grid(const char *path, const float *imgs, int64_t n, int C, int H, int W,
                        int rows, int cols, int pad, float lo, float hi) {
    return ug_image_grid_zoom(path, imgs, n, C, H, W, rows, cols, pad, lo, hi, 1);
}

ug_status ug_image_grid_zoom(const char *path, const float *imgs, int64_t n, int C, int H, int W,
                             int rows, int cols, int pad, float lo, float hi, int zoom) {
    if (zoom < 1 || zoom > 16)
        return ug_fail(UG_ERR_INVALID_ARG, "%s: zoom %d, expected 1..16", path, zoom);
    if (n < 1 || (C != 1 && C != 3) || H < 1 || W < 1 || pad < 0 || !(hi > lo))
        return ug_fail(UG_ERR_INVALID_ARG, "%s: image grid of n = %lld, C = %d, H = %d, W = %d, "
                       "pad = %d, range [%g, %g] (need n >= 1, C 1 or 3, pad >= 0, hi > lo)",
                       path, (long long)n, C, H, W, pad, lo, hi);
    if (cols <= 0 && rows > 0) cols = (int)((n + rows - 1) / rows);
    if (cols <= 0) cols = (int)ceil(sqrt((double)n));
    if (rows <= 0) rows = (int)((n + cols - 1) / cols);
    int64_t gw = (int64_t)cols * (W * zoom + pad) + pad, gh = (int64_t)rows * (H * zoom + pad) + pad;
    if (gw > 30000 || gh > 30000)
        return ug_fail(UG_ERR_INVALID_ARG, "%s: grid of %lld x %lld pixels (limit 30000)", path,
                       (long long)gw, (long long)gh);
    uint8_t *pix = malloc((size_t)(gw * gh * C));
    if (!pix) return ug_fail(UG_ERR_NOMEM, "%s: out of memory for the grid", path);
    memset(pix, 128, (size_t)(gw * gh * C));   /* neutral gray: neither black nor white bg */
    float inv = 1.0f / (hi - lo);
    int64_t cells = (int64_t)rows * cols;
    for (int64_t k = 0; k < n && k < cells; k++) {
        int64_t r0 = pad + (k / cols) * (H * zoom + pad), c0 = pad + (k % cols) * (W * zoom + pad);
        const float *im = imgs + k * C * H * W;
        for (int yy = 0; yy < H * zoom; yy++)
            for (int xx = 0; xx < W * zoom; xx++)
                for (int ch = 0; ch < C; ch++)
                    pix[((r0 + yy) * gw + c0 + xx) * C + ch] =
                        to_byte(im[((int64_t)ch * H + yy / zoom) * W + xx / zoom], lo, inv);
    }
    ug_status st = ug_png_write(path, pix, (int)gw, (int)gh, C);
    free(pix);
    return st;
}
