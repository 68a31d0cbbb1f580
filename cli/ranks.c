/*
 * ranks.c — the CLI under mpirun (ranks.h). Built with MPI (NM_HAVE_MPI)
 * it starts MPI only when the environment shows an mpirun launch, so a
 * plain run never pays for it. Three communicators keep the three kinds of
 * collective apart: the library's exchanges, the commit agreement of the
 * output directory, and the exit agreement. Waits poll with short sleeps,
 * so that a rank waiting for the others does not take the CPU from them.
 */
#include "ranks.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rank_me = 0, rank_count = 1;

int cli_rank(void)
{
    return rank_me;
}

int cli_ranks(void)
{
    return rank_count;
}

#ifndef NM_HAVE_MPI

int cli_ranks_start(const char *command)
{
    (void)command;
    return 0;
}

const nm_dist *cli_ranks_dist(void)
{
    return NULL;
}

int cli_ranks_agree(int rc)
{
    return rc;
}

int cli_ranks_finish(int rc)
{
    return rc;
}

#else

#include <mpi.h>
#include <omp.h>
#include <time.h>
#include <unistd.h>

/* The commands whose work the ranks share (the dataset-level ones). */
static const char *const shared_commands[] = {"moments", "ara", "tightness", "linpoints", "reproduce", "uap",
                                              "fooling", "sensitivity", "robustness", "attack"};

static int on, shared;
static MPI_Comm comm_work, comm_agree, comm_exit;
static nm_dist dist;
static double t_start, t_exchange; /* wall time since the start, and of it waiting in exchanges */
static int real_stderr = -1;       /* ranks other than 0: their own stderr, kept aside */
static FILE *captured;             /* ...while what they print goes here */

static int launched_by_mpirun(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}

/* Waits for request rq, sleeping 50 µs between tests; 1 when it ended within limit_s (< 0: no limit). */
static int wait_for(MPI_Request *rq, double limit_s)
{
    double t0 = cli_now();
    struct timespec nap = {0, 50000};
    for (;;) {
        int done = 0;
        MPI_Test(rq, &done, MPI_STATUS_IGNORE);
        if (done) return 1;
        if (limit_s >= 0 && cli_now() - t0 > limit_s) return 0;
        nanosleep(&nap, NULL);
    }
}

/* nm_dist's allgather: MPI_Iallgather in pieces of at most 1 GiB (MPI counts are int). */
static int allgather(void *user, const void *mine, void *all, size_t bytes)
{
    (void)user;
    double t0 = cli_now();
    size_t piece = (size_t)1 << 30, P = (size_t)rank_count;
    int rc = 0;
    if (bytes <= piece) {
        MPI_Request rq;
        rc = MPI_Iallgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, comm_work, &rq) != MPI_SUCCESS || !wait_for(&rq, -1);
    } else {
        unsigned char *tmp = malloc(piece * P);
        rc = !tmp;
        for (size_t off = 0; !rc && off < bytes; off += piece) {
            size_t c = bytes - off < piece ? bytes - off : piece;
            MPI_Request rq;
            rc = MPI_Iallgather((const unsigned char *)mine + off, (int)c, MPI_BYTE, tmp, (int)c, MPI_BYTE, comm_work, &rq) != MPI_SUCCESS ||
                 !wait_for(&rq, -1);
            for (size_t q = 0; !rc && q < P; q++) memcpy((unsigned char *)all + q * bytes + off, tmp + q * c, c);
        }
        free(tmp);
    }
    t_exchange += cli_now() - t0;
    return rc;
}

int cli_ranks_start(const char *command)
{
    if (!launched_by_mpirun()) return 0;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return cli_error("mpirun: MPI did not start"), 0;
    on = 1;
    t_start = cli_now();
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_me);
    MPI_Comm_size(MPI_COMM_WORLD, &rank_count);
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_work);
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_agree);
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_exit);
    for (size_t i = 0; command && i < sizeof shared_commands / sizeof shared_commands[0]; i++) shared |= !strcmp(command, shared_commands[i]);
    dist = (nm_dist){rank_me, rank_count, allgather, NULL};
    if (rank_me == 0) return 0;
    if (!freopen("/dev/null", "w", stdout)) return cli_error("mpirun: rank %d cannot discard its output", rank_me), 1;
    fflush(stderr);
    real_stderr = dup(2);
    captured = tmpfile();
    if (captured && real_stderr >= 0) dup2(fileno(captured), 2);
    return !shared && rank_count > 1;
}

const nm_dist *cli_ranks_dist(void)
{
    return on && shared && rank_count > 1 ? &dist : NULL;
}

/* A rank that failed waits this long (NETMOMENTS_RANK_WAIT seconds, default
 * 20) for the others to reach the same agreement; when they do not, they
 * are waiting in the library for this rank's share, and it ends the run. */
static double failed_rank_wait(void)
{
    const char *env = getenv("NETMOMENTS_RANK_WAIT");
    double s;
    return env && cli_parse_double(env, &s) && s >= 0 ? s : 20.0;
}

static void show_captured(void);

/* Waits for rq; a failed rank (rc != 0) that waits in vain ends the run with its message. */
static void wait_or_abort(MPI_Request *rq, int rc)
{
    if (wait_for(rq, rc ? failed_rank_wait() : -1)) return;
    show_captured();
    MPI_Abort(MPI_COMM_WORLD, rc);
}

int cli_ranks_agree(int rc)
{
    if (!on || rank_count == 1 || !shared) return rc;
    int worst = rc;
    MPI_Request rq;
    MPI_Iallreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, comm_agree, &rq);
    wait_or_abort(&rq, rc);
    return worst;
}

/* What this rank printed on stderr, now on its own stderr with its rank before each line. */
static void show_captured(void)
{
    if (!captured || real_stderr < 0) return;
    fflush(stderr);
    FILE *out = fdopen(dup(real_stderr), "w");
    char line[4096];
    rewind(captured);
    while (out && fgets(line, sizeof line, captured)) fprintf(out, "rank %d: %s", rank_me, line);
    if (out) fclose(out);
}

int cli_ranks_finish(int rc)
{
    if (!on) return rc;
    /* each rank's status, wall and busy time */
    double mine[3] = {rc, cli_now() - t_start, cli_now() - t_start - t_exchange}, *all = calloc((size_t)rank_count * 3, sizeof(double));
    MPI_Request rq;
    MPI_Iallgather(mine, 3, MPI_DOUBLE, all, 3, MPI_DOUBLE, comm_exit, &rq);
    wait_or_abort(&rq, rc);
    int worst = 0;
    for (int q = 0; q < rank_count; q++) worst = (int)all[3 * q] > worst ? (int)all[3 * q] : worst;
    if (rank_me != 0 && rc && !all[0]) show_captured(); /* rank 0 succeeded: nobody has said why this one failed */
    if (rank_me == 0 && shared && rank_count > 1 && !worst) {
        fprintf(stderr, "mpirun: %d ranks x %d threads; wall, of it computing:", rank_count, omp_get_max_threads());
        for (int q = 0; q < rank_count; q++) fprintf(stderr, " rank %d %.1f s, %.1f s%s", q, all[3 * q + 1], all[3 * q + 2], q + 1 < rank_count ? ";" : "\n");
    }
    if (rank_me == 0 && worst && !rc) fprintf(stderr, "netmoments: another rank failed (its message is above)\n");
    free(all);
    if (captured) fclose(captured);
    MPI_Finalize();
    return worst;
}

#endif
