/* io.h — file formats: element types, crash-safe file replacement, safetensors, NumPy .npy.
 *
 * safetensors: https://github.com/huggingface/safetensors — u64 little-endian header length N,
 * N bytes of JSON header {name: {"dtype", "shape", "data_offsets": [begin, end]}, optional
 * "__metadata__": {string: string}}, then the data area; offsets are relative to its start.
 * .npy: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html — magic
 * "\x93NUMPY", version (1.0: u16 header length; 2.0/3.0: u32), a Python-literal dict
 * {'descr', 'fortran_order', 'shape'}, then the C-order data.
 *
 * The public part (dtypes, safetensors, .npy) is declared in unigen.h; this header keeps the
 * internal helpers shared by the writers: whole-file reads and crash-safe replacement.
 * Readers refuse a malformed file rather than guess; writers go through a temporary file and
 * rename(), so a reader never sees a half-written file. */
#ifndef UG_IO_H
#define UG_IO_H

#include "unigen.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

#endif
