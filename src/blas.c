/*
 * blas.c — the single wrapper over CBLAS (STYLE item 6): every matrix
 * product in the library goes through these named functions, row-major,
 * with explicit transposes, plus a naive loop version kept for tests.
 *
 * One thread pool: the build links OpenBLAS's OpenMP flavour where it is
 * installed (CMakeLists.txt). BLAS then threads itself on OpenMP's threads
 * outside parallel regions and runs on one thread inside them, and the
 * serial sections below have nothing to do. With the pthread flavour, whose
 * threads are a pool of their own, a serial section makes BLAS
 * single-threaded while OpenMP threads run their own products.
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

void nm_gemm_f64(nm_trans ta, nm_trans tb, int64_t m, int64_t n, int64_t k, double alpha,
                 const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                 double *C, int64_t ldc)
{
    if (m == 0 || n == 0) return;
    cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), (int)m, (int)n, (int)k, alpha, A, (int)lda, B,
                (int)ldb, beta, C, (int)ldc);
}

void nm_gemm_f32(nm_trans ta, nm_trans tb, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                 float *C, int64_t ldc)
{
    if (m == 0 || n == 0) return;
    int nt = omp_get_max_threads();
    if (nt > 1 && m * n * k >= ((int64_t)1 << 21) && !omp_in_parallel() && !blas_is_openmp() && openblas_get_num_threads() == 1) {
        /* BLAS is serial here (nm_blas_serial_begin): split the larger side
         * of C over the OpenMP threads instead. Each block of C is computed
         * whole by one thread, so the result does not depend on the split. */
        int by_rows = m >= n;
        int64_t len = by_rows ? m : n, blk = (len + nt - 1) / nt;
        #pragma omp parallel for schedule(static)
        for (int t = 0; t < nt; t++) {
            int64_t lo = t * blk, cnt = len - lo < blk ? len - lo : blk;
            if (cnt <= 0) continue;
            if (by_rows)
                cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), (int)cnt, (int)n, (int)k, alpha, ta == NM_TRANS ? A + lo : A + lo * lda,
                            (int)lda, B, (int)ldb, beta, C + lo * ldc, (int)ldc);
            else
                cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), (int)m, (int)cnt, (int)k, alpha, A, (int)lda,
                            tb == NM_TRANS ? B + lo * ldb : B + lo, (int)ldb, beta, C + lo, (int)ldc);
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), (int)m, (int)n, (int)k, alpha, A, (int)lda, B,
                (int)ldb, beta, C, (int)ldc);
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

void nm_symm_right_f64(int64_t m, int64_t k, double alpha, const double *S, int64_t lds,
                       const double *B, int64_t ldb, double beta, double *C, int64_t ldc)
{
    if (m == 0 || k == 0) return;
    cblas_dsymm(CblasRowMajor, CblasRight, CblasLower, (int)m, (int)k, alpha, S, (int)lds, B,
                (int)ldb, beta, C, (int)ldc);
}

void nm_symm_right_f32(int64_t m, int64_t k, float alpha, const float *S, int64_t lds,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (m == 0 || k == 0) return;
    cblas_ssymm(CblasRowMajor, CblasRight, CblasLower, (int)m, (int)k, alpha, S, (int)lds, B,
                (int)ldb, beta, C, (int)ldc);
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
