/* Atomic file replacement (see atomic_file.h). */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Makes the rename itself durable; failure here is not worth failing the write for. */
static void sync_folder(const char *path) {
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

/* Fault injection for tests: FEWCL_FAULT_DISK_FULL=N makes every file written here fail with
 * ENOSPC after N bytes, as a full disk would (a file-size rlimit would also break the OpenCL
 * compiler's own files). */
static size_t disk_room(void) {
    const char *env = getenv("FEWCL_FAULT_DISK_FULL");
    return env && *env ? (size_t)strtoull(env, NULL, 10) : (size_t)-1;
}

fewcl_status fcl_atomic_write(const char *path, const void *const *pieces, const size_t *lens,
                              int n) {
    char tmp[4096];
    fcl_temp_path(path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "wb");
    if (!f) return fcl_fail(FEWCL_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    int ok = 1;
    size_t room = disk_room();
    for (int i = 0; ok && i < n; i++) {
        size_t len = lens[i] < room ? lens[i] : room;
        ok = len == 0 || fwrite(pieces[i], 1, len, f) == len;
        room -= len;
        if (ok && len < lens[i]) ok = 0, errno = ENOSPC;
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) {
        if (errno) e = errno;
        unlink(tmp);
        return fcl_fail(FEWCL_ERR_IO,
                        "writing %s failed: %s (the previous file, if any, is intact)", path,
                        strerror(e));
    }
    sync_folder(path);
    return FEWCL_OK;
}

fewcl_status fcl_atomic_write_text(const char *path, const char *text) {
    const void *pieces[1] = {text};
    size_t lens[1] = {strlen(text)};
    return fcl_atomic_write(path, pieces, lens, 1);
}
