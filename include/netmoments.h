/*
 * netmoments.h — the one public header of libnetmoments.
 *
 * netmoments computes, without sampling, the mean and (co)variance of the
 * outputs of piecewise-linear networks under Gaussian input noise
 * (DESIGN.md §1). Every exported symbol starts with nm_, every macro and
 * enum value with NM_. The library never prints and never exits: each
 * fallible call returns an nm_status and leaves a detailed message in the
 * nm_ctx it was given (nm_ctx_message). Arrays are row-major (C order);
 * images are NCHW. Moment mathematics runs in double.
 */
#ifndef NETMOMENTS_H
#define NETMOMENTS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NM_VERSION "0.1.0"

/* Marks what the shared library exports: the library is built with
 * -fvisibility=hidden, so these declarations are its whole interface. */
#if defined(NM_BUILDING) && defined(__GNUC__)
#define NM_API __attribute__((visibility("default")))
#else
#define NM_API
#endif

/* ---------------------------------------------------------------- status */

/* Result codes: 0 is success, failures are negative. */
typedef enum {
    NM_OK = 0,
    NM_ERR_ARG = -1,         /* invalid argument (NULL, negative size, bad option) */
    NM_ERR_SHAPE = -2,       /* array shapes do not agree */
    NM_ERR_NONFINITE = -3,   /* NaN or Inf in an input */
    NM_ERR_NOT_PSD = -4,     /* covariance not symmetric positive semi-definite */
    NM_ERR_NOMEM = -5,       /* an allocation failed */
    NM_ERR_IO = -6,          /* a file could not be opened, read or written */
    NM_ERR_FORMAT = -7,      /* a file is malformed or truncated */
    NM_ERR_UNSUPPORTED = -8, /* well-formed but not supported (dtype, layout, op) */
    NM_ERR_NUMERIC = -9      /* a numerical routine (LAPACK) failed */
} nm_status;
#define NM_STATUS_COUNT 10

/* A static, human-readable name for a status ("invalid argument", ...). */
NM_API const char *nm_status_str(nm_status s);

/* Progress of long work: called with the units done so far and the total
 * (from the calling thread, or under a lock), user as given. */
typedef void (*nm_progress_fn)(void *user, int64_t done, int64_t total);

/* ---------------------------------------------------------------- context */

/* A context carries the last error message and the allocator.
 *
 * Threads: calls on distinct contexts and distinct objects may run at the
 * same time. A context, a net (its passes record state in it) and a result
 * belong to one thread at a time; what a call only reads (nm_cov, input
 * arrays, a net given as const) may be shared. Calls run OpenMP threads
 * inside. OpenBLAS's thread count is process-wide: calls that need it
 * serial (Monte Carlo, experiments, training, batched convolutions) set it
 * to 1 while any of them runs and restore it when the last one ends, under
 * a lock; a program that changes it during such a call races with them. */
typedef struct nm_ctx nm_ctx;

/* Returns NULL only when the context itself cannot be allocated. */
NM_API nm_ctx *nm_ctx_create(void);
NM_API void nm_ctx_free(nm_ctx *ctx);

/* The message of the last failure on ctx ("" if none). Owned by ctx, valid
 * until the next call that fails on ctx. */
NM_API const char *nm_ctx_message(const nm_ctx *ctx);

/* Testing hook: make the n-th allocation from now (1-based) on this context
 * fail and every later one succeed again; n = 0 disables it. Returns the
 * number of allocations made on ctx since it was created. */
NM_API long nm_ctx_fail_alloc_after(nm_ctx *ctx, long n);

/* The memory budget of a context: an allocation that would make what the
 * library holds through ctx exceed it fails with NM_ERR_NOMEM before any
 * memory is touched, with a message giving the sizes. Default (and bytes =
 * 0): an eighth of the machine's physical memory, at least 1 GiB (half the
 * memory of a machine with less than 2 GiB). Loading a model, its passes,
 * the moments, the data sets and the experiments all allocate through it. */
NM_API nm_status nm_ctx_set_mem_limit(nm_ctx *ctx, size_t bytes);
NM_API size_t nm_ctx_mem_limit(const nm_ctx *ctx);

/* Bytes of library memory allocated through ctx at the most since the
 * previous call (or since ctx was made); the next call measures from what
 * is allocated now. Counts what is freed with nm_free (or the library's
 * _free calls) through the same context. */
NM_API size_t nm_ctx_mem_peak(nm_ctx *ctx);

/* ---------------------------------------------------------------- processes */

/* Work shared among cooperating processes (MPI ranks, say; the CLI's
 * mpirun mode sets one up). With a distribution on ctx, the dataset-level
 * entry points become collective: every process calls them in the same
 * order with the same arguments; each computes its share, item i going to
 * the process with i mod size == rank (runs of nm_tightness_run and
 * nm_linpoints_run, images of nm_fooling_run, nm_sensitivity_run and
 * nm_robustness_run, attacks of nm_attack_batch, sample batches of
 * nm_net_montecarlo, batches of the labels behind nm_uap_run's fooling
 * rates); allgather then gives every process all of the results, merged in
 * the same fixed order as in one process, so what they return is identical
 * for any number of processes. A process whose share fails makes the call
 * fail on every process, with its message. Contexts the library makes for
 * its own threads carry none: the split is between processes only. */
typedef struct {
    int rank, size; /* this process, of size ≥ 1 */
    /* Collective: every process's `bytes` at mine into all (size × bytes,
     * in rank order); 0 on success, anything else a failed exchange. */
    int (*allgather)(void *user, const void *mine, void *all, size_t bytes);
    void *user;
} nm_dist;
/* Sets (dist copied) or clears (NULL, or size 1) the distribution of ctx. */
NM_API nm_status nm_ctx_set_dist(nm_ctx *ctx, const nm_dist *dist);

/* ---------------------------------------------------------------- arrays */

typedef enum { NM_F32 = 1, NM_F64 = 2 } nm_dtype;
#define NM_MAX_DIMS 8

/* A dense row-major array. When filled by the library (nm_array_alloc,
 * nm_npy_read) it owns data and is released with nm_array_free; a caller
 * may also fill one by hand as a borrowed view of its own memory. */
typedef struct {
    nm_dtype dtype;
    int ndim;
    int64_t shape[NM_MAX_DIMS];
    void *data;
} nm_array;

/* Number of elements (product of shape; 1 for ndim = 0). */
NM_API int64_t nm_array_numel(const nm_array *a);

/* Allocates a zero-filled array. On failure *out is left empty. */
NM_API nm_status nm_array_alloc(nm_ctx *ctx, nm_array *out, nm_dtype dtype, int ndim,
                         const int64_t *shape);

/* Frees data allocated by the library and empties *a. Safe on an empty array. */
NM_API void nm_array_free(nm_ctx *ctx, nm_array *a);

/* Copies a (F32 or F64) into a newly allocated double buffer *out (numel
 * entries, free with nm_free). Fails with NM_ERR_NONFINITE on NaN/Inf. */
NM_API nm_status nm_array_to_f64(nm_ctx *ctx, const nm_array *a, double **out);

/* Frees memory the library returned as a plain pointer. */
NM_API void nm_free(nm_ctx *ctx, void *p);

/* ---------------------------------------------------------------- NPY files */

/* Reads a NumPy .npy file (format 1.0, 2.0 or 3.0; little-endian float32 or
 * float64; C order). Anything else fails with a message naming the file and
 * the reason. On success *out owns its data. */
NM_API nm_status nm_npy_read(nm_ctx *ctx, const char *path, nm_array *out);

/* Writes a as a .npy file (format 1.0, or 2.0 when the header needs it). */
NM_API nm_status nm_npy_write(nm_ctx *ctx, const char *path, const nm_array *a);

/* ---------------------------------------------------------------- ONNX tensors */

/* Reads an ONNX TensorProto file (.pb, as in the ONNX conformance data):
 * FLOAT or DOUBLE, from raw_data or the typed field. Other element types,
 * external data, and sizes that disagree with the data fail with a status
 * and a message; nothing is allocated before the sizes are checked. */
NM_API nm_status nm_onnx_tensor_read(nm_ctx *ctx, const char *path, nm_array *out);

/* ---------------------------------------------------------------- Gaussian kernels (DESIGN §1.1–1.5) */

/* Standard normal pdf φ and cdf Φ (Φ through erfc, accurate in both tails). */
NM_API double nm_normal_pdf(double x);
NM_API double nm_normal_cdf(double x);

/* Bivariate standard normal cdf Φ₂(h, k; ρ) = P(X ≤ h, Y ≤ k), corr(X,Y) = ρ.
 * h, k may be ±∞; ρ in [−1, 1]. Absolute error below 1e-14 (Genz 2004). */
NM_API double nm_bvn_cdf(double h, double k, double rho);

/* One ReLU of z ~ N(m, s²), s ≥ 0 (§1.1): E[relu z], E[relu² z], Var[relu z].
 * s = 0 gives the deterministic limits; large |m/s| neither overflows nor
 * cancels. */
NM_API double nm_relu_mean(double m, double s);
NM_API double nm_relu_m2(double m, double s);
NM_API double nm_relu_var(double m, double s);

/* Pair of ReLUs of (z_u, z_v) Gaussian with means m_u, m_v, standard
 * deviations s_u, s_v ≥ 0 and correlation ρ ∈ [−1, 1]:
 *   nm_relu_pair_m0   E[relu z_u relu z_v] when m_u = m_v = 0 (§1.3)
 *   nm_relu_pair      E[relu z_u relu z_v] for any means (§1.5)
 *   nm_relu_pair_cov  Cov[relu z_u, relu z_v] for any means, computed
 *                     without cancellation (accurate relative to s_u s_v). */
NM_API double nm_relu_pair_m0(double s_u, double s_v, double rho);
NM_API double nm_relu_pair(double m_u, double m_v, double s_u, double s_v, double rho);
NM_API double nm_relu_pair_cov(double m_u, double m_v, double s_u, double s_v, double rho);

/* The standard normal quantile Φ⁻¹(p) (−∞ at 0, ∞ at 1, NaN outside [0, 1]);
 * relative error near double precision in both tails. */
NM_API double nm_normal_quantile(double p);

/* ---------------------------------------------------------------- orthant and flip probabilities (§1.10) */

/* Genz's method (1992) for multivariate normal probabilities: the
 * variables ordered as Genz and Bretz do, separated through the Cholesky
 * factor, the unit-cube integral by a randomised lattice rule (Richtmyer
 * generators, baker's transform, antithetic points); the standard error over
 * the random shifts is the error estimate. Points double from min_points
 * until that error is at most abs_tol or max_points is reached. */
typedef struct {
    double abs_tol;     /* target standard error (default 1e-4) */
    int64_t min_points; /* lattice points per shift to start with (default 64) */
    int64_t max_points; /* at most (default 32,768) */
    int shifts;         /* random shifts, ≥ 2 (default 12) */
    uint64_t seed;      /* the shifts (default 1) */
} nm_mvn_options;
NM_API nm_mvn_options nm_mvn_options_default(void);

/* P(w > 0 in every component) for w ~ N(mean, cov), dimension q ≥ 0 (1 for
 * q = 0): cov q×q symmetric PSD (lower triangle read; singular allowed).
 * *se (may be NULL) receives the error estimate; q = 1 is exact (Φ).
 * opt NULL: defaults. NaN/Inf: NM_ERR_NONFINITE; a negative variance or a
 * correlation beyond ±1: NM_ERR_NOT_PSD. */
NM_API nm_status nm_mvn_orthant(nm_ctx *ctx, int64_t q, const double *mean, const double *cov, const nm_mvn_options *opt,
                                double *p, double *se);

/* The flip probability of §1.10: P(argmax y ≠ c) for logits y ~ N(mean,
 * cov) (d, d×d with both triangles), 1 − the (d−1)-dimensional orthant
 * probability of (y_c − y_j)_{j≠c}. */
NM_API nm_status nm_flip_probability(nm_ctx *ctx, int64_t d, const double *mean, const double *cov, int64_t c,
                                     const nm_mvn_options *opt, double *p, double *se);

/* ---------------------------------------------------------------- input covariances */

/* An input covariance Σ (n×n) in one of several forms. Immutable once made. */
typedef struct nm_cov nm_cov;

typedef enum {
    NM_COV_ISOTROPIC = 0, /* σ² I */
    NM_COV_DIAGONAL = 1,  /* diag(v) */
    NM_COV_FULL = 2,      /* a dense symmetric PSD matrix */
    NM_COV_FACTOR = 3,    /* L Lᵀ with L n×k */
    NM_COV_WINDOW = 4     /* σ² I on a window of an image, 0 elsewhere */
} nm_cov_kind;

/* Each constructor copies what it is given. sigma2 and v must be finite
 * (NM_ERR_NONFINITE) and ≥ 0 (NM_ERR_NOT_PSD). nm_cov_full checks symmetry (relative 1e-10) and positive
 * semi-definiteness (smallest eigenvalue ≥ −1e-10 · largest) and fails with
 * NM_ERR_NOT_PSD otherwise; it factors C once (eigendecomposition). */
NM_API nm_status nm_cov_isotropic(nm_ctx *ctx, int64_t n, double sigma2, nm_cov **out);
NM_API nm_status nm_cov_diagonal(nm_ctx *ctx, int64_t n, const double *v, nm_cov **out);
NM_API nm_status nm_cov_full(nm_ctx *ctx, int64_t n, const double *C, nm_cov **out);
/* nm_cov_full for entries that came from a float32 source (source =
 * NM_F32): the symmetry and PSD tolerances grow to what rounding to
 * float32 can cause (n·2^−24 of the largest eigenvalue). */
NM_API nm_status nm_cov_full_dtype(nm_ctx *ctx, int64_t n, const double *C, nm_dtype source, nm_cov **out);
NM_API nm_status nm_cov_factor(nm_ctx *ctx, int64_t n, int64_t k, const double *L, nm_cov **out);
/* Windowed noise: σ² I on the pixels of the rectangle rows r..r+h−1,
 * columns c..c+w−1 of a (C, H, W) input, all channels, and none elsewhere
 * (the 7×7 windows of the paper's Fig 3). It holds only the window's
 * C·h·w pixels, so its cost grows with the window, not the image. */
NM_API nm_status nm_cov_window(nm_ctx *ctx, int64_t C, int64_t H, int64_t W, int64_t r, int64_t c, int64_t h, int64_t w,
                        double sigma2, nm_cov **out);
NM_API void nm_cov_free(nm_ctx *ctx, nm_cov *cov);

NM_API nm_cov_kind nm_cov_get_kind(const nm_cov *cov);
NM_API int64_t nm_cov_dim(const nm_cov *cov);

/* ---------------------------------------------------------------- Affine–ReLU–Affine moments (§1.2–1.5) */

/* Moment methods. A method is an index into the library's method table,
 * found by name with nm_method_from_str; the three fixed ones are: */
typedef int nm_method;
#define NM_METHOD_PAPER 0 /* §1.4: zero-mean pair formula (paper's Theorem 2) */
#define NM_METHOD_EXACT 1 /* §1.5: exact for any μ, Σ, c1 */
#define NM_METHOD_DELTA 2 /* §1.7: linearize at μ (mean g(μ), cov J Σ Jᵀ) */
#define NM_METHOD_PROPAGATE 3 /* §1.12: the Gaussian carried through every layer (no linearization) */
#define NM_METHOD_MAX 16  /* room for every method, for arrays indexed by method */
/* How many methods there are (0 .. nm_method_count() − 1). */
NM_API int nm_method_count(void);
/* The method's name ("exact"; "unknown" for an invalid index) and a one-line summary for help texts. */
NM_API const char *nm_method_str(nm_method m);
NM_API const char *nm_method_summary(nm_method m);
/* The method of that name, or −1. */
NM_API nm_method nm_method_from_str(const char *name);

/* Precision of the BLAS-bound products (S = AΣAᵀ and B C Bᵀ). The moment
 * kernels always run in double. */
typedef enum { NM_PREC_DOUBLE = 0, NM_PREC_SINGLE = 1 } nm_precision;

/* The network g(x) = B relu(A x + c1) + c2; all arrays borrowed.
 * A: p×n, c1: p, B: d×p, c2: d (F32 or F64). */
typedef struct {
    const nm_array *A, *c1, *B, *c2;
} nm_ara;

typedef struct {
    nm_method method;
    nm_precision precision;
    int want_cov;   /* non-zero: also fill the d×d output covariance */
    int mean_only;  /* non-zero: only the mean (var and cov stay NULL): the pair kernel is skipped */
} nm_ara_options;

/* Defaults: method exact, double precision, variances only. */
NM_API nm_ara_options nm_ara_options_default(void);

/* Output moments, owned by the library; free with nm_moments_free. */
typedef struct {
    int64_t d;
    double *mean; /* d */
    double *var;  /* d (NULL when only the mean was asked for) */
    double *cov;  /* d×d, or NULL when not requested */
    double rank_moved; /* method propagate with a rank: the largest share of a value's column variance that a
                          compression moved onto its private diagonal, dropping the correlations it carried (else 0) */
} nm_moments;

NM_API void nm_moments_free(nm_ctx *ctx, nm_moments *m);

/* Moments of g(x) for x ~ N(mu, sigma). mu has n entries. Checks shapes
 * (NM_ERR_SHAPE) and finiteness (NM_ERR_NONFINITE). Uses OpenMP threads. */
NM_API nm_status nm_ara_moments(nm_ctx *ctx, const nm_ara *net, const nm_array *mu,
                         const nm_cov *sigma, const nm_ara_options *opt,
                         nm_moments *out);

/* The p×p covariance of relu(z), z ~ N(m, S) (§1.3–1.5), written to C
 * (row-major, both triangles). S is p×p symmetric (only the lower triangle
 * is read); C may equal S (computed in place). method paper uses the
 * zero-mean formula whatever m is. */
NM_API nm_status nm_relu_cov_matrix(nm_ctx *ctx, int64_t p, const double *m, const double *S,
                             nm_method method, double *C);

/* ---------------------------------------------------------------- Monte Carlo */

/* Counter-based random numbers (Philox-4x32-10): the k-th normal of stream
 * `stream` depends only on (seed, stream, k), never on threads or batching. */
typedef struct {
    uint64_t seed;
} nm_rng;

/* Philox-4x32-10 block function: ctr and key in, 4 random words out. */
NM_API void nm_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Fills out[0..count) with standard normals number first..first+count of
 * stream `stream`. */
NM_API void nm_rng_normals(const nm_rng *rng, uint64_t stream, uint64_t first,
                    int64_t count, float *out);

/* Monte Carlo estimate: sample mean, unbiased variance, their standard
 * errors, and optionally the covariance. */
typedef struct {
    int64_t d;
    int64_t samples;
    double *mean;     /* d */
    double *var;      /* d, unbiased */
    double *mean_se;  /* d, standard error of mean */
    double *var_se;   /* d, standard error of var (from the 4th moment) */
    double *cov;      /* d×d or NULL */
} nm_mc_result;

NM_API void nm_mc_result_free(nm_ctx *ctx, nm_mc_result *r);

/* Samples x = mu + L ε (Σ = L Lᵀ) through the ARA network, n_samples times,
 * in batches of 500 through BLAS (float32 passes, double statistics). Fixed
 * chunks of 64 samples (256 when p·k > 2^22) run in parallel on OpenMP
 * threads, each through single-threaded BLAS (OpenBLAS is serial during the
 * call; see "threads" below). Results are identical for any thread count. */
NM_API nm_status nm_ara_montecarlo(nm_ctx *ctx, const nm_ara *net, const nm_array *mu,
                            const nm_cov *sigma, int64_t n_samples, const nm_rng *rng,
                            int want_cov, nm_mc_result *out);

/* ---------------------------------------------------------------- networks (DESIGN §1.6, §3) */

/* A piecewise-linear network: nodes in topological order over float32
 * tensors (row-major, images NCHW), shapes inferred at load, with the
 * workspace of its passes. A net is used by one thread at a time (its
 * passes run on OpenMP threads inside). The ops are those nm_op_supported
 * lists (`netmoments info --ops`), and ONNX Constant nodes; Softmax and
 * LogSoftmax only as the final node. */
typedef struct nm_net nm_net;

/* Loads an ONNX model (opsets 7–17). The graph must have exactly one input
 * that is not an initializer (float32; its first axis is the batch and may
 * be symbolic, read as 1) and one output written by the last node. An
 * unsupported op, attribute or type fails with NM_ERR_UNSUPPORTED and a
 * message naming the node, op and attribute; a malformed file with
 * NM_ERR_FORMAT. Free with nm_net_free. */
NM_API nm_status nm_net_read_onnx(nm_ctx *ctx, const char *path, nm_net **out);
/* The same from a serialized model in memory (borrowed; not kept). */
NM_API nm_status nm_net_read_onnx_memory(nm_ctx *ctx, const void *data, size_t len, nm_net **out);

/* Writes the net as an ONNX model (opset 13, IR 7): constants become
 * initializers, resolved attributes are written explicitly, the batch axis
 * is symbolic ("N") when every node is batched and the loaded batch size is
 * 1, metadata_props are kept. */
NM_API nm_status nm_net_write_onnx(nm_ctx *ctx, const nm_net *net, const char *path);

NM_API void nm_net_free(nm_ctx *ctx, nm_net *net);

/* A deep copy of src (graph, constants, metadata; not its run-time
 * buffers or recorded primal), e.g. one per thread of a loaded net. */
NM_API nm_status nm_net_copy(nm_ctx *ctx, const nm_net *src, nm_net **out);

/* The ONNX op types the loader supports: the i-th (0-based), or NULL
 * past the last. */
NM_API const char *nm_op_supported(int i);

/* One supported op as `netmoments ops` lists it. role says what the op is
 * to the moments: "linear"; "piecewise linear, a split point" (ReLU and its
 * kin: a net may be split there, DESIGN §1.6; elsewhere its kinks are frozen
 * at the linearization point); "piecewise linear, argmax frozen" (max
 * pools); "smooth, linearized by its derivative" (the moments are then an
 * approximation also below the split); "linear in each operand, smooth when
 * both vary" (Mul; Div likewise in its denominator); "folded at load" (constant or shape-only inputs);
 * "final node only" (Softmax: the moments are those of its input). attrs
 * are the ONNX attributes it reads (any other is refused). */
typedef struct {
    const char *name;
    int min_inputs, max_inputs;
    const char *role;
    int nattrs;
    const char *attrs[16];
} nm_op_info;
/* Fills *out for the i-th supported op; 1, or 0 past the last. */
NM_API int nm_op_describe(int i, nm_op_info *out);

/* Built-in architectures (DESIGN §2), input (N, 1, 28, 28):
 *   lenet        the paper's LeNet: conv 32@5×5 pad 2, maxpool 2, ReLU,
 *                conv 64@5×5 pad 2, maxpool 2, ReLU, Linear 3136→1024,
 *                ReLU, Linear 1024→10
 *   lenet-small  Caffe's LeNet (20/50/500), the common benchmark model
 *   mlp          Linear 784→1024, ReLU, Linear 1024→10
 *   alexnet      torchvision's AlexNet layout on (N, 3, 224, 224): 5 conv,
 *                3 Linear, 7 ReLU (for AlexNet-size experiments) */
typedef enum { NM_ARCH_LENET = 0, NM_ARCH_LENET_SMALL = 1, NM_ARCH_MLP = 2, NM_ARCH_ALEXNET = 3 } nm_arch;
#define NM_ARCH_COUNT 4
NM_API const char *nm_arch_str(nm_arch a);

/* A freshly initialized net of the given architecture: weights He-normal
 * from the counter-based RNG with this seed (the first layer's divided by
 * input_std, the standard deviation of the inputs it will see; 1 for
 * standardized inputs), biases zero. */
NM_API nm_status nm_net_create(nm_ctx *ctx, nm_arch arch, uint64_t seed, double input_std, nm_net **out);

/* Shape of the input as loaded (first axis: the batch). */
NM_API void nm_net_input_shape(const nm_net *net, int *ndim, int64_t shape[NM_MAX_DIMS]);
NM_API int nm_net_node_count(const nm_net *net);
/* 1 when every node keeps samples apart along the first axis, so any batch
 * size may be used; 0 when the net runs only at its loaded batch size. */
NM_API int nm_net_batchable(const nm_net *net);
/* 1 when every node up to the logits is piecewise linear (ReLU-like
 * activations, pools, linear ops), so that its linearization is exact
 * inside a linear region; 0 when a smooth op (Sigmoid, Tanh, LRN, ...) or a
 * product of two varying values is there, and the moments are then an
 * approximation inside the bottom part too. */
NM_API int nm_net_piecewise_linear(const nm_net *net);
NM_API int64_t nm_net_param_count(const nm_net *net);

typedef struct {
    const char *name;     /* node name (borrowed from the net) */
    const char *op;       /* ONNX op type */
    const char *output;   /* name of the value it writes */
    int ndim;
    int64_t shape[NM_MAX_DIMS]; /* output shape at the loaded batch size */
    int64_t params;       /* elements of the constants it reads */
    int batched;
    int relu_index;       /* l for the l-th split point (1-based, §1.6), else 0 */
} nm_node_info;

NM_API nm_status nm_net_node_info(nm_ctx *ctx, const nm_net *net, int i, nm_node_info *out);

/* Split points (§1.6): the piecewise-linear activations (ReLU, LeakyReLU,
 * PReLU, Clip, HardSigmoid) up to the logits whose input is the output of
 * the node before them and around which no later node reads an earlier
 * value (a skip connection over a ReLU makes it no split point). Their
 * number, and the node index of the l-th (1-based; −1 when there is none). */
NM_API int nm_net_relu_count(const nm_net *net);
NM_API int nm_net_relu_node(const nm_net *net, int l);
/* The node whose output are the logits: the node before a final Softmax or
 * LogSoftmax, else the last node. */
NM_API int nm_net_logits_node(const nm_net *net);

/* ONNX metadata_props: the value for key (borrowed), or NULL. */
NM_API const char *nm_net_get_meta(const nm_net *net, const char *key);
NM_API nm_status nm_net_set_meta(nm_ctx *ctx, nm_net *net, const char *key, const char *value);

/* Passes over nodes first..last (inclusive; last = −1 means the final
 * node). The range reads the output of node first−1 (the net input when
 * first = 0) and returns that of node last, so the bottom and top parts of
 * §1.6 run separately. Arrays carry the batch on the first axis; results are
 * newly allocated F32 arrays (free with nm_array_free).
 *   nm_net_forward: x → y, and records the primal for jvp/vjp.
 *   nm_net_jvp:     tangents at the range input → J·t at its output, with
 *                   ReLU masks and max-pool argmax frozen at the recorded
 *                   primal (LRN and Softmax by their true derivative).
 *   nm_net_vjp:     cotangents at the range output → Jᵀ·c at its input.
 * jvp/vjp need a forward call whose range covers theirs; with a primal of
 * batch 1 any number of tangents may be passed (batch axis = tangents),
 * otherwise one per primal sample. NaN/Inf inputs fail with
 * NM_ERR_NONFINITE, wrong shapes with NM_ERR_SHAPE. */
NM_API nm_status nm_net_forward(nm_ctx *ctx, nm_net *net, int first, int last, const nm_array *x, nm_array *y);
NM_API nm_status nm_net_jvp(nm_ctx *ctx, nm_net *net, int first, int last, const nm_array *t, nm_array *y);
NM_API nm_status nm_net_vjp(nm_ctx *ctx, nm_net *net, int first, int last, const nm_array *c, nm_array *x);

/* ---------------------------------------------------------------- image data sets (issue 4) */

/* 8-bit images with labels, as in MNIST and Fashion-MNIST. */
typedef struct {
    int64_t n, rows, cols;
    int classes;      /* 1 + the largest label */
    uint8_t *pixels;  /* n · rows · cols, row-major */
    uint8_t *labels;  /* n */
} nm_dataset;

/* Reads an idx3 image file and an idx1 label file (gzipped or plain).
 * Truncated files, files longer than their header says, non-byte element
 * types and counts that disagree fail with NM_ERR_FORMAT. */
NM_API nm_status nm_dataset_read_idx(nm_ctx *ctx, const char *images, const char *labels, nm_dataset *out);
NM_API void nm_dataset_free(nm_ctx *ctx, nm_dataset *ds);

/* A model's input scale: the network sees x = a·p + b for a pixel
 * p = byte / 255 ∈ [0, 1]. The paper's LeNet has a = 255, b = −127.5. */
typedef struct {
    double a, b;
} nm_scale;

/* The scale recorded in the model's metadata_props under
 * "netmoments.input_scale" ("a b"), or a = 1, b = 0 when absent. */
NM_API nm_scale nm_net_get_input_scale(const nm_net *net);
NM_API nm_status nm_net_set_input_scale(nm_ctx *ctx, nm_net *net, nm_scale s);

/* Images index[0..count) (or 0..count when index is NULL) as network inputs
 * (count, 1, rows, cols) in the given scale. */
NM_API nm_status nm_dataset_images(nm_ctx *ctx, const nm_dataset *ds, const int64_t *index, int64_t count, nm_scale scale,
                            float *out);

/* ---------------------------------------------------------------- training and evaluation */

typedef enum { NM_OPT_SGD = 0, NM_OPT_ADAM = 1 } nm_optimizer;

/* Moment regularisers (nm_train_options.reg): the image's noise N(0, reg_sigma2 I) carried through the
 * whole net by the diagonal rules of method propagate (each unit's mean and variance, units taken as
 * independent), with the exact gradient of: AMR, the cross-entropy of the expected logits; VAR, the
 * variance of the true-class margin z_y − z_j (j the clean runner-up). Both added with weight reg_lambda. */
typedef enum { NM_REG_NONE = 0, NM_REG_AMR = 1, NM_REG_VAR = 2 } nm_regularizer;

typedef struct {
    int epoch, epochs;          /* 1-based */
    int64_t step, steps;        /* within the epoch */
    double loss, accuracy;      /* running means over the epoch so far (loss: the clean cross-entropy) */
    double reg_loss;            /* running mean of the regulariser's loss (before λ), 0 without one */
    double lr;
    int epoch_done;
} nm_train_progress;

typedef struct {
    int epochs;
    int64_t batch;
    double lr;
    nm_optimizer opt;
    double momentum;            /* SGD */
    double beta1, beta2, eps;   /* Adam */
    double weight_decay;        /* L2 on weights (tensors of rank ≥ 2), added to the gradient */
    int cosine;                 /* non-zero: learning rate decays to 0 on a half cosine */
    int augment;                /* random shifts of up to this many pixels (0: none) */
    int folds;                  /* Gaussian noise augmentation: each image k times per step (default 1) ... */
    double noise_sigma2;        /* ... each copy plus N(0, noise_sigma2 I) on the model's input scale (default 0: none) */
    nm_regularizer reg;         /* moment regulariser (default none) ... */
    double reg_sigma2, reg_lambda; /* ... for noise N(0, reg_sigma2 I) on the input scale, weighted by reg_lambda, */
    int reg_depth;              /* ... its variance carried through the first reg_depth ReLUs, zero above (0: all) */
    uint64_t seed;              /* order of the samples and the shifts */
    nm_scale scale;             /* input scale applied to the images */
    /* Called after every step (from the calling thread); may be NULL. */
    void (*progress)(void *user, const nm_train_progress *p);
    void *user;
} nm_train_options;

/* Defaults: 10 epochs, batch 64, Adam (lr 1e-3, β 0.9/0.999, ε 1e-8),
 * momentum 0.9, weight decay 0, cosine decay, no augmentation (1 fold, no noise), seed 1,
 * scale a = 1, b = 0. */
NM_API nm_train_options nm_train_options_default(void);

/* Trains net in place on ds by softmax cross-entropy on the logits
 * (nm_net_logits_node), with the vjp passes for the gradients of every
 * Conv/Gemm/MatMul/Add/PRelu constant. Deterministic for a seed on a given
 * machine and thread count. Records opt->scale as the net's input scale. */
NM_API nm_status nm_train(nm_ctx *ctx, nm_net *net, const nm_dataset *ds, const nm_train_options *opt);

/* Accuracy of net on ds (argmax of the logits) with the net's own input
 * scale. confusion is classes × classes (row: true label, column:
 * predicted), owned; free with nm_eval_result_free. */
typedef struct {
    int64_t n;
    int classes;
    int64_t correct;
    double accuracy;
    int64_t *confusion;
} nm_eval_result;

NM_API nm_status nm_evaluate(nm_ctx *ctx, nm_net *net, const nm_dataset *ds, nm_eval_result *out);
NM_API void nm_eval_result_free(nm_ctx *ctx, nm_eval_result *r);

/* ---------------------------------------------------------------- network moments (DESIGN §1.6–1.8) */

/* How the network moments apply A (nm_net_moments_options.path). */
typedef enum { NM_PATH_AUTO = 0, NM_PATH_MATRIX = 1, NM_PATH_OPERATOR = 2 } nm_path;

typedef struct {
    int split_relu;          /* split at the l-th split point (1-based, nm_net_relu_count); 0: the last (the paper's
                                choice); −1: none, the whole net linearized at x0 (the delta method's linearization) */
    const nm_array *x0;      /* where the bottom part is linearized (input shape); NULL: the mean μ */
    const nm_array *y0;      /* where the top part is linearized (the split ReLU's output shape);
                                NULL: relu_l(R_bot(x0)) */
    size_t mem_budget;       /* bytes the matrix path may hold: A and A·L (and, for nm_net_linearize,
                                the float copy of A) (default NM_MEM_BUDGET_DEFAULT); above it, or when
                                they do not fit what the context's memory budget has left, A is applied
                                as an operator through jvp, 256 columns of Σ's factor at a time */
    nm_path path;            /* NM_PATH_AUTO (default) chooses by mem_budget; the others force a path */
    nm_method method;        /* paper, exact (default) or delta; delta linearizes the whole net at μ */
    nm_precision precision;  /* of S = AΣAᵀ and B C Bᵀ */
    int want_cov;            /* also the d×d covariance of the logits */
    int mean_only;           /* only the mean (nm_ara_options.mean_only); S's diagonal still comes from all of Σ */
    int64_t dense_max;       /* method propagate: ReLU-like layers of at most this many units (and always the last
                                one) keep exact pair covariances (DESIGN §1.12); default NM_DENSE_MAX_DEFAULT */
    int64_t rank;            /* method propagate: > 0 compresses every value's shared noise columns to this many
                                (randomized SVD) where more accrue, each unit's lost variance kept on its private
                                diagonal (nm_moments.rank_moved says how much moved); 0 (default): never */
} nm_net_moments_options;

#define NM_DENSE_MAX_DEFAULT 1024

#define NM_MEM_BUDGET_DEFAULT ((size_t)2 << 30) /* 2 GiB */

NM_API nm_net_moments_options nm_net_moments_options_default(void);

/* The two-stage linearization g(x) = B relu(A x + c1) + c2 of §1.6 at the
 * split ReLU, for the logits (nm_net_logits_node). A and B are formed by
 * jvp columns or vjp rows, whichever takes fewer passes. Outputs are newly
 * allocated: A (p×n) float32, c1 (p), B (d×p), c2 (d) float64. Fails with
 * NM_ERR_NOMEM naming the budget when A (12 bytes an entry while it is
 * formed and copied) exceeds opt->mem_budget. */
NM_API nm_status nm_net_linearize(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_net_moments_options *opt,
                           nm_array *A, nm_array *c1, nm_array *B, nm_array *c2);

/* Mean and variance (and optionally covariance) of the logits for
 * x ~ N(mu, sigma): mu in the input's shape (batch 1, or without the batch
 * axis), sigma over its n elements (nm_cov_window for windowed noise). */
NM_API nm_status nm_net_moments(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma,
                         const nm_net_moments_options *opt, nm_moments *out);

/* The same for several methods at once (out[i] for methods[i]), sharing one
 * linearization; with delta among them, all are linearized at μ. */
NM_API nm_status nm_net_moments_methods(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma,
                                 const nm_net_moments_options *opt, int count, const nm_method *methods, nm_moments *out);

/* Monte Carlo of the logits of the real network: x = mu + L ε in batches of
 * 500 through forward passes; ε from the counter-based RNG by sample index,
 * statistics merged in batch order, so a seed gives identical results for
 * any thread count. progress (may be NULL) is called after every batch. */
NM_API nm_status nm_net_montecarlo(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma, int64_t n_samples,
                            const nm_rng *rng, int want_cov, nm_progress_fn progress, void *user, nm_mc_result *out);

/* How far the noise carries the net out of the region its two-stage
 * linearization freezes (§1.6): over n_samples draws of N(mu, sigma) (the
 * first draws of nm_net_montecarlo with the same rng), the share of
 * (sample, unit) pairs whose decision differs from the one at the
 * linearization point of opt (split_relu, x0, y0, as nm_net_moments takes
 * them): the side of each kink of ReLU, LeakyReLU, PReLU, Clip,
 * HardSigmoid and HardSwish units, and, separately, the argmax of each
 * max-pool window. "below" counts the nodes before the split (decisions at
 * x₀), "above" those after it (at y₀); the split itself, whose moments are
 * exact, neither. 0 where a part has none. */
#define NM_RELU_CHANGE_SAMPLES 2000 /* the draws the experiments and the CLI count over */
typedef struct {
    double kinks_below, kinks_above;
    double argmax_below, argmax_above;
} nm_decision_changes;
NM_API nm_status nm_net_decision_changes(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma,
                                         const nm_net_moments_options *opt, int64_t n_samples, const nm_rng *rng,
                                         nm_decision_changes *out);
/* The kinks' shares alone (*bottom, *top) of nm_net_decision_changes. */
NM_API nm_status nm_net_relu_changes(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma, const nm_net_moments_options *opt,
                                     int64_t n_samples, const nm_rng *rng, double *bottom, double *top);

/* ---------------------------------------------------------------- gradients of the moments (DESIGN §1.11) */

/* A net linearized once at x0 (its two-stage linearization A, c1, B, c2 of
 * §1.6, split as opt says; opt->x0 and y0 are ignored: x0 is the point),
 * kept to evaluate the logits' mean and its gradients for many noise
 * parameters, as the attacks of Eq 3 and Eq 4 do. Holds A and A∘A in double
 * (16 bytes per entry of A). Needs a ReLU at the split. */
typedef struct nm_linearized nm_linearized;
NM_API nm_status nm_linearized_create(nm_ctx *ctx, nm_net *net, const nm_array *x0, const nm_net_moments_options *opt,
                                      nm_linearized **out);
NM_API void nm_linearized_free(nm_ctx *ctx, nm_linearized *l);
NM_API int64_t nm_linearized_inputs(const nm_linearized *l);  /* n */
NM_API int64_t nm_linearized_outputs(const nm_linearized *l); /* d */

/* A moment of the logits (d) under x ~ N(mu, diag(v)) and its Jacobians
 * with respect to the mean (d×n, row i the gradient of logit i's moment),
 * to the per-input variances (d×n), and to an isotropic σ² (d; v = σ² 1:
 * the rows' sums). All four share one allocation (nm_moment_grad_free). */
typedef struct {
    int64_t d, n;
    double *value, *d_mu, *d_v, *d_sigma2;
} nm_moment_grad;
NM_API void nm_moment_grad_free(nm_ctx *ctx, nm_moment_grad *g);

/* Under the frozen linearization: the logits' mean and its gradients. */
NM_API nm_status nm_linearized_mean_grad(nm_ctx *ctx, const nm_linearized *l, const double *mu, const double *v, nm_moment_grad *out);

/* The same for the logits' variances under method exact (§1.5's pair
 * covariance at the split; for attacks that maximise output variance).
 * Costs p² Φ₂ evaluations and d products of p×p by p×n (p the split's
 * width), and 5 p² + 2 p n doubles of scratch. */
NM_API nm_status nm_linearized_var_grad(nm_ctx *ctx, const nm_linearized *l, const double *mu, const double *v, nm_moment_grad *out);

/* ---------------------------------------------------------------- tightness experiments (DESIGN §1.8, §2) */

/* The synthetic nets of the paper's Fig 2 (widths and kernels are ours:
 * src/experiments/tightness.c documents them). Weights are N(0, 1/fan_in),
 * biases N(0, bias_sd²) (default NM_SYN_BIAS_SD); bias_sd must be ≥ 0.
 * With input mean 0 the biases alone keep the units away from their kinks,
 * so bias_sd against the noise decides how many ReLUs the noise flips. */
#define NM_SYN_BIAS_SD 0.5
typedef enum {
    NM_SYN_FC_A = 0, NM_SYN_FC_B, NM_SYN_FC_C, NM_SYN_CONV_A, NM_SYN_CONV_B, NM_SYN_CONV_C
} nm_synthetic;
#define NM_SYN_COUNT 6
NM_API const char *nm_synthetic_str(nm_synthetic s);
NM_API nm_status nm_synthetic_create(nm_ctx *ctx, nm_synthetic which, uint64_t seed, double bias_sd, nm_net **out);

/* A random covariance Σ = L Lᵀ (L n×n with i.i.d. normal entries from
 * stream `stream`), scaled so that its largest variance is max_var. */
NM_API nm_status nm_cov_random(nm_ctx *ctx, int64_t n, double max_var, const nm_rng *rng, uint64_t stream, nm_cov **out);

typedef struct {
    int64_t runs;       /* independent runs (paper: 200) */
    int64_t mc;         /* Monte Carlo samples per run (paper: 75,000) */
    double max_var;     /* regime: 1e-4 (low), 1 (medium), 200 (high) */
    uint64_t seed;
    nm_progress_fn progress; /* may be NULL; called under a lock */
    void *user;
    const int64_t *image_index; /* optional: run r is around image image_index[r] (else a random one) */
    const float *x0;            /* optional: run r linearizes the bottom part at x0 + r·n (else at its mean) */
    int split_relu;             /* the ReLU the net is split at (1-based); 0: the last */
    int nmethods;               /* the analytic methods compared (default paper and exact) */
    nm_method methods[NM_METHOD_MAX];
} nm_tightness_options;

/* Defaults: 200 runs, 75,000 samples, the medium regime (max_var 1), seed
 * 1, no progress, random images, linearized at the mean, split at the last
 * ReLU, methods paper and exact. */
NM_API nm_tightness_options nm_tightness_options_default(void);

/* Per run r and output i (row-major runs × d): for each method compared,
 * its mean and variance (mean[m], var[m]; NULL for methods not compared),
 * the MC mean and variance; for a run around an image, its index in the
 * data set; per run, the shares of ReLU states below and above the split
 * that the noise changes (nm_net_relu_changes over the MC's first
 * NM_RELU_CHANGE_SAMPLES draws). */
typedef struct {
    int64_t runs, d;
    double *mean[NM_METHOD_MAX], *var[NM_METHOD_MAX];
    double *mc_mean, *mc_var;
    double *relu_bottom, *relu_top;
    int64_t *mean_index;
    double *buf;
} nm_tightness;

/* Runs the experiment on net (borrowed; each thread works on its own copy,
 * nm_net_copy): each run draws Σ (nm_cov_random, stream = run) and, when
 * images is not NULL, a random image of it as the mean (else 0); the net is
 * split at opt->split_relu and linearized at the mean. Results do not
 * depend on the thread count. Free with nm_tightness_free. */
NM_API nm_status nm_tightness_run(nm_ctx *ctx, const nm_net *net, const nm_dataset *images, nm_scale scale,
                           const nm_tightness_options *opt, nm_tightness *out);
NM_API void nm_tightness_free(nm_ctx *ctx, nm_tightness *t);

/* Over the runs (row-major runs × d), the ratio mc / analytic of output i:
 * its mean and (unbiased) standard deviation (Table 1, Table 3). */
typedef struct {
    double mean, sd;
} nm_ratio_stats;
NM_API nm_ratio_stats nm_ratio_over_runs(const double *mc, const double *analytic, int64_t runs, int64_t d, int64_t i);

/* The paper's Table 3: the digits of a data set clustered by k-means
 * (nm_kmeans) in the model's input space, and `images` of them, drawn at
 * random by the seed, each linearized at its cluster's centre (and, with
 * baseline, at its farthest member) instead of at itself, against a Monte
 * Carlo around the digit under a random covariance of the regime. */
#define NM_LINPOINTS_MAX_K 16
typedef struct {
    int nk;                         /* cluster counts, 1 .. NM_LINPOINTS_MAX_K */
    int64_t k[NM_LINPOINTS_MAX_K];
    int baseline;                   /* also at the farthest member (not where k = every digit: it is the digit) */
    int64_t images;                 /* digits evaluated (at most the data set's) */
    int64_t mc;                     /* Monte Carlo samples per digit */
    double max_var;                 /* the regime, as nm_tightness_options */
    uint64_t seed;
    nm_progress_fn progress;        /* may be NULL; after each (k, point) row */
    void *user;
    int64_t n_digits;               /* set by the run: the data set's size */
    int propagate;                  /* also method propagate, which needs no linearization point (default 1) */
} nm_linpoints_options;

/* Defaults: no k (set nk and k), no baseline, 200 digits, 20,000 samples,
 * the medium regime, seed 1, with method propagate. */
NM_API nm_linpoints_options nm_linpoints_options_default(void);

/* One row per (k, point): k, farthest (0: the centre, 1: the farthest
 * member), and per logit (rows × d) E[Eratio] (method exact's mean) and
 * E[varratio] of methods paper and exact (var_ratio[m]; NULL for others),
 * and the mean share of ReLU states below the split the noise changes.
 * With propagate, its E[Eratio] and E[varratio] per logit (d each, the
 * same digits and Monte Carlo as every row; NULL without): it carries the
 * Gaussian through every layer, so no linearization point enters. */
typedef struct {
    int rows;
    int64_t k[2 * NM_LINPOINTS_MAX_K];
    int farthest[2 * NM_LINPOINTS_MAX_K];
    int64_t d, images;
    int64_t *index;                 /* the evaluated digits (images) */
    double *e_ratio, *var_ratio[NM_METHOD_MAX], *relu_bottom;
    double *prop_e_ratio, *prop_var_ratio;
    double *buf;
} nm_linpoints;

NM_API nm_status nm_linpoints_run(nm_ctx *ctx, const nm_net *net, const nm_dataset *ds, const nm_linpoints_options *opt, nm_linpoints *out);
NM_API void nm_linpoints_free(nm_ctx *ctx, nm_linpoints *t);

/* k-means of n points (n×dim, row-major) into k clusters: k-means++
 * seeding from the counter-based RNG, then Lloyd iterations until no point
 * moves (at most max_iter). Fills assign (n) and centers (k×dim). The same
 * seed gives the same clusters for any thread count. */
NM_API nm_status nm_kmeans(nm_ctx *ctx, const float *X, int64_t n, int64_t dim, int64_t k, uint64_t seed, int max_iter,
                    int64_t *assign, float *centers);

/* Least-squares lines through n points (x[i·stride], y[i·stride]) (DESIGN
 * §1.8): the line through the origin, y = slope·x, slope = Σxy / Σx², and
 * the free line y = intercept + free_slope·x. Tightness is read from the
 * first: it is 1 exactly when y matches x on average, whatever their spread,
 * while the free line ignores a constant offset and is ill-conditioned when
 * x hardly varies (a net's mean under tiny noise). NaN where undefined
 * (Σx² = 0; for the free line, all x equal). */
typedef struct {
    double slope, free_slope, intercept;
} nm_ls_line;
NM_API nm_ls_line nm_ls_fit(const double *x, const double *y, int64_t n, int64_t stride);

/* ---------------------------------------------------------------- adversarial perturbations (DESIGN §1.9, §2 UAP) */

/* The norm of a perturbation's ball: ℓ∞ or ℓ2. */
typedef enum { NM_NORM_INF = 0, NM_NORM_2 = 2 } nm_norm;

typedef struct {
    nm_norm norm;     /* the step minimises this norm (default ℓ2) */
    double overshoot; /* the accumulated step is scaled by 1 + overshoot (default 0.02) */
    int max_iter;     /* at most this many linearizations (default 50) */
} nm_deepfool_options;
NM_API nm_deepfool_options nm_deepfool_options_default(void);

/* Multi-class DeepFool (Moosavi-Dezfooli et al. 2016) at input x (the
 * net's input size, batch 1) against class c: repeatedly linearizes the
 * logits (their gradients by vjp), steps to the nearest linearized boundary
 * between c and another class (1e-4 past it), until the label of
 * x + (1 + overshoot)·r is not c or max_iter steps. r (input size) receives
 * the perturbation, *iters (may be NULL) the steps taken, *label (may be
 * NULL) the label at x + r — still c when it failed to fool. */
NM_API nm_status nm_deepfool(nm_ctx *ctx, nm_net *net, const float *x, int c, const nm_deepfool_options *opt, float *r, int *iters,
                             int *label);

/* Projects v (n) on the ball of radius xi of the norm, centred at 0: ℓ∞ clips
 * every entry to [−xi, xi], ℓ2 scales v down to norm xi when beyond it. */
NM_API void nm_project_ball(float *v, int64_t n, nm_norm norm, double xi);

#define NM_UAP_MAX_PASSES 64
typedef struct {
    nm_deepfool_options deepfool; /* the inner step; its norm is the ball's */
    double xi;                    /* the ball's radius, in the model's input units (default 2000, ℓ2 on [−127.5, 127.5] pixels) */
    double target_rate;           /* stop once the fooling rate over the images reaches it (default 0.8) */
    int passes;                   /* at most this many passes (default 10, ≤ NM_UAP_MAX_PASSES) */
    uint64_t seed;                /* the order of the images in each pass (default 1) */
    void (*pass_done)(void *user, int pass, double rate); /* after each pass (may be NULL) */
    nm_progress_fn progress;      /* after each image (may be NULL) */
    void *user;
} nm_uap_options;
NM_API nm_uap_options nm_uap_options_default(void);

/* The fooling rate over the images after each pass (rate[0..passes)). */
typedef struct {
    int passes;
    double rate[NM_UAP_MAX_PASSES];
} nm_uap_result;

/* A universal adversarial perturbation (Moosavi-Dezfooli et al. 2017) of
 * net over the images X (count × n, the model's input scale): passes in a
 * seeded order; for each image whose label at x + v is still its clean
 * label, DeepFool at x + v, and v + r projected on the ball. v (n) receives
 * the perturbation. Fooled: the label at x + v differs from the label at x. */
NM_API nm_status nm_uap_run(nm_ctx *ctx, nm_net *net, const float *X, int64_t count, const nm_uap_options *opt, float *v,
                            nm_uap_result *out);

/* ---------------------------------------------------------------- fooling-rate prediction (DESIGN §1.9, Table 2) */

#define NM_FOOLING_MAX_TOPK 10
#define NM_FOOLING_MC_BATCH 250 /* Monte Carlo samples per forward pass */
typedef struct {
    double sigma2;           /* the small noise n ~ N(0, σ² I) of the prediction (default 1e-4, the paper's Σ1) */
    nm_method method;        /* of the analytic mean (default exact); split at the last ReLU, linearized at X + N */
    int topk;                /* orders compared for k = 1..topk (default 5) */
    int64_t mc;              /* > 0: also a Monte Carlo of the real net at X + N + n with this many samples */
    int flip;                /* non-zero: also the flip probability P(argmax R(X + N + n) ≠ c) (§1.10) */
    nm_mvn_options mvn;      /* its orthant probabilities */
    uint64_t seed;           /* the Monte Carlo's */
    nm_progress_fn progress; /* after each image (may be NULL; under a lock) */
    void *user;
} nm_fooling_options;
NM_API nm_fooling_options nm_fooling_options_default(void);

/* Per image r (0..images): the clean label c = argmax R(X), the label at
 * X + N, the argmax of the analytic mean (and of the Monte Carlo's); for
 * k = 1..topk, topk_match[r·topk + k − 1] = 1 when the k largest analytic
 * mean logits, in order, are those of R(X + N) (topk_match_mc the same for
 * the Monte Carlo mean); the flip probability and its error estimate, the
 * Monte Carlo's flip frequency. Over the images: the real, predicted and
 * Monte Carlo fooling rates (fooled: label ≠ c), the images where the
 * prediction and the real net disagree on fooled, the top-k accuracies.
 * Arrays not asked for are NULL (rates NaN). */
typedef struct {
    int64_t images, d;
    int topk;
    int *clean, *perturbed, *predicted, *mc_predicted;
    uint8_t *topk_match, *topk_match_mc;
    double *flip, *flip_se, *mc_flip;
    double rate_real, rate_predicted, rate_mc;
    int64_t disagreements, disagreements_mc;
    double topk_accuracy[NM_FOOLING_MAX_TOPK], topk_accuracy_mc[NM_FOOLING_MAX_TOPK];
    int *ibuf;
    double *dbuf;
} nm_fooling;

/* Runs the prediction over the images X (count × n, the model's input
 * scale; index, may be NULL, their indices in their data set, which key the
 * Monte Carlo's random streams) with the perturbation N (n, the model's
 * input units; NULL: none, so that fooled means flipped by the noise) on
 * net (borrowed; each thread works on its own copy). Results do not depend
 * on the thread count. Free with nm_fooling_free. */
NM_API nm_status nm_fooling_run(nm_ctx *ctx, const nm_net *net, const float *X, const int64_t *index, int64_t count, const float *N,
                                const nm_fooling_options *opt, nm_fooling *out);
NM_API void nm_fooling_free(nm_ctx *ctx, nm_fooling *f);

/* ---------------------------------------------------------------- robustness to Gaussian noise (issue 19) */

typedef struct {
    int64_t mc;              /* noisy copies of each image per noise level (default 10) */
    uint64_t seed;           /* their noise (default 1): image i's copies use stream i, the same ε scaled for every σ */
    nm_progress_fn progress; /* after each image (may be NULL; under a lock) */
    void *user;
} nm_robustness_options;
NM_API nm_robustness_options nm_robustness_options_default(void);

/* The accuracy of net (borrowed; a copy per thread) under Gaussian noise: for each σ in sigmas[0..ns) (the
 * noise's standard deviation on the model's input scale, ≥ 0), accuracy[s] is the share of the count·mc
 * copies x_i + σ ε (X count × n; ε ~ N(0, I)) whose argmax is labels[i], by the real net. Results do not
 * depend on the thread count. */
NM_API nm_status nm_robustness_run(nm_ctx *ctx, const nm_net *net, const float *X, const uint8_t *labels, int64_t count, int ns,
                                   const double *sigmas, const nm_robustness_options *opt, double *accuracy);
/* The area under the accuracy–σ curve (sigmas ascending) by the trapezoid rule, divided by the σ range:
 * 1 for a model right at every level; the one accuracy when ns = 1; NaN for an empty range. */
NM_API double nm_robustness_auc(int ns, const double *sigmas, const double *accuracy);

/* ---------------------------------------------------------------- spatial sensitivity maps (the paper's §4.4, Fig 3) */

typedef struct {
    int64_t h, w;            /* the window (default 7×7) */
    int64_t stride;          /* between positions, no padding (default 1: 22×22 positions on 28×28) */
    double sigma2;           /* the window's noise σ² I, zero mean (default 200, the paper's Σ3 level) */
    nm_method method;        /* of the mean: exact (default) or paper (the same mean) */
    int flip;                /* non-zero: also the flip probability per position (§1.10; needs a ReLU at the split) */
    int want_means;          /* non-zero: keep the analytic mean logits of every position */
    nm_mvn_options mvn;      /* the flip probabilities' orthant options */
    nm_progress_fn progress; /* after each image (may be NULL; under a lock) */
    void *user;
} nm_sensitivity_options;
NM_API nm_sensitivity_options nm_sensitivity_options_default(void);

/* Per image i (0..images) and position (row pr, column q of P × Q; the
 * window's top-left pixel at (pr·stride, q·stride)): map[(i·P + pr)·Q + q] is
 * 1 when the argmax of the analytic mean of the logits under the window's
 * noise differs from the clean label clean[i] (fooled in expectation), else
 * 0; flip (and flip_se, its error estimate) the flip probability; mean
 * (images × P × Q × d) the mean logits. Per class k (classes = d; an image's
 * class is its label[i]): class_map (and class_flip) the mean over its
 * class_count[k] images (NaN for a class without images). */
typedef struct {
    int64_t images, P, Q, d;
    int classes;
    int *clean, *label;
    double *map, *flip, *flip_se, *mean;
    double *class_map, *class_flip;
    int64_t *class_count;
    double *buf;
} nm_sensitivity;

/* The maps of the images X (count × n, the model's input scale, an
 * (N, C, H, W) input) on net (borrowed; a copy per thread): each image is
 * linearized once at itself, split at the last ReLU; every position's
 * window variances come from A's columns (see src/experiments/
 * sensitivity.c). The flip probability uses the exact variance of each
 * split unit and Stein's-lemma cross-covariances. labels (count, may be
 * NULL: the clean labels) choose the classes averaged over. Results do not
 * depend on the thread count. Free with nm_sensitivity_free. */
NM_API nm_status nm_sensitivity_run(nm_ctx *ctx, const nm_net *net, const float *X, const uint8_t *labels, int64_t count,
                                    const nm_sensitivity_options *opt, nm_sensitivity *out);
NM_API void nm_sensitivity_free(nm_ctx *ctx, nm_sensitivity *s);

/* Verification by sampling: `pairs` (image, position) pairs drawn by the
 * seed; for each, an mc-sample Monte Carlo of the real net with the window's
 * noise: whether its mean logits leave the clean label, its flip frequency
 * and its mean's margin (clean logit minus the largest other). agreement:
 * the share of pairs where fooled-in-expectation matches the map's;
 * flip_mae: the mean |flip probability − Monte Carlo frequency| (NaN
 * without flips in s). opt and X as given to nm_sensitivity_run. */
typedef struct {
    int64_t pairs;
    int64_t *image, *position;
    double *mc_fooled, *mc_flip, *mc_margin;
    double agreement, flip_mae;
    double *buf;
} nm_sensitivity_check;
NM_API nm_status nm_sensitivity_verify(nm_ctx *ctx, nm_net *net, const float *X, const nm_sensitivity *s,
                                       const nm_sensitivity_options *opt, int64_t pairs, int64_t mc, uint64_t seed,
                                       nm_sensitivity_check *out);
NM_API void nm_sensitivity_check_free(nm_ctx *ctx, nm_sensitivity_check *c);

/* ---------------------------------------------------------------- Gaussian attacks (the paper's Eq 3, §4.5) */

typedef struct {
    int target;              /* the class to reach (not the image's label), or NM_ATTACK_UNTARGETED */
    double beta;             /* −β ≤ μx ≤ β (default 30, the paper's on MNIST) */
    double sigma2_max;       /* 0 < σ² ≤ σ²max (default 2) */
    int relinearize;         /* 0 (default): linearized once at M, as the paper; R: again at M + μx every R evaluations */
    int max_iter;            /* evaluations of the moments at the most (default 300) */
    double margin;           /* stop once max_{i≠j} E_i − E_j ≤ −margin (default 0.5) */
    int split_relu;          /* as nm_net_moments_options (default 0: the last) */
    const uint8_t *support;  /* n flags: μx may be non-zero only where set (NULL: everywhere) */
} nm_attack_options;
NM_API nm_attack_options nm_attack_options_default(void);
/* target for Eq 4's objective, E_c − max_{j≠c} E_j (c the image's label): the targeted attack towards each
 * other class in the order of the image's logits, until one fools by the margin (else the smallest gap). */
#define NM_ATTACK_UNTARGETED (-2)

/* Eq 4's fixed support: round(α % of n) inputs (at least 1) drawn by the seed; mask (n) set to 1 there, 0
 * elsewhere; *count (may be NULL) their number. α must be in (0, 100]. */
NM_API nm_status nm_attack_support(nm_ctx *ctx, int64_t n, double alpha, uint64_t seed, uint8_t *mask, int64_t *count);

typedef struct {
    int label, target;       /* argmax R(M), the target */
    double sigma2;           /* the σ² found */
    int iterations;          /* evaluations of the moments */
    int64_t support;         /* inputs μx may use */
    double gap;              /* max_{i≠j} E_i − E_j at the result (< 0: fooled in expectation towards j) */
    int fooled_analytic;     /* gap < 0 */
    int64_t d;
    double *analytic_mean;   /* d: the logits' analytic mean at M + μx + σ ε */
} nm_attack_result;

/* The targeted attack on image M (n inputs, the model's scale): minimises
 * max_{i≠j} (E_i − E_j) over (μx, σ²) in the bounds by NLopt's MMA on the
 * epigraph form with the gradients of §1.11 (src/experiments/attack.c says
 * why MMA). mu_x (n) receives μx (0 off the support). Free the result with
 * nm_attack_result_free. */
NM_API nm_status nm_attack_run(nm_ctx *ctx, nm_net *net, const float *M, const nm_attack_options *opt, float *mu_x,
                               nm_attack_result *out);
NM_API void nm_attack_result_free(nm_ctx *ctx, nm_attack_result *r);

/* Verification by sampling the real net (as the paper does): mc draws of
 * M + μx + σ ε (ε from stream 0 of the seed's generator) through the net;
 * mc_mean (d) their mean logits, *share the fraction classified as cls. */
NM_API nm_status nm_attack_verify(nm_ctx *ctx, nm_net *net, const float *M, const float *mu_x, double sigma2, int64_t mc, uint64_t seed,
                                  int cls, double *mc_mean, double *share);

/* The deterministic baseline at the same β: projected gradient descent
 * (sign steps of 2.5 β / steps, clipped to [−β, β] on the support) on the
 * real net's logit margin, max_{i≠j} y_i − y_j towards opt->target (or
 * y_c − max_{j≠c} y_j for NM_ATTACK_UNTARGETED), its gradient by the net's
 * vjp; stops once the margin is below −opt->margin. The result is the best
 * iterate: sigma2 0, gap its margin (< 0: classified as the target, or
 * away from c), analytic_mean the net's logits at M + μx. */
NM_API nm_status nm_attack_pgd(nm_ctx *ctx, nm_net *net, const float *M, const nm_attack_options *opt, int steps, float *mu_x,
                               nm_attack_result *out);

/* Many attacks: every image of X (count × n) towards every class other
 * than its predicted label (targeted), or once each for Eq 4's objective
 * (untargeted), on threads with a net copy each; results do not depend on
 * the thread count. Each Gaussian attack is verified by mc samples of the
 * real net (stream = the attack's index of the seed); a PGD attack is
 * judged by the net's label at M + μx itself. */
typedef struct {
    nm_attack_options attack; /* target is ignored */
    int untargeted;           /* 0: targeted towards every other class; 1: Eq 4's objective, once per image */
    int pgd;                  /* 0: the Gaussian attack (nm_attack_run); 1: the PGD baseline (nm_attack_pgd) */
    int pgd_steps;            /* default 100 */
    int64_t mc;               /* verification samples per Gaussian attack (default 1000) */
    uint64_t seed;            /* theirs (default 1) */
    int keep_mu;              /* non-zero: keep every μx (count_attacks × n floats) */
    nm_progress_fn progress;  /* may be NULL; after each attack, under a lock */
    void *user;
} nm_attack_batch_options;
NM_API nm_attack_batch_options nm_attack_batch_options_default(void);

typedef struct {
    int64_t image;            /* row of X */
    int label, target;        /* predicted label of M; the target (untargeted: the class reached) */
    double sigma2;            /* 0 for PGD */
    int64_t support;
    double mu_linf, mu_l2;
    double gap;               /* analytic (Gaussian) or real (PGD) margin at the result */
    int fooled_analytic;      /* gap < 0 */
    int iterations;           /* evaluations of the moments, or PGD steps */
    int mc_argmax;            /* the Monte Carlo mean's argmax (PGD: the net's label at M + μx) */
    double mc_share;          /* the share of samples classified as the target (untargeted: not as the label); PGD 0 or 1 */
    int success;              /* mc_argmax is the target (untargeted: is not the label) */
    double time_s;            /* wall time of this attack and its verification on its thread */
} nm_attack_row;

typedef struct {
    int64_t count, n, d;
    nm_attack_row *row;       /* count */
    float *mu;                /* count × n with keep_mu, else NULL */
    int64_t successes;
    double mean_linf, mean_l2, mean_time_s; /* over all attacks */
} nm_attack_table;
NM_API nm_status nm_attack_batch(nm_ctx *ctx, nm_net *net, const float *X, int64_t count, const nm_attack_batch_options *opt,
                                 nm_attack_table *out);
NM_API void nm_attack_table_free(nm_ctx *ctx, nm_attack_table *t);

/* The first k samples of the verification of an attack (the same seed and
 * stream as nm_attack_verify_stream's, stream 0 for nm_attack_verify):
 * X (k × n) = M + μx + σ ε, and labels (k) the net's label of each. */
NM_API nm_status nm_attack_samples(nm_ctx *ctx, nm_net *net, const float *M, const float *mu_x, double sigma2, int64_t k, uint64_t seed,
                                   uint64_t stream, float *X, int *labels);

/* ---------------------------------------------------------------- figures (cairo) */

/* One scatter series: points (x[i·stride], y[i·stride]); marker 0 circle, 1 cross. */
typedef struct {
    const char *label;
    const double *x, *y;
    int64_t n, stride;
    int marker;
} nm_plot_series;

typedef struct {
    const char *title, *xlabel, *ylabel;
    int nseries; /* ≤ 4 */
    nm_plot_series series[4];
} nm_plot_panel;

/* Side-by-side scatter panels with each series' least-squares line through
 * the origin, its slope and the free line's in the legend (nm_ls_fit), and the diagonal y = x dashed; written as PNG and/or
 * SVG (either path may be NULL). */
NM_API nm_status nm_plot_scatter(nm_ctx *ctx, const char *png, const char *svg, int npanels, const nm_plot_panel *panels);

/* Curves y(x) (robustness: accuracy against σ), one colour and marker each, with a legend; up to 12. */
typedef struct {
    const char *label;
    const double *x, *y;
    int64_t n;
} nm_plot_curve;
NM_API nm_status nm_plot_curves(nm_ctx *ctx, const char *png, const char *svg, const char *title, const char *xlabel,
                                const char *ylabel, int ncurves, const nm_plot_curve *curves);

/* One image with a map over it: the image (H×W, grey from its smallest to
 * its largest value) and map (P×Q, coloured blue → red over 0..vmax, drawn
 * translucent); map cell (r, q) covers the step×step pixels from row
 * r0 + r·step, column c0 + q·step (for a window slid with stride s, its
 * centre: r0 = c0 = (h − s)/2, step = s). */
typedef struct {
    const char *title;
    const double *image;
    int64_t H, W;
    const double *map;
    int64_t P, Q;
    double r0, c0, step;
} nm_plot_heat;

/* Up to 20 images with their maps in rows of five, a colour bar, a title
 * above and a caption below; PNG and/or SVG (either may be NULL). */
NM_API nm_status nm_plot_heatmaps(nm_ctx *ctx, const char *png, const char *svg, int n, const nm_plot_heat *maps, double vmax,
                                  const char *title, const char *caption);

/* One image of a grid: H×W pixels drawn grey over their own range, or with
 * scale > 0 diverging (blue −scale, grey 0, red +scale); pixels NULL: an
 * empty cell. */
typedef struct {
    const char *title;
    const double *pixels;
    int64_t H, W;
    double scale;
} nm_plot_image;

/* Up to 400 images in rows of cols (≤ 20), a title above and a caption
 * below; PNG and/or SVG (either may be NULL). */
NM_API nm_status nm_plot_images(nm_ctx *ctx, const char *png, const char *svg, int n, int cols, const nm_plot_image *images,
                                const char *title, const char *caption);

#ifdef __cplusplus
}
#endif
#endif /* NETMOMENTS_H */
