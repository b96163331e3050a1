/*
 * gr_blas.c — OpenBLAS, loaded at first use.
 *
 * The engine opens OpenBLAS with dlopen instead of linking it, for two reasons measured on
 * this project's machines: (1) OpenBLAS picks its kernels when the library loads, and
 * 0.3.21 (Debian 12) does not recognise recent Xeons (CPUID model 207) and falls back to its
 * slowest "Prescott" kernels — 2.5x slower here — so the engine sets OPENBLAS_CORETYPE from
 * the CPU's features before loading, unless the user has set it; (2) the OpenMP build of
 * OpenBLAS shares the engine's OpenMP thread pool, where the pthread build's spinning workers
 * fight the engine's threads for the cores, so it is preferred when installed. Inside a
 * PostgreSQL backend the library is opened by the first training or scoring call, after the
 * backend has started. When no OpenBLAS can be opened (a GPU machine without it, or
 * GR_BLAS=none at build time) a plain-C GEMM is used.
 *
 * The loaded function pointers are process-wide by nature (one library per process), so they
 * live in a static table initialised once.
 */
#include "gr_ops_cpu.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef GR_MULTIARCH
#define GR_MULTIARCH "x86_64-linux-gnu"
#endif

/* CBLAS constants (cblas.h) */
enum
{
	CBLAS_ROW_MAJOR = 101,
	CBLAS_NO_TRANS = 111,
	CBLAS_TRANS = 112
};

typedef void (*cblas_sgemm_fn) (int order, int ta, int tb, int m, int n, int k, float alpha,
								const float *a, int lda, const float *b, int ldb, float beta,
								float *c, int ldc);
typedef void (*set_threads_fn) (int n);
typedef char *(*get_string_fn) (void);

static struct
{
	pthread_once_t once;
	cblas_sgemm_fn sgemm;
	set_threads_fn set_threads;
	char		name[320];
}			blas = {PTHREAD_ONCE_INIT, NULL, NULL, "builtin"};

/* Pick an OpenBLAS core type from the CPU's features when the user has not chosen one. */
static void
choose_core_type(void)
{
#if defined(__x86_64__)
	if (getenv("OPENBLAS_CORETYPE") != NULL)
		return;
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		__builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
		setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		setenv("OPENBLAS_CORETYPE", "Haswell", 0);
#endif
}

/* Open the first OpenBLAS found: $GENREC_BLAS_LIBRARY, the OpenMP build, then the default. */
static void
load_blas(void)
{
#ifndef GR_NO_BLAS
	const char *candidates[] = {
		getenv("GENREC_BLAS_LIBRARY"),
		"/usr/lib/" GR_MULTIARCH "/openblas-openmp/libopenblas.so.0",
		"libopenblas.so.0",
		"libopenblas.so",
	};

	choose_core_type();
	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
	{
		if (candidates[i] == NULL || candidates[i][0] == '\0')
			continue;
		void	   *h = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);

		if (h == NULL)
			continue;
		cblas_sgemm_fn f = (cblas_sgemm_fn) dlsym(h, "cblas_sgemm");

		if (f == NULL)
		{
			dlclose(h);
			continue;
		}
		get_string_fn config = (get_string_fn) dlsym(h, "openblas_get_config");
		get_string_fn core = (get_string_fn) dlsym(h, "openblas_get_corename");

		blas.sgemm = f;
		blas.set_threads = (set_threads_fn) dlsym(h, "openblas_set_num_threads");
		snprintf(blas.name, sizeof(blas.name), "%s (%s; core %s)", candidates[i],
				 config ? config() : "?", core ? core() : "?");
		return;
	}
#endif
}

/* Make sure the BLAS table is initialised. */
static void
ensure_blas(void)
{
	pthread_once(&blas.once, load_blas);
}

/* Row-major SGEMM through OpenBLAS when available, else the plain-C GEMM (gr_gemm_ref.c). */
void
gr_blas_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
			  const float *b, int ldb, float beta, float *c, int ldc)
{
	ensure_blas();
	if (blas.sgemm)
		blas.sgemm(CBLAS_ROW_MAJOR, ta ? CBLAS_TRANS : CBLAS_NO_TRANS,
				   tb ? CBLAS_TRANS : CBLAS_NO_TRANS, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	else
		gr_gemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* Set OpenBLAS's thread count (no-op for the builtin GEMM). */
void
gr_blas_set_threads(int n)
{
	ensure_blas();
	if (blas.set_threads && n > 0)
		blas.set_threads(n);
}

/* Describe the GEMM in use: library path, build configuration and core type. */
const char *
gr_blas_name(void)
{
	ensure_blas();
	return blas.name;
}
