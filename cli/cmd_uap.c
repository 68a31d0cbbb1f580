/*
 * cmd_uap.c — `netmoments uap`: a universal adversarial perturbation of a
 * model over a data split (nm_uap_run), its fooling rate printed after each
 * pass, written as an NPY in the model's input shape and scale.
 */
#include "experiments.h"
#include "ranks.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: netmoments uap [--model M.onnx] [--data mnist|fashion-mnist] [--split train|test] [--images K [--spread]]\n"
    "                      [--norm inf|2] [--xi X] [--target-rate R] [--passes P] [--overshoot O]\n"
    "                      [--seed S] --out N.npy\n\n"
    "A universal adversarial perturbation (Moosavi-Dezfooli et al. 2017): passes over the images in a\n"
    "seeded order; for each image that x + v does not fool (its label at x + v is still its label at x),\n"
    "the multi-class DeepFool step at x + v (Moosavi-Dezfooli et al. 2016; logit gradients by the net's\n"
    "vjp), then v projected on the ball of radius X. Stops at the target fooling rate or after P passes,\n"
    "printing the rate after each. The perturbation is in the model's input units (for the shipped LeNet\n"
    "pixels in [-127.5, 127.5]: `netmoments info` gives the scale); it is written as float32 in the\n"
    "model's input shape (batch 1), ready for `netmoments fooling --perturbation`.\n"
    CLI_MODEL_HELP
    "  --data        mnist (default) or fashion-mnist      --split  train (default) or test\n"
    "  --images K    the first K images of the split (default all); --spread: K spread evenly over it\n"
    "  --norm        2 (default) or inf: the ball and DeepFool's norm\n"
    "  --xi X        the ball's radius in input units (default 2000)\n"
    "  --target-rate R  stop once the fooling rate reaches R (default 0.8)\n"
    "  --passes P    at most P passes (default 10)     --overshoot O  DeepFool's (default 0.02)\n"
    "  --seed S      the order of the images in each pass (default 1)\n";

typedef struct {
    cli_progress pg;
} uap_ui;

static void pass_done(void *user, int pass, double rate)
{
    uap_ui *u = user;
    if (u->pg.tty) fprintf(stderr, "\r\033[K");
    printf("pass %d: fooling rate %.2f %%\n", pass, 100 * rate);
    fflush(stdout);
}

int cmd_uap(int argc, char **argv)
{
    enum { O_NORM = 1000, O_XI, O_RATE, O_PASSES, O_OVER, O_HELP };
    static const struct option opts[] = {EXP_IMAGE_OPTIONS,
                                         {"norm", required_argument, 0, O_NORM},
                                         {"xi", required_argument, 0, O_XI},
                                         {"target-rate", required_argument, 0, O_RATE},
                                         {"passes", required_argument, 0, O_PASSES},
                                         {"overshoot", required_argument, 0, O_OVER},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    exp_image_args im_a = exp_image_defaults("train");
    long long passes;
    nm_uap_options o = nm_uap_options_default();
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        int got = exp_image_option(c, optarg, &im_a);
        if (got < 0) return 1;
        if (got) continue;
        switch (c) {
        case O_NORM:
            if (!strcmp(optarg, "2")) o.deepfool.norm = NM_NORM_2;
            else if (!strcmp(optarg, "inf")) o.deepfool.norm = NM_NORM_INF;
            else return cli_error("--norm: '%s' is neither 2 nor inf", optarg);
            break;
        case O_XI:
            if (!cli_parse_double(optarg, &o.xi) || !(o.xi > 0) || !isfinite(o.xi)) return cli_error("--xi: '%s' is not a number > 0", optarg);
            break;
        case O_RATE:
            if (!cli_parse_double(optarg, &o.target_rate) || !(o.target_rate >= 0 && o.target_rate <= 1))
                return cli_error("--target-rate: '%s' is not a number in [0, 1]", optarg);
            break;
        case O_PASSES:
            if (!cli_parse_range(optarg, 1, NM_UAP_MAX_PASSES, &passes))
                return cli_error("--passes: '%s' is not an integer in 1..%d", optarg, NM_UAP_MAX_PASSES);
            o.passes = (int)passes;
            break;
        case O_OVER:
            if (!cli_parse_double(optarg, &o.deepfool.overshoot) || !(o.deepfool.overshoot >= 0) || !isfinite(o.deepfool.overshoot))
                return cli_error("--overshoot: '%s' is not a number >= 0", optarg);
            break;
        case O_HELP:
        case 'h': return fputs(help, stdout), 0;
        default: return cli_error("uap: unknown or incomplete option '%s' (netmoments uap --help)", cli_optname);
        }
    }
    if (optind < argc) return cli_error("uap: unexpected argument '%s'", argv[optind]);
    if (!im_a.out) return cli_error("uap: --out N.npy is required");
    nm_ctx *ctx = cli_ctx_create();
    if (!ctx) return 1;
    exp_images im;
    float *v = NULL;
    nm_status st;
    int rc = exp_load_images(ctx, im_a.model, im_a.data, im_a.split, im_a.images, im_a.spread, "uap", &im);
    if (!rc && !(v = malloc((size_t)im.n * sizeof(float)))) rc = cli_error("uap: out of memory");
    uap_ui ui = {cli_progress_make("uap", "image steps")};
    double t0 = cli_now();
    nm_uap_result res;
    o.seed = im_a.seed;
    if (!rc) {
        printf("uap: %lld %s images of %s, %s ball of radius %g, target %.1f %%, at most %d passes, seed %llu\n", (long long)im.count, im_a.split,
               im_a.data, o.deepfool.norm == NM_NORM_INF ? "l-inf" : "l2", o.xi, 100 * o.target_rate, o.passes, (unsigned long long)o.seed);
        o.pass_done = pass_done, o.progress = cli_progress_print, o.user = &ui;
        /* progress and pass_done share user: the progress line's state comes first in uap_ui */
        if ((st = nm_uap_run(ctx, im.net, im.X, im.count, &o, v, &res)) != NM_OK) rc = cli_fail(ctx, st, "uap");
    }
    if (!rc) {
        double l2 = 0, li = 0;
        for (int64_t j = 0; j < im.n; j++) l2 += (double)v[j] * v[j], li = fmax(li, fabs(v[j]));
        nm_array a = {NM_F32, im.ndim, {0}, v};
        memcpy(a.shape, im.shape, sizeof(int64_t) * (size_t)im.ndim);
        if (cli_rank() == 0 && (st = nm_npy_write(ctx, im_a.out, &a)) != NM_OK) rc = cli_fail(ctx, st, "uap"); /* under mpirun, rank 0 writes */
        else
            printf("fooling rate %.2f %% after %d pass%s (%.1f s); |v|_2 = %.1f, |v|_inf = %.1f; wrote %s\n", 100 * res.rate[res.passes - 1],
                   res.passes, res.passes == 1 ? "" : "es", cli_elapsed(t0), sqrt(l2), li, im_a.out);
    }
    free(v);
    exp_images_free(ctx, &im);
    nm_ctx_free(ctx);
    return rc;
}
