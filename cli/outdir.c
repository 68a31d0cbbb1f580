/*
 * outdir.c — a directory of results written as a unit (issue 12): the
 * command takes a lock in the directory (a second run into it is refused
 * with a clear error), writes every file into a hidden staging directory
 * inside it, and only when all are complete moves them into place; a run
 * that fails removes what it staged and leaves the directory as it was.
 * Under mpirun only rank 0 writes there: the other ranks, which run the
 * same code, stage into a scratch directory of their own that is removed;
 * the commit waits for every rank to say it succeeded (cli_ranks_agree).
 */
#include "outdir.h"
#include "ranks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_NAME ".netmoments.lock"

/* The lock: a file holding the owner's pid, created exclusively; a lock
 * whose owner is gone is stale and taken over. */
static int take_lock(cli_outdir *o, const char *opt)
{
    snprintf(o->lock, sizeof o->lock, "%s/" LOCK_NAME, o->dir);
    for (int tries = 0; tries < 2; tries++) {
        int fd = open(o->lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            char pid[32];
            int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            int ok = write(fd, pid, (size_t)n) == n;
            close(fd);
            if (!ok) return unlink(o->lock), cli_error("%s: cannot write %s", opt, o->lock);
            return 0;
        }
        if (errno != EEXIST) return cli_error("%s: cannot lock %s: %s", opt, o->dir, strerror(errno));
        FILE *f = fopen(o->lock, "r");
        long owner = 0;
        if (f && fscanf(f, "%ld", &owner) != 1) owner = 0;
        if (f) fclose(f);
        if (owner > 0 && (kill((pid_t)owner, 0) == 0 || errno != ESRCH))
            return cli_error("%s: %s is in use by another netmoments run (pid %ld); wait for it or choose another directory", opt, o->dir,
                             owner);
        unlink(o->lock); /* stale: its run is gone */
    }
    return cli_error("%s: cannot lock %s", opt, o->dir);
}

/* A rank other than 0: its scratch stage under $TMPDIR, no lock. */
static int open_scratch(cli_outdir *o, const char *opt)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(o->stage, sizeof o->stage, "%s/netmoments-rank%d-XXXXXX", tmp && *tmp ? tmp : "/tmp", cli_rank());
    if (!mkdtemp(o->stage)) return cli_error("%s: rank %d cannot create its scratch directory %s: %s", opt, cli_rank(), o->stage, strerror(errno));
    o->lock[0] = 0;
    o->open = 1;
    return 0;
}

int cli_outdir_open(cli_outdir *o, const char *dir, const char *opt)
{
    memset(o, 0, sizeof *o);
    if (snprintf(o->dir, sizeof o->dir, "%s", dir) >= (int)sizeof o->dir) return cli_error("%s: path too long", opt);
    if (cli_rank() != 0) return open_scratch(o, opt);
    if (cli_make_dir(dir, opt) || take_lock(o, opt)) return 1;
    snprintf(o->stage, sizeof o->stage, "%s/.netmoments-XXXXXX", o->dir);
    if (!mkdtemp(o->stage)) {
        unlink(o->lock);
        return cli_error("%s: cannot create a staging directory in %s: %s", opt, dir, strerror(errno));
    }
    o->open = 1;
    return 0;
}

/* Removes the staging directory and what it holds, then the lock. */
static void clear_stage(cli_outdir *o)
{
    DIR *d = opendir(o->stage);
    struct dirent *e;
    char path[8300];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", o->stage, e->d_name);
            unlink(path);
        }
    if (d) closedir(d);
    rmdir(o->stage);
    if (o->lock[0]) unlink(o->lock);
    o->open = 0;
}

int cli_outdir_commit(cli_outdir *o)
{
    if (!o->open) return 0;
    if (cli_ranks_agree(0) != 0) { /* another rank failed: what this one staged is not the whole run */
        clear_stage(o);
        return 1;
    }
    if (cli_rank() != 0) return clear_stage(o), 0;
    DIR *d = opendir(o->stage);
    struct dirent *e;
    char from[8300], to[8300];
    int rc = d ? 0 : cli_error("cannot read %s", o->stage);
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(from, sizeof from, "%s/%s", o->stage, e->d_name);
        snprintf(to, sizeof to, "%s/%s", o->dir, e->d_name);
        if (rename(from, to) != 0) rc = cli_error("cannot move %s into %s: %s", e->d_name, o->dir, strerror(errno));
    }
    if (d) closedir(d);
    clear_stage(o);
    return rc;
}

void cli_outdir_abort(cli_outdir *o)
{
    if (!o->open) return;
    cli_ranks_agree(1);
    clear_stage(o);
}

const char *cli_outdir_stage(const cli_outdir *o)
{
    return o->stage;
}
