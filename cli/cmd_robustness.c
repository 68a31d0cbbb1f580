/*
 * cmd_robustness.c — `netmoments robustness`: accuracy under Gaussian input
 * noise at many levels for one or several models (nm_robustness_run), the
 * area under each accuracy–σ curve; writes robustness.csv, robustness.md and
 * the figure fig-robustness.png/.svg as a unit into --out.
 */
#include "experiments.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODELS_MAX 12
#define SIGMAS_MAX 256

static const char help[] =
    "usage: netmoments robustness [--model M.onnx]... --sigmas LIST [--mc-per-image K] [--data mnist|fashion-mnist]\n"
    "                             [--split test|train] [--images K|all [--spread]] [--seed S] --out DIR\n\n"
    "Accuracy under Gaussian input noise: for each noise level sigma (the noise's standard deviation on each model's\n"
    "input scale), the share of K noisy copies x + sigma eps of every image that the real net classifies as its\n"
    "label (Monte Carlo, seeded; image i's copies use the same eps at every level and for every model), and the\n"
    "area under the accuracy-sigma curve (trapezoids, divided by the sigma range: 1 is right at every level).\n"
    "  --model M      a model to compare (up to 12; default the shipped one)\n"
    "  --sigmas LIST  levels, a comma list (0,20,60) or a range a:b:n (n levels from a to b, e.g. 0:150:30)\n"
    "  --mc-per-image K  noisy copies per image and level (default 10)\n"
    "  --images K|all the first K images of the split (default all)\n"
    EXP_SPREAD_HELP
    "  --seed S       the noise's (default 1)\n"
    "Writes DIR/robustness.csv (model,sigma,accuracy), DIR/robustness.md (the area under each curve and the\n"
    "accuracy at three levels) and the figure DIR/fig-robustness.png/.svg (one curve per model).\n";

typedef struct {
    exp_image_args c;
    const char *models[MODELS_MAX];
    int nmodels, ns;
    double sigmas[SIGMAS_MAX];
    long long mc;
} rob_args;

/* LIST: a comma list of numbers >= 0, or a:b:n; ascending. 0, or 1 after printing. */
static int parse_sigmas(const char *arg, rob_args *a)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", arg);
    a->ns = 0;
    char *c1 = strchr(buf, ':');
    if (c1) {
        char *c2 = strchr(c1 + 1, ':');
        double lo, hi;
        long long n;
        if (!c2) return cli_error("--sigmas: '%s' is neither a comma list nor a range a:b:n", arg);
        *c1 = *c2 = 0;
        if (!cli_parse_double(buf, &lo) || !cli_parse_double(c1 + 1, &hi) || !cli_parse_range(c2 + 1, 2, SIGMAS_MAX, &n) || !(lo >= 0) ||
            !(hi > lo) || !isfinite(hi))
            return cli_error("--sigmas: '%s' is not a range a:b:n with 0 <= a < b and 2 <= n <= %d", arg, SIGMAS_MAX);
        for (long long i = 0; i < n; i++) a->sigmas[a->ns++] = lo + (hi - lo) * (double)i / (double)(n - 1);
        return 0;
    }
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        double v;
        if (a->ns == SIGMAS_MAX) return cli_error("--sigmas: more than %d levels", SIGMAS_MAX);
        if (!cli_parse_double(tok, &v) || !(v >= 0) || !isfinite(v)) return cli_error("--sigmas: '%s' is not a finite number >= 0", tok);
        if (a->ns && !(v > a->sigmas[a->ns - 1])) return cli_error("--sigmas: the levels must increase ('%s' after %g)", tok, a->sigmas[a->ns - 1]);
        a->sigmas[a->ns++] = v;
    }
    return a->ns ? 0 : cli_error("--sigmas: no levels in '%s'", arg);
}

static int parse(int argc, char **argv, rob_args *a)
{
    enum { O_SIGMAS = 1000, O_MC, O_HELP };
    static const struct option opts[] = {EXP_IMAGE_OPTIONS, {"sigmas", required_argument, 0, O_SIGMAS}, {"mc-per-image", required_argument, 0, O_MC},
                                         {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    *a = (rob_args){.c = exp_image_defaults("test"), .mc = 10};
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        if (c == EO_MODEL) { /* several: each --model adds one */
            if (a->nmodels == MODELS_MAX) return cli_error("robustness: at most %d models", MODELS_MAX);
            a->models[a->nmodels++] = optarg;
            continue;
        }
        int got = exp_image_option(c, optarg, &a->c);
        if (got < 0) return 1;
        if (got) continue;
        switch (c) {
        case O_SIGMAS:
            if (parse_sigmas(optarg, a)) return 1;
            break;
        case O_MC:
            if (!cli_parse_range(optarg, 1, 1000000, &a->mc)) return cli_error("--mc-per-image: '%s' is not an integer in 1..1000000", optarg);
            break;
        case O_HELP:
        case 'h': return fputs(help, stdout), -1;
        default: return cli_error("robustness: unknown or incomplete option '%s' (netmoments robustness --help)", cli_optname);
        }
    }
    if (optind < argc) return cli_error("robustness: unexpected argument '%s'", argv[optind]);
    if (!a->ns) return cli_error("robustness: --sigmas LIST is required");
    if (!a->c.out) return cli_error("robustness: --out DIR is required");
    if (!a->nmodels) a->models[a->nmodels++] = a->c.model;
    return 0;
}

/* One model's curve into acc (ns); 0, or 1 after printing. */
static int run_model(nm_ctx *ctx, const rob_args *a, const char *model, double *acc, int64_t *images)
{
    exp_images im;
    int rc = exp_load_images(ctx, model, a->c.data, a->c.split, a->c.images, a->c.spread, "robustness", &im);
    if (!rc) {
        nm_robustness_options o = nm_robustness_options_default();
        cli_progress pg = cli_progress_make(model, "images");
        o.mc = a->mc, o.seed = a->c.seed;
        o.progress = cli_progress_print, o.user = &pg;
        nm_status st = nm_robustness_run(ctx, im.net, im.X, im.labels, im.count, a->ns, a->sigmas, &o, acc);
        if (pg.tty) fprintf(stderr, "\r\033[K");
        if (st != NM_OK) rc = cli_fail(ctx, st, "robustness");
        *images = im.count;
    }
    exp_images_free(ctx, &im);
    return rc;
}

static void write_md(FILE *md, const rob_args *a, const double *acc, int64_t images)
{
    int mid = a->ns / 2, last = a->ns - 1;
    fprintf(md, "Accuracy under Gaussian noise (%lld images, %lld noisy copies each per level, seed %llu; sigma on each model's input "
                "scale)\n\n| model | area under the curve | accuracy at sigma = %g | at %g | at %g |\n|---|---|---|---|---|\n",
            (long long)images, a->mc, (unsigned long long)a->c.seed, a->sigmas[0], a->sigmas[mid], a->sigmas[last]);
    for (int m = 0; m < a->nmodels; m++) {
        const double *y = acc + m * a->ns;
        fprintf(md, "| %s | %.4f | %.4f | %.4f | %.4f |\n", a->models[m], nm_robustness_auc(a->ns, a->sigmas, y), y[0], y[mid], y[last]);
    }
}

static int robustness_fn(const void *args, const char *dir)
{
    const rob_args *a = args;
    nm_ctx *ctx = cli_ctx_create();
    double *acc = calloc((size_t)(a->nmodels * a->ns), sizeof(double));
    int64_t images = 0;
    int rc = acc ? 0 : cli_error("robustness: out of memory");
    for (int m = 0; !rc && m < a->nmodels; m++) rc = run_model(ctx, a, a->models[m], acc + m * a->ns, &images);
    FILE *csv = NULL, *md = NULL;
    if (!rc && (!(csv = exp_open(dir, "robustness.csv")) || !(md = exp_open(dir, "robustness.md")))) rc = 1;
    if (!rc) {
        fprintf(csv, "model,sigma,accuracy\n");
        for (int m = 0; m < a->nmodels; m++)
            for (int s = 0; s < a->ns; s++) fprintf(csv, "%s,%.17g,%.17g\n", a->models[m], a->sigmas[s], acc[m * a->ns + s]);
        write_md(md, a, acc, images);
        write_md(stdout, a, acc, images);
        nm_plot_curve cv[MODELS_MAX];
        for (int m = 0; m < a->nmodels; m++) cv[m] = (nm_plot_curve){a->models[m], a->sigmas, acc + m * a->ns, a->ns};
        char png[4200], svg[4200];
        snprintf(png, sizeof png, "%s/fig-robustness.png", dir), snprintf(svg, sizeof svg, "%s/fig-robustness.svg", dir);
        nm_status st = nm_plot_curves(ctx, png, svg, "accuracy under Gaussian input noise (Monte Carlo)", "noise standard deviation sigma",
                                      "accuracy", a->nmodels, cv);
        if (st != NM_OK) rc = cli_fail(ctx, st, "robustness: the figure");
    }
    if (csv && fclose(csv) && !rc) rc = cli_error("robustness: writing robustness.csv failed");
    if (md && fclose(md) && !rc) rc = cli_error("robustness: writing robustness.md failed");
    free(acc);
    nm_ctx_free(ctx);
    return rc;
}

int cmd_robustness(int argc, char **argv)
{
    rob_args a;
    int rc = parse(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (!(rc = exp_in_outdir(a.c.out, robustness_fn, &a))) printf("wrote %s/{robustness.csv,robustness.md,fig-robustness.png,fig-robustness.svg}\n", a.c.out);
    return rc;
}
