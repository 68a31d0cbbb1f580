/*
 * common.h — what the CLI's subcommands share: failing with a one-line
 * reason, loading NPY arrays and covariances, timing.
 */
#ifndef NM_CLI_COMMON_H
#define NM_CLI_COMMON_H

#include "netmoments.h"

#include <stdio.h>

/* --mem GIB, which every command takes: the memory budget of the contexts
 * it makes (nm_ctx_set_mem_limit). Without it, NETMOMENTS_MEM (GiB) when
 * set, else the library's default. */
#define CLI_OPT_MEM 3000
#define CLI_MEM_OPTION {"mem", required_argument, 0, CLI_OPT_MEM}
/* Parses --mem's value; 0, or 1 after printing why. */
int cli_set_mem(const char *arg);
/* The budget in bytes (0: the library's default). */
size_t cli_mem_bytes(void);
/* A context with that budget; NULL (after printing) when it cannot be made. */
nm_ctx *cli_ctx_create(void);

/* getopt_long over opts with "h" as the one short option, but only full
 * option names: an abbreviation (--sigma for --sigma2) is returned as '?'. */
struct option;
int cli_getopt(int argc, char **argv, const struct option *opts);
/* The text of the option cli_getopt last read (for the one-line error of a bad one). */
extern const char *cli_optname;

/* Prints "netmoments: <msg>" on stderr; returns 1 (the exit status). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, with the context's message appended for status st. */
int cli_fail(nm_ctx *ctx, nm_status st, const char *what);

double cli_now(void);
/* A wall time as written into results: s, or 0 when NETMOMENTS_TIMES=0
 * (so that two runs' files can be compared byte for byte); cli_elapsed(t0)
 * is that of cli_now() − t0. */
double cli_seconds(double s);
double cli_elapsed(double t0);
/* OpenMP threads the library will use. */
int cli_threads(void);
int cli_parse_int(const char *s, long long *out);
/* A decimal integer in [lo, hi] (range-checked into the type it is used as); 1, or 0 when it is not one. */
int cli_parse_range(const char *s, long long lo, long long hi, long long *out);
/* A seed: any decimal integer 0 .. 2^64 − 1. */
int cli_parse_seed(const char *s, uint64_t *out);
int cli_parse_double(const char *s, double *out);

/* Builds the covariance from a variance file, a covariance file, or else
 * sigma2. Returns 0, or 1 after printing the reason. */
int cli_load_cov(nm_ctx *ctx, int64_t n, double sigma2, const char *var_path,
                 const char *cov_path, nm_cov **out);

/* Loads data set `name` (mnist | fashion-mnist), split `split` (train |
 * test): MNIST from data/mnist (fetched by scripts/setup.sh; the directory
 * $NETMOMENTS_DATA replaces data/; where ./data/mnist is absent, the source
 * tree's data/ is used), Fashion-MNIST from Debian's
 * /usr/share/datasets/fashion-mnist. Returns 0, or 1 after printing why. */
int cli_load_dataset(nm_ctx *ctx, const char *name, const char *split, nm_dataset *out);

/* The network runs in float32: 0 when every value of a fits, else 1 after
 * printing "<opt>: <path>: value v at flat index i is beyond float32's range". */
int cli_check_f32(const nm_array *a, const char *opt, const char *path);

/* --method: one method by name, or "all" (*all set; only where all is
 * not NULL). Returns 0, or 1 after printing the names it accepts. */
int cli_parse_method(const char *arg, nm_method *m, int *all);
/* "methods:" and a line per method (name and summary), for --help. */
void cli_print_methods(FILE *f);
/* The method names as "paper|exact|delta" (static storage). */
const char *cli_method_names(const char *sep);

/* Whether progress is shown: NETMOMENTS_PROGRESS=1 or 0 when set, else when
 * stderr is a terminal (and this is rank 0 under mpirun). */
int cli_show_progress(void);
/* A progress line on stderr, "\r<label>: done / total <unit>", shown only
 * where cli_show_progress() says; user is a cli_progress. */
typedef struct {
    const char *label, *unit;
    int tty;
} cli_progress;
cli_progress cli_progress_make(const char *label, const char *unit);
void cli_progress_print(void *user, int64_t done, int64_t total);

/* Creates directory dir and any missing parents (mkdir -p). Returns 0, or
 * 1 after printing "<opt>: cannot create directory <dir>". */
int cli_make_dir(const char *dir, const char *opt);

/* "(d0, d1, ...)" into buf. */
void cli_shape_text(int ndim, const int64_t *d, char *buf, size_t len);

/* The model every command uses unless --model says otherwise:
 * $NETMOMENTS_MODEL, else the first of models/lenet-mnist.onnx (the current
 * directory), <bin>/../share/netmoments/lenet-mnist.onnx (installed) and the
 * source tree's models/lenet-mnist.onnx that exists; when none does, the
 * first (so the error names it). Static storage. */
const char *cli_default_model(void);
/* The --model line of a command's --help, naming where the default is looked for. */
#define CLI_MODEL_HELP                                                                              \
    "  --model   ONNX file; default $NETMOMENTS_MODEL, else the first of\n"                          \
    "            ./models/lenet-mnist.onnx, <bin>/../share/netmoments/lenet-mnist.onnx and the\n"    \
    "            source tree's models/lenet-mnist.onnx (`netmoments info` says which is used)\n"

#endif
