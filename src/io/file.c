/* file.c — whole-file reads, and crash-safe file replacement: write "<path>.tmp.<pid>", flush, fsync, close,
 * rename() over path, fsync the directory. rename() within one directory is atomic on POSIX,
 * so path holds either the old file or the complete new one, never a partial write, even if
 * the process dies or the disk fills up midway. */
#include "io/io.h"
#include "core/core.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

ug_status ug_atomic_open(ug_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (!path || !*path) return ug_fail(UG_ERR_INVALID_ARG, "ug_atomic_open: empty path");
    size_t n = strlen(path) + 32;
    af->path = strdup(path);
    af->tmp = malloc(n);
    if (!af->path || !af->tmp) {
        ug_atomic_abort(af);
        return ug_fail(UG_ERR_NOMEM, "%s: cannot allocate the temporary file name", path);
    }
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    af->fp = fopen(af->tmp, "wb");
    if (!af->fp) {
        int e = errno;
        ug_atomic_abort(af);
        return ug_fail(UG_ERR_IO, "%s: cannot create the temporary file: %s", path, strerror(e));
    }
    return UG_OK;
}

void ug_atomic_abort(ug_atomic_file *af) {
    if (af->fp) fclose(af->fp);
    if (af->tmp && af->fp) remove(af->tmp);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
}

ug_status ug_atomic_write(ug_atomic_file *af, const void *p, size_t n) {
    if (!af->fp) return ug_fail(UG_ERR_STATE, "ug_atomic_write: file not open");
    if (n && fwrite(p, 1, n, af->fp) != n) {
        int e = errno;
        ug_status s = ug_fail(UG_ERR_IO, "%s: write failed: %s", af->path, strerror(e));
        ug_atomic_abort(af);
        return s;
    }
    return UG_OK;
}

/* The rename is durable only once the directory entry is on disk. Best effort: some file
 * systems refuse fsync on directories, and the new file is already complete either way. */
static void fsync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

ug_status ug_atomic_commit(ug_atomic_file *af) {
    if (!af->fp) return ug_fail(UG_ERR_STATE, "ug_atomic_commit: file not open");
    const char *step = NULL;
    int e = 0;
    if (fflush(af->fp) != 0) step = "flush";
    else if (fsync(fileno(af->fp)) != 0) step = "fsync";
    e = errno;
    FILE *fp = af->fp;
    af->fp = NULL;
    if (fclose(fp) != 0 && !step) { step = "close"; e = errno; }
    if (!step && rename(af->tmp, af->path) != 0) { step = "rename"; e = errno; }
    if (step) {
        ug_status s = ug_fail(UG_ERR_IO, "%s: %s of the temporary file %s failed: %s", af->path,
                              step, af->tmp, strerror(e));
        remove(af->tmp);
        ug_atomic_abort(af);
        return s;
    }
    fsync_dir(af->path);
    ug_atomic_abort(af);   /* frees the names; fp is NULL so nothing is removed */
    return UG_OK;
}

ug_status ug_file_read_all(const char *path, unsigned char **buf, size_t *size) {
    *buf = NULL;
    *size = 0;
    if (!path) return ug_fail(UG_ERR_INVALID_ARG, "ug_file_read_all: path is NULL");
    FILE *fp = fopen(path, "rb");
    if (!fp) return ug_fail(UG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ug_status st = UG_OK;
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) {
        st = ug_fail(UG_ERR_IO, "%s: cannot determine the file size: %s", path, strerror(errno));
        goto out;
    }
    /* Directories open fine and report sizes that mean nothing: refuse them up front. */
    if (!S_ISREG(sb.st_mode)) {
        st = ug_fail(UG_ERR_IO, "%s: expected a regular file, found a %s", path,
                     S_ISDIR(sb.st_mode) ? "directory" : "special file");
        goto out;
    }
    long n = (long)sb.st_size;
    *buf = malloc(n ? (size_t)n : 1);
    if (!*buf) {
        st = ug_fail(UG_ERR_NOMEM, "%s: cannot allocate %ld bytes to read the file", path, n);
        goto out;
    }
    if ((size_t)n && fread(*buf, 1, (size_t)n, fp) != (size_t)n) {
        st = ug_fail(UG_ERR_IO, "%s: read of %ld bytes failed", path, n);
        free(*buf);
        *buf = NULL;
        goto out;
    }
    *size = (size_t)n;
out:
    fclose(fp);
    return st;
}
