/*
 * exp_synthetic.c — the paper's Fig 2 on the synthetic nets: per net and
 * noise regime, tightness runs through the library (nm_tightness_run), one
 * CSV row per run and output, the slopes of the least-squares lines
 * Monte Carlo against analytic (slopes.md, and the console), and a figure
 * of the mean and the variances.
 */
#include "experiments.h"

#include <math.h>
#include <stdio.h>

/* Mean over the runs of a per-run share, in percent. */
static double mean_pct(const double *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return 100 * s / (double)n;
}

static void write_csv(FILE *csv, const char *net, const char *regime, const nm_tightness *t)
{
    const double *mean = t->mean[NM_METHOD_EXACT], *vp = t->var[NM_METHOD_PAPER], *ve = t->var[NM_METHOD_EXACT];
    const double *mp = t->mean[NM_METHOD_PROPAGATE], *vq = t->var[NM_METHOD_PROPAGATE];
    for (int64_t r = 0; r < t->runs; r++)
        for (int64_t i = 0; i < t->d; i++) {
            int64_t j = r * t->d + i;
            fprintf(csv, "%s,%s,%lld,%lld,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", net, regime, (long long)r, (long long)i, mean[j],
                    t->mc_mean[j], vp[j], ve[j], t->mc_var[j], mp[j], vq[j]);
        }
}

/* Fig 2 for one net and regime: the analytic mean against the MC mean, and both variances against the MC variance. */
static nm_status write_figure(nm_ctx *ctx, const char *out, const char *net, const char *regime, const nm_tightness *t)
{
    char png[4096], svg[4096], title[128];
    int64_t n = t->runs * t->d;
    snprintf(png, sizeof png, "%s/fig2-%s-%s.png", out, net, regime);
    snprintf(svg, sizeof svg, "%s/fig2-%s-%s.svg", out, net, regime);
    snprintf(title, sizeof title, "%s, %s noise: mean", net, regime);
    nm_plot_panel panels[2] = {
        {title, "analytic mean", "Monte Carlo mean", 2,
         {{"linearized", t->mean[NM_METHOD_EXACT], t->mc_mean, n, 1, 0}, {"propagate", t->mean[NM_METHOD_PROPAGATE], t->mc_mean, n, 1, 2}}},
        {"variance", "analytic variance", "Monte Carlo variance", 3,
         {{"paper", t->var[NM_METHOD_PAPER], t->mc_var, n, 1, 1},
          {"exact", t->var[NM_METHOD_EXACT], t->mc_var, n, 1, 0},
          {"propagate", t->var[NM_METHOD_PROPAGATE], t->mc_var, n, 1, 2}}},
    };
    return nm_plot_scatter(ctx, png, svg, 2, panels);
}

/* One net and regime: the runs, their CSV rows, the slopes line (console, md, report) and the figure. */
static int synthetic_one(nm_ctx *ctx, const syn_args *a, nm_synthetic k, int g, FILE *csv, FILE *md, FILE *report)
{
    const char *net = nm_synthetic_str(k), *regime = cli_regime_names[g];
    char label[64];
    snprintf(label, sizeof label, "%s %s", net, regime);
    cli_progress pg = cli_progress_make(label, "runs");
    /* the paper's §4.1: split after the first layer (its l = 2), linearized at x = 0 */
    nm_tightness_options o = nm_tightness_options_default();
    o.runs = a->e.runs, o.mc = a->e.mc, o.max_var = cli_regime_var[g], o.seed = (uint64_t)a->e.seed;
    o.progress = cli_progress_print, o.user = &pg, o.split_relu = 1;
    o.nmethods = 3, o.methods[2] = NM_METHOD_PROPAGATE; /* DESIGN §1.12: no split, no linearization */
    nm_net *nn = NULL;
    nm_tightness t;
    double t0 = cli_now();
    nm_status st = nm_synthetic_create(ctx, k, (uint64_t)a->e.seed, a->bias_sd, &nn);
    if (st == NM_OK) st = nm_tightness_run(ctx, nn, NULL, (nm_scale){1, 0}, &o, &t);
    nm_net_free(ctx, nn);
    if (st != NM_OK) return cli_fail(ctx, st, label);
    write_csv(csv, net, regime, &t);
    int64_t n = t.runs * t.d;
    nm_ls_line lm = nm_ls_fit(t.mean[NM_METHOD_EXACT], t.mc_mean, n, 1), lp = nm_ls_fit(t.var[NM_METHOD_PAPER], t.mc_var, n, 1),
               le = nm_ls_fit(t.var[NM_METHOD_EXACT], t.mc_var, n, 1), qm = nm_ls_fit(t.mean[NM_METHOD_PROPAGATE], t.mc_mean, n, 1),
               qv = nm_ls_fit(t.var[NM_METHOD_PROPAGATE], t.mc_var, n, 1);
    double chg = mean_pct(t.relu_top, t.runs);
    printf("%-7s %-7s %11.4f %16.4f %16.4f %11.4f %11.4f   %8.3g %9.3g %9.3g %8.1f%% %7.1f\n", net, regime, lm.slope, lp.slope, le.slope,
           qm.slope, qv.slope, lm.free_slope, lp.free_slope, le.free_slope, chg, cli_elapsed(t0));
    fflush(stdout);
    for (FILE *f = md; f; f = f == md ? report : NULL)
        fprintf(f, "| %s | %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.3g, %.3g, %.3g | %.1f %% |\n", net, regime, lm.slope, lp.slope, le.slope,
                qm.slope, qv.slope, lm.free_slope, lp.free_slope, le.free_slope, chg);
    int rc = (st = write_figure(ctx, a->e.out, net, regime, &t)) != NM_OK ? cli_fail(ctx, st, "figure") : 0;
    nm_tightness_free(ctx, &t);
    return rc;
}

int exp_synthetic(const syn_args *a, FILE *report)
{
    const char *out = a->e.out;
    FILE *csv = exp_open(out, "tightness-synthetic.csv"), *md = csv ? exp_open(out, "slopes.md") : NULL;
    if (!csv || !md) {
        if (csv) fclose(csv);
        return 1;
    }
    fprintf(csv, "net,regime,run,output,analytic_mean,mc_mean,analytic_var_paper,analytic_var_exact,mc_var,analytic_mean_propagate,"
                 "analytic_var_propagate\n");
    for (FILE *f = md; f; f = f == md ? report : NULL)
        fprintf(f, "| net | regime | mean slope | variance slope, paper | variance slope, exact | mean slope, propagate | variance slope, "
                   "propagate | free-line slopes: mean, paper, exact | ReLU states changed above the split |\n|---|---|---|---|---|---|---|---|---|\n");
    printf("%-7s %-7s %11s %16s %16s %11s %11s   %-28s %9s %7s\n", "net", "regime", "mean slope", "var slope paper", "var slope exact",
           "mean prop", "var prop", "free line: mean paper exact", "ReLUs chg", "time s");
    nm_ctx *ctx = cli_ctx_create();
    int rc = ctx ? 0 : cli_error("out of memory");
    for (int k = 0; k < NM_SYN_COUNT && !rc; k++)
        for (int g = 0; g < CLI_REGIMES && !rc; g++)
            if (a->nets[k] && a->regimes[g]) rc = synthetic_one(ctx, a, (nm_synthetic)k, g, csv, md, report);
    fclose(csv);
    fclose(md);
    nm_ctx_free(ctx);
    return rc;
}
