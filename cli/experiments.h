/*
 * experiments.h — what the experiment commands (tightness synthetic,
 * tightness lenet, linpoints) and `reproduce` share: their options, and a
 * function per experiment that runs it through the library and writes its
 * tables and figures into the output directory, and its Markdown table
 * also into a report when one is given (reproduce's README.md).
 */
#ifndef NM_CLI_EXPERIMENTS_H
#define NM_CLI_EXPERIMENTS_H

#include "common.h"

#include <stdio.h>

#define CLI_REGIMES 3
extern const char *const cli_regime_names[CLI_REGIMES]; /* low, medium, high */
extern const double cli_regime_var[CLI_REGIMES];        /* 1e-4, 1, 200 */

/* The options every experiment has. */
typedef struct {
    const char *model, *out;
    int regime;
    long long runs; /* --runs, or --images for linpoints */
    long long mc;
    uint64_t seed;
} exp_opts;

typedef struct {
    exp_opts e;
    int nets[NM_SYN_COUNT], regimes[CLI_REGIMES];
    double bias_sd;
} syn_args;

typedef struct {
    exp_opts e;
    const char *klist; /* counts or percentages of the digits, "5%,10%,100%" */
    int baseline;
    int propagate; /* method propagate's row (default 1) */
} t3_args;

/* Fig 2: tightness-synthetic.csv, slopes.md and the fig2-*.png/.svg figures. */
int exp_synthetic(const syn_args *a, FILE *report);
/* Table 1: table1.csv and table1.md. */
int exp_table1(const exp_opts *e, FILE *report);
/* Table 3: table3.csv and table3.md. */
int exp_table3(const t3_args *a, FILE *report);

/* Option parsing the experiment commands share. */
enum { O_MODEL = 1000, O_BIAS, O_NETS, O_REGIMES, O_REGIME, O_RUNS, O_IMAGES, O_MC, O_SEED, O_OUT, O_K, O_BASE, O_NOPROP, O_HELP };
/* A shared option: 1 when c was one, −1 after printing why its value is bad, 0 otherwise. */
int exp_option(int c, const char *arg, long long min_runs, exp_opts *e);
/* Runs fn(args, NULL) with its files staged in --out (e->out, e inside
 * args) and moves them into place when it succeeds (cli/outdir.h), then
 * prints "wrote <dir><wrote>"; 0 or 1 after printing why. */
int exp_staged(exp_opts *e, const char *cmd, int (*fn)(const void *args, FILE *report), const void *args, const char *wrote);
/* A comma list of names (name(i) for i < count) into on[]; 0 or 1 after printing. */
int exp_parse_list(const char *s, const char *what, int count, const char *(*name)(int), int *on);
/* dir/name opened for writing; NULL after printing. */
FILE *exp_open(const char *dir, const char *name);
/* The held-out MNIST digits and the model; 0 or 1 after printing. */
int exp_load_digits_and_model(nm_ctx *ctx, const char *model, const char *what, nm_dataset *ds, nm_net **net);

/* `fooling` and `sensitivity`: their options, and the runs that write their files into dir and their
 * Markdown into report (may be NULL); 0, or 1 after printing. */
/* The options of the commands over a data split's images (uap, fooling, sensitivity). */
typedef struct {
    const char *model, *data, *split, *out;
    long long images; /* 0: all */
    int spread;
    uint64_t seed;
} exp_image_args;
enum { EO_MODEL = 1100, EO_DATA, EO_SPLIT, EO_IMAGES, EO_SPREAD, EO_SEED, EO_OUT };
#define EXP_IMAGE_OPTIONS                                                                                                   \
    CLI_MEM_OPTION, {"model", required_argument, 0, EO_MODEL}, {"data", required_argument, 0, EO_DATA},                   \
        {"split", required_argument, 0, EO_SPLIT}, {"images", required_argument, 0, EO_IMAGES},                           \
        {"spread", no_argument, 0, EO_SPREAD}, {"seed", required_argument, 0, EO_SEED}, {"out", required_argument, 0, EO_OUT}
/* Defaults: the default model, mnist, the given split, all images, seed 1. */
exp_image_args exp_image_defaults(const char *split);
/* One of EXP_IMAGE_OPTIONS into a: 1 when c was one, −1 after printing why its value is bad, 0 otherwise. */
int exp_image_option(int c, const char *arg, exp_image_args *a);

typedef struct {
    exp_image_args c;
    const char *pert;
    long long mc, topk;
    double sigma2;
    nm_method method;
    int flip;
} fool_args;
int exp_fooling(const fool_args *a, const char *dir, FILE *report);
typedef struct {
    exp_image_args c;
    long long stride, verify, mc, h, w;
    double sigma2;
    int flip;
} sens_args;
int exp_sensitivity(const sens_args *a, const char *dir, FILE *report);

/* `attack targeted` and `attack sparse` (Eq 3, Eq 4): one image (--image or --input) or a batch (batch set:
 * the first `c.images`, or image `image` alone, towards every other class or once each for sparse). */
typedef struct {
    exp_image_args c;
    const char *input;
    long long image, mc, relin, max_iter, target, pgd_steps;
    double beta, sigma2_max, margin, alpha;
    int sparse, beta_set, batch, all_targets, mc_set;
} attack_args;
/* The command's defaults (sparse: Eq 4's beta 550). */
attack_args exp_attack_defaults(int sparse);
/* Runs it into dir; a batch also writes its summary table into report (may be NULL). 0, or 1 after printing. */
int exp_attack(const attack_args *a, const char *dir, FILE *report);

/* fn(args, dir) with dir a staging directory of --out, whose files are moved into out when it succeeds
 * (cli/outdir.h) and removed when it fails; 0, or 1 after printing why. */
int exp_in_outdir(const char *out, int (*fn)(const void *args, const char *dir), const void *args);

/* A model and the first images of a data split as its inputs. */
typedef struct {
    nm_dataset ds;
    nm_net *net;
    int ndim;
    int64_t shape[NM_MAX_DIMS]; /* the model's input shape, batch 1 */
    int64_t n, count;           /* inputs per sample, images */
    float *X;                   /* count × n, in the model's input scale */
    int64_t *index;             /* count: each image's index in the split */
    uint8_t *labels;            /* count: its label */
} exp_images;
/* --images K | all: K ≥ 1, or 0 for all; 0, or 1 after printing. */
int exp_parse_images(const char *arg, long long *out);
/* The data split, the model and `images` images (0: all) as its inputs: the
 * first ones, or with spread, image ⌊i·N/K⌋ for i < K (every class of a
 * split sorted by label); 0, or 1 after printing (what names the command). */
#define EXP_SPREAD_HELP "  --spread        with --images K: K images spread evenly over the split (image floor(i N / K)), not the first K\n"
int exp_load_images(nm_ctx *ctx, const char *model, const char *data, const char *split, long long images, int spread, const char *what,
                    exp_images *out);
void exp_images_free(nm_ctx *ctx, exp_images *im);

#endif
