/* image.h — pictures: 8-bit PNG files (libpng), image grids of samples, and plots (2-D scatter
 * over reference data, loss curves) drawn with a built-in 5x7 bitmap font. Files are written to
 * a temporary name and renamed, so a reader never sees half a picture. */
#ifndef UG_IMAGE_H
#define UG_IMAGE_H

#include "unigen.h"

/* pix (h, w, c) interleaved bytes, c = 1 (gray) or 3 (RGB). */
ug_status ug_png_write(const char *path, const uint8_t *pix, int w, int h, int c);
/* Reads any PNG as 8-bit gray (c = 1) or RGB (c = 3): gray(+alpha) -> gray, others -> RGB
 * (alpha composited on black, palettes expanded, 16-bit reduced). *pix is malloc'd (h, w, c). */
ug_status ug_png_read(const char *path, uint8_t **pix, int *w, int *h, int *c);

/* imgs (n, C, H, W) with values in [lo, hi] (clamped; NaN shows as lo), C = 1 or 3. Cells of
 * rows x cols (<= 0: chosen near-square), separated and framed by `pad` pixels of neutral gray;
 * cells past n stay gray. One row per class: pass rows = classes, cols = per class. */
ug_status ug_image_grid(const char *path, const float *imgs, int64_t n, int C, int H, int W,
                        int rows, int cols, int pad, float lo, float hi);

/* Scatter of pts (n, 2) in a strong colour over ref (m, 2) in light gray (ref NULL: none), with
 * axes, ticks, tick labels and a title (may be NULL). range {xmin, xmax, ymin, ymax}, or NULL to
 * fit the points (ref and pts, ignoring 0.1% outliers of pts) with a margin at equal aspect.
 * Points shrink and fade as n grows so dense regions read as density. */
ug_status ug_plot_scatter(const char *path, const float *pts, int64_t n, const float *ref,
                          int64_t m, int width, int height, const char *title,
                          const float *range);

/* Line plot of y against x (n points; non-finite points skipped, and y <= 0 with log_y) on a
 * 640 x 400 canvas; log_y puts y on a log10 axis. Beyond 50 points a moving average is drawn
 * strong over the raw curve in a light tint, as loss curves are noisy. */
ug_status ug_plot_curve(const char *path, const double *x, const double *y, int64_t n,
                        const char *title, int log_y);

#endif
