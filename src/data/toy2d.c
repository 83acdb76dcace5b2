/* toy2d.c — the 2-D toy densities of FFJORD (Grathwohl et al. 2019, lib/toy_data.py) and
 * 25gaussians of WGAN-GP (Gulrajani et al. 2017), reimplemented from their formulas with the
 * same constants. sklearn's make_moons / make_circles / make_swiss_roll place points on a
 * linspace; here every point draws its own position (angle or t) so that example i is a pure
 * function of (seed, i): the same distribution, without any dependence on n.
 * Each example uses Philox stream = its index: one block of 4 uniforms and one of 4 normals. */
#include "core/core.h"
#include "unigen.h"
#include <math.h>

static const char *const k_names[UG_TOY_COUNT] = {
    [UG_TOY_MOONS] = "moons",
    [UG_TOY_CIRCLES] = "circles",
    [UG_TOY_8GAUSSIANS] = "8gaussians",
    [UG_TOY_25GAUSSIANS] = "25gaussians",
    [UG_TOY_CHECKERBOARD] = "checkerboard",
    [UG_TOY_SWISSROLL] = "swissroll",
    [UG_TOY_PINWHEEL] = "pinwheel",
    [UG_TOY_2SPIRALS] = "2spirals",
};

const char *ug_toy2d_name(ug_toy2d t) {
    return (unsigned)t < UG_TOY_COUNT ? k_names[t] : "?";
}

ug_status ug_toy2d_from_name(const char *name, ug_toy2d *out) {
    for (int i = 0; i < UG_TOY_COUNT; i++)
        if (name && strcmp(name, k_names[i]) == 0) { *out = (ug_toy2d)i; return UG_OK; }
    char list[256] = "";
    for (int i = 0; i < UG_TOY_COUNT; i++) {
        strncat(list, k_names[i], sizeof list - strlen(list) - 1);
        if (i + 1 < UG_TOY_COUNT) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return ug_fail(UG_ERR_INVALID_ARG, "unknown 2-D toy data set '%s' (valid: %s)",
                   name ? name : "(null)", list);
}

/* Index in [0, k) from a uniform in (0, 1). */
static inline int pick(double u, int k) {
    int j = (int)(u * k);
    return j < k ? j : k - 1;
}

static void toy_point(ug_toy2d t, uint64_t seed, uint64_t stream, float out[2]) {
    const double pi = 3.14159265358979323846;
    ug_rng r = ug_rng_make(seed, stream, 0);
    float uf[4], zf[4];
    ug_rng_uniform(&r, uf, 4);
    ug_rng_normal(&r, zf, 4);
    double u0 = uf[0], u1 = uf[1], u2 = uf[2], u3 = uf[3], z0 = zf[0], z1 = zf[1];
    double x = 0, y = 0;
    switch (t) {
    case UG_TOY_MOONS: {
        /* Outer moon (cos a, sin a), inner (1 - cos a, 1/2 - sin a), a in [0, pi]. */
        double a = pi * u0;
        if (u1 < 0.5) { x = cos(a); y = sin(a); } else { x = 1 - cos(a); y = 0.5 - sin(a); }
        x = 2 * (x + 0.1 * z0) - 1.0;
        y = 2 * (y + 0.1 * z1) - 0.2;
        break;
    }
    case UG_TOY_CIRCLES: {
        double a = 2 * pi * u0, rad = u1 < 0.5 ? 1.0 : 0.5;
        x = 3 * (rad * cos(a) + 0.08 * z0);
        y = 3 * (rad * sin(a) + 0.08 * z1);
        break;
    }
    case UG_TOY_8GAUSSIANS: {
        /* Directions (1,0), (-1,0), (0,1), (0,-1) and the four diagonals: angles k pi / 4. */
        double a = pick(u0, 8) * (pi / 4);
        x = (4 * cos(a) + 0.5 * z0) / 1.414;
        y = (4 * sin(a) + 0.5 * z1) / 1.414;
        break;
    }
    case UG_TOY_25GAUSSIANS: {
        int k = pick(u0, 25);
        x = (2.0 * (k / 5 - 2) + 0.05 * z0) / 2.828;
        y = (2.0 * (k % 5 - 2) + 0.05 * z1) / 2.828;
        break;
    }
    case UG_TOY_CHECKERBOARD: {
        /* x1 ~ U[-2, 2); x2 in [0, 1) or [-2, -1), shifted up by one on odd columns. */
        double x1 = 4 * u0 - 2;
        double x2 = u1 - (u2 < 0.5 ? 0.0 : 2.0);
        double col = floor(x1);
        x2 += col - 2 * floor(col / 2);   /* floor(x1) mod 2, Python's sign convention */
        x = 2 * x1;
        y = 2 * x2;
        break;
    }
    case UG_TOY_SWISSROLL: {
        /* t = 1.5 pi (1 + 2u); (t cos t, height, t sin t) + N(0, 1); keep (x, z), / 5. */
        double tt = 1.5 * pi * (1 + 2 * u0);
        x = (tt * cos(tt) + z0) / 5;
        y = (tt * sin(tt) + z1) / 5;
        break;
    }
    case UG_TOY_PINWHEEL: {
        /* Feature (1 + 0.3 z0, 0.1 z1) rotated by class angle + 0.25 exp(f0), then * 2
         * (rows times [[cos, -sin], [sin, cos]], i.e. a rotation by -angle). */
        double f0 = 1 + 0.3 * z0, f1 = 0.1 * z1;
        double a = pick(u0, 5) * (2 * pi / 5) + 0.25 * exp(f0);
        double c = cos(a), s = sin(a);
        x = 2 * (f0 * c + f1 * s);
        y = 2 * (-f0 * s + f1 * c);
        break;
    }
    case UG_TOY_2SPIRALS: {
        double m = sqrt(u0) * 540 * (2 * pi) / 360;
        double dx = -cos(m) * m + u1 * 0.5, dy = sin(m) * m + u2 * 0.5;
        double sign = u3 < 0.5 ? 1.0 : -1.0;
        x = sign * dx / 3 + 0.1 * z0;
        y = sign * dy / 3 + 0.1 * z1;
        break;
    }
    default: break;
    }
    out[0] = (float)x;
    out[1] = (float)y;
}

ug_status ug_toy2d_sample_at(ug_toy2d t, int64_t first_index, int64_t n, uint64_t seed,
                             float *out) {
    if ((unsigned)t >= UG_TOY_COUNT)
        return ug_fail(UG_ERR_INVALID_ARG, "ug_toy2d_sample: toy id %d outside [0, %d)", (int)t,
                       UG_TOY_COUNT);
    if (n < 0 || first_index < 0)
        return ug_fail(UG_ERR_INVALID_ARG, "ug_toy2d_sample: n = %lld, first = %lld (need >= 0)",
                       (long long)n, (long long)first_index);
#pragma omp parallel for schedule(static) if (n >= 4096)
    for (int64_t i = 0; i < n; i++) toy_point(t, seed, (uint64_t)(first_index + i), out + 2 * i);
    return UG_OK;
}

ug_status ug_toy2d_sample(const char *name, int64_t n, uint64_t seed, float *out) {
    ug_toy2d t;
    ug_status st = ug_toy2d_from_name(name, &t);
    if (st) return st;
    return ug_toy2d_sample_at(t, 0, n, seed, out);
}
