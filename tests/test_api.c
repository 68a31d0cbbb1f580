/*
 * test_api.c — the library's contracts beyond the numbers (issue 11): the
 * op and method tables are consistent; a NULL context is safe; numbers in
 * model metadata do not follow the host's locale; overlapping serial-BLAS
 * sections restore OpenBLAS's thread count; the memory budget of the
 * network moments counts what the matrix path really holds (and the
 * first-ReLU split honours it); a window covariance holds only its window;
 * nm_net_copy gives an independent net that computes the same.
 */
#include "netbuild.h"
#include "check.h"
#include "../src/methods/method.h"

#include <cblas.h>
#include <omp.h>
#include <locale.h>

#define TOL_PATHS 1e-6         /* operator vs matrix path (float jvp columns vs A), relative and absolute */
#define TOL_PATHS_VAR_ABS 1e-9 /* ... absolute floor for the variances */

#define SLACK_BYTES (256 << 10) /* small buffers the budget does not count (m, c1, μ, jvp chunk tables) */

static void tables(void)
{
    for (int op = 0; op < NM_OP_COUNT; op++) {
        const nm_op_def *d = nm_op_table[op];
        char what[96];
        snprintf(what, sizeof what, "op %d (%s): name, arity, infer and passes", op, d ? d->name : "?");
        check_true(what, d && d->name && d->min_inputs >= 1 && d->min_inputs <= d->max_inputs && d->max_inputs <= NM_NODE_MAX_IN &&
                             d->infer && d->forward && d->jvp && d->vjp);
        check_true("op found by its own name", nm_op_find(d->name) == op);
        for (const nm_attr_def *a = d->attrs; a && a->name; a++) {
            snprintf(what, sizeof what, "%s.%s: written attributes are stored ones", d->name, a->name);
            check_true(what, !a->write || a->kind == NM_ATTR_INT || a->kind == NM_ATTR_BOOL || a->kind == NM_ATTR_FLOAT ||
                                 a->kind == NM_ATTR_LIST || (a->kind == NM_ATTR_ENUM && a->names) || (a->kind == NM_ATTR_INTS && a->count > 0));
        }
    }
    int n = 0;
    while (nm_op_supported(n)) n++;
    check_true("nm_op_supported lists every op", n == NM_OP_COUNT);
    check_true("methods: the three fixed ones", nm_method_count() >= 3 && !strcmp(nm_method_str(NM_METHOD_PAPER), "paper") &&
                                                   !strcmp(nm_method_str(NM_METHOD_EXACT), "exact") && !strcmp(nm_method_str(NM_METHOD_DELTA), "delta"));
    for (int m = 0; m < nm_method_count(); m++) {
        const nm_method_def *d = nm_method_def_of(m);
        check_true("method found by its own name, with rules and a summary",
                   nm_method_from_str(nm_method_str(m)) == m && d->mean && d->var && d->cov && *nm_method_summary(m));
    }
    check_true("unknown method name", nm_method_from_str("nope") == -1 && !strcmp(nm_method_str(99), "unknown"));
}

static void null_context(void)
{
    nm_array a;
    nm_cov *c = NULL;
    check_true("nm_array_alloc with a NULL context", nm_array_alloc(NULL, &a, NM_F32, 1, (int64_t[]){4}) == NM_OK);
    nm_array_free(NULL, &a);
    check_true("nm_cov_isotropic with a NULL context", nm_cov_isotropic(NULL, 3, 1, &c) == NM_OK);
    nm_cov_free(NULL, c);
    check_true("a failure on a NULL context", nm_cov_isotropic(NULL, 3, -1, &c) == NM_ERR_NOT_PSD);
    check_true("nm_ctx_fail_alloc_after(NULL)", nm_ctx_fail_alloc_after(NULL, 3) == 0);
    check_true("nm_net_create(NULL) refused", nm_net_create(NULL, NM_ARCH_MLP, 1, 1, &(nm_net *){NULL}) == NM_ERR_ARG);
}

/* A locale whose decimal point is a comma, made with localedef when the system has none. */
static int comma_locale(void)
{
    if (setlocale(LC_NUMERIC, "de_DE.UTF-8")) return 1;
    const char *dir = check_tmp("locale");
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && localedef -i de_DE -f UTF-8 '%s/de_DE.UTF-8' >/dev/null 2>&1", dir, dir);
    if (system(cmd) != 0) return 0;
    setenv("LOCPATH", dir, 1);
    return setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL;
}

static void locale_independence(void)
{
    if (!comma_locale()) {
        printf("  locale: no decimal-comma locale could be made (localedef from Debian's locales): checks skipped\n");
        return;
    }
    char buf[16];
    snprintf(buf, sizeof buf, "%.1f", 1.5);
    check_true("the host locale writes a decimal comma", !strcmp(buf, "1,5"));
    nm_net *net = NULL;
    if (check_true("lenet-mnist.onnx loads", nm_net_read_onnx(ctx, "models/lenet-mnist.onnx", &net) == NM_OK)) {
        nm_scale s = nm_net_get_input_scale(net);
        check_true("a model's input scale read under a decimal-comma locale", s.a == 255 && s.b == -127.5);
        nm_net_set_input_scale(ctx, net, (nm_scale){0.5, -0.25});
        check_true("written with a decimal point", !strcmp(nm_net_get_meta(net, "netmoments.input_scale"), "0.5 -0.25"));
        s = nm_net_get_input_scale(net);
        check_true("and read back", s.a == 0.5 && s.b == -0.25);
        nm_net_free(ctx, net);
    }
    setlocale(LC_NUMERIC, "C");
}

static void blas_sections(void)
{
    if (openblas_get_parallel() == 2) { /* OpenBLAS on OpenMP's threads: sections leave both alone */
        int omp = omp_get_max_threads(), inside = 0;
        nm_blas_serial_begin();
        #pragma omp parallel
        #pragma omp single
        inside = omp_get_num_threads();
        nm_blas_serial_end();
        check_true("OpenMP BLAS: a section keeps OpenMP's thread count", inside == omp && omp_get_max_threads() == omp);
        return;
    }
    openblas_set_num_threads(2);
    int before = openblas_get_num_threads();
    nm_blas_serial_begin(); /* two contexts' calls overlapping: A begins, B begins, A ends, B ends */
    nm_blas_serial_begin();
    check_true("serial inside overlapping sections", openblas_get_num_threads() == 1);
    nm_blas_serial_end();
    check_true("still serial while one section is open", openblas_get_num_threads() == 1);
    nm_blas_serial_end();
    check_true("the thread count restored after the last section", openblas_get_num_threads() == before);
}

/* The products on 1 and 2 threads, bit for bit, at shapes where OpenBLAS's own threading changes the results (it
 * did at 50×64×500 and 64×1024×784, single and double, before nm_gemm cut C into pieces fixed by the shape). */
static void blas_thread_counts(void)
{
    static const int64_t shapes[][3] = {{50, 64, 500}, {64, 1024, 784}, {1024, 300, 64}, {10, 500, 500}, {7, 5, 3}};
    int nt = omp_get_max_threads();
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int64_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        float *A = fill_rand(m * k, 1.0), *B = fill_rand(k * n, 1.0), *C[2];
        double *Ad = malloc((size_t)(m * k) * sizeof(double)), *Bd = malloc((size_t)(k * n) * sizeof(double)), *D[2], *E[2];
        double *Sd = malloc((size_t)(n * n) * sizeof(double));
        for (int64_t j = 0; j < m * k; j++) Ad[j] = A[j];
        for (int64_t j = 0; j < k * n; j++) Bd[j] = B[j];
        for (int64_t j = 0; j < n * n; j++) Sd[j] = nrand();
        for (int t = 0; t < 2; t++) {
            omp_set_num_threads(t + 1);
            C[t] = calloc((size_t)(m * n), sizeof(float)), D[t] = calloc((size_t)(m * n), sizeof(double)), E[t] = calloc((size_t)(m * n), sizeof(double));
            nm_gemm_f32(NM_NOTRANS, NM_NOTRANS, m, n, k, 1.0f, A, k, B, n, 0.0f, C[t], n);
            nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, m, n, k, 1.0, Ad, k, Bd, n, 0.0, D[t], n);
            nm_symm_right_f64(m, n, 1.0, Sd, n, D[0], n, 0.0, E[t], n);
        }
        omp_set_num_threads(nt);
        char what[120];
        snprintf(what, sizeof what, "GEMM %lldx%lldx%lld (f32, f64) and SYMM: 1 and 2 threads bit for bit", (long long)m, (long long)n,
                 (long long)k);
        check_true(what, !memcmp(C[0], C[1], (size_t)(m * n) * sizeof(float)) && !memcmp(D[0], D[1], (size_t)(m * n) * sizeof(double)) &&
                             !memcmp(E[0], E[1], (size_t)(m * n) * sizeof(double)));
        for (int t = 0; t < 2; t++) free(C[t]), free(D[t]), free(E[t]);
        free(A), free(B), free(Ad), free(Bd), free(Sd);
    }
}

/* Gemm (n → p) → Relu → Gemm (p → 3), the net of the budget checks. */
static nm_net *wide_net(int64_t n, int64_t p, int relu_first)
{
    nm_net *net = nm_net_new(ctx);
    nm_shape in = SHAPE(1, n);
    int x = nm_net_add_input(ctx, net, "x", &in);
    if (relu_first) x = NODE(net, NM_OP_RELU, NULL, x);
    else x = NODE(net, NM_OP_RELU, NULL, linear(net, x, n, p));
    nm_net_set_output(ctx, net, linear(net, x, relu_first ? n : p, 3));
    return net;
}

/* Peak bytes nm_net_moments adds (its net's buffers warmed up by a first call), and the result. */
static size_t moments_peak(nm_net *net, const nm_array *mu, const nm_cov *cov, size_t budget, nm_moments *m)
{
    nm_net_moments_options o = nm_net_moments_options_default();
    o.mem_budget = budget;
    nm_moments warm;
    nm_net_moments(ctx, net, mu, cov, &o, &warm);
    nm_moments_free(ctx, &warm);
    nm_ctx_mem_peak(ctx); /* resets the peak to what is live now, which the next call returns */
    size_t base = nm_ctx_mem_peak(ctx);
    nm_status st = nm_net_moments(ctx, net, mu, cov, &o, m);
    size_t peak = nm_ctx_mem_peak(ctx);
    check_true("moments under a budget", st == NM_OK);
    return peak > base ? peak - base : 0;
}

static void memory_budget(void)
{
    const int64_t n = 3000, p = 50, k = 49;
    nm_net *net = wide_net(n, p, 0);
    float *mu = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) mu[i] = (float)(0.3 * nrand());
    nm_array mua = {NM_F32, 2, {1, n}, mu};
    nm_cov *win;
    nm_cov_window(ctx, 1, 60, 50, 3, 4, 7, 7, 0.5, &win); /* k = 49 columns */
    size_t matrix = (size_t)(8 * p * n + 8 * p * k), S = (size_t)(8 * p * p);
    nm_moments a, b;
    size_t in = moments_peak(net, &mua, win, matrix, &a), out = moments_peak(net, &mua, win, matrix - 1, &b);
    printf("  budget: matrix path %zu bytes admitted at exactly its %zu, operator path %zu below it\n", in, matrix, out);
    check_true("the matrix path holds no more than the budget it was admitted under", in >= (size_t)(8 * p * n) && in <= matrix + S + SLACK_BYTES);
    check_true("one byte less: A is never formed", out < (size_t)(8 * p * n));
    for (int i = 0; i < 3; i++) {
        check_close("operator and matrix paths: mean", b.mean[i], a.mean[i], TOL_PATHS, TOL_PATHS);
        check_close("operator and matrix paths: variance", b.var[i], a.var[i], TOL_PATHS_VAR_ABS, 10 * TOL_PATHS);
    }
    nm_moments_free(ctx, &a), nm_moments_free(ctx, &b);
    nm_net_free(ctx, net);
    /* split at a first-node ReLU (A = I, n × n): the budget holds there too */
    const int64_t m = 1500;
    net = wide_net(m, 0, 1);
    nm_cov *iso;
    nm_cov_isotropic(ctx, m, 0.5, &iso);
    nm_array mub = {NM_F32, 2, {1, m}, mu};
    size_t full = moments_peak(net, &mub, iso, (size_t)1 << 20, &a);
    printf("  budget: first-ReLU split under 1 MiB: %zu bytes beyond S (%lld bytes); A as a matrix would be %lld\n",
           full > (size_t)(8 * m * m) ? full - (size_t)(8 * m * m) : 0, (long long)(8 * m * m), (long long)(16 * m * m));
    check_true("first-ReLU split: only S and the chunk buffers", full <= (size_t)(8 * m * m) + (size_t)(3 * 256 * m * 8) + SLACK_BYTES);
    nm_moments_free(ctx, &a);
    nm_net_free(ctx, net);
    nm_cov_free(ctx, iso);
    nm_cov_free(ctx, win);
    free(mu);
}

static void window_storage(void)
{
    nm_ctx_mem_peak(ctx);
    size_t base = nm_ctx_mem_peak(ctx);
    nm_cov *c;
    check_true("a 7x7 window on 3x224x224", nm_cov_window(ctx, 3, 224, 224, 100, 100, 7, 7, 1, &c) == NM_OK);
    size_t used = nm_ctx_mem_peak(ctx) - base;
    printf("  a 7x7 window on a 3x224x224 image holds %zu bytes (a dense L would be %lld)\n", used, (long long)150528 * 147 * 8);
    check_true("the window holds only its pixels", used < 64 << 10);
    nm_cov_free(ctx, c);
}

static void net_copy(void)
{
    nm_net *net = NULL, *copy = NULL;
    if (!check_true("built-in LeNet", nm_net_create(ctx, NM_ARCH_LENET_SMALL, 4, 1, &net) == NM_OK)) return;
    check_true("nm_net_copy", nm_net_copy(ctx, net, &copy) == NM_OK);
    float x[784];
    for (int i = 0; i < 784; i++) x[i] = (float)nrand();
    nm_array xa = {NM_F32, 4, {1, 1, 28, 28}, x}, y1, y2;
    nm_net_set_meta(ctx, net, "k", "original"); /* the copy is independent */
    check_true("both run", nm_net_forward(ctx, net, 0, -1, &xa, &y1) == NM_OK && nm_net_forward(ctx, copy, 0, -1, &xa, &y2) == NM_OK);
    check_true("the copy computes the same, bit for bit", !memcmp(y1.data, y2.data, 10 * sizeof(float)));
    check_true("and has its own metadata", nm_net_get_meta(copy, "k") == NULL);
    nm_array_free(ctx, &y1), nm_array_free(ctx, &y2);
    nm_net_free(ctx, copy);
    long failed = 0;
    for (long i = 1; i < 200; i++) { /* every allocation of the copy may fail, cleanly */
        nm_ctx_fail_alloc_after(ctx, i);
        nm_status st = nm_net_copy(ctx, net, &copy);
        nm_ctx_fail_alloc_after(ctx, 0);
        if (st == NM_OK) {
            nm_net_free(ctx, copy);
            break;
        }
        failed += st == NM_ERR_NOMEM;
    }
    check_true("allocation failures in nm_net_copy are NM_ERR_NOMEM", failed > 10);
    nm_net_free(ctx, net);
}

int main(void)
{
    ctx = nm_ctx_create();
    tables();
    null_context();
    locale_independence();
    blas_sections();
    blas_thread_counts();
    memory_budget();
    window_storage();
    net_copy();
    nm_ctx_free(ctx);
    return check_finish("test_api");
}
