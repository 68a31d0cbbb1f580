/*
 * cmd_tightness.c — `netmoments tightness synthetic` (the paper's Fig 2),
 * `netmoments tightness lenet` (Table 1) and `netmoments linpoints`
 * (Table 3): option parsing; the experiments themselves run in
 * exp_synthetic.c and exp_lenet.c.
 */
#include "experiments.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char help[] =
    "usage: netmoments tightness synthetic [--nets fc-a,fc-b,fc-c,conv-a,conv-b,conv-c] [--regimes low,medium,high]\n"
    "                                      [--runs R] [--mc N] [--seed S] [--bias-sd B] --out DIR\n"
    "       netmoments tightness lenet [--model M.onnx] [--regime low|medium|high] [--runs R] [--mc N] [--seed S] --out DIR\n\n"
    "The paper's tightness experiments (DESIGN 1.8). Each run draws a random input covariance with the regime's\n"
    "largest variance (low 1e-4, medium 1, high 200) and compares the analytic moments (methods paper and exact,\n"
    "and propagate, which carries the Gaussian through every layer without a linearization: DESIGN 1.12)\n"
    "with N Monte Carlo samples of the real network. Runs are spread over threads; results do not depend on the\n"
    "thread count. Each run also counts the ReLU states the noise changes against the linearization point.\n"
    "  synthetic  Fig 2: input mean 0, split at the first ReLU (the paper's l = 2), linearized at 0. Writes\n"
    "             DIR/tightness-synthetic.csv, DIR/slopes.md and the figures DIR/fig2-<net>-<regime>.png/.svg\n"
    "             (analytic x vs MC y). The slope is the least-squares line's through the origin (1 = tight);\n"
    "             the free line's slope is given beside it. --bias-sd B: the nets' biases are N(0, B^2)\n"
    "             (default 0.5; the weights are N(0, 1/fan_in) and the same for every B > 0)\n"
    "  lenet      Table 1: the mean of each run is a random held-out digit, split at the last ReLU (the paper's\n"
    "             l = 3) and linearized at the digit. Writes DIR/table1.csv, DIR/table1.md\n"
    "  --runs R   runs per net and regime (default 200)     --mc N   samples per run (default 75000)\n"
    "  --seed S   default 1\n"
    CLI_MODEL_HELP;

static int syn_fn(const void *a, FILE *report) { return exp_synthetic(a, report); }
static int t1_fn(const void *a, FILE *report) { return exp_table1(a, report); }
static int t3_fn(const void *a, FILE *report) { return exp_table3(a, report); }

static const char *syn_name(int i) { return nm_synthetic_str((nm_synthetic)i); }
static const char *reg_name(int i) { return cli_regime_names[i]; }

static int synthetic(int argc, char **argv)
{
    static const struct option opts[] = {CLI_MEM_OPTION, {"nets", required_argument, 0, O_NETS}, {"regimes", required_argument, 0, O_REGIMES},
                                         {"runs", required_argument, 0, O_RUNS}, {"mc", required_argument, 0, O_MC},
                                         {"seed", required_argument, 0, O_SEED}, {"out", required_argument, 0, O_OUT},
                                         {"bias-sd", required_argument, 0, O_BIAS}, {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    syn_args a = {{NULL, NULL, 1, 200, 75000, 1}, {1, 1, 1, 1, 1, 1}, {1, 1, 1}, NM_SYN_BIAS_SD};
    int c, got;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        if ((got = exp_option(c, optarg, 3, &a.e))) {
            if (got < 0) return 1;
        } else if (c == O_NETS) {
            if (exp_parse_list(optarg, "nets", NM_SYN_COUNT, syn_name, a.nets)) return 1;
        } else if (c == O_REGIMES) {
            if (exp_parse_list(optarg, "regimes", CLI_REGIMES, reg_name, a.regimes)) return 1;
        } else if (c == O_BIAS) {
            if (!cli_parse_double(optarg, &a.bias_sd) || !(a.bias_sd >= 0) || !isfinite(a.bias_sd))
                return cli_error("--bias-sd: '%s' is not a finite number >= 0", optarg);
        } else if (c == O_HELP || c == 'h') return fputs(help, stdout), 0;
        else return cli_error("tightness synthetic: unknown or incomplete option '%s'", cli_optname);
    }
    if (optind < argc) return cli_error("tightness synthetic: unexpected argument '%s'", argv[optind]);
    return exp_staged(&a.e, "tightness synthetic", syn_fn, &a, "/{tightness-synthetic.csv,slopes.md} and the fig2-*.png/.svg figures");
}

static int lenet(int argc, char **argv)
{
    static const struct option opts[] = {CLI_MEM_OPTION, {"model", required_argument, 0, O_MODEL}, {"regime", required_argument, 0, O_REGIME},
                                         {"runs", required_argument, 0, O_RUNS},   {"mc", required_argument, 0, O_MC},
                                         {"seed", required_argument, 0, O_SEED},   {"out", required_argument, 0, O_OUT},
                                         {"help", no_argument, 0, O_HELP},         {0, 0, 0, 0}};
    exp_opts e = {cli_default_model(), NULL, 1, 200, 75000, 1};
    int c, got;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        if ((got = exp_option(c, optarg, 2, &e))) {
            if (got < 0) return 1;
        } else if (c == O_HELP || c == 'h') return fputs(help, stdout), 0;
        else return cli_error("tightness lenet: unknown or incomplete option '%s'", cli_optname);
    }
    if (optind < argc) return cli_error("tightness lenet: unexpected argument '%s'", argv[optind]);
    return exp_staged(&e, "tightness lenet", t1_fn, &e, "/{table1.csv,table1.md}");
}

static const char linpoints_help[] =
    "usage: netmoments linpoints [--model M.onnx] [--k LIST] [--baseline] [--no-propagate] [--images N]\n"
    "                            [--regime low|medium|high] [--mc N] [--seed S] --out DIR\n\n"
    "The paper's Table 3: the held-out digits are clustered by k-means (k-means++ seeding) in the model's input\n"
    "space, and each evaluated digit is linearized once at its cluster's centre (with --baseline also at the\n"
    "cluster's farthest member) instead of at itself; per logit, E[Eratio] and E[varratio] (methods paper and\n"
    "exact) over the digits, against a Monte Carlo around each digit under a random covariance of the regime.\n"
    "With a cluster per digit (k = 100%) the farthest member is the digit itself, and no baseline is run.\n"
    "Method propagate (DESIGN 1.12) needs no linearization point: it is run once, against the same digits and\n"
    "Monte Carlo, as the reference the clustered points are judged beside (--no-propagate skips it).\n"
    "  --k LIST     cluster counts, as counts or percentages of the 1,996 digits (default 5%,10%,100%:\n"
    "               the paper's 250/500/5000 of 5,000)\n"
    "  --images N   digits evaluated, drawn at random by the seed (default 200)\n"
    "  --mc N       samples per digit (default 20000)   --regime  default medium   --seed  default 1\n"
    "Writes DIR/table3.csv and DIR/table3.md.\n"
    CLI_MODEL_HELP;

int cmd_linpoints(int argc, char **argv)
{
    static const struct option opts[] = {CLI_MEM_OPTION, {"model", required_argument, 0, O_MODEL}, {"k", required_argument, 0, O_K},
                                         {"baseline", no_argument, 0, O_BASE},      {"images", required_argument, 0, O_IMAGES},
                                         {"no-propagate", no_argument, 0, O_NOPROP},
                                         {"regime", required_argument, 0, O_REGIME}, {"mc", required_argument, 0, O_MC},
                                         {"seed", required_argument, 0, O_SEED},    {"out", required_argument, 0, O_OUT},
                                         {"help", no_argument, 0, O_HELP},          {0, 0, 0, 0}};
    t3_args a = {{cli_default_model(), NULL, 1, 200, 20000, 1}, "5%,10%,100%", 0, 1};
    int c, got;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        if ((got = exp_option(c, optarg, 2, &a.e))) {
            if (got < 0) return 1;
        } else if (c == O_K) a.klist = optarg;
        else if (c == O_BASE) a.baseline = 1;
        else if (c == O_NOPROP) a.propagate = 0;
        else if (c == O_HELP || c == 'h') return fputs(linpoints_help, stdout), 0;
        else return cli_error("linpoints: unknown or incomplete option '%s' (netmoments linpoints --help)", cli_optname);
    }
    if (optind < argc) return cli_error("linpoints: unexpected argument '%s'", argv[optind]);
    return exp_staged(&a.e, "linpoints", t3_fn, &a, "/{table3.csv,table3.md}");
}

int cmd_tightness(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "synthetic")) return synthetic(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "lenet")) return lenet(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return fputs(help, stdout), 0;
    return cli_error("tightness: expected 'synthetic' or 'lenet' (netmoments tightness --help)");
}
