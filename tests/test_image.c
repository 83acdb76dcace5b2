/* test_image.c — PNG pictures: grids read back with libpng (size, border, pixel values, value
 * mapping and clamping), the PNG reader, and that scatter and curve plots are written, sized
 * and coloured as documented (samples strong, reference gray, title ink, no temp file left). */
#include "test.h"
#include "core/core.h"
#include "unigen.h"
#include <dirent.h>
#include <png.h>
#include <unistd.h>

static void tmp_dir(char *buf, size_t n) {
    snprintf(buf, n, "/tmp/ug_test_image_XXXXXX");
    if (!mkdtemp(buf)) buf[0] = 0;
}

static void rm_dir(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Independent read-back through libpng's own API; returns malloc'd pixels in `fmt`. */
static uint8_t *libpng_read(const char *path, png_uint_32 fmt, int *w, int *h, int *color) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) return NULL;
    *color = (img.format & PNG_FORMAT_FLAG_COLOR) != 0;
    img.format = fmt;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&img);
        return NULL;
    }
    *w = (int)img.width;
    *h = (int)img.height;
    return buf;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

TEST(image_grid_gray_readback) {
    char dir[64], p[128];
    tmp_dir(dir, sizeof dir);
    ASSERT(dir[0], "mkdtemp failed");
    snprintf(p, sizeof p, "%s/grid.png", dir);
    /* 3 images (C=1, H=2, W=3) in [-1, 1] on a 2 x 2 grid, pad 1: 9 x 7 pixels. */
    float im[3 * 6];
    for (int i = 0; i < 18; i++) im[i] = -1.0f + (float)i / 8.5f;
    im[0] = -1; im[1] = 1; im[2] = -0.5f; im[3] = 5; im[4] = NAN; im[5] = 0.5f;
    ASSERT_OK(ug_image_grid(p, im, 3, 1, 2, 3, 2, 2, 1, -1, 1));
    int w, h, color;
    uint8_t *px = libpng_read(p, PNG_FORMAT_GRAY, &w, &h, &color);
    ASSERT(px, "libpng cannot read %s", p);
    EXPECT(w == 9 && h == 7 && !color, "grid %d x %d color %d, expected 9 x 7 gray", w, h, color);
    EXPECT(px[0] == 128 && px[4 * 9 + 4] == 128, "border not neutral gray");
    /* Image 0 at (1, 1): -1 -> 0, 1 -> 255, -0.5 -> 64, 5 clamps to 255, NaN -> 0, 0.5 -> 191. */
    const uint8_t want[6] = {0, 255, 64, 255, 0, 191};
    for (int k = 0; k < 6; k++) {
        int y = 1 + k / 3, x = 1 + k % 3;
        EXPECT(px[y * 9 + x] == want[k], "pixel %d = %d, expected %d", k, px[y * 9 + x], want[k]);
    }
    /* Image 1 starts at column 5; image 2 on the second row; the fourth cell stays gray. */
    EXPECT(px[1 * 9 + 5] == (uint8_t)lrintf((im[6] + 1) / 2 * 255), "image 1 placement");
    EXPECT(px[4 * 9 + 1] == (uint8_t)lrintf((im[12] + 1) / 2 * 255), "image 2 placement");
    EXPECT(px[4 * 9 + 5] == 128 && px[5 * 9 + 7] == 128, "empty cell not gray");
    free(px);
    EXPECT(count_files(dir) == 1, "temporary file left behind");
    rm_dir(dir);
}

TEST(image_grid_rgb_and_reader) {
    char dir[64], p[128];
    tmp_dir(dir, sizeof dir);
    ASSERT(dir[0], "mkdtemp failed");
    snprintf(p, sizeof p, "%s/rgb.png", dir);
    /* One 1 x 2 RGB image (C, H, W) = (3, 1, 2), rows/cols chosen automatically, no padding. */
    const float im[6] = {1, 0, 0, 1, 0, 0.5f};   /* R = (1, 0), G = (0, 1), B = (0, 0.5) */
    ASSERT_OK(ug_image_grid(p, im, 1, 3, 1, 2, 0, 0, 0, 0, 1));
    int w, h, c, color;
    uint8_t *px = libpng_read(p, PNG_FORMAT_RGB, &w, &h, &color);
    ASSERT(px, "libpng cannot read %s", p);
    EXPECT(w == 2 && h == 1 && color, "rgb grid %d x %d", w, h);
    EXPECT(px[0] == 255 && px[1] == 0 && px[2] == 0 && px[3] == 0 && px[4] == 255 && px[5] == 128,
           "rgb channel placement: %d %d %d / %d %d %d", px[0], px[1], px[2], px[3], px[4], px[5]);
    free(px);
    uint8_t *back;
    ASSERT_OK(ug_png_read(p, &back, &w, &h, &c));
    EXPECT(w == 2 && h == 1 && c == 3 && back[4] == 255 && back[5] == 128, "ug_png_read rgb");
    free(back);
    /* Gray round trip through our writer and reader. */
    const uint8_t g[6] = {0, 50, 100, 150, 200, 250};
    ASSERT_OK(ug_png_write(p, g, 3, 2, 1));
    ASSERT_OK(ug_png_read(p, &back, &w, &h, &c));
    EXPECT(w == 3 && h == 2 && c == 1 && memcmp(back, g, 6) == 0, "gray round trip");
    free(back);
    snprintf(p, sizeof p, "%s/not.png", dir);
    FILE *f = fopen(p, "wb");
    if (f) { fputs("plain text", f); fclose(f); }
    EXPECT(ug_png_read(p, &back, &w, &h, &c) == UG_ERR_FORMAT && strstr(ug_last_error(), "not.png"),
           "non-PNG accepted: %s", ug_last_error());
    EXPECT(ug_image_grid(p, im, 1, 2, 1, 2, 0, 0, 0, 0, 1) == UG_ERR_INVALID_ARG, "C = 2 accepted");
    rm_dir(dir);
}

static int is_sample_red(const uint8_t *q) { return q[0] > 150 && q[1] < 120 && q[2] < 120; }
static int is_ref_gray(const uint8_t *q) {
    return q[0] < 235 && q[0] > 120 && abs(q[0] - q[1]) < 4 && abs(q[1] - q[2]) < 4;
}

TEST(plot_scatter_and_curve) {
    char dir[64], p[128];
    tmp_dir(dir, sizeof dir);
    ASSERT(dir[0], "mkdtemp failed");
    snprintf(p, sizeof p, "%s/scatter.png", dir);
    /* Reference on the left half, samples on the right: the colours must land there. */
    enum { N = 500, M = 2000 };
    float pts[2 * N], ref[2 * M];
    for (int i = 0; i < N; i++) {
        pts[2 * i] = 1 + (float)(i % 20) / 20;
        pts[2 * i + 1] = (float)(i / 20) / 25 - 0.5f;
    }
    for (int i = 0; i < M; i++) {
        ref[2 * i] = -2 + (float)(i % 40) / 40;
        ref[2 * i + 1] = (float)(i / 40) / 50 - 0.5f;
    }
    pts[0] = NAN;   /* skipped, not fatal */
    ASSERT_OK(ug_plot_scatter(p, pts, N, ref, M, 400, 300, "samples vs data", NULL));
    int w, h, color;
    uint8_t *px = libpng_read(p, PNG_FORMAT_RGB, &w, &h, &color);
    ASSERT(px, "cannot read scatter");
    EXPECT(w == 400 && h == 300 && color, "scatter %d x %d", w, h);
    int red_left = 0, red_right = 0, gray_left = 0, gray_right = 0, ink_top = 0;
    for (int y = 40; y < h - 30; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *q = px + 3 * (y * w + x);
            if (is_sample_red(q)) *(x < w / 2 ? &red_left : &red_right) += 1;
            if (is_ref_gray(q)) *(x < w / 2 ? &gray_left : &gray_right) += 1;
        }
    for (int y = 0; y < 24; y++)
        for (int x = 0; x < w / 2; x++) ink_top += px[3 * (y * w + x)] < 100;
    EXPECT(red_right > 500 && red_left < 20, "sample colour: %d right, %d left", red_right,
           red_left);
    EXPECT(gray_left > 500, "reference gray: %d left, %d right", gray_left, gray_right);
    EXPECT(ink_top > 50, "no title ink (%d dark pixels)", ink_top);
    free(px);

    /* Fixed range that excludes everything: an empty frame, still a valid picture. */
    const float range[4] = {10, 11, 10, 11};
    ASSERT_OK(ug_plot_scatter(p, pts, N, NULL, 0, 200, 200, NULL, range));
    EXPECT(ug_plot_scatter(p, pts, N, NULL, 0, 200, 200, NULL, (const float[]){1, 0, 0, 1}) ==
               UG_ERR_INVALID_ARG, "inverted range accepted");
    EXPECT(ug_plot_scatter(p, pts, N, NULL, 0, 10, 200, NULL, NULL) == UG_ERR_INVALID_ARG,
           "10-pixel plot accepted");

    snprintf(p, sizeof p, "%s/loss.png", dir);
    enum { T = 300 };
    double xs[T], ys[T];
    for (int i = 0; i < T; i++) { xs[i] = i; ys[i] = 3 * exp(-i / 60.0) + 0.01 * (i % 3); }
    ys[10] = NAN;
    ys[11] = -1;   /* dropped on a log axis */
    for (int log_y = 0; log_y < 2; log_y++) {
        ASSERT_OK(ug_plot_curve(p, xs, ys, T, "loss", log_y));
        px = libpng_read(p, PNG_FORMAT_RGB, &w, &h, &color);
        ASSERT(px, "cannot read curve");
        int blue = 0;
        for (int i = 0; i < w * h; i++) blue += px[3 * i + 2] > 150 && px[3 * i] < 80;
        EXPECT(w == 640 && h == 400 && blue > 300, "curve (log %d): %d x %d, %d line pixels",
               log_y, w, h, blue);
        free(px);
    }
    ASSERT_OK(ug_plot_curve(p, xs, ys, 0, "empty", 1));
    EXPECT(count_files(dir) == 2, "expected scatter.png and loss.png only, found %d files",
           count_files(dir));
    rm_dir(dir);
}

/* Malformed PNGs: every truncation of a valid file, a corrupted signature, a corrupted header
 * chunk (CRC mismatch) and a corrupted data chunk are refused with a message naming the file;
 * nothing crashes or leaks (make asan). */
TEST(png_reader_refuses_malformed_files) {
    char dir[] = "/tmp/unigen-png-XXXXXX", good[128], bad[128];
    ASSERT(mkdtemp(dir), "mkdtemp");
    snprintf(good, sizeof good, "%s/good.png", dir);
    snprintf(bad, sizeof bad, "%s/bad.png", dir);
    uint8_t pix[16 * 12 * 3];
    for (size_t i = 0; i < sizeof pix; i++) pix[i] = (uint8_t)(i * 37);
    ASSERT_OK(ug_png_write(good, pix, 16, 12, 3));
    FILE *f = fopen(good, "rb");
    ASSERT(f, "open");
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ASSERT(n > 60 && n < sizeof buf, "size %zu", n);
    int refused = 0, cases = 0;
    /* Truncations (a few bytes short of the end keeps IEND out). */
    size_t cuts[] = {0, 4, 8, 12, 20, 33, 40, n / 2, n - 12};
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        f = fopen(bad, "wb");
        fwrite(buf, 1, cuts[k], f);
        fclose(f);
        uint8_t *px = NULL;
        int w, h, c;
        ug_status st = ug_png_read(bad, &px, &w, &h, &c);
        cases++;
        if (st != UG_OK && strstr(ug_last_error(), "bad.png")) refused++;
        else printf("    truncation at %zu accepted (%s)\n", cuts[k], ug_last_error());
        free(px);
    }
    /* Corruptions: signature, IHDR width (CRC no longer matches), a byte inside IDAT. */
    size_t flips[] = {1, 18, n - 20};
    for (size_t k = 0; k < sizeof flips / sizeof *flips; k++) {
        uint8_t copy[4096];
        memcpy(copy, buf, n);
        copy[flips[k]] ^= 0x5a;
        f = fopen(bad, "wb");
        fwrite(copy, 1, n, f);
        fclose(f);
        uint8_t *px = NULL;
        int w, h, c;
        ug_status st = ug_png_read(bad, &px, &w, &h, &c);
        cases++;
        if (st != UG_OK && strstr(ug_last_error(), "bad.png")) refused++;
        else printf("    corruption at byte %zu accepted (%s)\n", flips[k], ug_last_error());
        free(px);
    }
    EXPECT(refused == cases, "%d of %d malformed PNGs refused", refused, cases);
    remove(good);
    remove(bad);
    rmdir(dir);
}
