/*
 * common.c — shared CLI helpers: the one-line error convention, number
 * parsing, timing, and covariance loading from the command line.
 */
#include "common.h"
#include "ranks.h"

#include <errno.h>
#include <getopt.h>
#include <float.h>
#include <omp.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("netmoments: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_fail(nm_ctx *ctx, nm_status st, const char *what)
{
    const char *msg = nm_ctx_message(ctx);
    int budget = st == NM_ERR_NOMEM && strstr(msg, "memory budget");
    return cli_error("%s: %s%s%s%s", what, nm_status_str(st), *msg ? ": " : "", msg,
                     budget ? " (--mem GIB or NETMOMENTS_MEM sets the budget)" : "");
}

const char *cli_optname = "";

int cli_getopt(int argc, char **argv, const struct option *opts)
{
    int li = -1, before = optind, c = getopt_long(argc, argv, "h", opts, &li);
    if (c == -1) return c;
    cli_optname = argv[before < argc ? before : argc - 1]; /* the option's own text (its argument may follow) */
    if (li < 0) return c;
    size_t len = strcspn(cli_optname + 2, "=");
    if (strncmp(cli_optname, "--", 2) != 0 || len != strlen(opts[li].name) || strncmp(cli_optname + 2, opts[li].name, len) != 0)
        return '?'; /* an abbreviation: only full names are taken */
    return c;
}

static size_t mem_bytes; /* --mem, or 0 */

int cli_set_mem(const char *arg)
{
    double g;
    if (!cli_parse_double(arg, &g) || !(g > 0)) return cli_error("--mem: '%s' is not a positive number of GiB", arg);
    if (g > 1048576) return cli_error("--mem: %s GiB is more than 1 PiB", arg);
    mem_bytes = (size_t)(g * (double)((size_t)1 << 30));
    if (mem_bytes < 1) mem_bytes = 1;
    return 0;
}

size_t cli_mem_bytes(void)
{
    if (mem_bytes) return mem_bytes;
    const char *env = getenv("NETMOMENTS_MEM");
    double g;
    if (env && cli_parse_double(env, &g) && g > 0 && g <= 1048576) return (size_t)(g * (double)((size_t)1 << 30));
    return 0;
}

nm_ctx *cli_ctx_create(void)
{
    nm_ctx *ctx = nm_ctx_create();
    if (!ctx) {
        cli_error("out of memory");
        return NULL;
    }
    nm_ctx_set_mem_limit(ctx, cli_mem_bytes());
    nm_ctx_set_dist(ctx, cli_ranks_dist()); /* under mpirun: the work shared by the ranks */
    return ctx;
}

double cli_seconds(double s)
{
    const char *env = getenv("NETMOMENTS_TIMES");
    return env && !strcmp(env, "0") ? 0 : s;
}

double cli_elapsed(double t0)
{
    return cli_seconds(cli_now() - t0);
}

int cli_show_progress(void)
{
    const char *env = getenv("NETMOMENTS_PROGRESS");
    if (env) return cli_rank() == 0 && strcmp(env, "0") != 0;
    return cli_rank() == 0 && isatty(2);
}

double cli_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int cli_threads(void)
{
    return omp_get_max_threads();
}

int cli_parse_int(const char *s, long long *out)
{
    char *end;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && end != s && *end == 0;
}

int cli_parse_range(const char *s, long long lo, long long hi, long long *out)
{
    return cli_parse_int(s, out) && *out >= lo && *out <= hi;
}

int cli_parse_seed(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    while (*s == ' ') s++;
    if (*s == '-' || *s == '+') return 0; /* strtoull would wrap a sign */
    unsigned long long v = strtoull(s, &end, 10);
    *out = v;
    return errno == 0 && end != s && *end == 0;
}

int cli_parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return errno == 0 && end != s && *end == 0 && isfinite(*out);
}

int cli_load_cov(nm_ctx *ctx, int64_t n, double sigma2, const char *var_path,
                 const char *cov_path, nm_cov **out)
{
    const char *path = var_path ? var_path : cov_path;
    nm_array a = {0};
    double *v = NULL;
    nm_status st = NM_OK;
    int rc = 0;
    if (path) {
        st = nm_npy_read(ctx, path, &a);
        if (st == NM_OK) st = nm_array_to_f64(ctx, &a, &v);
        if (st != NM_OK) {
            rc = cli_fail(ctx, st, path);
        } else if (var_path && nm_array_numel(&a) != n) {
            rc = cli_error("%s has %lld entries but the input has %lld", path,
                           (long long)nm_array_numel(&a), (long long)n);
        } else if (cov_path && (a.ndim != 2 || a.shape[0] != n || a.shape[1] != n)) {
            rc = cli_error("%s must be a %lld x %lld matrix", path, (long long)n, (long long)n);
        } else {
            st = var_path ? nm_cov_diagonal(ctx, n, v, out) : nm_cov_full_dtype(ctx, n, v, a.dtype, out);
            if (st != NM_OK) rc = cli_fail(ctx, st, path);
        }
    } else {
        st = nm_cov_isotropic(ctx, n, sigma2, out);
        if (st != NM_OK) rc = cli_fail(ctx, st, "--sigma2");
    }
    nm_free(ctx, v);
    nm_array_free(ctx, &a);
    return rc;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* $NETMOMENTS_DATA, else data/ where data/mnist exists, else the source tree's data/. */
static const char *data_root(void)
{
    const char *env = getenv("NETMOMENTS_DATA");
    if (env && *env) return env;
    if (is_dir("data/mnist") || !is_dir(NM_SOURCE_DIR "/data/mnist")) return "data";
    return NM_SOURCE_DIR "/data";
}

int cli_load_dataset(nm_ctx *ctx, const char *name, const char *split, nm_dataset *out)
{
    char img[1024], lbl[1024];
    int train = !strcmp(split, "train");
    if (!train && strcmp(split, "test")) return cli_error("--split: '%s' is neither train nor test", split);
    if (!strcmp(name, "mnist")) {
        const char *root = data_root();
        snprintf(img, sizeof img, "%s/mnist/%s-images-idx3-ubyte.gz", root, split);
        snprintf(lbl, sizeof lbl, "%s/mnist/%s-labels-idx1-ubyte.gz", root, split);
    } else if (!strcmp(name, "fashion-mnist")) {
        const char *root = "/usr/share/datasets/fashion-mnist", *pre = train ? "train" : "t10k";
        snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", root, pre);
        snprintf(lbl, sizeof lbl, "%s/%s-labels-idx1-ubyte.gz", root, pre);
    } else {
        return cli_error("--data: '%s' is neither mnist nor fashion-mnist", name);
    }
    nm_status st = nm_dataset_read_idx(ctx, img, lbl, out);
    if (st == NM_ERR_IO)
        return cli_error("%s: %s (run scripts/setup.sh, which fetches the data)", nm_status_str(st), nm_ctx_message(ctx));
    return st == NM_OK ? 0 : cli_fail(ctx, st, name);
}

int cli_make_dir(const char *dir, const char *opt)
{
    char path[4096];
    struct stat st;
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return cli_error("%s: path too long", opt);
    for (char *p = path + 1; ; p++) { /* each parent, then the whole */
        int end = !*p;
        if (*p == '/' || end) {
            *p = 0;
            if (mkdir(path, 0777) != 0 && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)))
                return cli_error("%s: cannot create directory %s", opt, path);
            if (end) return 0;
            *p = '/';
        }
    }
}

const char *cli_method_names(const char *sep)
{
    static char buf[512];
    size_t o = 0;
    buf[0] = 0;
    for (int m = 0; m < nm_method_count() && o < sizeof buf; m++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", m ? sep : "", nm_method_str(m));
    return buf;
}

int cli_parse_method(const char *arg, nm_method *m, int *all)
{
    if (all && !strcmp(arg, "all")) {
        *all = 1;
        return 0;
    }
    nm_method k = nm_method_from_str(arg);
    if (k < 0) return cli_error("--method: '%s' is not one of %s%s", arg, cli_method_names(", "), all ? ", all" : "");
    *m = k;
    if (all) *all = 0;
    return 0;
}

cli_progress cli_progress_make(const char *label, const char *unit)
{
    return (cli_progress){label, unit, cli_show_progress()};
}

void cli_progress_print(void *user, int64_t done, int64_t total)
{
    const cli_progress *p = user;
    if (!p->tty) return;
    fprintf(stderr, "\r%s: %lld / %lld %s%s", p->label, (long long)done, (long long)total, p->unit, cli_ranks() > 1 ? " (rank 0's share)" : "");
    if (done == total) fprintf(stderr, "\n");
}

void cli_print_methods(FILE *f)
{
    fprintf(f, "methods:\n");
    for (int m = 0; m < nm_method_count(); m++) fprintf(f, "  %-8s %s\n", nm_method_str(m), nm_method_summary(m));
}

int cli_check_f32(const nm_array *a, const char *opt, const char *path)
{
    int64_t n = nm_array_numel(a);
    for (int64_t i = 0; i < n; i++) {
        double v = a->dtype == NM_F64 ? ((const double *)a->data)[i] : ((const float *)a->data)[i];
        if (!isfinite(v)) return cli_error("%s: %s: value %g at flat index %lld is not finite", opt, path, v, (long long)i);
        if (fabs(v) > FLT_MAX)
            return cli_error("%s: %s: value %g at flat index %lld is beyond float32's range (3.4e38), in which the network runs", opt,
                             path, v, (long long)i);
    }
    return 0;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

const char *cli_default_model(void)
{
    static char path[4096];
    static const char rel[] = "models/lenet-mnist.onnx";
    const char *env = getenv("NETMOMENTS_MODEL");
    if (env && *env) return env;
    if (is_file(rel)) return rel;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        char found[4096];
        if (snprintf(found, sizeof found, "%s/%s/lenet-mnist.onnx", exe, NM_BIN_TO_DATA) < (int)sizeof found && is_file(found))
            return realpath(found, path) ? path : strcpy(path, found);
    }
    if (snprintf(path, sizeof path, "%s/%s", NM_SOURCE_DIR, rel) < (int)sizeof path && is_file(path)) return path;
    return rel;
}

void cli_shape_text(int ndim, const int64_t *d, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && o < len; i++) o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (o < len) snprintf(buf + o, len - o, ")");
}
