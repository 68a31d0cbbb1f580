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
    "                                      [--runs R] [--mc N] [--seed S] --out DIR\n"
    "       netmoments tightness lenet [--model M.onnx] [--regime low|medium|high] [--runs R] [--mc N] [--seed S] --out DIR\n\n"
    "The paper's tightness experiments (DESIGN 1.8). Each run draws a random input covariance with the regime's\n"
    "largest variance (low 1e-4, medium 1, high 200) and compares the analytic moments (methods paper and exact,\n"
    "split at the last ReLU) with N Monte Carlo samples of the real network. Runs are spread over threads; results\n"
    "do not depend on the thread count.\n"
    "  synthetic  Fig 2: input mean 0, linearized at 0. Writes DIR/tightness-synthetic.csv, DIR/slopes.md and the\n"
    "             figures DIR/fig2-<net>-<regime>.png/.svg (analytic x vs MC y, least-squares slopes)\n"
    "  lenet      Table 1: the mean of each run is a random held-out digit. Writes DIR/table1.csv, DIR/table1.md\n"
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
} syn_user;

static nm_status make_synthetic(void *user, nm_ctx *ctx, nm_net **out)
{
    syn_user *u = user;
    return nm_synthetic_create(ctx, u->which, u->seed, out);
}

static nm_status make_from_file(void *user, nm_ctx *ctx, nm_net **out)
{
    return nm_net_load_onnx(ctx, (const char *)user, out);
}

static int make_dir(const char *dir)
{
    if (mkdir(dir, 0777) != 0) {
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return cli_error("--out: cannot create directory %s", dir);
    }
    return 0;
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

static const char *syn_name(int i) { return nm_synthetic_str((nm_synthetic)i); }
static const char *reg_name(int i) { return regime_names[i]; }

static int synthetic(int argc, char **argv)
{
    enum { O_NETS = 1000, O_REGIMES, O_RUNS, O_MC, O_SEED, O_OUT, O_HELP };
    static const struct option opts[] = {{"nets", required_argument, 0, O_NETS}, {"regimes", required_argument, 0, O_REGIMES},
                                         {"runs", required_argument, 0, O_RUNS}, {"mc", required_argument, 0, O_MC},
                                         {"seed", required_argument, 0, O_SEED}, {"out", required_argument, 0, O_OUT},
                                         {"help", no_argument, 0, O_HELP},       {0, 0, 0, 0}};
    int nets[NM_SYN_COUNT] = {1, 1, 1, 1, 1, 1}, regs[3] = {1, 1, 1}, c;
    long long runs = 200, mc = 75000, seed = 1;
    const char *out = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == O_NETS) {
            if (parse_list(optarg, "nets", NM_SYN_COUNT, syn_name, nets)) return 1;
        } else if (c == O_REGIMES) {
            if (parse_list(optarg, "regimes", 3, reg_name, regs)) return 1;
        } else if (c == O_RUNS) {
            if (!cli_parse_int(optarg, &runs) || runs < 3) return cli_error("--runs: '%s' is not an integer >= 3", optarg);
        } else if (c == O_MC) {
            if (!cli_parse_int(optarg, &mc) || mc < 2) return cli_error("--mc: '%s' is not an integer >= 2", optarg);
        } else if (c == O_SEED) {
            if (!cli_parse_int(optarg, &seed) || seed < 0) return cli_error("--seed: '%s' is not a non-negative integer", optarg);
        } else if (c == O_OUT) out = optarg;
        else if (c == O_HELP || c == 'h') return fputs(help, stdout), 0;
        else return cli_error("tightness synthetic: unknown or incomplete option '%s'", argv[optind - 1]);
    }
    if (!out) return cli_error("tightness synthetic: --out DIR is required");
    if (make_dir(out)) return 1;
    FILE *csv = open_out(out, "tightness-synthetic.csv"), *md = csv ? open_out(out, "slopes.md") : NULL;
    if (!csv || !md) {
        if (csv) fclose(csv);
        return 1;
    }
    fprintf(csv, "net,regime,run,output,analytic_mean,mc_mean,analytic_var_paper,analytic_var_exact,mc_var\n");
    fprintf(md, "| net | regime | mean slope | variance slope, paper | variance slope, exact |\n|---|---|---|---|---|\n");
    printf("%-7s %-7s %11s %16s %16s %8s\n", "net", "regime", "mean slope", "var slope paper", "var slope exact", "time s");
    nm_ctx *ctx = nm_ctx_create();
    int rc = 0;
    for (int k = 0; k < NM_SYN_COUNT && !rc; k++) {
        if (!nets[k]) continue;
        for (int g = 0; g < 3 && !rc; g++) {
            if (!regs[g]) continue;
            char label[64];
            snprintf(label, sizeof label, "%s %s", nm_synthetic_str((nm_synthetic)k), regime_names[g]);
            prog pg = {label, isatty(2)};
            syn_user u = {(nm_synthetic)k, (uint64_t)seed};
            nm_tightness_options o = {runs, mc, regime_var[g], (uint64_t)seed, progress, &pg};
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
            double sm = nm_ls_slope(t.analytic_mean, t.mc_mean, n, 1), sp = nm_ls_slope(t.var_paper, t.mc_var, n, 1),
                   se = nm_ls_slope(t.var_exact, t.mc_var, n, 1);
            printf("%-7s %-7s %11.4f %16.4f %16.4f %8.1f\n", nm_synthetic_str((nm_synthetic)k), regime_names[g], sm, sp, se,
                   cli_now() - t0);
            fflush(stdout);
            fprintf(md, "| %s | %s | %.4f | %.4f | %.4f |\n", nm_synthetic_str((nm_synthetic)k), regime_names[g], sm, sp, se);
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
    enum { O_MODEL = 1000, O_REGIME, O_RUNS, O_MC, O_SEED, O_OUT, O_HELP };
    static const struct option opts[] = {{"model", required_argument, 0, O_MODEL}, {"regime", required_argument, 0, O_REGIME},
                                         {"runs", required_argument, 0, O_RUNS},   {"mc", required_argument, 0, O_MC},
                                         {"seed", required_argument, 0, O_SEED},   {"out", required_argument, 0, O_OUT},
                                         {"help", no_argument, 0, O_HELP},         {0, 0, 0, 0}};
    const char *model = CLI_DEFAULT_MODEL, *out = NULL;
    int regime = 1, c;
    long long runs = 200, mc = 75000, seed = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == O_MODEL) model = optarg;
        else if (c == O_REGIME) {
            if ((regime = regime_of(optarg)) < 0) return cli_error("--regime: '%s' is not low, medium or high", optarg);
        } else if (c == O_RUNS) {
            if (!cli_parse_int(optarg, &runs) || runs < 2) return cli_error("--runs: '%s' is not an integer >= 2", optarg);
        } else if (c == O_MC) {
            if (!cli_parse_int(optarg, &mc) || mc < 2) return cli_error("--mc: '%s' is not an integer >= 2", optarg);
        } else if (c == O_SEED) {
            if (!cli_parse_int(optarg, &seed) || seed < 0) return cli_error("--seed: '%s' is not a non-negative integer", optarg);
        } else if (c == O_OUT) out = optarg;
        else if (c == O_HELP || c == 'h') return fputs(help, stdout), 0;
        else return cli_error("tightness lenet: unknown or incomplete option '%s'", argv[optind - 1]);
    }
    if (!out) return cli_error("tightness lenet: --out DIR is required");
    if (make_dir(out)) return 1;
    nm_ctx *ctx = nm_ctx_create();
    nm_dataset ds;
    nm_net *net = NULL;
    int rc = cli_load_dataset(ctx, "mnist", "test", &ds);
    nm_status st = NM_OK;
    if (!rc && (st = nm_net_load_onnx(ctx, model, &net)) != NM_OK) rc = cli_fail(ctx, st, "tightness lenet");
    nm_tightness t = {0};
    double t0 = cli_now();
    if (!rc) {
        prog pg = {"lenet", isatty(2)};
        nm_tightness_options o = {runs, mc, regime_var[regime], (uint64_t)seed, progress, &pg};
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
        fprintf(md, "\nSpread of E[varratio] across logits (max / min): paper %.3f, exact %.3f. Time %.1f s.\n", hi[0] / lo[0],
                hi[1] / lo[1], cli_now() - t0);
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

int cmd_tightness(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "synthetic")) return synthetic(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "lenet")) return lenet(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return fputs(help, stdout), 0;
    return cli_error("tightness: expected 'synthetic' or 'lenet' (netmoments tightness --help)");
}
