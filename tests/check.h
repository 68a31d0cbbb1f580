/*
 * check.h — the tiny test harness: named tolerances, a worst-error tracker
 * printed at the end, and a verdict by exit code (STYLE item 9).
 */
#ifndef NM_CHECK_H
#define NM_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK_SKIP 77 /* CTest's SKIP_RETURN_CODE: optional data is absent */

static int check_failures = 0;
static int check_count = 0;
static double check_worst_abs = 0, check_worst_rel = 0;

/* Records |got − want| and fails when it exceeds abs_tol + rel_tol·|want|. */
static inline int check_close(const char *what, double got, double want, double abs_tol,
                              double rel_tol)
{
    double err = fabs(got - want), rel = want != 0 ? err / fabs(want) : err;
    check_count++;
    if (isfinite(err)) {
        if (err > check_worst_abs) check_worst_abs = err;
        if (rel > check_worst_rel && fabs(want) > 1e-300) check_worst_rel = rel;
    }
    if (!(err <= abs_tol + rel_tol * fabs(want)) || !isfinite(got)) {
        if (check_failures < 25)
            fprintf(stderr, "FAIL %s: got %.17g want %.17g (abs err %.3g)\n", what, got, want, err);
        check_failures++;
        return 0;
    }
    return 1;
}

static inline int check_true(const char *what, int cond)
{
    check_count++;
    if (!cond) {
        if (check_failures < 25) fprintf(stderr, "FAIL %s\n", what);
        check_failures++;
    }
    return cond;
}

static int check_skipped = 0;

/* 1 when the file exists; otherwise notes why the test is partly skipped
 * (data setup.sh fetches), and check_finish then reports CHECK_SKIP unless
 * something failed. */
static inline int check_have(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) return 1;
    if (!check_skipped) printf("skip: %s is absent (scripts/setup.sh fetches it)\n", path);
    check_skipped = 1;
    return 0;
}

static inline int check_finish(const char *name)
{
    printf("%s: %d checks, %d failed%s; worst abs err %.3g, worst rel err %.3g\n", name, check_count, check_failures,
           check_skipped ? " (some skipped: data absent)" : "", check_worst_abs, check_worst_rel);
    return check_failures ? 1 : check_skipped ? CHECK_SKIP : 0;
}

/* A fresh temporary directory for this test, removed with its files at
 * exit; check_tmp(name) is a path inside it (a static buffer of 8 rotating
 * slots, so a few paths can be alive at once). */
static char check_tmpdir[64];
static void check_tmp_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", check_tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", check_tmpdir);
}

static inline const char *check_tmp(const char *name)
{
    static char paths[8][4096];
    static int next = 0;
    if (!check_tmpdir[0]) {
        snprintf(check_tmpdir, sizeof check_tmpdir, "/tmp/nm_test_XXXXXX");
        if (!mkdtemp(check_tmpdir)) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(check_tmp_cleanup);
    }
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", check_tmpdir, name);
    return p;
}

#endif
