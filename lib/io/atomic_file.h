/* Files replaced atomically: written to `<path>.tmp.<pid>.<thread>.<n>` (fcl_temp_path: unique
 * per thread and call), fsync'd, renamed over `path`, and the folder fsync'd, so a crash or a
 * full disk at any moment leaves either the old file or the new one, never a mix
 * (docs/spec.md §6). */
#ifndef FEWCL_IO_ATOMIC_FILE_H
#define FEWCL_IO_ATOMIC_FILE_H

#include <stddef.h>

#include "../runtime/runtime.h"

/* Writes the n pieces one after another. On failure the temporary file is removed, `path` is
 * untouched and the message names the file and the reason. */
fewcl_status fcl_atomic_write(const char *path, const void *const *pieces, const size_t *lens,
                              int n);
/* The same for one NUL-terminated text. */
fewcl_status fcl_atomic_write_text(const char *path, const char *text);

#endif
