/*
 * bench/moments.c — prints, in one run, on the shipped LeNet
 * (models/lenet-mnist.onnx) and held-out digit 0 with sigma^2 = 1:
 * method exact (10 means and variances, linearization included; best of 5)
 * and method propagate (DESIGN 1.12; best of 3) against a 75,000-sample
 * Monte Carlo of the same network, the speed-ups and the MC / analytic
 * ratios of both; the time to form A (1024 x 784, the bottom part up to the last
 * ReLU) by 784 jvp columns and by 1024 vjp rows; and the peak resident
 * memory. With --alexnet, also an AlexNet-size split (torchvision's
 * layout, random weights, p = 4096, n = 150,528) under 7×7 windowed noise:
 * A (4.9 GB in double) exceeds the 2 GiB budget, so S is accumulated from
 * jvp passes; its time and the peak memory are printed.
 * With --onnx M.onnx (a user's model, e.g. torchvision's resnet18 or
 * alexnet from tests/models/make.py --full; bench/big_models.sh runs them
 * beside PyTorch): on a seeded N(0, 1) input, method exact under sigma^2 =
 * 1e-4 on every input (or on a --window r,c,h,w only), best of --reps
 * runs, the time of the p vjp rows of the bottom part alone (its Jacobian,
 * what torch's batched vjp computes), and the peak resident memory.
 * Phases (issue 20): method exact split into the top part's linearization
 * (the forward and B, c2), the bottom Jacobian A, S = A Σ Aᵀ, the pair
 * covariances and B C Bᵀ, medians of 5, each with its rate against the
 * SGEMM and DGEMM peaks measured in the same run (or pairs per second);
 * method propagate's time per node; and the model and data load.
 * Run from the repository root after scripts/setup.sh.
 * Usage: bench/moments [--mc N] [--alexnet]
 *        bench/moments --onnx M.onnx [--window r,c,h,w] [--reps R]
 */
#define BENCH_NAME "bench/moments"
#include "bench.h"
#include "../src/linearize.h"
#include "../src/propagate/prop.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double peak_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* The --onnx mode: a user's model at a seeded input. */
static int bench_onnx(const char *path, const long *win, int reps)
{
    nm_ctx *ctx = nm_ctx_create();
    nm_net *net;
    if (nm_net_read_onnx(ctx, path, &net) != NM_OK) die(ctx, path);
    nm_array x;
    int ndim;
    int64_t shape[NM_MAX_DIMS];
    nm_net_input_shape(net, &ndim, shape);
    shape[0] = 1;
    if (nm_array_alloc(ctx, &x, NM_F32, ndim, shape) != NM_OK) die(ctx, "input");
    int64_t n = nm_array_numel(&x);
    nm_rng rng = {7};
    nm_rng_normals(&rng, 0, 0, (uint64_t)n, x.data);
    nm_cov *cov;
    nm_status st = win ? nm_cov_window(ctx, shape[1], shape[2], shape[3], win[0], win[1], win[2], win[3], 1e-4, &cov)
                       : nm_cov_isotropic(ctx, n, 1e-4, &cov);
    if (st != NM_OK) die(ctx, "covariance");
    nm_net_moments_options o = nm_net_moments_options_default();
    nm_moments m;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (nm_net_moments(ctx, net, &x, cov, &o, &m) != NM_OK) die(ctx, "moments");
        best = fmin(best, now() - t0);
        nm_moments_free(ctx, &m);
    }
    printf("bench/moments: %s, input %lld values, %d OpenMP threads\n", path, (long long)n, omp_get_max_threads());
    if (win) printf("  exact moments, sigma^2 1e-4 on the %ldx%ld window at (%ld, %ld): %.3f s (best of %d)\n", win[2], win[3],
                    win[0], win[1], best, reps);
    else printf("  exact moments, sigma^2 1e-4 on every input: %.3f s (best of %d, linearization included)\n", best, reps);
    printf("  peak resident memory: %.0f MiB\n", peak_mib());
    int k = nm_net_relu_node(net, nm_net_relu_count(net));
    nm_array y, out, U;
    if (nm_net_forward(ctx, net, 0, k, &x, &y) != NM_OK) die(ctx, "forward");
    int64_t p = nm_array_numel(&y), chunk = 256;
    int64_t us[NM_MAX_DIMS];
    memcpy(us, y.shape, sizeof us);
    us[0] = chunk;
    if (nm_array_alloc(ctx, &U, NM_F32, y.ndim, us) != NM_OK) die(ctx, "cotangents");
    double t0 = now();
    for (int64_t c0 = 0; !win && c0 < p; c0 += chunk) { /* the rows of the bottom part's Jacobian, 256 at a time */
        memset(U.data, 0, (size_t)(chunk * p) * sizeof(float));
        for (int64_t i = 0; i < chunk && c0 + i < p; i++) ((float *)U.data)[i * p + c0 + i] = 1;
        if (nm_net_vjp(ctx, net, 0, k, &U, &out) != NM_OK) die(ctx, "vjp");
        nm_array_free(ctx, &out);
    }
    double tv = now() - t0;
    if (!win) printf("  the bottom part's Jacobian (split at node %d), %lld vjp rows (256 per pass): %.3f s\n", k, (long long)p, tv);
    nm_array_free(ctx, &U), nm_array_free(ctx, &y), nm_array_free(ctx, &x);
    nm_cov_free(ctx, cov);
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return 0;
}

#define PHASE_REPS 5

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[n / 2];
}

/* GFLOP/s of an n³ GEMM in float and in double: the peaks the phases are compared with. */
static void gemm_peaks(double *sgemm, double *dgemm)
{
    int64_t n = 1536;
    float *a = calloc((size_t)(n * n), sizeof(float)), *c = calloc((size_t)(n * n), sizeof(float));
    double *A = calloc((size_t)(n * n), sizeof(double)), *C = calloc((size_t)(n * n), sizeof(double));
    if (!a || !c || !A || !C) die(NULL, "peak buffers");
    for (int64_t i = 0; i < n * n; i++) a[i] = (float)(i % 7) * 0.1f, A[i] = (double)(i % 7) * 0.1;
    double ts = 1e30, td = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        nm_gemm_f32(NM_NOTRANS, NM_NOTRANS, n, n, n, 1.0f, a, n, a, n, 0.0f, c, n);
        ts = fmin(ts, now() - t0);
        t0 = now();
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, n, n, n, 1.0, A, n, A, n, 0.0, C, n);
        td = fmin(td, now() - t0);
    }
    *sgemm = 2.0 * n * n * n / ts / 1e9, *dgemm = 2.0 * n * n * n / td / 1e9;
    free(a), free(c), free(A), free(C);
}

/* Method exact's phases on the shipped LeNet (the matrix path, as nm_net_moments takes it there). */
static void exact_phases(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *cov, double total)
{
    double tp[PHASE_REPS], ta[PHASE_REPS], ts[PHASE_REPS], tc[PHASE_REPS], tb[PHASE_REPS];
    int64_t p = 0, n = 0, d = 0, q = 0;
    nm_net_moments_options o = nm_net_moments_options_default();
    for (int r = 0; r < PHASE_REPS; r++) {
        nm_lin L;
        double t0 = now(), *A, *c1, *S, *m;
        if (nm_lin_prepare(ctx, net, mu, &o, &L) != NM_OK) die(ctx, "prepare");
        double t1 = now();
        if (nm_lin_form_A(ctx, net, &L, &A, &c1) != NM_OK) die(ctx, "A");
        double t2 = now();
        if (nm_ara_form_S(ctx, L.p, A, cov, NM_PREC_DOUBLE, &S) != NM_OK) die(ctx, "S");
        double t3 = now();
        p = L.p, n = L.n, d = L.d;
        q = L.k >= 2 ? nm_shape_numel(&net->v[nm_net_range_input(net, L.k - 1)].shape) : 0; /* the split's layer's input */
        m = malloc(sizeof(double) * (size_t)p);
        for (int64_t i = 0; i < p; i++) {
            m[i] = c1[i];
            for (int64_t j = 0; j < n; j++) m[i] += A[i * n + j] * ((const float *)mu->data)[j];
        }
        double *C = malloc(sizeof(double) * (size_t)(p * p)), *BC = malloc(sizeof(double) * (size_t)(d * p)), v = 0;
        double t4 = now();
        if (nm_relu_cov_matrix(ctx, p, m, S, NM_METHOD_EXACT, C) != NM_OK) die(ctx, "pairs");
        double t5 = now();
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, d, p, p, 1.0, L.B, p, C, p, 0.0, BC, p);
        for (int64_t i = 0; i < d; i++)
            for (int64_t u = 0; u < p; u++) v += BC[i * p + u] * L.B[i * p + u];
        double t6 = now();
        tp[r] = t1 - t0, ta[r] = t2 - t1, ts[r] = t3 - t2, tc[r] = t5 - t4, tb[r] = t6 - t5;
        free(m), free(C), free(BC), nm_free(ctx, A), nm_free(ctx, c1), nm_free(ctx, S);
        nm_lin_free(ctx, &L);
        if (!isfinite(v)) die(ctx, "B C B^T");
    }
    double sg, dg;
    gemm_peaks(&sg, &dg);
    double Tp = median(tp, PHASE_REPS), Ta = median(ta, PHASE_REPS), Ts = median(ts, PHASE_REPS), Tc = median(tc, PHASE_REPS), Tb = median(tb, PHASE_REPS);
    double fs = (double)p * (double)p * (double)n, fb = 2.0 * (double)d * (double)p * (double)p, pairs = (double)p * (double)(p + 1) / 2;
    printf("  exact's phases (median of %d; GEMM peaks in this run: SGEMM %.0f GFLOP/s, DGEMM %.0f GFLOP/s):\n", PHASE_REPS, sg, dg);
    printf("    top part: forward, B and c2 (d %lld x p %lld)   %.4f s\n", (long long)d, (long long)p, Tp);
    double fa = 2.0 * (double)p * (double)q * (double)n; /* the layer below the split over all n columns: one GEMM */
    printf("    bottom Jacobian A (p %lld x n %lld)             %.4f s  bound: its last layer (%lld -> %lld) over n columns, %.2f GFLOP, "
           "%.4f s at the SGEMM peak\n", (long long)p, (long long)n, Ta, (long long)q, (long long)p, fa / 1e9, fa / 1e9 / sg);
    printf("    S = A Sigma A^T (SYRK, %.2f GFLOP)              %.4f s  %.1f GFLOP/s, %.0f %% of DGEMM's; bound %.4f s\n", fs / 1e9, Ts,
           fs / Ts / 1e9, 100 * fs / Ts / 1e9 / dg, fs / 1e9 / dg);
    printf("    pair covariances (%.0f pairs)               %.4f s  %.2f M pairs/s\n", pairs, Tc, pairs / Tc / 1e6);
    printf("    B C B^T (%.3f GFLOP)                          %.4f s  %.1f GFLOP/s\n", fb / 1e9, Tb, fb / Tb / 1e9);
    printf("    sum %.4f s against the whole call's %.4f s\n", Tp + Ta + Ts + Tc + Tb, total);
}

/* Method propagate's time per node (best-of run's nodes, those above 5 ms). */
static void propagate_phases(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *cov)
{
    int last = nm_net_logits_node(net);
    double *t = calloc((size_t)(last + 1), sizeof(double)), sum = 0;
    nm_net_moments_options o = nm_net_moments_options_default();
    nm_moments m;
    if (!t || nm_propagate_moments_with(ctx, net, mu, cov, &o, &m, t, 1) != NM_OK) die(ctx, "propagate (timed)");
    nm_moments_free(ctx, &m);
    printf("  propagate's nodes (one run):");
    for (int k = 0; k <= last; k++) {
        nm_node_info info;
        sum += t[k];
        if (t[k] >= 5e-3 && nm_net_node_info(ctx, net, k, &info) == NM_OK) printf(" %s %.3f s,", info.name, t[k]);
    }
    printf(" all %.3f s\n", sum);
    free(t);
}

int main(int argc, char **argv)
{
    long mc = 75000, win[4];
    int alexnet = 0, have_win = 0, reps = 3;
    const char *onnx = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mc") && i + 1 < argc) mc = atol(argv[++i]);
        else if (!strcmp(argv[i], "--alexnet")) alexnet = 1;
        else if (!strcmp(argv[i], "--onnx") && i + 1 < argc) onnx = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--window") && i + 1 < argc)
            have_win = sscanf(argv[++i], "%ld,%ld,%ld,%ld", &win[0], &win[1], &win[2], &win[3]) == 4;
        else {
            fprintf(stderr, "usage: bench/moments [--mc N] [--alexnet]\n"
                            "       bench/moments --onnx M.onnx [--window r,c,h,w] [--reps R]\n");
            return 2;
        }
    }
    if (onnx) return bench_onnx(onnx, have_win ? win : NULL, reps > 0 ? reps : 1);
    nm_ctx *ctx = nm_ctx_create();
    nm_net *net;
    nm_dataset ds;
    double tload = now();
    bench_lenet(ctx, &net, &ds);
    tload = now() - tload;
    float x[784];
    nm_dataset_images(ctx, &ds, NULL, 1, nm_net_get_input_scale(net), x);
    nm_array mu = {NM_F32, 4, {1, 1, 28, 28}, x};
    nm_cov *cov;
    nm_cov_isotropic(ctx, 784, 1.0, &cov);
    printf("bench/moments: shipped LeNet, held-out digit 0, sigma^2 = 1, %d OpenMP threads\n", omp_get_max_threads());

    nm_net_moments_options o = nm_net_moments_options_default();
    nm_moments m;
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        if (nm_net_moments(ctx, net, &mu, cov, &o, &m) != NM_OK) die(ctx, "moments");
        best = fmin(best, now() - t0);
        if (r < 4) nm_moments_free(ctx, &m);
    }
    nm_net_moments_options po = o;
    po.method = NM_METHOD_PROPAGATE;
    nm_moments pm;
    double pbest = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        if (nm_net_moments(ctx, net, &mu, cov, &po, &pm) != NM_OK) die(ctx, "propagate");
        pbest = fmin(pbest, now() - t0);
        if (r < 2) nm_moments_free(ctx, &pm);
    }
    nm_rng rng = {1};
    nm_mc_result r;
    double t0 = now();
    if (nm_net_montecarlo(ctx, net, &mu, cov, mc, &rng, 0, NULL, NULL, &r) != NM_OK) die(ctx, "monte carlo");
    double tmc = now() - t0, rm0 = 1e30, rm1 = -1e30, rv0 = 1e30, rv1 = -1e30;
    for (int i = 0; i < 10; i++) {
        rm0 = fmin(rm0, r.mean[i] / m.mean[i]), rm1 = fmax(rm1, r.mean[i] / m.mean[i]);
        rv0 = fmin(rv0, r.var[i] / m.var[i]), rv1 = fmax(rv1, r.var[i] / m.var[i]);
    }
    printf("  exact, 10 means and variances:   %.4f s (best of 5, linearization included)\n", best);
    printf("  Monte Carlo, %ld samples:     %.3f s  ->  analytic is %.0fx faster\n", mc, tmc, tmc / best);
    printf("  MC / exact over the 10 logits: means %.4f..%.4f, variances %.4f..%.4f\n", rm0, rm1, rv0, rv1);
    rm0 = rv0 = 1e30, rm1 = rv1 = -1e30;
    for (int i = 0; i < 10; i++) {
        rm0 = fmin(rm0, r.mean[i] / pm.mean[i]), rm1 = fmax(rm1, r.mean[i] / pm.mean[i]);
        rv0 = fmin(rv0, r.var[i] / pm.var[i]), rv1 = fmax(rv1, r.var[i] / pm.var[i]);
    }
    printf("  propagate, 10 means and variances: %.4f s (best of 3)  ->  %.1fx faster than the Monte Carlo\n", pbest, tmc / pbest);
    printf("  MC / propagate over the 10 logits: means %.4f..%.4f, variances %.4f..%.4f\n", rm0, rm1, rv0, rv1);
    nm_moments_free(ctx, &pm);
    printf("  model and digits loaded in %.3f s (not in the analytic times)\n", tload);
    exact_phases(ctx, net, &mu, cov, best);
    propagate_phases(ctx, net, &mu, cov);

    /* A by columns and by rows */
    int k = nm_net_relu_node(net, nm_net_relu_count(net));
    nm_array y, out;
    if (nm_net_forward(ctx, net, 0, k - 1, &mu, &y) != NM_OK) die(ctx, "forward");
    int64_t p = nm_array_numel(&y);
    nm_array E, U;
    int64_t es[4] = {784, 1, 28, 28}, us[2] = {p, p};
    nm_array_alloc(ctx, &E, NM_F32, 4, es);
    nm_array_alloc(ctx, &U, NM_F32, 2, us);
    for (int j = 0; j < 784; j++) ((float *)E.data)[j * 784 + j] = 1;
    for (int64_t j = 0; j < p; j++) ((float *)U.data)[j * p + j] = 1;
    double tj = 1e30, tv = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        t0 = now();
        if (nm_net_jvp(ctx, net, 0, k - 1, &E, &out) != NM_OK) die(ctx, "jvp");
        tj = fmin(tj, now() - t0);
        nm_array_free(ctx, &out);
        t0 = now();
        if (nm_net_vjp(ctx, net, 0, k - 1, &U, &out) != NM_OK) die(ctx, "vjp");
        tv = fmin(tv, now() - t0);
        nm_array_free(ctx, &out);
    }
    printf("  A (%lld x 784): 784 jvp columns %.3f s, %lld vjp rows %.3f s (best of 3)\n", (long long)p, tj, (long long)p, tv);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("  peak resident memory: %.0f MiB\n", ru.ru_maxrss / 1024.0);
    nm_array_free(ctx, &E), nm_array_free(ctx, &U), nm_array_free(ctx, &y);
    if (alexnet) {
        nm_net *ax;
        if (nm_net_create(ctx, NM_ARCH_ALEXNET, 1, 1.0, &ax) != NM_OK) die(ctx, "alexnet");
        nm_array xa;
        int64_t xs[4] = {1, 3, 224, 224};
        nm_array_alloc(ctx, &xa, NM_F32, 4, xs);
        nm_rng_normals(&rng, 77, 0, 3 * 224 * 224, xa.data);
        nm_cov *win;
        nm_cov_window(ctx, 3, 224, 224, 100, 100, 7, 7, 1.0, &win);
        nm_moments am;
        t0 = now();
        if (nm_net_moments(ctx, ax, &xa, win, &o, &am) != NM_OK) die(ctx, "alexnet moments");
        double ta = now() - t0;
        getrusage(RUSAGE_SELF, &ru);
        printf("  AlexNet layout (p 4096, n 150528, d 1000), 7x7 window: exact in %.2f s through the operator path;"
               " peak resident memory now %.0f MiB\n", ta, ru.ru_maxrss / 1024.0);
        nm_moments_free(ctx, &am);
        nm_cov_free(ctx, win);
        nm_array_free(ctx, &xa);
        nm_net_free(ctx, ax);
    }
    nm_moments_free(ctx, &m);
    nm_mc_result_free(ctx, &r);
    nm_cov_free(ctx, cov);
    nm_dataset_free(ctx, &ds);
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return 0;
}
