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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	const char *path = "build/genrec_cuda_emu.so";
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

int
main(void)
{
	test_without_module();
	test_real_module();
	test_emulated_module();
	return unit_finish("test_device");
}
