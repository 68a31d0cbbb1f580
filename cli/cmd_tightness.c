/*
 * cmd_tightness.c — `netmoments tightness synthetic` (the paper's Fig 2:
 * analytic against Monte Carlo over random covariances, on the synthetic
 * nets, per noise regime; CSV, figures, slopes) and `netmoments tightness
 * lenet` (Table 1: per logit, mean and spread of MC/analytic ratios over
 * runs around random held-out digits; CSV and Markdown).
 */
#include "common.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char help[] =
    "usage: netmoments tightness synthetic [--nets fc-a,fc-b,fc-c,conv-a,conv-b,conv-c] [--regimes low,medium,high]\n"
    "                                      [--runs R] [--mc N] [--seed S] [--bias-sd B] --out DIR\n"
    "       netmoments tightness lenet [--model M.onnx] [--regime low|medium|high] [--runs R] [--mc N] [--seed S] --out DIR\n\n"
    "The paper's tightness experiments (DESIGN 1.8). Each run draws a random input covariance with the regime's\n"
    "largest variance (low 1e-4, medium 1, high 200) and compares the analytic moments (methods paper and exact)\n"
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
    "  --seed S   default 1\n";

static const char *const regime_names[3] = {"low", "medium", "high"};
static const double regime_var[3] = {1e-4, 1.0, 200.0};

static int regime_of(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, regime_names[i])) return i;
    return -1;
}

typedef struct {
    const char *label;
    int tty;
} prog;

static void progress(void *user, int64_t done, int64_t total)
{
    prog *p = user;
    if (p->tty) fprintf(stderr, "\r%s: %lld / %lld runs", p->label, (long long)done, (long long)total);
    if (p->tty && done == total) fprintf(stderr, "\n");
}

typedef struct {
    nm_synthetic which;
    uint64_t seed;
    double bias_sd;
} syn_user;

static nm_status make_synthetic(void *user, nm_ctx *ctx, nm_net **out)
{
    syn_user *u = user;
    return nm_synthetic_create(ctx, u->which, u->seed, u->bias_sd, out);
}

static nm_status make_from_file(void *user, nm_ctx *ctx, nm_net **out)
{
    return nm_net_load_onnx(ctx, (const char *)user, out);
}

static FILE *open_out(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) cli_error("cannot write %s", path);
    return f;
}

/* Parses a comma list against names; fills on[]; returns 0 or prints. */
static int parse_list(const char *s, const char *what, int count, const char *(*name)(int), int *on)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    memset(on, 0, sizeof(int) * (size_t)count);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int k = -1;
        for (int i = 0; i < count; i++)
            if (!strcmp(tok, name(i))) k = i;
        if (k < 0) return cli_error("--%s: unknown '%s'", what, tok);
        on[k] = 1;
    }
    return 0;
}

/* The held-out digits and the model, for the LeNet experiments; 0 or 1 after printing. */
static int load_digits_and_model(nm_ctx *ctx, const char *model, const char *what, nm_dataset *ds, nm_net **net)
{
    *net = NULL;
    int rc = cli_load_dataset(ctx, "mnist", "test", ds);
    nm_status st;
    if (!rc && (st = nm_net_load_onnx(ctx, model, net)) != NM_OK) rc = cli_fail(ctx, st, what);
    return rc;
}

/* Mean over the runs of a per-run share, in percent. */
static double mean_pct(const double *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return 100 * s / (double)n;
}

/* Option codes of the three experiments, and the options they share. */
enum { O_MODEL = 1000, O_BIAS, O_NETS, O_REGIMES, O_REGIME, O_RUNS, O_IMAGES, O_MC, O_SEED, O_OUT, O_K, O_BASE, O_HELP };

typedef struct {
    const char *model, *out;
    int regime;
    long long runs; /* --runs, or --images for linpoints */
    long long mc, seed;
} exp_opts;

/* Handles a shared option: 1 when c was one, −1 after printing why its value is bad, 0 otherwise. */
static int common_option(int c, const char *arg, long long min_runs, exp_opts *e)
{
    switch (c) {
    case O_MODEL: e->model = arg; return 1;
    case O_OUT: e->out = arg; return 1;
    case O_REGIME:
        if ((e->regime = regime_of(arg)) < 0) return cli_error("--regime: '%s' is not low, medium or high", arg), -1;
        return 1;
    case O_RUNS:
    case O_IMAGES:
        if (!cli_parse_int(arg, &e->runs) || e->runs < min_runs)
            return cli_error("--%s: '%s' is not an integer >= %lld", c == O_RUNS ? "runs" : "images", arg, min_runs), -1;
        return 1;
    case O_MC:
        if (!cli_parse_int(arg, &e->mc) || e->mc < 2) return cli_error("--mc: '%s' is not an integer >= 2", arg), -1;
        return 1;
    case O_SEED:
        if (!cli_parse_int(arg, &e->seed) || e->seed < 0) return cli_error("--seed: '%s' is not a non-negative integer", arg), -1;
        return 1;
    default: return 0;
    }
}

/* --out is required and becomes a directory; 0 or 1 after printing. */
static int need_out(const exp_opts *e, const char *cmd)
{
    if (!e->out) return cli_error("%s: --out DIR is required", cmd);
    return cli_make_dir(e->out, "--out");
}

static const char *syn_name(int i) { return nm_synthetic_str((nm_synthetic)i); }
static const char *reg_name(int i) { return regime_names[i]; }

static int synthetic(int argc, char **argv)
{
    static const struct option opts[] = {{"nets", required_argument, 0, O_NETS}, {"regimes", required_argument, 0, O_REGIMES},
                                         {"runs", required_argument, 0, O_RUNS}, {"mc", required_argument, 0, O_MC},
                                         {"seed", required_argument, 0, O_SEED}, {"out", required_argument, 0, O_OUT},
                                         {"bias-sd", required_argument, 0, O_BIAS}, {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    int nets[NM_SYN_COUNT] = {1, 1, 1, 1, 1, 1}, regs[3] = {1, 1, 1}, c, got;
    double bias_sd = NM_SYN_BIAS_SD;
    exp_opts e = {NULL, NULL, 1, 200, 75000, 1};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((got = common_option(c, optarg, 3, &e))) {
            if (got < 0) return 1;
        } else if (c == O_NETS) {
            if (parse_list(optarg, "nets", NM_SYN_COUNT, syn_name, nets)) return 1;
        } else if (c == O_REGIMES) {
            if (parse_list(optarg, "regimes", 3, reg_name, regs)) return 1;
        } else if (c == O_BIAS) {
            if (!cli_parse_double(optarg, &bias_sd) || !(bias_sd >= 0) || !isfinite(bias_sd))
                return cli_error("--bias-sd: '%s' is not a finite number >= 0", optarg);
        } else if (c == O_HELP || c == 'h') return fputs(help, stdout), 0;
        else return cli_error("tightness synthetic: unknown or incomplete option '%s'", argv[optind - 1]);
    }
    if (need_out(&e, "tightness synthetic")) return 1;
    long long runs = e.runs, mc = e.mc, seed = e.seed;
    const char *out = e.out;
    FILE *csv = open_out(out, "tightness-synthetic.csv"), *md = csv ? open_out(out, "slopes.md") : NULL;
    if (!csv || !md) {
        if (csv) fclose(csv);
        return 1;
    }
    fprintf(csv, "net,regime,run,output,analytic_mean,mc_mean,analytic_var_paper,analytic_var_exact,mc_var\n");
    fprintf(md, "| net | regime | mean slope | variance slope, paper | variance slope, exact | free-line slopes: mean, paper, exact "
                "| ReLU states changed above the split |\n|---|---|---|---|---|---|---|\n");
    printf("%-7s %-7s %11s %16s %16s   %-28s %9s %7s\n", "net", "regime", "mean slope", "var slope paper", "var slope exact",
           "free line: mean paper exact", "ReLUs chg", "time s");
    nm_ctx *ctx = nm_ctx_create();
    int rc = 0;
    for (int k = 0; k < NM_SYN_COUNT && !rc; k++) {
        if (!nets[k]) continue;
        for (int g = 0; g < 3 && !rc; g++) {
            if (!regs[g]) continue;
            char label[64];
            snprintf(label, sizeof label, "%s %s", nm_synthetic_str((nm_synthetic)k), regime_names[g]);
            prog pg = {label, isatty(2)};
            syn_user u = {(nm_synthetic)k, (uint64_t)seed, bias_sd};
            /* the paper's §4.1: split after the first layer (its l = 2), linearized at x = 0 */
            nm_tightness_options o = {.runs = runs, .mc = mc, .max_var = regime_var[g], .seed = (uint64_t)seed, .progress = progress,
                                      .user = &pg, .split_relu = 1};
            nm_tightness t;
            double t0 = cli_now();
            nm_status st = nm_tightness_run(ctx, make_synthetic, &u, NULL, (nm_scale){1, 0}, &o, &t);
            if (st != NM_OK) {
                rc = cli_fail(ctx, st, label);
                break;
            }
            for (int64_t r = 0; r < t.runs; r++)
                for (int64_t i = 0; i < t.d; i++) {
                    int64_t j = r * t.d + i;
                    fprintf(csv, "%s,%s,%lld,%lld,%.17g,%.17g,%.17g,%.17g,%.17g\n", nm_synthetic_str((nm_synthetic)k), regime_names[g],
                            (long long)r, (long long)i, t.analytic_mean[j], t.mc_mean[j], t.var_paper[j], t.var_exact[j], t.mc_var[j]);
                }
            int64_t n = t.runs * t.d;
            nm_ls_line lm = nm_ls_fit(t.analytic_mean, t.mc_mean, n, 1), lp = nm_ls_fit(t.var_paper, t.mc_var, n, 1),
                       le = nm_ls_fit(t.var_exact, t.mc_var, n, 1);
            double chg = mean_pct(t.relu_top, t.runs);
            printf("%-7s %-7s %11.4f %16.4f %16.4f   %8.3g %9.3g %9.3g %8.1f%% %7.1f\n", nm_synthetic_str((nm_synthetic)k), regime_names[g],
                   lm.slope, lp.slope, le.slope, lm.free_slope, lp.free_slope, le.free_slope, chg, cli_now() - t0);
            fflush(stdout);
            fprintf(md, "| %s | %s | %.4f | %.4f | %.4f | %.3g, %.3g, %.3g | %.1f %% |\n", nm_synthetic_str((nm_synthetic)k), regime_names[g],
                    lm.slope, lp.slope, le.slope, lm.free_slope, lp.free_slope, le.free_slope, chg);
            char png[4096], svg[4096], title[128];
            snprintf(png, sizeof png, "%s/fig2-%s-%s.png", out, nm_synthetic_str((nm_synthetic)k), regime_names[g]);
            snprintf(svg, sizeof svg, "%s/fig2-%s-%s.svg", out, nm_synthetic_str((nm_synthetic)k), regime_names[g]);
            snprintf(title, sizeof title, "%s, %s noise: mean", nm_synthetic_str((nm_synthetic)k), regime_names[g]);
            nm_plot_panel panels[2] = {
                {title, "analytic mean", "Monte Carlo mean", 1, {{"mean", t.analytic_mean, t.mc_mean, n, 1, 0}}},
                {"variance", "analytic variance", "Monte Carlo variance", 2,
                 {{"paper", t.var_paper, t.mc_var, n, 1, 1}, {"exact", t.var_exact, t.mc_var, n, 1, 0}}},
            };
            if ((st = nm_plot_scatter(ctx, png, svg, 2, panels)) != NM_OK) rc = cli_fail(ctx, st, "figure");
            nm_tightness_free(ctx, &t);
        }
    }
    fclose(csv);
    fclose(md);
    nm_ctx_free(ctx);
    if (!rc) printf("wrote %s/tightness-synthetic.csv, %s/slopes.md and the fig2-*.png/.svg figures\n", out, out);
    return rc;
}

static int lenet(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, O_MODEL}, {"regime", required_argument, 0, O_REGIME},
                                         {"runs", required_argument, 0, O_RUNS},   {"mc", required_argument, 0, O_MC},
                                         {"seed", required_argument, 0, O_SEED},   {"out", required_argument, 0, O_OUT},
                                         {"help", no_argument, 0, O_HELP},         {0, 0, 0, 0}};
    exp_opts e = {CLI_DEFAULT_MODEL, NULL, 1, 200, 75000, 1};
    int c, got;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((got = common_option(c, optarg, 2, &e))) {
            if (got < 0) return 1;
        } else if (c == O_HELP || c == 'h') return fputs(help, stdout), 0;
        else return cli_error("tightness lenet: unknown or incomplete option '%s'", argv[optind - 1]);
    }
    if (need_out(&e, "tightness lenet")) return 1;
    const char *model = e.model, *out = e.out;
    int regime = e.regime;
    long long runs = e.runs, mc = e.mc, seed = e.seed;
    nm_ctx *ctx = nm_ctx_create();
    nm_dataset ds = {0};
    nm_net *net;
    nm_status st = NM_OK;
    int rc = load_digits_and_model(ctx, model, "tightness lenet", &ds, &net);
    nm_tightness t = {0};
    double t0 = cli_now();
    if (!rc) {
        prog pg = {"lenet", isatty(2)};
        nm_tightness_options o = {.runs = runs, .mc = mc, .max_var = regime_var[regime], .seed = (uint64_t)seed, .progress = progress, .user = &pg};
        if ((st = nm_tightness_run(ctx, make_from_file, (void *)model, &ds, nm_net_input_scale(net), &o, &t)) != NM_OK)
            rc = cli_fail(ctx, st, "tightness lenet");
    }
    FILE *csv = NULL, *md = NULL;
    if (!rc && (!(csv = open_out(out, "table1.csv")) || !(md = open_out(out, "table1.md")))) rc = 1;
    if (!rc) {
        fprintf(csv, "logit,E_Eratio,sd_Eratio,E_varratio_paper,sd_varratio_paper,E_varratio_exact,sd_varratio_exact\n");
        fprintf(md, "Table 1 (%s noise, %lld runs around random held-out digits, %lld Monte Carlo samples each; "
                    "ratio = Monte Carlo / analytic)\n\n", regime_names[regime], runs, mc);
        fprintf(md, "| logit | E[Eratio] | σ(Eratio) | E[varratio] paper | σ(varratio) paper | E[varratio] exact | σ(varratio) exact |\n");
        fprintf(md, "|---|---|---|---|---|---|---|\n");
        double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
        for (int64_t i = 0; i < t.d; i++) {
            double s[3] = {0}, s2[3] = {0};
            for (int64_t r = 0; r < t.runs; r++) {
                int64_t j = r * t.d + i;
                double v[3] = {t.mc_mean[j] / t.analytic_mean[j], t.mc_var[j] / t.var_paper[j], t.mc_var[j] / t.var_exact[j]};
                for (int k = 0; k < 3; k++) s[k] += v[k], s2[k] += v[k] * v[k];
            }
            double m[3], sd[3], R = (double)t.runs;
            for (int k = 0; k < 3; k++) {
                m[k] = s[k] / R;
                double var = (s2[k] - R * m[k] * m[k]) / (R - 1);
                sd[k] = var > 0 ? sqrt(var) : 0;
            }
            for (int k = 0; k < 2; k++) lo[k] = fmin(lo[k], m[k + 1]), hi[k] = fmax(hi[k], m[k + 1]);
            fprintf(csv, "%lld,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f\n", (long long)i, m[0], sd[0], m[1], sd[1], m[2], sd[2]);
            fprintf(md, "| %lld | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f |\n", (long long)i, m[0], sd[0], m[1], sd[1], m[2], sd[2]);
        }
        fprintf(md, "\nSpread of E[varratio] across logits (max / min): paper %.3f, exact %.3f. ReLU states the noise changes "
                    "(mean over runs, first %d samples of each): %.2f %% below the split, %.2f %% above it. Time %.1f s.\n",
                hi[0] / lo[0], hi[1] / lo[1], NM_RELU_CHANGE_SAMPLES, mean_pct(t.relu_bottom, t.runs), mean_pct(t.relu_top, t.runs),
                cli_now() - t0);
        fclose(csv);
        fclose(md);
        char path[4096];
        snprintf(path, sizeof path, "%s/table1.md", out);
        FILE *f = fopen(path, "r");
        int ch;
        while (f && (ch = fgetc(f)) != EOF) putchar(ch);
        if (f) fclose(f);
    } else if (csv) {
        fclose(csv);
    }
    nm_tightness_free(ctx, &t);
    nm_net_free(ctx, net);
    nm_dataset_free(ctx, &ds);
    nm_ctx_free(ctx);
    return rc;
}

static const char linpoints_help[] =
    "usage: netmoments linpoints [--model M.onnx] [--k LIST] [--baseline] [--images N] [--regime low|medium|high]\n"
    "                            [--mc N] [--seed S] --out DIR\n\n"
    "The paper's Table 3: the held-out digits are clustered by k-means (k-means++ seeding) in the model's input\n"
    "space, and each evaluated digit is linearized once at its cluster's centre (with --baseline also at the\n"
    "cluster's farthest member) instead of at itself; per logit, E[Eratio] and E[varratio] (methods paper and\n"
    "exact) over the digits, against a Monte Carlo around each digit under a random covariance of the regime.\n"
    "With a cluster per digit (k = 100%) the farthest member is the digit itself, and no baseline is run.\n"
    "  --k LIST     cluster counts, as counts or percentages of the 1,996 digits (default 5%,10%,100%:\n"
    "               the paper's 250/500/5000 of 5,000)\n"
    "  --images N   digits evaluated, drawn at random by the seed (default 200)\n"
    "  --mc N       samples per digit (default 20000)   --regime  default medium   --seed  default 1\n"
    "Writes DIR/table3.csv and DIR/table3.md.\n";

/* Per logit E[Eratio], E[varratio] paper and exact over the runs. */
static void ratio_means(const nm_tightness *t, double *e, double *vp, double *ve)
{
    for (int64_t i = 0; i < t->d; i++) {
        e[i] = vp[i] = ve[i] = 0;
        for (int64_t r = 0; r < t->runs; r++) {
            int64_t j = r * t->d + i;
            e[i] += t->mc_mean[j] / t->analytic_mean[j];
            vp[i] += t->mc_var[j] / t->var_paper[j];
            ve[i] += t->mc_var[j] / t->var_exact[j];
        }
        e[i] /= (double)t->runs, vp[i] /= (double)t->runs, ve[i] /= (double)t->runs;
    }
}

int cmd_linpoints(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, O_MODEL}, {"k", required_argument, 0, O_K},
                                         {"baseline", no_argument, 0, O_BASE},      {"images", required_argument, 0, O_IMAGES},
                                         {"regime", required_argument, 0, O_REGIME}, {"mc", required_argument, 0, O_MC},
                                         {"seed", required_argument, 0, O_SEED},    {"out", required_argument, 0, O_OUT},
                                         {"help", no_argument, 0, O_HELP},          {0, 0, 0, 0}};
    exp_opts e = {CLI_DEFAULT_MODEL, NULL, 1, 200, 20000, 1};
    const char *klist = "5%,10%,100%";
    int baseline = 0, c, got;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((got = common_option(c, optarg, 2, &e))) {
            if (got < 0) return 1;
        } else if (c == O_K) klist = optarg;
        else if (c == O_BASE) baseline = 1;
        else if (c == O_HELP || c == 'h') return fputs(linpoints_help, stdout), 0;
        else return cli_error("linpoints: unknown or incomplete option '%s' (netmoments linpoints --help)", argv[optind - 1]);
    }
    if (need_out(&e, "linpoints")) return 1;
    const char *model = e.model, *out = e.out;
    int regime = e.regime;
    long long images = e.runs, mc = e.mc, seed = e.seed;
    nm_ctx *ctx = nm_ctx_create();
    nm_dataset ds = {0};
    nm_net *net;
    nm_status st = NM_OK;
    int rc = load_digits_and_model(ctx, model, "linpoints", &ds, &net);
    /* the k values */
    int64_t ks[16];
    int nk = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", klist);
    for (char *tok = strtok(buf, ","); !rc && tok; tok = strtok(NULL, ",")) {
        double v;
        size_t len = strlen(tok);
        int pct = len && tok[len - 1] == '%';
        if (pct) tok[len - 1] = 0;
        if (!cli_parse_double(tok, &v) || !(v > 0) || nk == 16) {
            rc = cli_error("--k: '%s' is not a positive count or percentage", tok);
            break;
        }
        int64_t k = pct ? (int64_t)llround(v / 100.0 * (double)ds.n) : (int64_t)v;
        if (k < 1 || k > ds.n) {
            rc = cli_error("--k: %lld clusters for %lld digits", (long long)k, (long long)ds.n);
            break;
        }
        ks[nk++] = k;
    }
    if (images > (rc ? 0 : ds.n)) images = ds.n;
    int64_t n = 784, N = ds.n;
    float *X = NULL, *C = NULL, *x0 = NULL;
    int64_t *assign = NULL, *idx = NULL;
    FILE *csv = NULL, *md = NULL;
    if (!rc) {
        X = malloc(sizeof(float) * (size_t)(N * n));
        C = malloc(sizeof(float) * (size_t)(N * n));
        x0 = malloc(sizeof(float) * (size_t)(images * n));
        assign = malloc(sizeof(int64_t) * (size_t)N);
        idx = malloc(sizeof(int64_t) * (size_t)images);
        if (!X || !C || !x0 || !assign || !idx) rc = cli_error("out of memory");
    }
    if (!rc && (st = nm_dataset_images(ctx, &ds, NULL, N, nm_net_input_scale(net), X)) != NM_OK) rc = cli_fail(ctx, st, "linpoints");
    if (!rc) { /* the evaluated digits: a seeded partial shuffle */
        int64_t *perm = malloc(sizeof(int64_t) * (size_t)N);
        if (!perm) rc = cli_error("out of memory");
        for (int64_t i = 0; !rc && i < N; i++) perm[i] = i;
        for (int64_t i = 0; !rc && i < images; i++) {
            uint32_t ctr[4] = {(uint32_t)i, 0, 0, 0x6c696e70u}, key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, w[4];
            nm_philox4x32(ctr, key, w);
            int64_t j = i + (int64_t)(w[0] % (uint32_t)(N - i)), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
            idx[i] = perm[i];
        }
        free(perm);
    }
    if (!rc && (!(csv = open_out(out, "table3.csv")) || !(md = open_out(out, "table3.md")))) rc = 1;
    double *res = NULL; /* per (k, point): E[Eratio], E[varratio] paper, exact, each of d logits */
    double chg[32] = {0};   /* per (k, point): ReLU states below the split that the noise changes, % */
    int64_t d = 0;
#define RES(q, b, k) (res + ((2 * (q) + (b)) * 3 + (k)) * d)
    /* with a cluster per digit the farthest member is the digit itself: no separate baseline */
#define POINTS(q) (baseline && ks[q] < N ? 2 : 1)
    const char *lbl[2] = {"centre", "baseline"};
    for (int q = 0; !rc && q < nk; q++) {
        double t0 = cli_now();
        if ((st = nm_kmeans(ctx, X, N, n, ks[q], (uint64_t)seed, 100, assign, C)) != NM_OK) {
            rc = cli_fail(ctx, st, "k-means");
            break;
        }
        for (int b = 0; b < POINTS(q) && !rc; b++) {
            for (int64_t r = 0; r < images; r++) { /* the linearization point of digit idx[r] */
                int64_t cl = assign[idx[r]];
                const float *p = C + cl * n;
                if (b) { /* the cluster's farthest member */
                    double best = -1;
                    for (int64_t i = 0; i < N; i++) {
                        if (assign[i] != cl) continue;
                        double s = 0;
                        for (int64_t t = 0; t < n; t++) s += ((double)X[i * n + t] - C[cl * n + t]) * ((double)X[i * n + t] - C[cl * n + t]);
                        if (s > best) best = s, p = X + i * n;
                    }
                }
                memcpy(x0 + r * n, p, sizeof(float) * (size_t)n);
            }
            char label[64];
            snprintf(label, sizeof label, "k = %lld, %s", (long long)ks[q], lbl[b]);
            prog pg = {label, isatty(2)};
            nm_tightness_options o = {.runs = images, .mc = mc, .max_var = regime_var[regime], .seed = (uint64_t)seed,
                                      .progress = progress, .user = &pg, .image_index = idx, .x0 = x0};
            nm_tightness t;
            if ((st = nm_tightness_run(ctx, make_from_file, (void *)model, &ds, nm_net_input_scale(net), &o, &t)) != NM_OK) {
                rc = cli_fail(ctx, st, "linpoints");
                break;
            }
            if (!res && !(res = calloc((size_t)(2 * nk * 3 * (d = t.d)), sizeof(double)))) rc = cli_error("out of memory");
            if (res) ratio_means(&t, RES(q, b, 0), RES(q, b, 1), RES(q, b, 2));
            chg[2 * q + b] = mean_pct(t.relu_bottom, t.runs);
            nm_tightness_free(ctx, &t);
            fprintf(stderr, "linpoints: %s done in %.1f s\n", label, cli_now() - t0);
        }
    }
    if (!rc) {
        fprintf(csv, "k,point,logit,E_Eratio,E_varratio_paper,E_varratio_exact\n");
        for (int q = 0; q < nk; q++)
            for (int b = 0; b < POINTS(q); b++)
                for (int64_t i = 0; i < d; i++)
                    fprintf(csv, "%lld,%s,%lld,%.6f,%.6f,%.6f\n", (long long)ks[q], lbl[b], (long long)i, RES(q, b, 0)[i], RES(q, b, 1)[i],
                            RES(q, b, 2)[i]);
        fprintf(md, "Table 3 (%lld held-out digits, %s noise, %lld Monte Carlo samples each; linearized at the nearest k-means "
                    "centre%s; ratio = Monte Carlo / analytic)\n\n| logit |", images, regime_names[regime], mc,
                baseline ? " or, for the baseline, at the cluster's farthest member" : "");
        for (int q = 0; q < nk; q++)
            for (int b = 0; b < POINTS(q); b++)
                fprintf(md, " k=%lld%s E[Eratio] | E[varratio] paper | E[varratio] exact |", (long long)ks[q], b ? " baseline" : "");
        fprintf(md, "\n|---|");
        for (int q = 0; q < nk; q++)
            for (int b = 0; b < POINTS(q); b++) fprintf(md, "---|---|---|");
        fprintf(md, "\n");
        for (int64_t i = 0; i < d; i++) {
            fprintf(md, "| %lld |", (long long)i);
            for (int q = 0; q < nk; q++)
                for (int b = 0; b < POINTS(q); b++)
                    fprintf(md, " %.4f | %.4f | %.4f |", RES(q, b, 0)[i], RES(q, b, 1)[i], RES(q, b, 2)[i]);
            fprintf(md, "\n");
        }
        fprintf(md, "\nReLU states below the split that the noise changes, against their states at the linearization point "
                    "(mean over the digits, first %d samples of each):", NM_RELU_CHANGE_SAMPLES);
        for (int q = 0; q < nk; q++)
            for (int b = 0; b < POINTS(q); b++)
                fprintf(md, "%s k = %lld%s %.2f %%", q || b ? "," : "", (long long)ks[q], b ? " baseline" : "", chg[2 * q + b]);
        fprintf(md, ".\n");
        printf("wrote %s/table3.csv and %s/table3.md\n", out, out);
    }
    if (csv) fclose(csv);
    if (md) fclose(md);
#undef RES
#undef POINTS
    free(res), free(X), free(C), free(x0), free(assign), free(idx);
    nm_net_free(ctx, net);
    nm_dataset_free(ctx, &ds);
    nm_ctx_free(ctx);
    return rc;
}

int cmd_tightness(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "synthetic")) return synthetic(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "lenet")) return lenet(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return fputs(help, stdout), 0;
    return cli_error("tightness: expected 'synthetic' or 'lenet' (netmoments tightness --help)");
}
