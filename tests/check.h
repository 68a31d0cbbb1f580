/*
 * check.h — the tiny test harness: named tolerances, a worst-error tracker
 * printed at the end, and a verdict by exit code (STYLE item 9).
 */
#ifndef NM_CHECK_H
#define NM_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

static inline int check_finish(const char *name)
{
    printf("%s: %d checks, %d failed; worst abs err %.3g, worst rel err %.3g\n", name, check_count,
           check_failures, check_worst_abs, check_worst_rel);
    return check_failures ? 1 : 0;
}

#endif
