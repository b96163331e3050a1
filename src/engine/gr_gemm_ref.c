/*
 * gr_gemm_ref.c — a plain-C blocked GEMM for builds without a BLAS library (GR_BLAS=none),
 * with the row-major semantics of cblas_sgemm. Tiles of op(A) and op(B) are packed into
 * contiguous buffers so the inner loop is unit-stride whatever the transposes; output tiles
 * are shared out among OpenMP threads, so no two threads write the same element.
 * It is also the reference GEMM of the CUDA emulation used to test cuda/ without a GPU.
 */
#include "gr_ops_cpu.h"

#include <string.h>

#define REF_MB 32				/* rows of C per tile */
#define REF_NB 64				/* columns of C per tile */
#define REF_KB 128				/* depth per packed panel */

/* Element (i, p) of op(A). */
static inline float
op_a(bool ta, const float *a, int lda, int i, int p)
{
	return ta ? a[(size_t) p * lda + i] : a[(size_t) i * lda + p];
}

/* Element (p, j) of op(B). */
static inline float
op_b(bool tb, const float *b, int ldb, int p, int j)
{
	return tb ? b[(size_t) j * ldb + p] : b[(size_t) p * ldb + j];
}

/* C[m,n] = alpha op(A) op(B) + beta C, row-major; beta == 0 never reads C. */
GR_HOT
void
gr_gemm_ref(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
			const float *b, int ldb, float beta, float *c, int ldc)
{
	int			tiles_m = (m + REF_MB - 1) / REF_MB;
	int			tiles_n = (n + REF_NB - 1) / REF_NB;
	long		n_tiles = (long) tiles_m * tiles_n;

	if (m <= 0 || n <= 0)
		return;
#pragma omp parallel for schedule(dynamic, 1) if (n_tiles > 1 && (double) m * n * k > 1e6)
	for (long t = 0; t < n_tiles; t++)
	{
		int			i0 = (int) (t / tiles_n) * REF_MB, j0 = (int) (t % tiles_n) * REF_NB;
		int			mb = GR_MIN(REF_MB, m - i0), nb = GR_MIN(REF_NB, n - j0);
		float		acc[REF_MB][REF_NB];
		float		pa[REF_MB][REF_KB];
		float		pb[REF_KB][REF_NB];

		memset(acc, 0, sizeof(acc));
		for (int p0 = 0; p0 < k; p0 += REF_KB)
		{
			int			kb = GR_MIN(REF_KB, k - p0);

			for (int i = 0; i < mb; i++)
				for (int p = 0; p < kb; p++)
					pa[i][p] = op_a(ta, a, lda, i0 + i, p0 + p);
			for (int p = 0; p < kb; p++)
			{
				for (int j = 0; j < nb; j++)
					pb[p][j] = op_b(tb, b, ldb, p0 + p, j0 + j);
				for (int j = nb; j < REF_NB; j++)
					pb[p][j] = 0.0f;
			}
			for (int i = 0; i < mb; i++)
				for (int p = 0; p < kb; p++)
				{
					float		av = pa[i][p];

					for (int j = 0; j < REF_NB; j++)
						acc[i][j] += av * pb[p][j];
				}
		}
		for (int i = 0; i < mb; i++)
		{
			float	   *cr = c + (size_t) (i0 + i) * ldc + j0;

			if (beta == 0.0f)
				for (int j = 0; j < nb; j++)
					cr[j] = alpha * acc[i][j];
			else
				for (int j = 0; j < nb; j++)
					cr[j] = alpha * acc[i][j] + beta * cr[j];
		}
	}
}
