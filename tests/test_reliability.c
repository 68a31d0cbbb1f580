/*
 * test_reliability.c — the defects of issue 12, each as it was found, each
 * answered now by a correct result or a clear status (never OK with a
 * meaningless result, never unbounded memory): moments that overflow,
 * inputs beyond float32, a covariance whose eigenvalues overflow, a Monte
 * Carlo whose draws overflow, single precision that overflows, windows at
 * the edge of int64, the hostile files of tests/reliability (window and
 * Pad arithmetic, a 6 GB Pad, a broadcast bomb, IDX headers that lie),
 * the memory budget, and files written whole or not at all.
 */
#include "netbuild.h"
#include "check.h"

#include <signal.h>
#include <sys/resource.h>
#include <zlib.h>

#define SMALL_PEAK ((size_t)16 << 20) /* what refusing a hostile file may allocate on the way */

static void expect(const char *what, nm_status got, nm_status want)
{
    char buf[400];
    snprintf(buf, sizeof buf, "%s -> %s (got %s: %s)", what, nm_status_str(want), nm_status_str(got), nm_ctx_message(ctx));
    check_true(buf, got == want && (got == NM_OK || strlen(nm_ctx_message(ctx)) > 0));
}

/* A 20 → 8 → 3 ARA network and the same as a net (Gemm, Relu, Gemm). */
static double A[8 * 20], c1[8], B[3 * 8], c2[3], mu[20];
static void ara_setup(nm_ara *net, nm_array arr[5])
{
    for (int i = 0; i < 160; i++) A[i] = 0.3 * nrand();
    for (int i = 0; i < 8; i++) c1[i] = 0.1 * nrand();
    for (int i = 0; i < 24; i++) B[i] = 0.4 * nrand();
    for (int i = 0; i < 20; i++) mu[i] = nrand();
    arr[0] = (nm_array){NM_F64, 2, {8, 20}, A}, arr[1] = (nm_array){NM_F64, 1, {8}, c1};
    arr[2] = (nm_array){NM_F64, 2, {3, 8}, B}, arr[3] = (nm_array){NM_F64, 1, {3}, c2}, arr[4] = (nm_array){NM_F64, 1, {20}, mu};
    *net = (nm_ara){&arr[0], &arr[1], &arr[2], &arr[3]};
}

/* Items 1, 3, 5: moments whose products overflow are refused, for every method. */
static void overflowing_moments(void)
{
    nm_ara net;
    nm_array arr[5];
    ara_setup(&net, arr);
    double L[20 * 4];
    for (int i = 0; i < 80; i++) L[i] = 1e160 * (1 + i % 3);
    nm_cov *f;
    expect("a factor of 1e160 entries is accepted (finite)", nm_cov_factor(ctx, 20, 4, L, &f), NM_OK);
    for (int m = 0; m < nm_method_count(); m++) {
        nm_ara_options o = nm_ara_options_default();
        o.method = m;
        nm_moments r;
        char what[96];
        snprintf(what, sizeof what, "method %s with S overflowing double", nm_method_str(m));
        expect(what, nm_ara_moments(ctx, &net, &arr[4], f, &o, &r), NM_ERR_NONFINITE);
    }
    nm_cov_free(ctx, f);
    /* a PSD matrix whose eigenvalues overflow double: moments, not zero noise */
    double *C = malloc(sizeof(double) * 400);
    for (int i = 0; i < 400; i++) C[i] = 1e306;
    nm_cov *full;
    expect("20 x 20 of 1e306 (eigenvalue 2e307 x 20 overflows)", nm_cov_full(ctx, 20, C, &full), NM_OK);
    nm_moments r;
    nm_status st = nm_ara_moments(ctx, &net, &arr[4], full, NULL, &r);
    check_true("huge covariance: refused or a variance that is not 0", st == NM_ERR_NONFINITE || (st == NM_OK && r.var[0] > 1e200));
    if (st == NM_OK) nm_moments_free(ctx, &r);
    nm_cov_free(ctx, full);
    free(C);
    nm_cov *iso;
    nm_cov_isotropic(ctx, 20, 1e46, &iso);
    nm_ara_options single = nm_ara_options_default();
    single.precision = NM_PREC_SINGLE;
    expect("single precision with sigma^2 1e46", nm_ara_moments(ctx, &net, &arr[4], iso, &single, &r), NM_ERR_NONFINITE);
    check_true("... saying to use double", strstr(nm_ctx_message(ctx), "double") != NULL);
    expect("double precision with sigma^2 1e46", nm_ara_moments(ctx, &net, &arr[4], iso, NULL, &r), NM_OK);
    nm_mc_result mc;
    nm_rng rng = {5};
    nm_cov *huge;
    nm_cov_isotropic(ctx, 20, 1e78, &huge);
    expect("the ARA Monte Carlo with sigma^2 1e78 (float32 overflows; was OK)", nm_ara_montecarlo(ctx, &net, &arr[4], huge, 1000, &rng, 0, &mc),
           NM_ERR_NONFINITE);
    nm_cov_free(ctx, huge);
    nm_moments_free(ctx, &r);
    nm_cov_free(ctx, iso);
}

static nm_net *small_net(void)
{
    nm_net *net = nm_net_new(ctx);
    nm_shape in = SHAPE(1, 20);
    int x = nm_net_add_input(ctx, net, "x", &in);
    x = NODE(net, NM_OP_RELU, NULL, linear(net, x, 20, 8));
    nm_net_set_output(ctx, net, linear(net, x, 8, 3));
    return net;
}

/* Items 2, 4: float32 passes never overflow silently. */
static void float32_passes(void)
{
    nm_net *net = small_net();
    double big[20];
    for (int i = 0; i < 20; i++) big[i] = i == 3 ? 1e50 : 0.5;
    nm_array mub = {NM_F64, 2, {1, 20}, big};
    nm_cov *iso;
    nm_cov_isotropic(ctx, 20, 0.01, &iso);
    nm_net_moments_options o = nm_net_moments_options_default();
    nm_moments r;
    for (int path = NM_PATH_MATRIX; path <= NM_PATH_OPERATOR; path++) {
        o.path = (nm_path)path;
        expect(path == NM_PATH_MATRIX ? "mean 1e50, matrix path" : "mean 1e50, operator path (was OK with wrong means)",
               nm_net_moments(ctx, net, &mub, iso, &o, &r), NM_ERR_NONFINITE);
    }
    nm_array y;
    expect("forward on 1e50 (was finite wrong logits)", nm_net_forward(ctx, net, 0, -1, &mub, &y), NM_ERR_NONFINITE);
    float f[20], w[8 * 20], b[8] = {0};
    for (int i = 0; i < 20; i++) f[i] = i % 2 ? 3e38f : -3e38f; /* fits float32; the layer below makes Inf − Inf = NaN */
    for (int i = 0; i < 160; i++) w[i] = 10;
    nm_net *wide = nm_net_new(ctx);
    nm_shape in = SHAPE(1, 20);
    int x = nm_net_add_input(ctx, wide, "x", &in);
    x = NODE(wide, NM_OP_RELU, NULL, gemm_node(wide, x, vconst(wide, SHAPE(8, 20), w), vconst(wide, SHAPE(8), b)));
    nm_net_set_output(ctx, wide, linear(wide, x, 8, 3));
    nm_array mf = {NM_F32, 2, {1, 20}, f};
    expect("forward whose first layer overflows (NaN, which the ReLU turned into 0)", nm_net_forward(ctx, wide, 0, -1, &mf, &y),
           NM_ERR_NONFINITE);
    check_true("... naming the node", strstr(nm_ctx_message(ctx), "Relu") != NULL);
    nm_net_free(ctx, wide);
    nm_cov *huge;
    nm_cov_isotropic(ctx, 20, 1e80, &huge);
    nm_array ok = {NM_F32, 2, {1, 20}, f};
    for (int i = 0; i < 20; i++) f[i] = 0.5f;
    nm_rng rng = {3};
    nm_mc_result mc;
    expect("Monte Carlo with sigma^2 1e80 (was mc_var 1.6e-4)", nm_net_montecarlo(ctx, net, &ok, huge, 200, &rng, 0, NULL, NULL, &mc),
           NM_ERR_NONFINITE);
    nm_cov_free(ctx, huge), nm_cov_free(ctx, iso);
    nm_net_free(ctx, net);
}

/* Item 6: a window at the edge of int64 (r + h overflowed past the bounds check). */
static void windows(void)
{
    nm_cov *c;
    expect("window at row and column 2^63 - 1", nm_cov_window(ctx, 1, 28, 28, INT64_MAX, INT64_MAX, 1, 1, 1, &c), NM_ERR_ARG);
    expect("window of height 2^63 - 1", nm_cov_window(ctx, 1, 28, 28, 1, 1, INT64_MAX, 1, 1, &c), NM_ERR_ARG);
    expect("an image whose size overflows", nm_cov_window(ctx, INT64_MAX, INT64_MAX, 2, 0, 0, 1, 1, 1, &c), NM_ERR_ARG);
}

/* Items 7, 8: the hostile models, refused at load with a message, having allocated little. */
static void hostile_models(void)
{
    static const struct {
        const char *file;
        nm_status want;
        const char *says;
    } cases[] = {
        {"conv_dil_huge.onnx", NM_ERR_FORMAT, "overflows"},  {"conv_pads_int64.onnx", NM_ERR_FORMAT, "overflow"},
        {"pool_pads_int64.onnx", NM_ERR_FORMAT, "overflow"}, {"pad_int64_2.onnx", NM_ERR_FORMAT, "overflow"},
        {"pad_huge.onnx", NM_ERR_NOMEM, "memory budget"},    {"bcast_bomb.onnx", NM_ERR_UNSUPPORTED, "folding"},
    };
    nm_ctx_set_mem_limit(ctx, (size_t)1 << 30);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256], what[300];
        snprintf(path, sizeof path, "tests/reliability/%s", cases[i].file);
        nm_ctx_mem_peak(ctx);
        size_t base = nm_ctx_mem_peak(ctx);
        nm_net *net = NULL;
        nm_status st = nm_net_read_onnx(ctx, path, &net);
        size_t peak = nm_ctx_mem_peak(ctx) - base;
        snprintf(what, sizeof what, "%s (peak %zu bytes)", cases[i].file, peak);
        expect(what, st, cases[i].want);
        check_true("... with the reason in the message", strstr(nm_ctx_message(ctx), cases[i].says) != NULL);
        check_true("... and no wrapped negative size in it", strstr(nm_ctx_message(ctx), "-92233") == NULL);
        check_true("... having allocated little", peak < SMALL_PEAK);
        nm_net_free(ctx, net);
    }
    nm_ctx_set_mem_limit(ctx, 0);
}

/* A gzipped IDX image file of n images of 28x28 zero bytes. */
static void write_gz_idx(const char *path, int64_t n)
{
    gzFile f = gzopen(path, "wb9");
    unsigned char head[16] = {0, 0, 8, 3, (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n,
                              0, 0, 0, 28, 0, 0, 0, 28};
    gzwrite(f, head, 16);
    static unsigned char zero[784 * 64];
    for (int64_t i = 0; i < n; i += 64) gzwrite(f, zero, (unsigned)(784 * (n - i < 64 ? n - i : 64)));
    gzclose(f);
}

/* Items 7, 9: IDX headers that lie; a gzip that expands beyond the budget. */
static void hostile_idx(void)
{
    nm_dataset ds;
    nm_ctx_mem_peak(ctx);
    size_t base = nm_ctx_mem_peak(ctx);
    expect("IDX header claiming 78 GB in 116 bytes (was NOMEM after allocating the claim)",
           nm_dataset_read_idx(ctx, "tests/reliability/claim_img.idx", "tests/reliability/lab1.idx", &ds), NM_ERR_FORMAT);
    check_true("... having allocated little", nm_ctx_mem_peak(ctx) - base < SMALL_PEAK);
    expect("IDX dimension product after a bad dimension", nm_dataset_read_idx(ctx, "tests/reliability/idx_mul_overflow.idx",
                                                                              "tests/reliability/lab1.idx", &ds), NM_ERR_FORMAT);
    const char *img = check_tmp("bomb-images.gz"), *lbl = check_tmp("bomb-labels");
    write_gz_idx(img, 40000); /* 31 MB of pixels in a few tens of KB */
    FILE *l = fopen(lbl, "wb");
    unsigned char lh[8] = {0, 0, 8, 1, 0, 0, 0x9c, 0x40};
    fwrite(lh, 1, 8, l);
    for (int i = 0; i < 40000; i++) fputc(i % 10, l);
    fclose(l);
    nm_ctx_set_mem_limit(ctx, (size_t)16 << 20);
    expect("a gzip expanding beyond a 16 MiB budget", nm_dataset_read_idx(ctx, img, lbl, &ds), NM_ERR_NOMEM);
    nm_ctx_set_mem_limit(ctx, 0);
    expect("... and within the default one", nm_dataset_read_idx(ctx, img, lbl, &ds), NM_OK);
    nm_dataset_free(ctx, &ds);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Item 10: files written whole or not at all; a symlink replaced, not written through. */
static void atomic_files(void)
{
    float v[1000] = {0};
    nm_array a = {NM_F32, 1, {1000}, v}, small = {NM_F32, 1, {4}, v};
    const char *path = check_tmp("out.npy"), *target = check_tmp("target.npy"), *link = check_tmp("link.npy");
    expect("an NPY file", nm_npy_write(ctx, path, &small), NM_OK);
    long before = file_size(path);
    /* a write that fails part way (the file-size limit): the old file stays, no temporary remains */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = (struct rlimit){2048, old.rlim_max}; /* the soft limit only, so that it can be raised back */
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    nm_status st = nm_npy_write(ctx, path, &a);
    setrlimit(RLIMIT_FSIZE, &old);
    expect("a write cut short by the file-size limit (left a truncated file)", st, NM_ERR_IO);
    check_true("... the old file untouched", file_size(path) == before);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", check_tmp(""));
    check_true("... and no temporary file left", system(cmd) != 0);
    expect("a target file", nm_npy_write(ctx, target, &small), NM_OK);
    check_true("a symlink to it", symlink(target, link) == 0);
    expect("writing to the symlink's path", nm_npy_write(ctx, link, &a), NM_OK);
    struct stat ls;
    check_true("the symlink was replaced by the file", lstat(link, &ls) == 0 && S_ISREG(ls.st_mode) && ls.st_size > before);
    check_true("and its target left alone (was overwritten)", file_size(target) == before);
}

/* Item 12: a PSD matrix rounded to float32 is accepted as float32 entries. */
static void float32_covariance(void)
{
    enum { N = 60 };
    double *C = malloc(sizeof(double) * N * N), g[N * 3];
    for (int i = 0; i < N * 3; i++) g[i] = nrand();
    for (int i = 0; i < N; i++) /* rank 3, then each entry rounded to float32 */
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < 3; k++) s += g[i * 3 + k] * g[j * 3 + k];
            C[i * N + j] = (float)(10 * s);
        }
    nm_cov *c = NULL;
    nm_status f64 = nm_cov_full(ctx, N, C, &c);
    nm_cov_free(ctx, c);
    c = NULL;
    printf("  a rank-3 PSD matrix rounded to float32: as double entries %s (%s)\n", nm_status_str(f64), nm_ctx_message(ctx));
    expect("as float32 entries", nm_cov_full_dtype(ctx, N, C, NM_F32, &c), NM_OK);
    nm_cov_free(ctx, c);
    for (int i = 0; i < N; i++) C[i * N + i] -= 1; /* really indefinite */
    expect("an indefinite one is still refused", nm_cov_full_dtype(ctx, N, C, NM_F32, &c), NM_ERR_NOT_PSD);
    check_true("... saying how negative against the tolerance", strstr(nm_ctx_message(ctx), "below the") != NULL);
    free(C);
}

int main(void)
{
    ctx = nm_ctx_create();
    overflowing_moments();
    float32_passes();
    windows();
    hostile_models();
    hostile_idx();
    atomic_files();
    float32_covariance();
    nm_ctx_free(ctx);
    return check_finish("test_reliability");
}
