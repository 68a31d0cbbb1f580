/*
 * outdir.h — directories of results written as a unit (cli/outdir.c):
 * open (make it, lock it, stage), write files into cli_outdir_stage(),
 * then commit (move them in) or abort (remove them).
 */
#ifndef NM_CLI_OUTDIR_H
#define NM_CLI_OUTDIR_H

#include "common.h"

typedef struct {
    char dir[4096], stage[4120], lock[4120];
    int open;
} cli_outdir;

/* Makes dir (with its parents), takes its lock and a staging directory;
 * 0, or 1 after printing why (opt names the option, "--out"). */
int cli_outdir_open(cli_outdir *o, const char *dir, const char *opt);
/* Where the run writes its files until they are committed. */
const char *cli_outdir_stage(const cli_outdir *o);
/* Moves the staged files into the directory and releases it; 0 or 1 after printing. */
int cli_outdir_commit(cli_outdir *o);
/* Removes the staged files and releases the directory. */
void cli_outdir_abort(cli_outdir *o);

#endif
