/*
 * internal.h — what the library's source files share and users never see:
 * the context layout, error reporting, checked allocation, and the one
 * wrapper through which every matrix product goes (STYLE item 6).
 */
#ifndef NM_INTERNAL_H
#define NM_INTERNAL_H

#include "netmoments.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct nm_ctx {
    char message[2048];
    long alloc_count; /* allocations made through this context */
    long fail_at;     /* 0, or the alloc_count value whose allocation fails */
    size_t live_bytes, peak_bytes; /* library memory allocated through it, now and at the most */
    size_t mem_limit;              /* the most it may hold (nm_ctx_set_mem_limit) */
    nm_dist dist;                  /* the processes sharing its collective calls; size 0 or 1: this one alone */
};

/* Records a formatted message on ctx and returns status (for `return nm_fail(...)`). */
nm_status nm_fail(nm_ctx *ctx, nm_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checked allocation through the context; on failure they set the message
 * and return NULL. nbytes overflowing size_t counts as a failure. */
void *nm_alloc(nm_ctx *ctx, size_t count, size_t size);      /* uninitialised */
void *nm_alloc_zero(nm_ctx *ctx, size_t count, size_t size); /* zeroed */

/* A float copy of a (F32 or F64); NM_ERR_NONFINITE names `what` and the
 * index of the first NaN/Inf. Free with nm_free. */
nm_status nm_array_to_f32(nm_ctx *ctx, const nm_array *a, const char *what, float **out);

/* snprintf and strtod in the "C" numeric locale, whatever the program's:
 * for numbers written into files and read back. nm_format_c returns
 * vsnprintf's count (−1 when no locale can be made); nm_parse_doubles_c
 * reads count numbers separated by white space, 1 when all were read. */
int nm_format_c(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int nm_parse_doubles_c(const char *s, int count, double *out);

/* n bytes as "1.5 GiB" into buf. */
const char *nm_human_bytes(size_t n, char *buf, size_t len);

/* Checked integer arithmetic for every size computed from file contents:
 * 1 with *r = a op b when it fits in int64_t, 0 (and *r unspecified) when
 * it would overflow. */
static inline int nm_add_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_add_overflow(a, b, r); }
static inline int nm_sub_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_sub_overflow(a, b, r); }
static inline int nm_mul_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_mul_overflow(a, b, r); }

/* true iff every entry is finite. */
bool nm_all_finite_f64(const double *x, int64_t n);
bool nm_all_finite_f32(const float *x, int64_t n);

/* ---- matrix products (src/blas.c) ----
 * Row-major throughout; op(X) is X or Xᵀ. Leading dimensions are the row
 * strides of the matrices as stored. */
typedef enum { NM_NOTRANS = 0, NM_TRANS = 1 } nm_trans;

/* C (m×n) = alpha op(A) (m×k) · op(B) (k×n) + beta C */
void nm_gemm_f64(nm_trans ta, nm_trans tb, int64_t m, int64_t n, int64_t k, double alpha,
                 const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                 double *C, int64_t ldc);
void nm_gemm_f32(nm_trans ta, nm_trans tb, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                 float *C, int64_t ldc);
/* Lower triangle of C (n×n) = alpha A Aᵀ + beta C, A n×k. */
void nm_syrk_f64(int64_t n, int64_t k, double alpha, const double *A, int64_t lda,
                 double beta, double *C, int64_t ldc);
void nm_syrk_f32(int64_t n, int64_t k, float alpha, const float *A, int64_t lda,
                 float beta, float *C, int64_t ldc);
/* Lower triangle of C (n×n) = alpha Aᵀ A + beta C, A k×n. */
void nm_syrk_t_f64(int64_t n, int64_t k, double alpha, const double *A, int64_t lda,
                   double beta, double *C, int64_t ldc);
/* C (m×n) = alpha B (m×k) · S (k×k symmetric, lower triangle read) + beta C */
void nm_symm_right_f64(int64_t m, int64_t k, double alpha, const double *S, int64_t lds,
                       const double *B, int64_t ldb, double beta, double *C, int64_t ldc);
void nm_symm_right_f32(int64_t m, int64_t k, float alpha, const float *S, int64_t lds,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* Make BLAS single-threaded while OpenMP threads each run their own
 * products, and hand its threads back after. Sections may overlap and
 * nest, from any thread: BLAS is serial while any is open, and its thread
 * count is restored when the last one closes. */
void nm_blas_serial_begin(void);
void nm_blas_serial_end(void);

/* Naive reference of nm_gemm_f64, kept for tests. */
void nm_gemm_f64_naive(nm_trans ta, nm_trans tb, int64_t m, int64_t n, int64_t k, double alpha,
                       const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                       double *C, int64_t ldc);

/* ---- the input covariance as an operator (src/covariance.c) ----
 * Σ = L Lᵀ with L n×k (k = nm_cov_rank); nothing else of nm_cov is seen
 * outside covariance.c.
 *   nm_cov_add_factor_f32: X (rows×n) += E (rows×k) Lᵀ, in float: rows of E
 *     are the ε of Monte Carlo draws (x = μ + L ε), or unit vectors for the
 *     columns of L.
 *   nm_cov_times_factor: AL (p×k) = A (p×n) · L, in double. */
int64_t nm_cov_rank(const nm_cov *cov);
void nm_cov_add_factor_f32(const nm_cov *cov, int64_t rows, const float *E, float *X);
void nm_cov_times_factor(const nm_cov *cov, int64_t p, const double *A, double *AL);
/* For method propagate: a selection (isotropic, diagonal, window) writes its variances into var (n, zero
 * off the selection) and returns NULL; a dense Σ returns its factor L (n × k, double, borrowed). */
const double *nm_cov_split(const nm_cov *cov, double *var);

/* ---- streaming Monte Carlo statistics (src/montecarlo.c) ----
 * Batches of rows × d outputs are merged in arrival order (Pébay), so the
 * result depends on the batches, never on threads. */
typedef struct nm_mc_accum nm_mc_accum;
nm_status nm_mc_accum_new(nm_ctx *ctx, int64_t d, int want_cov, int64_t max_rows, nm_mc_accum **out);
void nm_mc_accum_add(nm_mc_accum *a, const float *Y, int64_t rows);
nm_status nm_mc_accum_result(nm_ctx *ctx, const nm_mc_accum *a, nm_mc_result *out);
void nm_mc_accum_free(nm_ctx *ctx, nm_mc_accum *a);

/* ---- files written whole or not at all (src/io/atomic.c) ----
 * nm_afile_open creates "<path>.tmp-<pid>-<n>" (a->f to write into);
 * nm_afile_commit flushes it to disk and renames it over path (replacing a
 * symlink there, not its target); nm_afile_abort removes it. Either ends it. */
typedef struct {
    FILE *f;
    const char *path;
    char tmp[4200];
} nm_afile;
nm_status nm_afile_open(nm_ctx *ctx, const char *path, nm_afile *a);
nm_status nm_afile_commit(nm_ctx *ctx, nm_afile *a);
void nm_afile_abort(nm_afile *a);

/* ---- ONNX protobuf (src/io/onnx_pb.c) ---- */
struct Onnx__TensorProto;
struct Onnx__ModelProto;

/* Reads a whole file of at most max_bytes into a buffer owned by the caller. */
nm_status nm_read_file(nm_ctx *ctx, const char *path, size_t max_bytes, uint8_t **buf, size_t *len);

/* A TensorProto's FLOAT/DOUBLE data as an owned nm_array of the same dtype;
 * `what` names the tensor in messages. */
nm_status nm_onnx_tensor_to_array(nm_ctx *ctx, const struct Onnx__TensorProto *t, const char *what,
                                  nm_array *out);

/* Parses an ONNX model file; free with nm_onnx_model_free. */
nm_status nm_onnx_model_read(nm_ctx *ctx, const char *path, struct Onnx__ModelProto **out);
/* The same from bytes in memory. */
nm_status nm_onnx_model_parse(nm_ctx *ctx, const uint8_t *buf, size_t len, struct Onnx__ModelProto **out);
void nm_onnx_model_free(nm_ctx *ctx, struct Onnx__ModelProto *m);


/* ---- the ARA network in double, validated (src/ara.c) ---- */
typedef struct {
    int64_t n, p, d;
    double *A, *c1, *B, *c2, *mu; /* p×n, p, d×p, d, n */
    double *m;                    /* A μ + c1 (p) */
} nm_ara_data;

/* Checks shapes and finiteness, converts to double and computes m. */
nm_status nm_ara_load(nm_ctx *ctx, const nm_ara *net, const nm_array *mu, const nm_cov *sigma,
                      nm_ara_data *out);
void nm_ara_data_free(nm_ctx *ctx, nm_ara_data *a);

/* The activation at the split as hinges (DESIGN §1.6 with ReLU's kin): unit u
 * maps z to f_u(z) = Σ_k w_k g_u relu(z − t_k) + α_u z + β. ReLU is one
 * hinge (plain: the fast path); LeakyReLU and PReLU one with g_u = 1 − α_u;
 * Clip(lo, hi) two, lo + relu(z − lo) − relu(z − hi); HardSigmoid two. */
typedef struct {
    int plain;           /* f = relu: the other fields are unused */
    int nh;              /* hinges, 1 or 2 */
    double w[2], t[2], beta;
    double *g, *alpha;   /* per unit (p), or NULL: g_u = 1, α_u = 0 */
} nm_act;

/* f_u(z) of one unit (for the linearization point y₀ = f(R_bot(x₀))). */
double nm_act_apply(const nm_act *act, int64_t u, double z);

/* Exact moments of f_u(z) for one unit, z ~ N(m, v): mean, variance and E[f_u'(z)] (the Stein weight:
 * Cov[f_u(z), y] = E[f_u'(z)] Cov[z, y] for any y jointly Gaussian with z). */
void nm_act_unit(const nm_act *act, int64_t u, double m, double v, double *mean, double *var, double *slope);

/* The covariance of f(z), z ~ N(m, S) (p×p, lower triangle read), into C
 * (may be S), by the method's rules for each pair of hinges and Stein's
 * lemma for the linear part; plain acts are nm_relu_cov_matrix. */
nm_status nm_act_cov_matrix(nm_ctx *ctx, int64_t p, const double *m, const double *S, nm_method method, const nm_act *act, double *C);

/* The moments from z = A x + c1 ~ N(m, S): S (p×p, both triangles or the
 * lower one) is overwritten by the covariance of f(z) (act NULL: ReLU);
 * B (d×p) and c2 (d) in double. Shared by the ARA and the network paths. */
nm_status nm_ara_moments_from_S(nm_ctx *ctx, int64_t p, int64_t d, const double *m, double *S, const double *B,
                                const double *c2, const nm_ara_options *opt, const nm_act *act, nm_moments *out);

/* A·L (p×k) and S = (A L)(A L)ᵀ (p×p, lower triangle, double; the SYRK in
 * the chosen precision) for A p×n in double; newly allocated. */
nm_status nm_ara_form_AL(nm_ctx *ctx, int64_t p, const double *A, const nm_cov *sigma, double **AL);
nm_status nm_ara_form_S(nm_ctx *ctx, int64_t p, const double *A, const nm_cov *sigma, nm_precision prec, double **S);
/* NM_ERR_NONFINITE, with the reason, when S (p×p) has overflowed. */
nm_status nm_ara_check_S(nm_ctx *ctx, int64_t p, const double *S, nm_precision prec);

/* ---------------------------------------------------------------- processes (src/dist.c) */

/* This process's rank and the count of processes on ctx (0 and 1 without a distribution). */
int nm_dist_rank(const nm_ctx *ctx);
int nm_dist_size(const nm_ctx *ctx);
/* Collective: every process's status st and `bytes` at mine into all (size
 * × bytes, rank order; may be NULL when bytes is 0). Returns NM_OK when every
 * process's st was; else this process's failure, or the first failed
 * process's status with its message. */
nm_status nm_dist_exchange(nm_ctx *ctx, nm_status st, const void *mine, size_t bytes, void *all);
/* One of an item's results: `bytes` at base + item × bytes (base NULL: none). */
typedef struct {
    void *base;
    size_t bytes;
} nm_dist_slab;
/* How many of items 0..count−1 this process computes: rank, rank + size, ... */
int64_t nm_dist_items(const nm_ctx *ctx, int64_t count);
/* The j-th of them. */
int64_t nm_dist_item(const nm_ctx *ctx, int64_t j);
/* Collective: once each process has computed its items (status st), every
 * slab of every item from the process that computed it. */
nm_status nm_dist_gather_items(nm_ctx *ctx, nm_status st, int64_t count, const nm_dist_slab *slab, int nslab);

#endif
