/* dtype.c — element types of the file formats: names (safetensors spelling), sizes, and
 * conversion of little-endian stored elements to float / double. F16 is IEEE 754 binary16;
 * BF16 is the top half of a binary32. Sources may be unaligned (a tensor's offset inside a
 * file is arbitrary), so every load goes through memcpy. */
#include "io/io.h"
#include "core/core.h"
#include <math.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "unigen's file formats assume a little-endian host"
#endif

static const struct { const char *name; size_t size; } k_dtypes[UG_DT_COUNT] = {
    [UG_DT_BOOL] = {"BOOL", 1}, [UG_DT_U8] = {"U8", 1},     [UG_DT_I8] = {"I8", 1},
    [UG_DT_I16] = {"I16", 2},   [UG_DT_U16] = {"U16", 2},   [UG_DT_F16] = {"F16", 2},
    [UG_DT_BF16] = {"BF16", 2}, [UG_DT_I32] = {"I32", 4},   [UG_DT_U32] = {"U32", 4},
    [UG_DT_F32] = {"F32", 4},   [UG_DT_I64] = {"I64", 8},   [UG_DT_U64] = {"U64", 8},
    [UG_DT_F64] = {"F64", 8},
};

const char *ug_dtype_name(ug_dtype d) {
    return (unsigned)d < UG_DT_COUNT ? k_dtypes[d].name : "?";
}

size_t ug_dtype_size(ug_dtype d) {
    return (unsigned)d < UG_DT_COUNT ? k_dtypes[d].size : 0;
}

ug_status ug_dtype_from_name(const char *name, ug_dtype *out) {
    for (int i = 0; i < UG_DT_COUNT; i++)
        if (name && strcmp(name, k_dtypes[i].name) == 0) {
            *out = (ug_dtype)i;
            return UG_OK;
        }
    return ug_fail(UG_ERR_UNSUPPORTED, "dtype: expected one of BOOL, U8, I8, I16, U16, F16, "
                   "BF16, I32, U32, F32, I64, U64, F64, found \"%s\"", name ? name : "(null)");
}

static double half_to_double(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp((double)m, -24);                       /* zero and subnormals */
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp((double)(m | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}

/* One element at p as double; exact for every type but 64-bit integers beyond 2^53. */
static double load(ug_dtype d, const unsigned char *p) {
    switch (d) {
    case UG_DT_BOOL: return p[0] != 0;
    case UG_DT_U8: return p[0];
    case UG_DT_I8: return (int8_t)p[0];
    case UG_DT_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case UG_DT_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case UG_DT_F16: { uint16_t v; memcpy(&v, p, 2); return half_to_double(v); }
    case UG_DT_BF16: {
        uint16_t v; memcpy(&v, p, 2);
        uint32_t b = (uint32_t)v << 16; float f; memcpy(&f, &b, 4); return f;
    }
    case UG_DT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case UG_DT_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case UG_DT_F32: { float v; memcpy(&v, p, 4); return v; }
    case UG_DT_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case UG_DT_U64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    case UG_DT_F64: { double v; memcpy(&v, p, 8); return v; }
    default: UG_CHECK(0, "ug_dtype: bad dtype %d", (int)d);
    }
    return 0;
}

void ug_dtype_to_f32(ug_dtype d, const void *src, int64_t n, float *dst) {
    const unsigned char *p = src;
    if (n <= 0) return;
    if (d == UG_DT_F32) {
        memcpy(dst, src, (size_t)n * 4);
        return;
    }
    size_t sz = ug_dtype_size(d);
    UG_CHECK(sz, "ug_dtype_to_f32: bad dtype %d", (int)d);
    /* I64 goes straight to float: int64 -> double -> float could round twice. */
    if (d == UG_DT_I64) {
        for (int64_t i = 0; i < n; i++) { int64_t v; memcpy(&v, p + 8 * i, 8); dst[i] = (float)v; }
        return;
    }
    if (d == UG_DT_U64) {
        for (int64_t i = 0; i < n; i++) { uint64_t v; memcpy(&v, p + 8 * i, 8); dst[i] = (float)v; }
        return;
    }
    for (int64_t i = 0; i < n; i++) dst[i] = (float)load(d, p + (size_t)i * sz);
}

void ug_dtype_to_f64(ug_dtype d, const void *src, int64_t n, double *dst) {
    const unsigned char *p = src;
    size_t sz = ug_dtype_size(d);
    UG_CHECK(sz, "ug_dtype_to_f64: bad dtype %d", (int)d);
    if (n <= 0) return;
    for (int64_t i = 0; i < n; i++) dst[i] = load(d, p + (size_t)i * sz);
}
