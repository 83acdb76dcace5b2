/* plot.c — small plots written as PNG with no plotting library: a 2-D scatter of samples over the
 * data they imitate, and loss curves. Drawing is alpha blending onto an RGB canvas; text uses a
 * built-in 5x7 bitmap font (the HD44780 LCD glyph shapes), lower case shown as capitals.
 * Legibility rules: reference data light gray underneath, samples in one strong colour on top,
 * points shrink and fade as their number grows so that overlap reads as density; axes carry
 * "nice" ticks (1, 2, 5 x 10^k; Heckbert, Graphics Gems 1990). */
#include "core/core.h"
#include "unigen.h"
#include <math.h>

/* ---------------------------------------------------------------- font */
typedef struct { char ch; const char *rows; } glyph;   /* 7 rows of 5 columns, '#' = ink */
static const glyph k_font[] = {
    {'0', ".###.#...##..###.#.###..##...#.###."},
    {'1', "..#...##....#....#....#....#...###."},
    {'2', ".###.#...#....#...#...#...#...#####"},
    {'3', "#####...#...#.....#.....##...#.###."},
    {'4', "...#...##..#.#.#..#.#####...#....#."},
    {'5', "######....####.....#....##...#.###."},
    {'6', "..##..#...#....####.#...##...#.###."},
    {'7', "#####....#...#...#...#....#....#..."},
    {'8', ".###.#...##...#.###.#...##...#.###."},
    {'9', ".###.#...##...#.####....#...#..##.."},
    {'A', ".###.#...##...##...#######...##...#"},
    {'B', "####.#...##...#####.#...##...#####."},
    {'C', ".###.#...##....#....#....#...#.###."},
    {'D', "###..#..#.#...##...##...##..#.###.."},
    {'E', "######....#....####.#....#....#####"},
    {'F', "######....#....####.#....#....#...."},
    {'G', ".###.#...##....#.####...##...#.####"},
    {'H', "#...##...##...#######...##...##...#"},
    {'I', ".###...#....#....#....#....#...###."},
    {'J', "..###...#....#....#....#.#..#..##.."},
    {'K', "#...##..#.#.#..##...#.#..#..#.#...#"},
    {'L', "#....#....#....#....#....#....#####"},
    {'M', "#...###.###.#.##.#.##...##...##...#"},
    {'N', "#...##...###..##.#.##..###...##...#"},
    {'O', ".###.#...##...##...##...##...#.###."},
    {'P', "####.#...##...#####.#....#....#...."},
    {'Q', ".###.#...##...##...##.#.##..#..##.#"},
    {'R', "####.#...##...#####.#.#..#..#.#...#"},
    {'S', ".#####....#.....###.....#....#####."},
    {'T', "#####..#....#....#....#....#....#.."},
    {'U', "#...##...##...##...##...##...#.###."},
    {'V', "#...##...##...##...##...#.#.#...#.."},
    {'W', "#...##...##...##.#.##.#.##.#.#.#.#."},
    {'X', "#...##...#.#.#...#...#.#.#...##...#"},
    {'Y', "#...##...##...#.#.#...#....#....#.."},
    {'Z', "#####....#...#...#...#...#....#####"},
    {'-', "...............#####..............."},
    {'+', ".......#....#..#####..#....#......."},
    {'.', ".........................##...##..."},
    {',', "....................##....#...#...."},
    {':', ".....##...##........##...##........"},
    {'=', "..........#####.....#####.........."},
    {'(', "...#...#...#....#....#.....#.....#."},
    {')', ".#.....#.....#....#....#...#...#..."},
    {'[', ".###..#....#....#....#....#....###."},
    {']', ".###....#....#....#....#....#..###."},
    {'/', ".........#...#...#...#...#........."},
    {'_', "..............................#####"},
    {'%', "##...##..#...#...#...#...#..##...##"},
    {'*', ".......#..#.#.#.###.#.#.#..#......."},
    {'#', ".#.#..#.#######.#.#######.#.#..#.#."},
    {'<', "...#...#...#...#.....#.....#.....#."},
    {'>', ".#.....#.....#.....#...#...#...#..."},
    {'!', ".#....#....#....#....#.........#..."},
    {'?', ".###.#...#....#...#...#.........#.."},
    {'\'', "##....#...#........................"},
    {'|', ".#....#....#....#....#....#....#..."},
    {'^', "..#...#.#.#...#...................."},
};

static const char *glyph_rows(char c) {
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    for (size_t i = 0; i < sizeof k_font / sizeof k_font[0]; i++)
        if (k_font[i].ch == c) return k_font[i].rows;
    return NULL;   /* space and anything unknown: blank */
}

/* ---------------------------------------------------------------- canvas */
typedef struct { uint8_t *p; int w, h; } canvas;
typedef struct { uint8_t r, g, b; } rgb;

static const rgb k_white = {255, 255, 255}, k_axis = {60, 60, 60}, k_grid = {232, 232, 232},
                 k_text = {30, 30, 30}, k_ref = {150, 150, 150}, k_sample = {214, 39, 40},
                 k_line = {31, 119, 180}, k_line_raw = {170, 200, 230};

static ug_status canvas_new(canvas *cv, int w, int h, const char *path) {
    if (w < 64 || h < 64 || w > 8192 || h > 8192)
        return ug_fail(UG_ERR_INVALID_ARG, "%s: plot of %d x %d pixels, expected 64 to 8192 a side",
                       path, w, h);
    cv->w = w;
    cv->h = h;
    cv->p = malloc((size_t)w * h * 3);
    if (!cv->p) return ug_fail(UG_ERR_NOMEM, "%s: out of memory for the plot", path);
    memset(cv->p, 255, (size_t)w * h * 3);
    return UG_OK;
}

static inline void blend(canvas *cv, int x, int y, rgb c, float a) {
    if (x < 0 || y < 0 || x >= cv->w || y >= cv->h) return;
    uint8_t *q = cv->p + ((size_t)y * cv->w + x) * 3;
    q[0] = (uint8_t)lrintf(q[0] + a * (c.r - q[0]));
    q[1] = (uint8_t)lrintf(q[1] + a * (c.g - q[1]));
    q[2] = (uint8_t)lrintf(q[2] + a * (c.b - q[2]));
}

static void fill_rect(canvas *cv, int x0, int y0, int x1, int y1, rgb c) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) blend(cv, x, y, c, 1.0f);
}

/* A disc of radius r at (cx, cy); below one pixel it is one blended pixel. */
static void dot(canvas *cv, float cx, float cy, float r, rgb c, float a) {
    if (r < 0.75f) { blend(cv, (int)floorf(cx), (int)floorf(cy), c, a); return; }
    int x0 = (int)floorf(cx - r), x1 = (int)ceilf(cx + r);
    int y0 = (int)floorf(cy - r), y1 = (int)ceilf(cy + r);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            float dx = x + 0.5f - cx, dy = y + 0.5f - cy;
            /* Soft edge: one pixel of linear falloff instead of a jagged rim. */
            float cover = r + 0.5f - sqrtf(dx * dx + dy * dy);
            if (cover > 0) blend(cv, x, y, c, a * (cover > 1 ? 1.0f : cover));
        }
}

static void line(canvas *cv, float x0, float y0, float x1, float y1, float r, rgb c) {
    float len = fmaxf(fabsf(x1 - x0), fabsf(y1 - y0));
    int steps = (int)ceilf(len * 2) + 1;
    for (int i = 0; i <= steps; i++) {
        float t = (float)i / steps;
        float x = x0 + t * (x1 - x0), y = y0 + t * (y1 - y0);
        if (r <= 0.5f) blend(cv, (int)lrintf(x), (int)lrintf(y), c, 1.0f);
        else dot(cv, x, y, r, c, 1.0f);
    }
}

/* Punctuation is drawn in the left 2 columns and advances 3, so "0.1" does not read "0. 1". */
static int advance(char c) { return strchr(".,:!'|", c) ? 3 : 6; }

static int text_width(const char *s, int scale) {
    int w = 0;
    for (; *s; s++) w += advance(*s) * scale;
    return w > 0 ? w - scale : 0;
}

static void text(canvas *cv, int x, int y, const char *s, int scale, rgb c) {
    for (; *s; x += advance(*s) * scale, s++) {
        const char *g = glyph_rows(*s);
        if (!g) continue;
        for (int r = 0; r < 7; r++)
            for (int col = 0; col < 5; col++)
                if (g[r * 5 + col] == '#')
                    for (int dy = 0; dy < scale; dy++)
                        for (int dx = 0; dx < scale; dx++)
                            blend(cv, x + col * scale + dx, y + r * scale + dy, c, 1.0f);
    }
}

/* ---------------------------------------------------------------- axes */
#define MAX_TICKS 32
typedef struct {
    double v[MAX_TICKS];        /* positions in axis units (log10 units on a log axis) */
    char label[MAX_TICKS][16];
    int n;
} ticks;

static void fmt_num(char *buf, size_t n, double v, int decimals) {
    if (fabs(v) < 1e-12) v = 0;   /* no "-0.0" */
    snprintf(buf, n, "%.*f", decimals, v);
}

static void linear_ticks(double lo, double hi, ticks *t) {
    t->n = 0;
    double raw = (hi - lo) / 6, mag = pow(10, floor(log10(raw))), norm = raw / mag;
    double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    double big = fmax(fabs(lo), fabs(hi));
    for (double v = ceil(lo / step) * step; v <= hi + 1e-9 * step && t->n < MAX_TICKS; v += step) {
        t->v[t->n] = v;
        if (big >= 1e5 || big < 1e-3) snprintf(t->label[t->n], 16, "%.2g", v);
        else fmt_num(t->label[t->n], 16, v, dec);
        t->n++;
    }
}

static void pow10_label(char *buf, double v) {
    double x = pow(10, v);
    int e = (int)lrint(floor(v + 1e-9));
    if (e >= -3 && e <= 4) snprintf(buf, 16, "%.*f", e < 0 ? -e : 0, x);
    else snprintf(buf, 16, "%.0fE%d", x / pow(10, e), e);
}

/* Ticks of a log10 axis over [lo, hi] (log10 units): 1-2-5 in each decade over fewer than 3
 * decades, else decades, thinned when there are many. */
static void log_ticks(double lo, double hi, ticks *t) {
    t->n = 0;
    int e0 = (int)floor(lo), e1 = (int)ceil(hi);
    if (hi - lo < 3) {
        static const double mult[3] = {1, 2, 5};
        for (int e = e0; e <= e1; e++)
            for (int k = 0; k < 3 && t->n < MAX_TICKS; k++) {
                double v = e + log10(mult[k]);
                if (v < lo - 1e-9 || v > hi + 1e-9) continue;
                t->v[t->n] = v;
                pow10_label(t->label[t->n], v);
                if (mult[k] != 1 && (e < -3 || e > 4))
                    snprintf(t->label[t->n], 16, "%gE%d", mult[k], e);
                t->n++;
            }
        if (t->n >= 2) return;
        linear_ticks(lo, hi, t);   /* tiny span: plain ticks, labelled with 10^v */
        for (int i = 0; i < t->n; i++) snprintf(t->label[i], 16, "%.3g", pow(10, t->v[i]));
        return;
    }
    int every = (e1 - e0 + 7) / 8;
    if (every < 1) every = 1;
    for (int e = e0; e <= e1 && t->n < MAX_TICKS; e++) {
        if (e < lo - 1e-9 || e > hi + 1e-9 || e % every) continue;
        t->v[t->n] = e;
        pow10_label(t->label[t->n], e);
        t->n++;
    }
}

typedef struct {
    int x0, y0, x1, y1;         /* plot area in pixels, [x0, x1] x [y0, y1] */
    double xlo, xhi, ylo, yhi;  /* data range */
    int scale;                  /* font scale */
} frame;

static inline float fx(const frame *f, double x) {
    return (float)(f->x0 + (x - f->xlo) / (f->xhi - f->xlo) * (f->x1 - f->x0));
}
static inline float fy(const frame *f, double y) {
    return (float)(f->y1 - (y - f->ylo) / (f->yhi - f->ylo) * (f->y1 - f->y0));
}

/* Margins from the canvas, title and the widest y label. */
static void frame_layout(frame *f, const canvas *cv, int has_top, int ylabel_chars) {
    f->scale = cv->w >= 480 && cv->h >= 320 ? 2 : 1;
    int ch = 7 * f->scale, cw = 6 * f->scale;
    f->x0 = 10 + ylabel_chars * cw + 8;
    f->x1 = cv->w - 14 - cw;   /* room for half of the last x label */
    f->y0 = has_top ? 12 + ch + 10 : 14;
    f->y1 = cv->h - (10 + ch + 8);
}

static void draw_axes(canvas *cv, const frame *f, const ticks *tx, const ticks *ty) {
    for (int i = 0; i < tx->n; i++) {
        int x = (int)lrintf(fx(f, tx->v[i]));
        for (int y = f->y0; y <= f->y1; y++) blend(cv, x, y, k_grid, 1.0f);
    }
    for (int i = 0; i < ty->n; i++) {
        int y = (int)lrintf(fy(f, ty->v[i]));
        for (int x = f->x0; x <= f->x1; x++) blend(cv, x, y, k_grid, 1.0f);
    }
}

static void draw_frame(canvas *cv, const frame *f, const ticks *tx, const ticks *ty) {
    int s = f->scale, ch = 7 * s;
    /* Frame and ticks are drawn after the data: points never hide the axes. */
    for (int x = f->x0; x <= f->x1; x++) {
        blend(cv, x, f->y0, k_axis, 1);
        blend(cv, x, f->y1, k_axis, 1);
    }
    for (int y = f->y0; y <= f->y1; y++) {
        blend(cv, f->x0, y, k_axis, 1);
        blend(cv, f->x1, y, k_axis, 1);
    }
    for (int i = 0; i < tx->n; i++) {
        int x = (int)lrintf(fx(f, tx->v[i]));
        for (int k = 1; k <= 5; k++) blend(cv, x, f->y1 + k, k_axis, 1);
        text(cv, x - text_width(tx->label[i], s) / 2, f->y1 + 8, tx->label[i], s, k_text);
    }
    for (int i = 0; i < ty->n; i++) {
        int y = (int)lrintf(fy(f, ty->v[i]));
        for (int k = 1; k <= 5; k++) blend(cv, f->x0 - k, y, k_axis, 1);
        text(cv, f->x0 - 8 - text_width(ty->label[i], s), y - ch / 2, ty->label[i], s, k_text);
    }
}

static int max_label(const ticks *t) {
    int m = 1;
    for (int i = 0; i < t->n; i++) m = (int)strlen(t->label[i]) > m ? (int)strlen(t->label[i]) : m;
    return m;
}

static ug_status finish(canvas *cv, const char *path) {
    ug_status st = ug_png_write(path, cv->p, cv->w, cv->h, 3);
    free(cv->p);
    return st;
}

/* ---------------------------------------------------------------- scatter */
static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* [q, 1-q] quantiles of coordinate j of finite rows; 0 when there are none. */
static int quantile_range(const float *p, int64_t n, int j, double q, double *lo, double *hi) {
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v) return -1;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(p[2 * i]) && isfinite(p[2 * i + 1])) v[k++] = p[2 * i + j];
    if (k > 0) {
        qsort(v, (size_t)k, sizeof *v, cmp_float);
        int64_t a = (int64_t)floor(q * (k - 1)), b = (int64_t)ceil((1 - q) * (k - 1));
        *lo = v[a];
        *hi = v[b];
    }
    free(v);
    return k > 0;
}

static void point_style(int64_t n, float *r, float *a) {
    if (n <= 1000) { *r = 2.2f; *a = 0.85f; }
    else if (n <= 5000) { *r = 1.6f; *a = 0.6f; }
    else if (n <= 20000) { *r = 1.1f; *a = 0.4f; }
    else { *r = 0.6f; *a = fmaxf(0.06f, 0.4f * 20000.0f / (float)n); }
}

static void legend_item(canvas *cv, int *x, int y, int s, rgb c, const char *label) {
    *x -= text_width(label, s);
    text(cv, *x, y, label, s, k_text);
    *x -= 4 * s + 6;
    fill_rect(cv, *x, y + s, *x + 4 * s, y + 5 * s, c);
    *x -= 12;
}

ug_status ug_plot_scatter(const char *path, const float *pts, int64_t n, const float *ref,
                          int64_t m, int width, int height, const char *title,
                          const float *range) {
    if (n < 0 || m < 0 || (n > 0 && !pts) || (m > 0 && !ref))
        return ug_fail(UG_ERR_INVALID_ARG, "%s: scatter of n = %lld points, m = %lld reference "
                       "points (need n, m >= 0 with their arrays)", path, (long long)n,
                       (long long)m);
    if (range && !(range[1] > range[0] && range[3] > range[2]))
        return ug_fail(UG_ERR_INVALID_ARG, "%s: range {%g, %g, %g, %g}, expected xmin < xmax and "
                       "ymin < ymax", path, range[0], range[1], range[2], range[3]);
    canvas cv;
    ug_status st = canvas_new(&cv, width, height, path);
    if (st) return st;
    if (!ref) m = 0;
    int has_top = (title && *title) || m > 0;
    frame f;
    /* Layout depends on the label widths and the labels on the layout: settle it twice. */
    frame_layout(&f, &cv, has_top, 5);
    /* The legend shares the title's line when both fit, else it gets a line of its own. */
    int legend_w = m > 0 ? text_width("data samples", f.scale) + 2 * (4 * f.scale + 18) : 0;
    int title_w = title ? text_width(title, f.scale) : 0;
    int legend_y = 12, extra_top = 0;
    if (m > 0 && title && *title && title_w + legend_w + 40 > cv.w - 20) {
        extra_top = 7 * f.scale + 8;
        legend_y += extra_top;
        f.y0 += extra_top;
    }
    double xlo = -1, xhi = 1, ylo = -1, yhi = 1;
    if (range) {
        xlo = range[0]; xhi = range[1]; ylo = range[2]; yhi = range[3];
    } else {
        for (int j = 0; j < 2; j++) {
            double lo = INFINITY, hi = -INFINITY, a, b;
            int got = 0;
            if (m > 0 && (got = quantile_range(ref, m, j, 0.0, &a, &b)) > 0) { lo = a; hi = b; }
            if (got < 0) { free(cv.p); return ug_fail(UG_ERR_NOMEM, "%s: out of memory", path); }
            int g2 = n > 0 ? quantile_range(pts, n, j, 0.001, &a, &b) : 0;
            if (g2 < 0) { free(cv.p); return ug_fail(UG_ERR_NOMEM, "%s: out of memory", path); }
            if (g2 > 0) { lo = fmin(lo, a); hi = fmax(hi, b); }
            if (got > 0 || g2 > 0) {
                if (!(hi > lo)) { lo -= 1; hi += 1; }
                double pad = 0.05 * (hi - lo);
                double *dlo = j == 0 ? &xlo : &ylo, *dhi = j == 0 ? &xhi : &yhi;
                *dlo = lo - pad;
                *dhi = hi + pad;
            }
        }
    }
    ticks tx, ty;
    for (int pass = 0; pass < 2; pass++) {
        f.xlo = xlo; f.xhi = xhi; f.ylo = ylo; f.yhi = yhi;
        if (!range) {
            /* Equal aspect: one data unit is as long across as up, so circles look round. */
            double ux = (xhi - xlo) / (f.x1 - f.x0), uy = (yhi - ylo) / (f.y1 - f.y0);
            if (ux > uy) {
                double c = 0.5 * (ylo + yhi), half = 0.5 * ux * (f.y1 - f.y0);
                f.ylo = c - half; f.yhi = c + half;
            } else {
                double c = 0.5 * (xlo + xhi), half = 0.5 * uy * (f.x1 - f.x0);
                f.xlo = c - half; f.xhi = c + half;
            }
        }
        linear_ticks(f.xlo, f.xhi, &tx);
        linear_ticks(f.ylo, f.yhi, &ty);
        if (pass == 0) {
            frame_layout(&f, &cv, has_top, max_label(&ty));
            f.y0 += extra_top;
        }
    }
    draw_axes(&cv, &f, &tx, &ty);
    float r, a;
    for (int layer = 0; layer < 2; layer++) {
        const float *p = layer == 0 ? ref : pts;
        int64_t cnt = layer == 0 ? m : n;
        point_style(cnt, &r, &a);
        if (layer == 0) a *= 0.8f;
        for (int64_t i = 0; i < cnt; i++) {
            if (!isfinite(p[2 * i]) || !isfinite(p[2 * i + 1])) continue;
            float px = fx(&f, p[2 * i]), py = fy(&f, p[2 * i + 1]);
            if (px < f.x0 || px > f.x1 || py < f.y0 || py > f.y1) continue;
            dot(&cv, px, py, r, layer == 0 ? k_ref : k_sample, a);
        }
    }
    /* Points near the border spill over it; repaint the margins white before the frame. */
    fill_rect(&cv, 0, 0, cv.w, f.y0, k_white);
    fill_rect(&cv, 0, f.y1 + 1, cv.w, cv.h, k_white);
    fill_rect(&cv, 0, 0, f.x0, cv.h, k_white);
    fill_rect(&cv, f.x1 + 1, 0, cv.w, cv.h, k_white);
    draw_frame(&cv, &f, &tx, &ty);
    int s = f.scale;
    if (title && *title) text(&cv, f.x0, 12, title, s, k_text);
    if (m > 0) {
        int x = f.x1;
        legend_item(&cv, &x, legend_y, s, k_sample, "samples");
        legend_item(&cv, &x, legend_y, s, k_ref, "data");
    }
    return finish(&cv, path);
}

/* ---------------------------------------------------------------- curves */
ug_status ug_plot_curve(const char *path, const double *x, const double *y, int64_t n,
                        const char *title, int log_y) {
    if (n < 0 || (n > 0 && (!x || !y)))
        return ug_fail(UG_ERR_INVALID_ARG, "%s: curve of n = %lld points (need n >= 0 with x, y)",
                       path, (long long)n);
    canvas cv;
    ug_status st = canvas_new(&cv, 640, 400, path);
    if (st) return st;
    /* Plotted values: y or log10 y, NaN where a point is skipped. */
    double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    double *sm = malloc((size_t)(n > 0 ? n : 1) * sizeof *sm);
    if (!v || !sm) {
        free(v); free(sm); free(cv.p);
        return ug_fail(UG_ERR_NOMEM, "%s: out of memory", path);
    }
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int64_t valid = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = log_y ? (y[i] > 0 ? log10(y[i]) : NAN) : y[i];
        v[i] = isfinite(t) && isfinite(x[i]) ? t : NAN;
        if (isnan(v[i])) continue;
        valid++;
        xlo = fmin(xlo, x[i]); xhi = fmax(xhi, x[i]);
        ylo = fmin(ylo, v[i]); yhi = fmax(yhi, v[i]);
    }
    if (valid == 0) { xlo = 0; xhi = 1; ylo = 0; yhi = 1; }
    if (!(xhi > xlo)) { xlo -= 1; xhi += 1; }
    if (!(yhi > ylo)) { double d = log_y ? 0.5 : fmax(1e-3, 0.1 * fabs(ylo)); ylo -= d; yhi += d; }
    double pad = 0.05 * (yhi - ylo);
    ylo -= pad; yhi += pad;
    frame f;
    ticks tx, ty;
    frame_layout(&f, &cv, title && *title, 5);
    for (int pass = 0; pass < 2; pass++) {
        f.xlo = xlo; f.xhi = xhi; f.ylo = ylo; f.yhi = yhi;
        linear_ticks(xlo, xhi, &tx);
        if (log_y) log_ticks(ylo, yhi, &ty); else linear_ticks(ylo, yhi, &ty);
        if (pass == 0) frame_layout(&f, &cv, title && *title, max_label(&ty));
    }
    draw_axes(&cv, &f, &tx, &ty);
    /* Centred moving average over valid points (in plotted units): window ~ n / 50. */
    int smooth = valid > 50;
    int64_t half = valid / 100 > 2 ? valid / 100 : 2;
    for (int64_t i = 0; i < n; i++) {
        sm[i] = NAN;
        if (!smooth || isnan(v[i])) continue;
        double acc = 0;
        int64_t cnt = 0;
        for (int64_t j = i - half; j <= i + half; j++)
            if (j >= 0 && j < n && !isnan(v[j])) { acc += v[j]; cnt++; }
        sm[i] = acc / (double)cnt;
    }
    for (int pass = 0; pass < (smooth ? 2 : 1); pass++) {
        const double *c = pass == 0 ? v : sm;
        rgb col = smooth && pass == 0 ? k_line_raw : k_line;
        float rad = smooth && pass == 0 ? 0.5f : 1.0f;
        int64_t prev = -1;
        for (int64_t i = 0; i < n; i++) {
            if (isnan(c[i])) continue;
            if (prev >= 0)
                line(&cv, fx(&f, x[prev]), fy(&f, c[prev]), fx(&f, x[i]), fy(&f, c[i]), rad, col);
            else if (valid == 1)
                dot(&cv, fx(&f, x[i]), fy(&f, c[i]), 2.0f, col, 1.0f);
            prev = i;
        }
    }
    free(v);
    free(sm);
    draw_frame(&cv, &f, &tx, &ty);
    if (title && *title) text(&cv, f.x0, 12, title, f.scale, k_text);
    return finish(&cv, path);
}
