/*
 * gr_cuda_emu.h — a CPU emulation of the CUDA features cuda/ sources uses, for testing the
 * kernels' logic where no GPU exists (make cuda-emu builds build/genrec_cuda_emu.so).
 *
 * Each block's threads run as cooperative fibers (ucontext) on one OS thread; a fiber runs
 * until it reaches __syncthreads (all live threads of the block), a warp barrier
 * (__syncwarp, and every shuffle, over the 32 threads of its warp) or its end. Running each
 * thread as far as it can before switching is an adversarial schedule: a missing barrier
 * shows up as a wrong result. Blocks run in parallel on OpenMP threads, __shared__ variables
 * are per OS thread, and atomics are real atomics (every word they read is read atomically,
 * once: make cuda-emu-check's contention group checks exact sums across blocks). Memory is host memory; cuBLAS GEMMs use
 * the engine's reference GEMM (gr_gemm_ref) after mapping cuBLAS's column-major convention
 * back to row-major, so the backend's row-major-to-column-major mapping is tested too.
 *
 * Launches are checked against what an sm_90 GPU (H100 / H200) accepts, and refused with the
 * error the runtime would give: at most 1024 threads per block (x, y <= 1024, z <= 64), grid
 * y and z <= 65535, dynamic shared memory above 48 KB only after cudaFuncSetAttribute
 * (MaxDynamicSharedMemorySize) granted it to that kernel, at most 48 KB of static shared
 * memory (declared with GR_SHARED, which the emulation counts; a bare __shared__ does not
 * compile here) and at most 227 KB of both. A refused launch is printed to stderr and counted.
 *
 * Asynchronous faults are modelled too: GR_EMU_FAULT=kernel (the name GR_LAUNCH gives it)
 * makes that kernel "fault" instead of running, leaving a sticky cudaErrorIllegalAddress that
 * every later runtime call returns, as a real context would after an illegal access.
 *
 * Environment: GR_EMU_NO_DEVICE=1 makes cudaGetDeviceCount report no device;
 * GR_EMU_FAIL=cublasSetMathMode makes that call fail. Counters for tests: gr_emu_counters().
 * This header is test machinery: it is never part of genrec_cuda.so.
 */
#ifndef GR_CUDA_EMU_H
#define GR_CUDA_EMU_H

#include <functional>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__
#define __align__(n) __attribute__((aligned(n)))
/* static shared memory must be declared with GR_SHARED (gr_cuda.h) so it is counted */
#define __shared__ static_assert(false, "declare shared memory with GR_SHARED") ;

struct dim3
{
	unsigned	x, y, z;
	dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1):x(a), y(b), z(c)
	{
	}
};

extern thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

/* runtime */
typedef enum cudaError
{
	cudaSuccess = 0,
	cudaErrorInvalidValue = 1,
	cudaErrorMemoryAllocation = 2,
	cudaErrorInvalidConfiguration = 9,
	cudaErrorNoDevice = 100,
	cudaErrorIllegalAddress = 700
} cudaError_t;
typedef enum cudaMemcpyKind
{
	cudaMemcpyHostToDevice = 1,
	cudaMemcpyDeviceToHost = 2,
	cudaMemcpyDeviceToDevice = 3
} cudaMemcpyKind;
typedef struct gr_emu_stream *cudaStream_t;
typedef struct cudaDeviceProp
{
	char		name[256];
	int			major, minor;
	int			multiProcessorCount;
	size_t		sharedMemPerBlockOptin;
	size_t		totalGlobalMem;
} cudaDeviceProp;
enum
{
	cudaStreamNonBlocking = 1,
	cudaFuncAttributeMaxDynamicSharedMemorySize = 8
};

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k,
							cudaStream_t s);
cudaError_t cudaMemsetAsync(void *dst, int v, size_t bytes, cudaStream_t s);
cudaError_t cudaGetLastError(void);
cudaError_t gr_emu_func_set_attribute(const void *fn, int attr, int value);

template <typename F>
cudaError_t
cudaFuncSetAttribute(F fn, int attr, int value)
{
	return gr_emu_func_set_attribute((const void *) fn, attr, value);
}

/* cuBLAS */
typedef struct gr_emu_blas *cublasHandle_t;
typedef enum
{
	CUBLAS_STATUS_SUCCESS = 0,
	CUBLAS_STATUS_INVALID_VALUE = 7
} cublasStatus_t;
typedef enum
{
	CUBLAS_OP_N = 0,
	CUBLAS_OP_T = 1
} cublasOperation_t;
typedef enum
{
	CUBLAS_COMPUTE_32F = 68,
	CUBLAS_COMPUTE_32F_FAST_16BF = 75,
	CUBLAS_COMPUTE_32F_FAST_TF32 = 77
} cublasComputeType_t;
typedef enum
{
	CUDA_R_32F = 0
} cudaDataType;
typedef enum
{
	CUBLAS_DEFAULT_MATH = 0,
	CUBLAS_PEDANTIC_MATH = 2
} cublasMath_t;
typedef enum
{
	CUBLAS_GEMM_DEFAULT = -1
} cublasGemmAlgo_t;

cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m);
const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
							int m, int n, int k, const void *alpha, const void *A,
							cudaDataType at, int lda, const void *B, cudaDataType bt, int ldb,
							const void *beta, void *C, cudaDataType ct, int ldc,
							cublasComputeType_t compute, cublasGemmAlgo_t algo);

/* kernels */
void		gr_emu_launch(const void *fn, const char *name, dim3 grid, dim3 block, size_t smem,
						  std::function<void()> body);
void	   *gr_emu_dyn_smem(void);
void		gr_emu_static_smem(const void *addr, size_t bytes);
unsigned	gr_emu_warp_ballot(int pred);
void		gr_emu_syncthreads(void);
void		gr_emu_syncwarp(void);
void		gr_emu_warp_exchange(uint64_t *v, int src_lane);
int			gr_emu_lane(void);

#define __syncthreads() gr_emu_syncthreads()
#define __syncwarp(...) gr_emu_syncwarp()

/* Shuffle: publish v to the warp, read lane src's value. */
template <typename T>
static inline T
gr_emu_shfl(T v, int src)
{
	uint64_t	w = 0;
	T			out;

	memcpy(&w, &v, sizeof(T));
	gr_emu_warp_exchange(&w, src);
	memcpy(&out, &w, sizeof(T));
	return out;
}

template <typename T>
static inline T
__shfl_xor_sync(unsigned, T v, int mask)
{
	return gr_emu_shfl(v, gr_emu_lane() ^ mask);
}

template <typename T>
static inline T
__shfl_sync(unsigned, T v, int lane)
{
	return gr_emu_shfl(v, lane & 31);
}

/*
 * Add v to *p atomically; returns the old value. The word is read once, atomically, and the
 * sum is computed from that very read: a plain read of *p (a data race) let the compiler load
 * the word twice, once for the sum and once for the compare-and-swap, so under contention a
 * stale sum was swapped in against a fresh word and another block's update was lost.
 */
static inline float
atomicAdd(float *p, float v)
{
	uint32_t   *w = (uint32_t *) p;
	uint32_t	o = __atomic_load_n(w, __ATOMIC_RELAXED), n;
	float		old, nv;

	do
	{
		memcpy(&old, &o, 4);
		nv = old + v;
		memcpy(&n, &nv, 4);
		/* on failure o is reloaded with the current word, atomically */
	} while (!__atomic_compare_exchange_n(w, &o, n, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	return old;
}

static inline int
atomicAdd(int *p, int v)
{
	return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}

static inline unsigned
atomicAdd(unsigned *p, unsigned v)
{
	return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}

static inline int
atomicSub(int *p, int v)
{
	return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST);
}

static inline unsigned
__ballot_sync(unsigned, int pred)
{
	return gr_emu_warp_ballot(pred);
}

static inline int
__popc(unsigned v)
{
	return __builtin_popcount(v);
}

static inline unsigned
__float_as_uint(float f)
{
	unsigned	u;

	memcpy(&u, &f, 4);
	return u;
}

template <typename T>
static inline T
__ldg(const T *p)
{
	return *p;
}

static inline int
min(int a, int b)
{
	return a < b ? a : b;
}

static inline int
max(int a, int b)
{
	return a > b ? a : b;
}

static inline float
rsqrtf(float x)
{
	return 1.0f / sqrtf(x);
}

/* What the emulation counted, for tests (exported by genrec_cuda_emu.so). */
typedef struct gr_emu_counters_t
{
	unsigned long launches;		/* kernels run */
	unsigned long refused;		/* launches refused (limits) */
	unsigned long func_attribute_calls; /* cudaFuncSetAttribute calls */
	long		live_streams;	/* streams created and not destroyed */
	long		live_allocations;	/* cudaMalloc'd blocks not freed */
} gr_emu_counters_t;

extern "C" void gr_emu_counters(gr_emu_counters_t *out);

/* Try a launch of an empty kernel; the error the emulation gives (tests of the limits). */
extern "C" int gr_emu_try_launch(unsigned gx, unsigned gy, unsigned gz, unsigned bx,
								 unsigned by, unsigned bz, size_t dyn_smem, size_t static_smem,
								 int granted_dyn_smem);

#endif							/* GR_CUDA_EMU_H */
