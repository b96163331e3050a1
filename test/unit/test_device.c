/*
 * test_device.c — the backend loader without a GPU: the CPU always opens; "auto" falls back
 * to the CPU with a notice when the CUDA module or a GPU is missing; "cuda" then fails with
 * GR_ERR_DEVICE and a message naming what is missing; bogus module paths and files that are
 * not genrec modules give clear errors. When build/genrec_cuda.so exists (nvcc was found) its
 * no-GPU path is checked (or, on a GPU machine, that it opens and copies memory); when the
 * CPU emulation build/genrec_cuda_emu.so exists, the whole open / ops / close path is run.
 * Run from the repository root (make unit does).
 */
#include "gr_device.h"
#include "unit.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The emulated module of the build this test belongs to (BUILD/genrec_cuda_emu.so, found
 * from the test's own path BUILD/unit/test_device; a sanitizer build has none). */
static char emu_path[GR_DEVICE_PATH_LEN];

#define EMU_PATH emu_path

/* The emulation's counters (gr_cuda_emu.h; declared here: that header is C++). */
typedef struct emu_counters
{
	unsigned long launches;
	unsigned long refused;
	unsigned long func_attribute_calls;
	long		live_streams;
	long		live_allocations;
} emu_counters;

typedef void (*emu_counters_fn) (emu_counters *out);
typedef int (*emu_try_launch_fn) (unsigned gx, unsigned gy, unsigned gz, unsigned bx,
								  unsigned by, unsigned bz, size_t dyn_smem, size_t static_smem,
								  int granted_dyn_smem);

/* A symbol of the emulated module (loaded by gr_device_open or here). */
static void *
emu_sym(const char *name)
{
	void	   *h = dlopen(EMU_PATH, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);

	return h ? dlsym(h, name) : NULL;
}

/* The emulation's counters now. */
static emu_counters
emu_now(void)
{
	emu_counters c;
	emu_counters_fn fn = (emu_counters_fn) emu_sym("gr_emu_counters");

	memset(&c, 0, sizeof(c));
	if (fn != NULL)
		fn(&c);
	return c;
}

/* Upload, copy and download a buffer through a backend; true when it round-trips. */
static bool
roundtrip(const gr_ops *ops)
{
	float		in[37], out[37];
	gr_error	err;
	bool		ok;

	for (int i = 0; i < 37; i++)
		in[i] = (float) i * 0.5f - 3.0f;
	memset(out, 0, sizeof(out));
	float	   *a = ops->alloc(ops->ctx, sizeof(in));
	float	   *b = ops->alloc(ops->ctx, sizeof(in));

	if (a == NULL || b == NULL)
		return false;
	ops->upload(ops->ctx, a, in, sizeof(in));
	ops->copy(ops->ctx, b, a, sizeof(in));
	ops->add(ops->ctx, b, b, a, 37);
	ops->download(ops->ctx, out, b, sizeof(out));
	ok = ops->check(ops->ctx, &err) == GR_OK;
	for (int i = 0; i < 37; i++)
		ok = ok && out[i] == 2.0f * in[i];
	ops->free(ops->ctx, a);
	ops->free(ops->ctx, b);
	return ok;
}

/* The CPU, bad arguments and missing or bogus modules. */
static void
test_without_module(void)
{
	gr_device	dev;
	gr_error	err;
	char		notice[GR_DEVICE_NOTICE_LEN];
	char		path[] = "/tmp/genrec_test_device_XXXXXX";
	gr_status	st;

	unsetenv(GR_CUDA_MODULE_ENV);
	unsetenv(GR_CUDA_MATH_ENV);

	/* cpu always works and never touches the module */
	memset(&err, 0, sizeof(err));
	CHECK_OK(gr_device_open("cpu", NULL, "/nonexistent/genrec_cuda.so", NULL, &dev, notice,
							&err), &err);
	CHECK(dev.ops == gr_ops_cpu());
	CHECK(dev.kind == GR_DEVICE_CPU);
	CHECK(notice[0] == '\0');
	CHECK(roundtrip(dev.ops));
	gr_device_close(&dev);

	/* bad kind and bad math mode */
	st = gr_device_open("gpu", NULL, NULL, NULL, &dev, notice, &err);
	CHECK(st == GR_ERR_INVALID_ARGUMENT);
	CHECK_MSG(strstr(err.message, "unknown device") != NULL, "%s", err.message);
	st = gr_device_open("cpu", "fp16", NULL, NULL, &dev, notice, &err);
	CHECK(st == GR_ERR_INVALID_ARGUMENT);
	CHECK_MSG(strstr(err.message, "math mode") != NULL, "%s", err.message);

	/* cuda with a missing module: a clear error */
	st = gr_device_open("cuda", NULL, "/nonexistent/dir/genrec_cuda.so", NULL, &dev, notice,
						&err);
	CHECK(st == GR_ERR_DEVICE);
	CHECK_MSG(strstr(err.message, "genrec_cuda.so not found at /nonexistent/dir/genrec_cuda.so")
			  != NULL, "%s", err.message);
	CHECK(dev.ops == NULL);

	/* the default location is module_dir/genrec_cuda.so */
	st = gr_device_open("cuda", NULL, NULL, "/nonexistent/lib", &dev, notice, &err);
	CHECK(st == GR_ERR_DEVICE);
	CHECK_MSG(strstr(err.message, "/nonexistent/lib/genrec_cuda.so") != NULL, "%s",
			  err.message);

	/* $GENREC_CUDA_MODULE overrides the directory */
	setenv(GR_CUDA_MODULE_ENV, "/nonexistent/env/genrec_cuda.so", 1);
	st = gr_device_open("cuda", NULL, NULL, "/nonexistent/lib", &dev, notice, &err);
	CHECK(st == GR_ERR_DEVICE);
	CHECK_MSG(strstr(err.message, "/nonexistent/env/genrec_cuda.so") != NULL, "%s",
			  err.message);
	unsetenv(GR_CUDA_MODULE_ENV);

	/* auto with a missing module: the CPU, and a notice saying why */
	memset(&err, 0, sizeof(err));
	CHECK_OK(gr_device_open("auto", NULL, "/nonexistent/dir/genrec_cuda.so", NULL, &dev,
							notice, &err), &err);
	CHECK(dev.ops == gr_ops_cpu());
	CHECK_MSG(strstr(notice, "no usable GPU, using the CPU") != NULL &&
			  strstr(notice, "not found") != NULL, "%s", notice);
	CHECK(roundtrip(dev.ops));
	gr_device_close(&dev);

	/* a file that is not a shared object */
	int			fd = mkstemp(path);

	CHECK(fd >= 0);
	if (fd >= 0)
	{
		CHECK(write(fd, "not an ELF file\n", 16) == 16);
		close(fd);
		st = gr_device_open("cuda", NULL, path, NULL, &dev, notice, &err);
		CHECK(st == GR_ERR_DEVICE);
		CHECK_MSG(strstr(err.message, "cannot load the CUDA module") != NULL, "%s",
				  err.message);
		CHECK_OK(gr_device_open("auto", NULL, path, NULL, &dev, notice, &err), &err);
		CHECK(dev.ops == gr_ops_cpu() && notice[0] != '\0');
		unlink(path);
	}

	/* a shared object that is not a genrec module */
	st = gr_device_open("cuda", NULL, "libm.so.6", NULL, &dev, notice, &err);
	CHECK(st == GR_ERR_DEVICE);
	CHECK_MSG(strstr(err.message, "is not a genrec CUDA module") != NULL, "%s", err.message);
}

/* The real module, where nvcc built it: no GPU here means a clear error or a fallback. */
static void
test_real_module(void)
{
	const char *path = "build/genrec_cuda.so";
	gr_device	dev;
	gr_error	err;
	char		notice[GR_DEVICE_NOTICE_LEN];
	gr_status	st;

	if (access(path, F_OK) != 0)
	{
		printf("test_device: %s not built (no nvcc); its checks skipped\n", path);
		return;
	}
	memset(&err, 0, sizeof(err));
	st = gr_device_open("cuda", "tf32", NULL, "build", &dev, notice, &err);
	if (st == GR_OK)
	{
		printf("test_device: a GPU is present: %s\n", dev.ops->name);
		CHECK(dev.kind == GR_DEVICE_CUDA && dev.ops->device == GR_DEVICE_CUDA);
		CHECK(roundtrip(dev.ops));
		gr_device_close(&dev);
		CHECK_OK(gr_device_open("auto", NULL, NULL, "build", &dev, notice, &err), &err);
		CHECK(dev.kind == GR_DEVICE_CUDA && notice[0] == '\0');
		gr_device_close(&dev);
		return;
	}
	printf("test_device: --device cuda here: %s\n", err.message);
	CHECK(st == GR_ERR_DEVICE);
	CHECK_MSG(strstr(err.message, "no CUDA device") != NULL ||
			  strstr(err.message, "cannot load the CUDA module") != NULL, "%s", err.message);
	CHECK_OK(gr_device_open("auto", NULL, NULL, "build", &dev, notice, &err), &err);
	CHECK(dev.ops == gr_ops_cpu());
	CHECK_MSG(strstr(notice, "no usable GPU, using the CPU") != NULL, "%s", notice);
	printf("test_device: --device auto here: %s\n", notice);
	gr_device_close(&dev);
}

/* The CPU emulation of the module: the full open / ops / close path, and "no device". */
static void
test_emulated_module(void)
{
	const char *path = EMU_PATH;
	gr_device	dev;
	gr_error	err;
	char		notice[GR_DEVICE_NOTICE_LEN];
	gr_status	st;

	if (access(path, F_OK) != 0)
	{
		printf("test_device: %s not built (make cuda-emu); its checks skipped\n", path);
		return;
	}
	setenv("GR_EMU_NO_DEVICE", "1", 1);
	st = gr_device_open("cuda", NULL, path, NULL, &dev, notice, &err);
	CHECK(st == GR_ERR_DEVICE);
	CHECK_MSG(strstr(err.message, "no CUDA device") != NULL, "%s", err.message);
	CHECK_OK(gr_device_open("auto", NULL, path, NULL, &dev, notice, &err), &err);
	CHECK(dev.ops == gr_ops_cpu());
	CHECK_MSG(strstr(notice, "no CUDA device") != NULL, "%s", notice);
	unsetenv("GR_EMU_NO_DEVICE");

	setenv(GR_CUDA_MATH_ENV, "bf16", 1);
	memset(&err, 0, sizeof(err));
	CHECK_OK(gr_device_open("cuda", NULL, path, NULL, &dev, notice, &err), &err);
	unsetenv(GR_CUDA_MATH_ENV);
	if (dev.ops != NULL)
	{
		CHECK(dev.kind == GR_DEVICE_CUDA && dev.math == GR_MATH_BF16);
		CHECK_MSG(strstr(dev.ops->name, "bf16") != NULL, "%s", dev.ops->name);
		CHECK(roundtrip(dev.ops));
		gr_device_close(&dev);
		CHECK(dev.ops == NULL);
	}
}

/* The emulation refuses what an sm_90 GPU refuses (so a passing op suite respects it). */
static void
test_emulated_limits(void)
{
	emu_try_launch_fn try_launch = (emu_try_launch_fn) emu_sym("gr_emu_try_launch");
	emu_counters before = emu_now();
	enum
	{
	OK = 0, INVALID_VALUE = 1, INVALID_CONFIG = 9};

	CHECK(try_launch != NULL);
	if (try_launch == NULL)
		return;
	setenv("GR_EMU_QUIET", "1", 1);		/* the refusals below are expected */
	CHECK(try_launch(4, 2, 3, 1024, 1, 1, 0, 0, 0) == OK);
	CHECK(try_launch(1, 1, 1, 32, 32, 1, 0, 0, 0) == OK);
	CHECK(try_launch(1, 1, 1, 1025, 1, 1, 0, 0, 0) == INVALID_CONFIG);
	CHECK(try_launch(1, 1, 1, 64, 32, 1, 0, 0, 0) == INVALID_CONFIG);
	CHECK(try_launch(1, 1, 1, 1, 1, 65, 0, 0, 0) == INVALID_CONFIG);
	CHECK(try_launch(1, 65536, 1, 32, 1, 1, 0, 0, 0) == INVALID_CONFIG);
	CHECK(try_launch(1, 1, 65536, 32, 1, 1, 0, 0, 0) == INVALID_CONFIG);
	CHECK(try_launch(0, 1, 1, 32, 1, 1, 0, 0, 0) == INVALID_CONFIG);
	CHECK(try_launch(70000, 1, 1, 1, 1, 1, 0, 0, 0) == OK);	/* grid x may exceed 65535 */
	/* dynamic shared memory: 48 KB freely, more only when granted, never above 227 KB */
	CHECK(try_launch(1, 1, 1, 32, 1, 1, 48 * 1024, 0, 0) == OK);
	CHECK(try_launch(1, 1, 1, 32, 1, 1, 48 * 1024 + 4, 0, 0) == INVALID_VALUE);
	CHECK(try_launch(1, 1, 1, 32, 1, 1, 160 * 1024, 0, 160 * 1024) == OK);
	CHECK(try_launch(1, 1, 1, 32, 1, 1, 170 * 1024, 0, 160 * 1024) == INVALID_VALUE);
	CHECK(try_launch(1, 1, 1, 32, 1, 1, 0, 0, 228 * 1024) == INVALID_VALUE);
	/* static shared memory: 48 KB, and 227 KB with the dynamic part */
	CHECK(try_launch(2, 1, 1, 32, 1, 1, 0, 40 * 1024, 0) == OK);
	CHECK(try_launch(2, 1, 1, 32, 1, 1, 0, 49 * 1024, 0) == INVALID_VALUE);
	CHECK(try_launch(2, 1, 1, 32, 1, 1, 190 * 1024, 40 * 1024, 190 * 1024) == INVALID_VALUE);

	emu_counters after = emu_now();

	unsetenv("GR_EMU_QUIET");
	CHECK_MSG(after.refused - before.refused == 10, "refused %lu",
			  after.refused - before.refused);
}

/* Run attention forward and backward through the ops (head size d / n_head). */
static bool
run_attention(const gr_ops *o, int n_head, int d)
{
	int32_t		off[3] = {0, 70, 75}, nh[2] = {70, 3};
	size_t		nq = (size_t) 75 * 3 * d, no = (size_t) 75 * d;
	float	   *host = calloc(nq, sizeof(float));
	gr_error	err;

	for (size_t i = 0; i < nq; i++)
		host[i] = (float) ((i * 37) % 101) / 101.0f - 0.5f;
	float	   *qkv = o->alloc(o->ctx, nq * 4), *out = o->alloc(o->ctx, no * 4);
	float	   *lse = o->alloc(o->ctx, 75 * n_head * 4), *dqkv = o->alloc(o->ctx, nq * 4);
	int32_t    *doff = o->alloc(o->ctx, sizeof(off)), *dnh = o->alloc(o->ctx, sizeof(nh));
	gr_attn_seqs seqs = {2, 70, off, nh, doff, dnh};

	o->upload(o->ctx, qkv, host, nq * 4);
	o->upload(o->ctx, doff, off, sizeof(off));
	o->upload(o->ctx, dnh, nh, sizeof(nh));
	o->attn_fwd(o->ctx, out, lse, qkv, NULL, &seqs, GR_MASK_CAUSAL, n_head, d);
	o->attn_bwd(o->ctx, dqkv, NULL, out, qkv, NULL, out, lse, &seqs, GR_MASK_CAUSAL, n_head, d);
	bool		ok = o->check(o->ctx, &err) == GR_OK;

	if (!ok)
		fprintf(stderr, "test_device: attention: %s\n", err.message);
	void	   *bufs[] = {qkv, out, lse, dqkv, doff, dnh};

	for (int i = 0; i < 6; i++)
		o->free(o->ctx, bufs[i]);
	free(host);
	return ok;
}

/* Shared-memory grants are made once per context, not per launch. */
static void
test_emulated_attributes(void)
{
	gr_device	dev;
	gr_error	err;
	char		notice[GR_DEVICE_NOTICE_LEN];
	emu_counters a, b;

	CHECK_OK(gr_device_open("cuda", "fp32", EMU_PATH, NULL, &dev, notice, &err), &err);
	if (dev.ops == NULL)
		return;
	a = emu_now();
	for (int rep = 0; rep < 3; rep++)
	{
		CHECK(run_attention(dev.ops, 2, 64));	/* head size 32 */
		CHECK(run_attention(dev.ops, 1, 64));	/* 64 */
		CHECK(run_attention(dev.ops, 1, 128));	/* 128 */
	}
	b = emu_now();
	CHECK_MSG(b.launches >= a.launches + 9 * 3 && b.refused == a.refused,
			  "launches %lu, refused %lu", b.launches - a.launches, b.refused - a.refused);
	CHECK_MSG(b.func_attribute_calls == a.func_attribute_calls,
			  "cudaFuncSetAttribute called %lu times by 18 attention launches",
			  b.func_attribute_calls - a.func_attribute_calls);
	gr_device_close(&dev);

	/* a failing cublasSetMathMode fails the open, saying so */
	setenv("GR_EMU_FAIL", "cublasSetMathMode", 1);
	gr_status	st = gr_device_open("cuda", "fp32", EMU_PATH, NULL, &dev, notice, &err);

	unsetenv("GR_EMU_FAIL");
	CHECK(st == GR_ERR_DEVICE);
	CHECK_MSG(st != GR_OK && strstr(err.message, "math mode") != NULL, "%s", err.message);
	if (st == GR_OK)
		gr_device_close(&dev);
}

/* In a child process (a faulted context stays faulted): gelu_fwd faults asynchronously, add
 * is queued after it; the error must name gelu_fwd_kernel, not blame add_kernel. */
static int
fault_child(bool sync_each)
{
	gr_device	dev;
	gr_error	err;
	char		notice[GR_DEVICE_NOTICE_LEN];
	float		host[64] = {0};
	int			bad = 0;

	setenv("GR_EMU_FAULT", "gelu_fwd_kernel", 1);
	if (sync_each)
		setenv("GENREC_CUDA_SYNC", "1", 1);
	if (gr_device_open("cuda", "fp32", EMU_PATH, NULL, &dev, notice, &err) != GR_OK)
		return 10;
	const gr_ops *o = dev.ops;
	float	   *a = o->alloc(o->ctx, sizeof(host)), *b = o->alloc(o->ctx, sizeof(host));

	o->upload(o->ctx, a, host, sizeof(host));
	o->add(o->ctx, b, a, a, 64);
	if (o->check(o->ctx, &err) != GR_OK)
		bad++;					/* nothing faulted yet */
	o->gelu_fwd(o->ctx, b, a, 64);
	o->add(o->ctx, b, b, a, 64);
	o->add(o->ctx, b, b, a, 64);
	if (o->check(o->ctx, &err) != GR_ERR_DEVICE)
		bad++;
	printf("test_device: asynchronous fault (%s): %s\n", sync_each ? "synchronised" : "queued",
		   err.message);
	if (strstr(err.message, "gelu_fwd_kernel") == NULL ||
		strstr(err.message, "illegal memory access") == NULL ||
		strstr(err.message, "in add_kernel") != NULL ||
		strstr(err.message, "launching add_kernel") != NULL)
		bad++;
	if (sync_each && strstr(err.message, "CUDA error in gelu_fwd_kernel") == NULL)
		bad++;
	return bad;
}

/* Asynchronous faults are reported under the kernel that faulted (each case in a fresh
 * process: a faulted context stays faulted, and OpenMP does not survive a plain fork). */
static void
test_emulated_fault(void)
{
	for (int sync_each = 0; sync_each < 2; sync_each++)
	{
		int			status = 0;
		pid_t		pid;

		fflush(stdout);
		pid = fork();
		if (pid == 0)
		{
			execl("/proc/self/exe", "test_device", "--fault-child", sync_each ? "1" : "0",
				  (char *) NULL);
			_exit(127);
		}
		CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
		CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fault child (sync %d) "
				  "status %d", sync_each, status);
	}
}

int
main(int argc, char **argv)
{
	char		dir[GR_DEVICE_PATH_LEN - 32];

	if (!gr_device_exe_dir(dir, sizeof(dir)))
		snprintf(dir, sizeof(dir), "build/unit");
	snprintf(emu_path, sizeof(emu_path), "%s/../genrec_cuda_emu.so", dir);
	if (argc == 3 && strcmp(argv[1], "--fault-child") == 0)
		return fault_child(argv[2][0] == '1');
	test_without_module();
	test_real_module();
	test_emulated_module();
	if (access(EMU_PATH, F_OK) == 0)
	{
		test_emulated_limits();
		test_emulated_attributes();
		test_emulated_fault();
	}
	return unit_finish("test_device");
}
