/*
 * attack.h — what `attack`'s single and batch modes share (cli/cmd_attack.c,
 * cli/attack_batch.c): the figure of Fig 4 / Fig 5 and the batch run.
 */
#ifndef NM_CLI_ATTACK_H
#define NM_CLI_ATTACK_H

#include "experiments.h"

/* One row per attack of the figure: the image (and its label), mu_x (blue -beta .. red +beta) and the first
 * FIG_SAMPLES samples of its verification (stream `stream` of the seed) with the net's label of each. */
#define FIG_SAMPLES 4
#define FIG_COLS (2 + FIG_SAMPLES)
typedef struct {
    const float *M, *mu;
    double sigma2;
    int label, target;
    long long image;
    uint64_t stream;
} fig_row;

/* dir/name.png and .svg with a row per fig_row; 0, or 1 after printing. */
int attack_figure(nm_ctx *ctx, nm_net *net, const exp_images *im, const attack_args *a, const char *dir, const char *name, int rows,
                  const fig_row *row, const char *title);

/* Batch mode (a->batch): the Gaussian attacks and the PGD baseline over the images, their CSVs, summary and
 * figure into dir, the summary table also into report (may be NULL); 0, or 1 after printing. */
int attack_batch(const attack_args *a, const char *dir, FILE *report);

#endif
