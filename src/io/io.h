/* io.h — file formats: element types, crash-safe file replacement, safetensors, NumPy .npy.
 *
 * safetensors: https://github.com/huggingface/safetensors — u64 little-endian header length N,
 * N bytes of JSON header {name: {"dtype", "shape", "data_offsets": [begin, end]}, optional
 * "__metadata__": {string: string}}, then the data area; offsets are relative to its start.
 * .npy: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html — magic
 * "\x93NUMPY", version (1.0: u16 header length; 2.0/3.0: u32), a Python-literal dict
 * {'descr', 'fortran_order', 'shape'}, then the C-order data.
 *
 * Every declaration here is written to be made public as is: `ug_` names, ug_status results,
 * out-params, and failure messages (ug_last_error) naming the file, the field, what was
 * expected and what was found. Readers refuse a malformed file rather than guess; writers go
 * through a temporary file and rename(), so a reader never sees a half-written file. */
#ifndef UG_IO_H
#define UG_IO_H

#include "unigen.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------- element types */
/* Names are the safetensors spellings ("F32"). */
typedef enum ug_dtype {
    UG_DT_BOOL, UG_DT_U8, UG_DT_I8, UG_DT_I16, UG_DT_U16, UG_DT_F16, UG_DT_BF16,
    UG_DT_I32, UG_DT_U32, UG_DT_F32, UG_DT_I64, UG_DT_U64, UG_DT_F64,
    UG_DT_COUNT
} ug_dtype;

const char *ug_dtype_name(ug_dtype d);                 /* "F32"; "?" when out of range */
ug_status ug_dtype_from_name(const char *name, ug_dtype *out);   /* UG_ERR_UNSUPPORTED if unknown */
size_t ug_dtype_size(ug_dtype d);                      /* bytes per element; 0 when out of range */
/* Converts n little-endian elements of type d at src (any alignment) to float / double. */
void ug_dtype_to_f32(ug_dtype d, const void *src, int64_t n, float *dst);
void ug_dtype_to_f64(ug_dtype d, const void *src, int64_t n, double *dst);

/* ---------------------------------------------------------------- whole files */
/* Reads all of path into a malloc'd *buf (free() it) of *size bytes. */
ug_status ug_file_read_all(const char *path, unsigned char **buf, size_t *size);

/* ---------------------------------------------------------------- crash-safe writes */
/* Writes go to "<path>.tmp.<pid>"; commit flushes, fsyncs, closes, renames over path and
 * fsyncs the directory. On any failure the temporary file is removed and path is untouched. */
typedef struct ug_atomic_file {
    FILE *fp;
    char *path, *tmp;
} ug_atomic_file;
ug_status ug_atomic_open(ug_atomic_file *af, const char *path);
ug_status ug_atomic_write(ug_atomic_file *af, const void *p, size_t n);  /* aborts af on error */
ug_status ug_atomic_commit(ug_atomic_file *af);   /* always releases af */
void ug_atomic_abort(ug_atomic_file *af);         /* removes the temporary file; idempotent */

/* ---------------------------------------------------------------- safetensors: reading */
/* Header limit of the reference implementation. */
#define UG_ST_MAX_HEADER 100000000u

typedef struct ug_st_file ug_st_file;

/* Reads and validates the whole file: see safetensors.c for the full list of checks.
 * UG_ERR_IO (cannot read), UG_ERR_FORMAT (malformed), UG_ERR_UNSUPPORTED (valid safetensors
 * dtype unigen does not handle, such as F8_E4M3), UG_ERR_NOMEM. */
ug_status ug_st_open(const char *path, ug_st_file **out);
void ug_st_close(ug_st_file *f);
int ug_st_count(const ug_st_file *f);
/* Tensors are indexed in data-offset order; NULL when i is out of range. */
const char *ug_st_name(const ug_st_file *f, int i);
int ug_st_find(const ug_st_file *f, const char *name);            /* index or -1 */
/* shape must hold UG_MAX_DIMS entries; tensors of more dimensions give UG_ERR_UNSUPPORTED.
 * Any out-param may be NULL. UG_ERR_INVALID_ARG when name is absent. */
ug_status ug_st_info(const ug_st_file *f, const char *name, ug_dtype *dtype, int *ndim,
                     int64_t *shape);
int64_t ug_st_numel(const ug_st_file *f, const char *name);        /* -1 when absent */
/* Converts the tensor to float / double. n must equal its element count (UG_ERR_SHAPE). */
ug_status ug_st_read_f32(const ug_st_file *f, const char *name, float *dst, int64_t n);
ug_status ug_st_read_f64(const ug_st_file *f, const char *name, double *dst, int64_t n);
/* The stored little-endian bytes, valid until ug_st_close; not necessarily aligned. */
ug_status ug_st_raw(const ug_st_file *f, const char *name, const void **data, size_t *nbytes);
/* __metadata__: the value for key, or NULL. */
const char *ug_st_meta(const ug_st_file *f, const char *key);
int ug_st_meta_count(const ug_st_file *f);
const char *ug_st_meta_key(const ug_st_file *f, int i);           /* file order; NULL if out of range */

/* ---------------------------------------------------------------- safetensors: writing */
typedef struct ug_st_writer ug_st_writer;

ug_status ug_st_writer_create(ug_st_writer **out);
void ug_st_writer_free(ug_st_writer *w);
/* Borrows data (ndim dims, little-endian dtype elements) until ug_st_write; copies name and
 * shape. Names must be unique, valid UTF-8, non-empty and not "__metadata__". */
ug_status ug_st_writer_add(ug_st_writer *w, const char *name, ug_dtype dtype, int ndim,
                           const int64_t *shape, const void *data);
/* Copies key and value (valid UTF-8); a key set twice keeps the last value. */
ug_status ug_st_writer_set_meta(ug_st_writer *w, const char *key, const char *value);
/* Metadata first, then tensors in insertion order, contiguous; the header is padded with
 * spaces to a multiple of 8 bytes so every tensor starts 8-byte aligned in the file. */
ug_status ug_st_write(const ug_st_writer *w, const char *path);

/* ---------------------------------------------------------------- NumPy .npy */
typedef struct ug_npy_array {
    ug_dtype dtype;
    int ndim;                       /* 0 for a scalar array, shape () */
    int64_t shape[UG_MAX_DIMS];
    int64_t numel;
    void *data;                     /* numel elements of dtype, native layout, owned */
} ug_npy_array;

/* Reads versions 1.0, 2.0 and 3.0 of little-endian (or byte-order free) bool, u1/i1, i2/u2,
 * f2, i4/u4, f4, i8/u8, f8 C-order arrays. On failure *out is zeroed and owns nothing. */
ug_status ug_npy_read(const char *path, ug_npy_array *out);
void ug_npy_free(ug_npy_array *a);
/* Converts a->numel elements into dst. */
void ug_npy_to_f32(const ug_npy_array *a, float *dst);
void ug_npy_to_f64(const ug_npy_array *a, double *dst);
/* Writes a version 1.0 file whose data starts 64-byte aligned (numpy's convention). */
ug_status ug_npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data);
ug_status ug_npy_write_f64(const char *path, int ndim, const int64_t *shape, const double *data);

#endif
