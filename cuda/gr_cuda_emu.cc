/*
 * gr_cuda_emu.cc — the CPU emulation behind gr_cuda_emu.h: fibers for a block's threads,
 * barriers, warp exchanges, host-memory "device" allocations and a column-major cuBLAS GEMM
 * on top of the engine's reference GEMM. Test machinery only (make cuda-emu).
 */
#include "gr_cuda_emu.h"

#include <ucontext.h>
#include <vector>

extern "C" void gr_gemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
							const float *a, int lda, const float *b, int ldb, float beta,
							float *c, int ldc);

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

#define EMU_STACK (128 * 1024)

enum emu_state
{
	F_READY,
	F_BLOCK_BAR,
	F_WARP_BAR,
	F_DONE
};

struct emu_fiber
{
	ucontext_t	uc;
	emu_state	st;
	char	   *stack;
};

struct emu_worker
{
	std::vector<emu_fiber> fibers;
	std::vector<uint64_t> slots;
	std::vector<char> dyn;
	ucontext_t	sched;
	int			cur;
	unsigned	nthreads;
	const std::function<void()> *body;
};

static thread_local emu_worker *W;
static thread_local cudaError_t last_error = cudaSuccess;

/* Set threadIdx from a linear thread index. */
static void
set_thread(unsigned t)
{
	threadIdx.x = t % blockDim.x;
	threadIdx.y = (t / blockDim.x) % blockDim.y;
	threadIdx.z = t / (blockDim.x * blockDim.y);
}

/* Run the kernel body as the current fiber. */
static void
trampoline(void)
{
	(*W->body) ();
	W->fibers[W->cur].st = F_DONE;
}

/* Give control back to the scheduler in state st. */
static void
block_on(emu_state st)
{
	emu_fiber  *f = &W->fibers[W->cur];

	f->st = st;
	swapcontext(&f->uc, &W->sched);
	set_thread((unsigned) W->cur);
}

void
gr_emu_syncthreads(void)
{
	block_on(F_BLOCK_BAR);
}

void
gr_emu_syncwarp(void)
{
	block_on(F_WARP_BAR);
}

int
gr_emu_lane(void)
{
	return W->cur & 31;
}

void
gr_emu_warp_exchange(uint64_t *v, int src)
{
	int			me = W->cur;

	W->slots[me] = *v;
	block_on(F_WARP_BAR);
	*v = W->slots[(me & ~31) + src];
	block_on(F_WARP_BAR);
}

void *
gr_emu_dyn_smem(void)
{
	return W->dyn.data();
}

/* Release barriers whose participants have all arrived; false if none could be. */
static bool
release_barriers(void)
{
	unsigned	n = W->nthreads;
	bool		any = false;
	unsigned	live = 0, at_block = 0;

	for (unsigned i = 0; i < n; i++)
		if (W->fibers[i].st != F_DONE)
		{
			live++;
			at_block += W->fibers[i].st == F_BLOCK_BAR;
		}
	if (live > 0 && at_block == live)
	{
		for (unsigned i = 0; i < n; i++)
			if (W->fibers[i].st == F_BLOCK_BAR)
				W->fibers[i].st = F_READY;
		return true;
	}
	for (unsigned w = 0; w < n; w += 32)
	{
		unsigned	e = w + 32 < n ? w + 32 : n, wl = 0, wb = 0;

		for (unsigned i = w; i < e; i++)
			if (W->fibers[i].st != F_DONE)
			{
				wl++;
				wb += W->fibers[i].st == F_WARP_BAR;
			}
		if (wl > 0 && wb == wl)
		{
			for (unsigned i = w; i < e; i++)
				if (W->fibers[i].st == F_WARP_BAR)
					W->fibers[i].st = F_READY;
			any = true;
		}
	}
	return any;
}

/* Run one block: every thread as a fiber, until all are done. */
static void
run_block(void)
{
	unsigned	n = W->nthreads;

	for (unsigned i = 0; i < n; i++)
	{
		emu_fiber  *f = &W->fibers[i];

		getcontext(&f->uc);
		f->uc.uc_stack.ss_sp = f->stack;
		f->uc.uc_stack.ss_size = EMU_STACK;
		f->uc.uc_link = &W->sched;
		makecontext(&f->uc, trampoline, 0);
		f->st = F_READY;
	}
	for (;;)
	{
		bool		ran = false, live = false;

		for (unsigned i = 0; i < n; i++)
			if (W->fibers[i].st == F_READY)
			{
				W->cur = (int) i;
				set_thread(i);
				swapcontext(&W->sched, &W->fibers[i].uc);
				ran = true;
			}
		for (unsigned i = 0; i < n; i++)
			live |= W->fibers[i].st != F_DONE;
		if (!live)
			return;
		if (!release_barriers() && !ran)
		{
			fprintf(stderr, "gr_cuda_emu: barrier deadlock in block (%u,%u,%u)\n",
					blockIdx.x, blockIdx.y, blockIdx.z);
			exit(3);
		}
	}
}

void
gr_emu_launch(dim3 grid, dim3 block, size_t smem, std::function<void()> body)
{
	long		nblocks = (long) grid.x * grid.y * grid.z;
	unsigned	nthreads = block.x * block.y * block.z;

	if (nthreads == 0 || nthreads > 1024 || smem > 227 * 1024 || nblocks <= 0)
	{
		last_error = cudaErrorInvalidValue;
		return;
	}
#pragma omp parallel
	{
		emu_worker	w;

		w.fibers.resize(nthreads);
		for (auto &f:w.fibers)
			f.stack = (char *) malloc(EMU_STACK);
		w.slots.assign(nthreads, 0);
		w.dyn.assign(smem + 16, (char) 0xff);	/* NaN garbage, as uninitialised */
		w.nthreads = nthreads;
		w.body = &body;
		W = &w;
		blockDim = block;
		gridDim = grid;
#pragma omp for schedule(dynamic, 1)
		for (long b = 0; b < nblocks; b++)
		{
			blockIdx.x = (unsigned) (b % grid.x);
			blockIdx.y = (unsigned) ((b / grid.x) % grid.y);
			blockIdx.z = (unsigned) (b / ((long) grid.x * grid.y));
			run_block();
		}
		for (auto &f:w.fibers)
			free(f.stack);
		W = NULL;
	}
}

const char *
cudaGetErrorString(cudaError_t e)
{
	switch (e)
	{
		case cudaSuccess:
			return "no error";
		case cudaErrorInvalidValue:
			return "invalid argument";
		case cudaErrorMemoryAllocation:
			return "out of memory";
		case cudaErrorNoDevice:
			return "no CUDA-capable device is detected";
	}
	return "unknown error";
}

cudaError_t
cudaGetDeviceCount(int *n)
{
	const char *e = getenv("GR_EMU_NO_DEVICE");

	if (e != NULL && e[0] == '1')
	{
		*n = 0;
		return cudaErrorNoDevice;
	}
	*n = 1;
	return cudaSuccess;
}

cudaError_t
cudaSetDevice(int d)
{
	return d == 0 ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t
cudaGetDeviceProperties(cudaDeviceProp *p, int d)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "genrec CUDA emulation (CPU)");
	p->major = 9;
	p->minor = 0;
	p->multiProcessorCount = 4;
	p->sharedMemPerBlockOptin = 227 * 1024;
	p->totalGlobalMem = (size_t) 1 << 33;
	return d == 0 ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t
cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
	*s = (cudaStream_t) malloc(1);
	return cudaSuccess;
}

cudaError_t
cudaStreamDestroy(cudaStream_t s)
{
	free(s);
	return cudaSuccess;
}

cudaError_t
cudaStreamSynchronize(cudaStream_t s)
{
	return cudaSuccess;
}

cudaError_t
cudaMalloc(void **p, size_t bytes)
{
	*p = aligned_alloc(256, (bytes + 255) & ~(size_t) 255);
	if (*p == NULL)
		return cudaErrorMemoryAllocation;
	memset(*p, 0xff, bytes);	/* device memory starts as garbage */
	return cudaSuccess;
}

cudaError_t
cudaFree(void *p)
{
	free(p);
	return cudaSuccess;
}

cudaError_t
cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k, cudaStream_t s)
{
	if (bytes > 0 && dst != src)
		memmove(dst, src, bytes);
	return cudaSuccess;
}

cudaError_t
cudaMemsetAsync(void *dst, int v, size_t bytes, cudaStream_t s)
{
	memset(dst, v, bytes);
	return cudaSuccess;
}

cudaError_t
cudaGetLastError(void)
{
	cudaError_t e = last_error;

	last_error = cudaSuccess;
	return e;
}

cublasStatus_t
cublasCreate(cublasHandle_t *h)
{
	*h = (cublasHandle_t) malloc(1);
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasDestroy(cublasHandle_t h)
{
	free(h);
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasSetMathMode(cublasHandle_t h, cublasMath_t m)
{
	return CUBLAS_STATUS_SUCCESS;
}

const char *
cublasGetStatusString(cublasStatus_t s)
{
	return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE";
}

/* Column-major C = alpha op(A) op(B) + beta C, as cuBLAS defines it. */
cublasStatus_t
cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
			 const void *alpha, const void *A, cudaDataType at, int lda, const void *B,
			 cudaDataType bt, int ldb, const void *beta, void *C, cudaDataType ct, int ldc,
			 cublasComputeType_t compute, cublasGemmAlgo_t algo)
{
	int			rows_a = ta == CUBLAS_OP_N ? m : k;
	int			rows_b = tb == CUBLAS_OP_N ? k : n;

	if (m < 0 || n < 0 || k < 0 || lda < (rows_a > 1 ? rows_a : 1) ||
		ldb < (rows_b > 1 ? rows_b : 1) || ldc < (m > 1 ? m : 1))
		return CUBLAS_STATUS_INVALID_VALUE;
	if (m == 0 || n == 0)
		return CUBLAS_STATUS_SUCCESS;
	/* column-major C[m,n] is row-major C^T[n,m] = op(B)^T op(A)^T */
	gr_gemm_ref(tb == CUBLAS_OP_T, ta == CUBLAS_OP_T, n, m, k, *(const float *) alpha,
				(const float *) B, ldb, (const float *) A, lda, *(const float *) beta,
				(float *) C, ldc);
	return CUBLAS_STATUS_SUCCESS;
}
