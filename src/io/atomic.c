/*
 * atomic.c — every file the library writes is written whole or not at all:
 * into a temporary file beside its path (so on the same file system),
 * flushed to disk, then renamed over the path. A reader never sees a
 * half-written file, a failed write leaves none, and a symlink at the path
 * is replaced rather than written through.
 */
#include "../internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static atomic_uint tmp_counter;

nm_status nm_afile_open(nm_ctx *ctx, const char *path, nm_afile *a)
{
    memset(a, 0, sizeof *a);
    a->path = path;
    for (int tries = 0; tries < 100; tries++) {
        int n = snprintf(a->tmp, sizeof a->tmp, "%s.tmp-%ld-%u", path, (long)getpid(), atomic_fetch_add(&tmp_counter, 1));
        if (n < 0 || (size_t)n >= sizeof a->tmp) return nm_fail(ctx, NM_ERR_IO, "%s: path too long", path);
        int fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666); /* the umask applies, as for fopen */
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) return nm_fail(ctx, NM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        if (!(a->f = fdopen(fd, "wb"))) {
            close(fd);
            unlink(a->tmp);
            return nm_fail(ctx, NM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        }
        return NM_OK;
    }
    return nm_fail(ctx, NM_ERR_IO, "%s: no free temporary name beside it", path);
}

void nm_afile_abort(nm_afile *a)
{
    if (!a->f) return;
    fclose(a->f);
    unlink(a->tmp);
    a->f = NULL;
}

nm_status nm_afile_commit(nm_ctx *ctx, nm_afile *a)
{
    if (!a->f) return nm_fail(ctx, NM_ERR_IO, "%s: not open", a->path);
    int ok = !ferror(a->f) && fflush(a->f) == 0 && fsync(fileno(a->f)) == 0;
    int err = errno;
    ok = fclose(a->f) == 0 && ok;
    a->f = NULL;
    if (ok && rename(a->tmp, a->path) == 0) return NM_OK;
    if (ok) err = errno;
    unlink(a->tmp);
    return nm_fail(ctx, NM_ERR_IO, "%s: write failed: %s", a->path, strerror(err ? err : EIO));
}
