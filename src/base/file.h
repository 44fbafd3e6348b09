/* Files: read-only memory maps (model weights stay in the page cache and are
 * shared between processes), whole-file reads with a size limit, and atomic
 * writes (temporary file, fsync, rename) so a crash leaves old or new, never
 * half. */
#ifndef HL_BASE_FILE_H
#define HL_BASE_FILE_H

#include "base/err.h"

#include <stddef.h>

typedef struct hl_mmap {
    const void *data; /* read-only mapping of the whole file */
    size_t size;
} hl_mmap;

int hl_mmap_open(hl_mmap *m, const char *path, hl_err *err);
void hl_mmap_close(hl_mmap *m);

/* Reads the whole file into a malloc'ed, NUL-terminated buffer (caller frees).
 * Fails with HL_ERANGE if the file is larger than max_size. */
int hl_read_file(const char *path, size_t max_size, char **out, size_t *out_len, hl_err *err);

/* Writes data to path atomically: path.tmp.<pid>, fsync, rename, fsync dir. */
int hl_write_file_atomic(const char *path, const void *data, size_t len, hl_err *err);

/* mkdir -p with mode 0755. */
int hl_mkdirs(const char *path, hl_err *err);

#endif
