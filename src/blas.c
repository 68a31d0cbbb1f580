/*
 * blas.c — the single wrapper over CBLAS (STYLE item 6): every matrix
 * product in the library goes through these named functions, row-major,
 * with explicit transposes, plus a naive loop version kept for tests.
 *
 * One thread pool: the build links OpenBLAS's OpenMP flavour where it is
 * installed (CMakeLists.txt). BLAS runs on one thread inside parallel
 * regions, and the serial sections below have nothing to do. With the
 * pthread flavour, whose threads are a pool of their own, a serial section
 * makes BLAS single-threaded while OpenMP threads run their own products.
 * GEMM and SYMM are not left to BLAS's own threading, whose results change
 * with the thread count: outside parallel regions they are cut into pieces
 * fixed by the shape, one serial call each on OpenMP's threads (below). SYRK's
 * threaded results measured the same on 1 and 2 threads.
 */
#include "internal.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>

/* OpenBLAS on OpenMP (openblas_get_parallel() == 2): its thread count is
 * OpenMP's own, so a serial section leaves it alone (setting it would make the
 * caller's own parallel regions serial). */
static int blas_is_openmp(void) { return openblas_get_parallel() == 2; }

static enum CBLAS_TRANSPOSE tr(nm_trans t)
{
    return t == NM_TRANS ? CblasTrans : CblasNoTrans;
}

/* GEMM's results must not depend on the thread count, and OpenBLAS's own threading does change them for some shapes
 * (50×64×500 or 64×1024×784, single and double: it blocks the product by the threads). So C is cut along its longer
 * side into pieces fixed by the shape alone, and each piece is one BLAS call on one thread, where BLAS is serial:
 * inside an active parallel region the caller's thread computes them in turn; outside one they are spread over
 * OpenMP's threads. Products too small for OpenBLAS to thread are one call. */
#define GEMM_ONE_CALL ((int64_t)1 << 16) /* m n k at most this: OpenBLAS threads nothing (its threshold is 4× higher) */

/* The pieces of a side of len: at most 8, of a multiple of 64, fixed by len. */
static int64_t gemm_piece(int64_t len)
{
    int64_t nb = len / 128;
    nb = nb < 1 ? 1 : nb > 8 ? 8 : nb;
    int64_t piece = (len + nb - 1) / nb;
    return (piece + 63) / 64 * 64;
}

/* np pieces, the block after np run for each t: in this thread when it is in an active team, else over OpenMP's threads. */
#define FOR_PIECES(np, ...)                                                                                                     \
    do {                                                                                                                               \
        if (omp_in_parallel()) {                                                                                                       \
            for (int64_t t = 0; t < (np); t++) __VA_ARGS__                                                                             \
        } else {                                                                                                                       \
            nm_blas_serial_begin();                                                                                                    \
            _Pragma("omp parallel for schedule(static)") for (int64_t t = 0; t < (np); t++) __VA_ARGS__                                \
            nm_blas_serial_end();                                                                                                      \
        }                                                                                                                              \
    } while (0)

#define GEMM_PIECES(call)                                                                                                              \
    do {                                                                                                                               \
        if (m == 0 || n == 0) return;                                                                                                  \
        if (m * n * k <= GEMM_ONE_CALL) {                                                                                              \
            call(CblasRowMajor, tr(ta), tr(tb), (int)m, (int)n, (int)k, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);           \
            return;                                                                                                                    \
        }                                                                                                                              \
        int by_rows = m >= n;                                                                                                          \
        int64_t len = by_rows ? m : n, piece = gemm_piece(len), np = (len + piece - 1) / piece;                                        \
        FOR_PIECES(np, {                                                                                                               \
            int64_t lo = t * piece, cnt = len - lo < piece ? len - lo : piece;                                                         \
            if (by_rows)                                                                                                               \
                call(CblasRowMajor, tr(ta), tr(tb), (int)cnt, (int)n, (int)k, alpha, ta == NM_TRANS ? A + lo : A + lo * lda, (int)lda, \
                     B, (int)ldb, beta, C + lo * ldc, (int)ldc);                                                                       \
            else                                                                                                                       \
                call(CblasRowMajor, tr(ta), tr(tb), (int)m, (int)cnt, (int)k, alpha, A, (int)lda, tb == NM_TRANS ? B + lo * ldb : B + lo, \
                     (int)ldb, beta, C + lo, (int)ldc);                                                                                \
        });                                                                                                                            \
    } while (0)

void nm_gemm_f64(nm_trans ta, nm_trans tb, int64_t m, int64_t n, int64_t k, double alpha,
                 const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                 double *C, int64_t ldc)
{
    GEMM_PIECES(cblas_dgemm);
}

void nm_gemm_f32(nm_trans ta, nm_trans tb, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                 float *C, int64_t ldc)
{
    GEMM_PIECES(cblas_sgemm);
}

void nm_syrk_f64(int64_t n, int64_t k, double alpha, const double *A, int64_t lda,
                 double beta, double *C, int64_t ldc)
{
    if (n == 0) return;
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, (int)n, (int)k, alpha, A, (int)lda, beta,
                C, (int)ldc);
}

void nm_syrk_t_f64(int64_t n, int64_t k, double alpha, const double *A, int64_t lda,
                   double beta, double *C, int64_t ldc)
{
    if (n == 0) return;
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)n, (int)k, alpha, A, (int)lda, beta,
                C, (int)ldc);
}

void nm_syrk_f32(int64_t n, int64_t k, float alpha, const float *A, int64_t lda,
                 float beta, float *C, int64_t ldc)
{
    if (n == 0) return;
    cblas_ssyrk(CblasRowMajor, CblasLower, CblasNoTrans, (int)n, (int)k, alpha, A, (int)lda, beta,
                C, (int)ldc);
}

/* SYMM as GEMM: C's rows in pieces fixed by the shape. */
#define SYMM_PIECES(call)                                                                                                              \
    do {                                                                                                                               \
        if (m == 0 || k == 0) return;                                                                                                  \
        if (m * k * k <= GEMM_ONE_CALL) {                                                                                              \
            call(CblasRowMajor, CblasRight, CblasLower, (int)m, (int)k, alpha, S, (int)lds, B, (int)ldb, beta, C, (int)ldc);           \
            return;                                                                                                                    \
        }                                                                                                                              \
        int64_t piece = gemm_piece(m), np = (m + piece - 1) / piece;                                                                   \
        FOR_PIECES(np, {                                                                                                               \
            int64_t lo = t * piece, cnt = m - lo < piece ? m - lo : piece;                                                             \
            call(CblasRowMajor, CblasRight, CblasLower, (int)cnt, (int)k, alpha, S, (int)lds, B + lo * ldb, (int)ldb, beta, C + lo * ldc, \
                 (int)ldc);                                                                                                            \
        });                                                                                                                            \
    } while (0)

void nm_symm_right_f64(int64_t m, int64_t k, double alpha, const double *S, int64_t lds,
                       const double *B, int64_t ldb, double beta, double *C, int64_t ldc)
{
    SYMM_PIECES(cblas_dsymm);
}


void nm_symm_right_f32(int64_t m, int64_t k, float alpha, const float *S, int64_t lds,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    SYMM_PIECES(cblas_ssymm);
}

void nm_gemm_f64_naive(nm_trans ta, nm_trans tb, int64_t m, int64_t n, int64_t k, double alpha,
                       const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                       double *C, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            for (int64_t l = 0; l < k; l++) {
                double a = ta == NM_TRANS ? A[l * lda + i] : A[i * lda + l];
                double b = tb == NM_TRANS ? B[j * ldb + l] : B[l * ldb + j];
                acc += a * b;
            }
            C[i * ldc + j] = alpha * acc + (beta == 0 ? 0 : beta * C[i * ldc + j]);
        }
}

/* OpenBLAS's thread count is process-wide, and contexts may run on several
 * threads at once: the first of any number of overlapping serial sections
 * saves the count and sets 1, the last restores it, under one lock. */
static pthread_mutex_t serial_lock = PTHREAD_MUTEX_INITIALIZER;
static int serial_depth, serial_saved;

void nm_blas_serial_begin(void)
{
    if (blas_is_openmp()) return;
    pthread_mutex_lock(&serial_lock);
    if (serial_depth++ == 0) {
        serial_saved = openblas_get_num_threads();
        openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&serial_lock);
}

void nm_blas_serial_end(void)
{
    if (blas_is_openmp()) return;
    pthread_mutex_lock(&serial_lock);
    if (serial_depth > 0 && --serial_depth == 0) openblas_set_num_threads(serial_saved);
    pthread_mutex_unlock(&serial_lock);
}
