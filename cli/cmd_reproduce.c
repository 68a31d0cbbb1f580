/*
 * cmd_reproduce.c — `netmoments reproduce`: runs the tightness experiments
 * (Fig 2 on the synthetic nets, Table 1 on the shipped LeNet, Table 3 with
 * k-means linearization points) into one directory and writes its
 * README.md: our tables and figures with the paper's published numbers
 * beside them. The experiments run through the same functions as their
 * commands (experiments.h), which also write their tables into the report;
 * then the adversarial analysis: Table 2 and the fooling rates under the
 * shipped universal perturbation, the flip calibration, Fig 3; and the
 * Gaussian attacks: Eq 3 beside PGD, once linearized and relinearized,
 * Fig 4 on a held-out 9, Eq 4 and its Fig 5. --quick uses
 * fewer runs, samples and digits (minutes on 2 cores).
 */
#include "experiments.h"
#include "outdir.h"

#include <getopt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: netmoments reproduce [--quick] [--model M.onnx] [--seed S] --out DIR\n\n"
    "Runs `tightness synthetic`, `tightness lenet`, `linpoints --baseline`, `fooling` (Table 2 under the shipped\n"
    "universal perturbation; flip probabilities against the Monte Carlo), `sensitivity` (Fig 3) and `attack`\n"
    "(Eq 3 on 100 digits x 9 targets beside PGD, once linearized and with --relinearize 20; Fig 4 on held-out digit\n"
    "1900, a 9; Eq 4 on 100 digits and its Fig 5) into DIR and writes DIR/README.md with the tables, the figures and\n"
    "the paper's numbers beside ours. Full size follows the paper (200 runs, 75,000 samples, all 1,996 held-out\n"
    "digits; hours on 2 cores); --quick takes 30/20 runs, 5,000 samples, 30 digits for Table 3, 300 for Table 2,\n"
    "100 for Fig 3 and 10 for the attacks.\n"
    CLI_MODEL_HELP;

/* The paper's Table 1 and Table 3 (k = 5000 and k = 500), from its text. */
static const double paper_t1[10][4] = {
    {1.007, 0, 0.5431, 0.021}, {1.043, 0.001, 0.6192, 0.021}, {0.916, 0.001, 0.3681, 0.014}, {1.061, 0.001, 0.517, 0.019},
    {0.581, 0.006, 0.4878, 0.016}, {0.699, 0.004, 0.4267, 0.015}, {0.999, 0, 0.4795, 0.017}, {0.990, 0, 0.446, 0.014},
    {1.001, 0, 0.4476, 0.014}, {1.164, 0.002, 0.5931, 0.020}};
static const double paper_t3_5000[10][2] = {{0.9998, 0.2725}, {0.9983, 0.3782}, {0.992, 0.2298}, {0.9959, 0.2604}, {0.9932, 0.2761},
                                            {0.9936, 0.2441}, {0.991, 0.3592},  {0.9844, 0.213}, {0.9906, 0.2554}, {0.9917, 0.2685}};
static const double paper_t3_500[10] = {0.752, 1.0235, 1.6994, 1.2021, 1.2705, 0.9686, 1.1909, 2.5221, 1.1877, 1.3469};

/* dir/sub, made; NULL after printing. */
static const char *subdir(const char *dir, const char *sub, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", dir, sub);
    return cli_make_dir(buf, "--out") ? NULL : buf;
}

/* The shipped universal perturbation, beside the default model. */
static const char *shipped_perturbation(char *buf, size_t len)
{
    const char *m = cli_default_model(), *slash = strrchr(m, '/');
    snprintf(buf, len, "%.*suap-lenet-small.npy", slash ? (int)(slash - m + 1) : 0, m);
    return buf;
}

/* Table 2, the fooling rates, the flip calibration and Fig 3 (issue 14). */
static int adversarial_sections(FILE *f, const exp_opts *e, int quick)
{
    char pert[4200], dir[4200];
    exp_image_args im = {.model = e->model, .data = "mnist", .split = "test", .images = quick ? 300 : 0, .spread = 1, .seed = e->seed};
    fool_args fa = {.c = im, .pert = shipped_perturbation(pert, sizeof pert), .topk = 5, .sigma2 = 1e-4, .method = NM_METHOD_EXACT};
    fprintf(f, "\n## Table 2 and §4.2: fooling-rate prediction under a transferred universal perturbation\n\n"
               "The perturbation (models/uap-lenet-small.npy, l2 radius 2000 in the model's units) was computed on a second net, "
               "Caffe's LeNet layout (models/lenet-small-mnist.onnx), and is applied to the shipped LeNet, as the paper applies "
               "VGG16's to AlexNet.\n\n");
    fprintf(stderr, "reproduce: Table 2 (fooling-rate prediction)\n");
    if (!subdir(e->out, "fooling", dir, sizeof dir) || exp_fooling(&fa, dir, f)) return 1;
    fool_args fl = fa;
    fl.pert = NULL, fl.sigma2 = 10000, fl.flip = 1, fl.mc = quick ? 2000 : 20000, fl.c.images = quick ? 40 : 200;
    fprintf(f, "\n## Flip probabilities against the Monte Carlo (beyond the paper)\n\n");
    fprintf(stderr, "reproduce: flip calibration\n");
    if (!subdir(e->out, "flip", dir, sizeof dir) || exp_fooling(&fl, dir, f)) return 1;
    fprintf(f, "\n![flip calibration](flip/flip-calibration.png)\n\n## Fig 3: spatial sensitivity\n\n");
    sens_args sa = {.c = im, .stride = 1, .verify = quick ? 50 : 500, .mc = 2000, .h = 7, .w = 7, .sigma2 = 200};
    sa.c.images = quick ? 100 : 0;
    fprintf(stderr, "reproduce: Fig 3 (sensitivity maps)\n");
    if (!subdir(e->out, "fig3", dir, sizeof dir) || exp_sensitivity(&sa, dir, f)) return 1;
    fprintf(f, "![Fig 3](fig3/fig3.png)\n\nThe same windows at sigma^2 = 10000 with flip probabilities:\n\n");
    sens_args sf = sa;
    sf.c.images = quick ? 20 : 200, sf.sigma2 = 10000, sf.flip = 1, sf.verify = quick ? 20 : 100;
    if (!subdir(e->out, "fig3-flip", dir, sizeof dir) || exp_sensitivity(&sf, dir, f)) return 1;
    fprintf(f, "![Fig 3, flip probabilities](fig3-flip/fig3-flip.png)\n");
    return 0;
}

/* Eq 3 (every other class, once linearized and relinearized, beside PGD), Fig 4 (a held-out 9), Eq 4 (issue 15). */
static int attack_sections(FILE *f, const exp_opts *e, int quick)
{
    char dir[4200];
    attack_args t = exp_attack_defaults(0);
    t.c.model = e->model, t.c.seed = e->seed, t.c.images = quick ? 10 : 100, t.c.spread = 1, t.batch = 1, t.all_targets = 1, t.mc = 1000;
    fprintf(f, "\n## Eq 3: Gaussian targeted attacks, verified by sampling the real net\n\n"
               "Every held-out digit of the sample (spread over the classes) towards every other class; N(M + mu_x, sigma2 I) must "
               "fool the net in expectation, judged by the Monte Carlo mean of its logits. Beside it, PGD on the real net's logit "
               "margin at the same beta (deterministic).\n\n");
    fprintf(stderr, "reproduce: Eq 3 (targeted attacks, linearized once)\n");
    if (!subdir(e->out, "attack-targeted", dir, sizeof dir) || exp_attack(&t, dir, f)) return 1;
    attack_args r = t;
    r.relin = 20, r.pgd_steps = 0;
    fprintf(f, "\n");
    fprintf(stderr, "reproduce: Eq 3 (targeted attacks, relinearized)\n");
    if (!subdir(e->out, "attack-relinearized", dir, sizeof dir) || exp_attack(&r, dir, f)) return 1;
    attack_args n9 = t;
    n9.c.images = 0, n9.image = 1900, n9.relin = 20, n9.mc = 10000; /* held-out digit 1900, a 9 (the split is sorted by label) */
    fprintf(f, "\n## Fig 4: a held-out 9 towards every other class (relinearized)\n\n");
    fprintf(stderr, "reproduce: Fig 4\n");
    if (!subdir(e->out, "fig4", dir, sizeof dir) || exp_attack(&n9, dir, f)) return 1;
    fprintf(f, "\n![Fig 4](fig4/fig-attacks.png)\n\n## Eq 4: the alpha%%-pixel attack\n\n");
    attack_args sp = exp_attack_defaults(1);
    sp.c.model = e->model, sp.c.seed = e->seed, sp.c.images = quick ? 10 : 100, sp.c.spread = 1, sp.batch = 1, sp.mc = 1000, sp.relin = 10;
    fprintf(stderr, "reproduce: Eq 4 (sparse attacks)\n");
    if (!subdir(e->out, "attack-sparse", dir, sizeof dir) || exp_attack(&sp, dir, f)) return 1;
    fprintf(f, "\n![Fig 5](attack-sparse/fig-attacks.png)\n");
    return 0;
}

/* The report's sections after its heading, with the experiments run in order. */
static int sections(FILE *f, const syn_args *syn, const exp_opts *t1, const t3_args *t3, int quick)
{
    fprintf(f, "## Fig 2: synthetic nets\n\nSlopes of the least-squares line through the origin, Monte Carlo (y) against analytic (x), "
               "over the runs (%lld runs, %lld samples each; input mean 0, linearized at 0). A slope of 1 is tight. The free line's "
               "slope is given beside it; it ignores a constant offset, and where the analytic mean hardly varies across runs "
               "(low noise) it measures only the Monte Carlo's noise.\n\n", syn->e.runs, syn->e.mc);
    fprintf(stderr, "reproduce: Fig 2 (synthetic nets)\n");
    if (exp_synthetic(syn, f)) return 1;
    fprintf(f, "\nThe paper's slopes are shown only in its figures, whose numbers did not survive text extraction.\n\n"
               "FC-A and Conv-A are exactly (Affine, ReLU, Affine): their linearization is exact, so their mean and method "
               "exact's variance must match the Monte Carlo in every regime, and method paper's variance differs only through "
               "the biases it leaves out. The deeper nets are split at their first ReLU (the paper's l = 2) and the part above "
               "it is linearized at y0 = relu(R_bot(0)), with every later ReLU frozen in its state there. Under low noise the "
               "later ReLUs keep those states and the analytic moments hold; under medium and high noise a large share of them "
               "change state from sample to sample, and the frozen linearization misses it: that, not the moment formulas, is "
               "what separates the deeper nets' points from the diagonal.\n\n");
    for (int i = 0; i < NM_SYN_COUNT; i++)
        for (int g = 0; g < CLI_REGIMES; g++)
            fprintf(f, "![%s %s](fig2-%s-%s.png)\n", nm_synthetic_str((nm_synthetic)i), cli_regime_names[g],
                    nm_synthetic_str((nm_synthetic)i), cli_regime_names[g]);
    fprintf(f, "\n## Table 1: LeNet on MNIST\n\n");
    fprintf(stderr, "reproduce: Table 1 (LeNet)\n");
    if (exp_table1(t1, f)) return 1;
    fprintf(f, "\nThe paper's Table 1 (its LeNet, its MNIST validation images, its variance formula = our `paper`):\n\n"
               "| logit | E[Eratio] | σ(Eratio) | E[varratio] | σ(varratio) |\n|---|---|---|---|---|\n");
    for (int i = 0; i < 10; i++)
        fprintf(f, "| %d | %.3f | %.3f | %.4f | %.3f |\n", i, paper_t1[i][0], paper_t1[i][1], paper_t1[i][2], paper_t1[i][3]);
    fprintf(f, "\n## Table 3: linearization at k-means centres\n\n");
    fprintf(stderr, "reproduce: Table 3 (k-means linearization points)\n");
    if (exp_table3(t3, f)) return 1;
    fprintf(f, "\nThe paper's Table 3 (5,000 validation images; k = 5000 is every image its own centre, ours k = 1996):\n\n"
               "| logit | k=5000 E[Eratio] | k=5000 E[varratio] | k=500 E[Eratio] |\n|---|---|---|---|\n");
    for (int i = 0; i < 10; i++) fprintf(f, "| %d | %.4f | %.4f | %.4f |\n", i, paper_t3_5000[i][0], paper_t3_5000[i][1], paper_t3_500[i]);
    return adversarial_sections(f, t1, quick) || attack_sections(f, t1, quick);
}

int cmd_reproduce(int argc, char **argv)
{
    enum { R_QUICK = 2000 };
    static const struct option opts[] = {CLI_MEM_OPTION, {"quick", no_argument, 0, R_QUICK}, {"out", required_argument, 0, O_OUT},
                                         {"model", required_argument, 0, O_MODEL}, {"seed", required_argument, 0, O_SEED},
                                         {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    exp_opts e = {cli_default_model(), NULL, 1, 0, 0, 1};
    int quick = 0, c, got;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        if (c == R_QUICK) quick = 1;
        else if ((got = exp_option(c, optarg, 2, &e))) {
            if (got < 0) return 1;
        } else if (c == O_HELP || c == 'h') return fputs(help, stdout), 0;
        else return cli_error("reproduce: unknown or incomplete option '%s' (netmoments reproduce --help)", cli_optname);
    }
    if (optind < argc) return cli_error("reproduce: unexpected argument '%s'", argv[optind]);
    if (!e.out) return cli_error("reproduce: --out DIR is required");
    cli_outdir od; /* the whole report is written as a unit */
    if (cli_outdir_open(&od, e.out, "--out")) return 1;
    const char *dest = e.out;
    e.out = cli_outdir_stage(&od);
    /* full size follows the paper; --quick takes minutes on 2 cores */
    syn_args syn = {e, {1, 1, 1, 1, 1, 1}, {1, 1, 1}, NM_SYN_BIAS_SD};
    syn.e.runs = quick ? 30 : 200, syn.e.mc = quick ? 5000 : 75000;
    exp_opts t1 = e;
    t1.runs = quick ? 20 : 200, t1.mc = quick ? 5000 : 75000;
    t3_args t3 = {e, "5%,10%,100%", 1, 1};
    t3.e.runs = quick ? 30 : 200, t3.e.mc = quick ? 2000 : 20000;
    double t0 = cli_now();
    char *text = NULL, path[4200];
    size_t len = 0;
    FILE *body = open_memstream(&text, &len), *f = NULL;
    int rc = body ? sections(body, &syn, &t1, &t3, quick) : cli_error("out of memory");
    if (body) fclose(body);
    snprintf(path, sizeof path, "%s/README.md", e.out);
    if (!rc && !(f = fopen(path, "w"))) rc = cli_error("cannot write %s", path);
    if (!rc) {
        fprintf(f, "# netmoments: the paper's tightness experiments, reproduced\n\n");
        fprintf(f, "Made by `netmoments reproduce%s --seed %llu --out %s` (%s size; %.0f s). Ratios are Monte Carlo / analytic; "
                   "method `paper` is the paper's zero-mean variance (§1.4), `exact` ours (§1.5).\n\n",
                quick ? " --quick" : "", (unsigned long long)e.seed, dest, quick ? "quick" : "full", cli_elapsed(t0));
        fwrite(text, 1, len, f);
        if (fclose(f) != 0) rc = cli_error("cannot write %s", path);
    }
    free(text);
    if (rc) {
        cli_outdir_abort(&od);
        return rc;
    }
    if (!(rc = cli_outdir_commit(&od))) printf("wrote %s/README.md (%.0f s)\n", dest, cli_elapsed(t0));
    return rc;
}
