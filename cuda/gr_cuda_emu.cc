/*
 * gr_cuda_emu.cc — the CPU emulation behind gr_cuda_emu.h: fibers for a block's threads,
 * barriers, warp exchanges and ballots, host-memory "device" allocations, the launch limits
 * of an sm_90 GPU, sticky asynchronous faults, and a column-major cuBLAS GEMM on top of the
 * engine's reference GEMM. Test machinery only (make cuda-emu).
 */
#include "gr_cuda_emu.h"

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <ucontext.h>
#include <vector>

extern "C" void gr_gemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
							const float *a, int lda, const float *b, int ldb, float beta,
							float *c, int ldc);

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

#define EMU_STACK (128 * 1024)

/* sm_90 limits (H100 / H200) */
#define EMU_MAX_THREADS 1024u
#define EMU_MAX_BLOCK_Z 64u
#define EMU_MAX_GRID_X 2147483647u
#define EMU_MAX_GRID_YZ 65535u
#define EMU_SMEM_DEFAULT (48u * 1024u)	/* static, and dynamic without an opt-in */
#define EMU_SMEM_OPTIN (227u * 1024u)	/* static + dynamic, with the opt-in */

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
	std::vector<const void *> statics;	/* static shared variables seen in this block */
	size_t		static_bytes;
	size_t		dyn_bytes;
	const char *kernel;
	ucontext_t	sched;
	int			cur;
	unsigned	nthreads;
	const std::function<void()> *body;
};

static thread_local emu_worker *W;
static thread_local cudaError_t last_error = cudaSuccess;

/* a fault of an earlier kernel: every later call returns it, as on a real context */
static std::atomic<int> sticky_error(cudaSuccess);
/* a launch found to break a limit while its blocks ran (static shared memory) */
static std::atomic<int> running_launch_error(cudaSuccess);

static std::mutex attr_lock;
static std::map<const void *, int> granted_smem;	/* cudaFuncSetAttribute grants */
static std::atomic<unsigned long> n_launches(0), n_refused(0), n_attr_calls(0);
static std::atomic<long> n_streams(0), n_allocs(0);

/* a kernel faulted but its launch was not checked yet: the launch itself succeeded */
static std::atomic<bool> fault_in_flight(false);

/* Record an error, returned once by cudaGetLastError. */
static cudaError_t
emu_error(cudaError_t e)
{
	if (e != cudaSuccess)
		last_error = e;
	return e;
}

/* The sticky error, if a kernel faulted; any call but the faulting launch's own check sees it. */
static cudaError_t
emu_sticky(void)
{
	if (fault_in_flight.exchange(false))
		sticky_error.store(cudaErrorIllegalAddress);
	return (cudaError_t) sticky_error.load();
}

/* Print and count a refused launch. */
static cudaError_t
refuse(const char *kernel, cudaError_t e, const char *why)
{
	n_refused++;
	if (getenv("GR_EMU_QUIET") == NULL)
		fprintf(stderr, "gr_cuda_emu: launch of %s refused (an sm_90 GPU would refuse it too): %s\n",
			kernel, why);
	return e;
}

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

unsigned
gr_emu_warp_ballot(int pred)
{
	int			me = W->cur, base = me & ~31;
	unsigned	bits = 0;

	W->slots[me] = pred != 0;
	block_on(F_WARP_BAR);
	for (int i = 0; i < 32 && (unsigned) (base + i) < W->nthreads; i++)
		bits |= (W->slots[base + i] != 0 ? 1u : 0u) << i;
	block_on(F_WARP_BAR);
	return bits;
}

/* Count a static shared variable once per block; a block over the limits fails its launch. */
void
gr_emu_static_smem(const void *addr, size_t bytes)
{
	char		why[200];

	for (const void *p:W->statics)
		if (p == addr)
			return;
	W->statics.push_back(addr);
	W->static_bytes += bytes;
	if (W->static_bytes > EMU_SMEM_DEFAULT || W->static_bytes + W->dyn_bytes > EMU_SMEM_OPTIN)
	{
		int			expected = cudaSuccess;

		snprintf(why, sizeof(why), "%zu bytes of static and %zu of dynamic shared memory "
				 "(limits: 48 KB static, 227 KB in all)", W->static_bytes, W->dyn_bytes);
		if (running_launch_error.compare_exchange_strong(expected, cudaErrorInvalidValue))
			refuse(W->kernel, cudaErrorInvalidValue, why);
	}
}

/* Record a kernel's dynamic shared memory grant, refusing what no sm_90 block can have. */
cudaError_t
gr_emu_func_set_attribute(const void *fn, int attr, int value)
{
	n_attr_calls++;
	if (emu_sticky() != cudaSuccess)
		return emu_sticky();
	if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
		(unsigned) value > EMU_SMEM_OPTIN)
		return emu_error(cudaErrorInvalidValue);
	std::lock_guard<std::mutex> g(attr_lock);
	granted_smem[fn] = value;
	return cudaSuccess;
}

/* Dynamic shared memory a kernel may ask for: 48 KB, or what was granted to it. */
static size_t
dyn_smem_limit(const void *fn)
{
	std::lock_guard<std::mutex> g(attr_lock);
	auto		it = granted_smem.find(fn);

	return it == granted_smem.end() ? EMU_SMEM_DEFAULT :
		(size_t) (it->second > (int) EMU_SMEM_DEFAULT ? it->second : EMU_SMEM_DEFAULT);
}

/* The error an sm_90 GPU gives for this launch configuration, or cudaSuccess. */
static cudaError_t
check_launch(const void *fn, const char *name, dim3 grid, dim3 block, size_t smem)
{
	char		why[200];
	unsigned long nthreads = (unsigned long) block.x * block.y * block.z;

	if (block.x == 0 || block.y == 0 || block.z == 0 || block.x > EMU_MAX_THREADS ||
		block.y > EMU_MAX_THREADS || block.z > EMU_MAX_BLOCK_Z || nthreads > EMU_MAX_THREADS)
	{
		snprintf(why, sizeof(why), "block (%u, %u, %u): at most 1024 threads, z <= 64",
				 block.x, block.y, block.z);
		return refuse(name, cudaErrorInvalidConfiguration, why);
	}
	if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > EMU_MAX_GRID_X ||
		grid.y > EMU_MAX_GRID_YZ || grid.z > EMU_MAX_GRID_YZ)
	{
		snprintf(why, sizeof(why), "grid (%u, %u, %u): x < 2^31, y and z <= 65535", grid.x,
				 grid.y, grid.z);
		return refuse(name, cudaErrorInvalidConfiguration, why);
	}
	if (smem > dyn_smem_limit(fn))
	{
		snprintf(why, sizeof(why), "%zu bytes of dynamic shared memory, %zu granted (above "
				 "48 KB needs cudaFuncSetAttribute(MaxDynamicSharedMemorySize))", smem,
				 dyn_smem_limit(fn));
		return refuse(name, cudaErrorInvalidValue, why);
	}
	return cudaSuccess;
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
gr_emu_launch(const void *fn, const char *name, dim3 grid, dim3 block, size_t smem,
			  std::function<void()> body)
{
	long		nblocks = (long) grid.x * grid.y * grid.z;
	unsigned	nthreads = block.x * block.y * block.z;
	const char *fault = getenv("GR_EMU_FAULT");
	cudaError_t e;

	if (emu_sticky() != cudaSuccess)
		return;					/* a faulted context runs nothing */
	if ((e = check_launch(fn, name, grid, block, smem)) != cudaSuccess)
	{
		emu_error(e);
		return;
	}
	n_launches++;
	if (fault != NULL && strcmp(fault, name) == 0)
	{
		/* this kernel "faults": nothing is written; its launch succeeds and the error
		 * surfaces at the next call (a later launch, a synchronisation, a copy) */
		fault_in_flight.store(true);
		return;
	}
	running_launch_error.store(cudaSuccess);
#pragma omp parallel
	{
		emu_worker	w;

		w.fibers.resize(nthreads);
		for (auto &f:w.fibers)
			f.stack = (char *) malloc(EMU_STACK);
		w.slots.assign(nthreads, 0);
		w.dyn.assign(smem + 16, (char) 0xff);	/* NaN garbage, as uninitialised */
		w.dyn_bytes = smem;
		w.kernel = name;
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
			w.statics.clear();
			w.static_bytes = 0;
			run_block();
		}
		for (auto &f:w.fibers)
			free(f.stack);
		W = NULL;
	}
	if ((e = (cudaError_t) running_launch_error.load()) != cudaSuccess)
		emu_error(e);
}

/* Counters for tests. */
extern "C" void
gr_emu_counters(gr_emu_counters_t *out)
{
	out->launches = n_launches.load();
	out->refused = n_refused.load();
	out->func_attribute_calls = n_attr_calls.load();
	out->live_streams = n_streams.load();
	out->live_allocations = n_allocs.load();
}

/* An empty kernel with static_smem bytes of static shared memory (tests of the limits). */
static void
probe_kernel(size_t static_smem)
{
	static thread_local char big[EMU_SMEM_OPTIN];

	if (static_smem > 0)
		gr_emu_static_smem(big, static_smem);
}

extern "C" int
gr_emu_try_launch(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
				  size_t dyn_smem, size_t static_smem, int granted_dyn_smem)
{
	static int	probe_fn;		/* a distinct "function" per grant state */
	const void *fn = granted_dyn_smem > 0 ? (const void *) &probe_fn : (const void *) &n_refused;

	cudaGetLastError();
	if (granted_dyn_smem > 0 && gr_emu_func_set_attribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
														  granted_dyn_smem) != cudaSuccess)
		return (int) cudaGetLastError();
	gr_emu_launch(fn, "probe_kernel", dim3(gx, gy, gz), dim3(bx, by, bz), dyn_smem,
				  [=]() { probe_kernel(static_smem); });
	return (int) cudaGetLastError();
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
		case cudaErrorInvalidConfiguration:
			return "invalid configuration argument";
		case cudaErrorIllegalAddress:
			return "an illegal memory access was encountered";
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
	if (emu_sticky() != cudaSuccess)
		return emu_sticky();
	*s = (cudaStream_t) malloc(1);
	n_streams++;
	return cudaSuccess;
}

cudaError_t
cudaStreamDestroy(cudaStream_t s)
{
	free(s);
	n_streams--;
	return cudaSuccess;
}

cudaError_t
cudaStreamSynchronize(cudaStream_t s)
{
	return emu_sticky();
}

cudaError_t
cudaMalloc(void **p, size_t bytes)
{
	if (emu_sticky() != cudaSuccess)
		return emu_sticky();
	*p = aligned_alloc(256, (bytes + 255) & ~(size_t) 255);
	if (*p == NULL)
		return emu_error(cudaErrorMemoryAllocation);
	memset(*p, 0xff, bytes);	/* device memory starts as garbage */
	n_allocs++;
	return cudaSuccess;
}

cudaError_t
cudaFree(void *p)
{
	if (p != NULL)
	{
		free(p);
		n_allocs--;
	}
	return emu_sticky();
}

cudaError_t
cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k, cudaStream_t s)
{
	if (emu_sticky() != cudaSuccess)
		return emu_sticky();
	if (bytes > 0 && dst != src)
		memmove(dst, src, bytes);
	return cudaSuccess;
}

cudaError_t
cudaMemsetAsync(void *dst, int v, size_t bytes, cudaStream_t s)
{
	if (emu_sticky() != cudaSuccess)
		return emu_sticky();
	memset(dst, v, bytes);
	return cudaSuccess;
}

cudaError_t
cudaGetLastError(void)
{
	cudaError_t e = last_error;

	if (fault_in_flight.exchange(false))
	{
		/* the check right after a faulting launch: the launch was fine, the fault is not
		 * known yet; from now on every call reports it */
		sticky_error.store(cudaErrorIllegalAddress);
		last_error = cudaSuccess;
		return e;
	}
	if (emu_sticky() != cudaSuccess)
		return emu_sticky();	/* sticky: never cleared */
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
	const char *f = getenv("GR_EMU_FAIL");

	if (f != NULL && strcmp(f, "cublasSetMathMode") == 0)
		return CUBLAS_STATUS_INVALID_VALUE;
	return m == CUBLAS_DEFAULT_MATH || m == CUBLAS_PEDANTIC_MATH ? CUBLAS_STATUS_SUCCESS :
		CUBLAS_STATUS_INVALID_VALUE;
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
