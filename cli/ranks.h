/*
 * ranks.h — the CLI under mpirun (cli/ranks.c, issue 18): when the build
 * has MPI and the process was started by mpirun, every rank runs the same
 * command; the library shares the dataset-level work among them through
 * the contexts' nm_dist, rank 0 alone writes what the user sees (the
 * others' output directories are scratch, stdout is discarded, stderr is
 * shown only when that rank fails alone), and the exit status is agreed by
 * all. Without MPI, or started plainly, there is one rank and nothing here
 * does anything.
 */
#ifndef NM_CLI_RANKS_H
#define NM_CLI_RANKS_H

#include "netmoments.h"

/* Joins the run when started by mpirun (before anything else): 0 to run
 * the command, 1 when this rank has nothing to do (a command whose work is
 * not shared runs on rank 0 alone). */
int cli_ranks_start(const char *command);
/* This process's rank and the number of ranks (0 and 1 without mpirun). */
int cli_rank(void);
int cli_ranks(void);
/* The distribution every context of a shared command carries (NULL: one rank). */
const nm_dist *cli_ranks_dist(void);
/* Collective over all ranks at a directory's commit or abort: rc (0 ok)
 * from each; returns the worst. */
int cli_ranks_agree(int rc);
/* Ends the run with this rank's status rc: agreed by all ranks (a rank that
 * failed alone, while the others wait in the library, ends the whole run
 * after a grace period, with its message); returns the exit status. */
int cli_ranks_finish(int rc);

#endif
