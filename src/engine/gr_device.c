/*
 * gr_device.c — the backend loader: the CPU ops, or the CUDA ops from genrec_cuda.so opened
 * with dlopen only when a GPU is asked for ("cuda") or allowed ("auto"). Nothing here links
 * against CUDA, so the engine runs where CUDA is absent; "auto" then falls back to the CPU
 * with a notice, and "cuda" fails with GR_ERR_DEVICE and a message saying what is missing.
 */
#include "gr_device.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parse a math mode name. */
gr_status
gr_math_mode_parse(const char *s, gr_math_mode *out, gr_error *err)
{
	if (s == NULL || strcmp(s, "tf32") == 0)
		*out = GR_MATH_TF32;
	else if (strcmp(s, "fp32") == 0)
		*out = GR_MATH_FP32;
	else if (strcmp(s, "bf16") == 0)
		*out = GR_MATH_BF16;
	else
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "unknown math mode \"%s\" (expected fp32, tf32 or bf16)", s);
	return GR_OK;
}

/* Name of a math mode. */
const char *
gr_math_mode_name(gr_math_mode m)
{
	switch (m)
	{
		case GR_MATH_FP32:
			return "fp32";
		case GR_MATH_TF32:
			return "tf32";
		case GR_MATH_BF16:
			return "bf16";
	}
	return "?";
}

/* Directory of the running executable, from /proc/self/exe. */
bool
gr_device_exe_dir(char *buf, size_t len)
{
	ssize_t		n;
	char	   *slash;

	if (len < 2)
		return false;
	n = readlink("/proc/self/exe", buf, len - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash == NULL)
		return false;
	if (slash == buf)
		slash[1] = '\0';
	else
		*slash = '\0';
	return true;
}

/* Fill dev with the CPU backend. */
static void
use_cpu(gr_device *dev)
{
	dev->ops = gr_ops_cpu();
	dev->kind = GR_DEVICE_CPU;
	dev->math = GR_MATH_FP32;
}

/* Work out which module file to load. */
static gr_status
module_path(const char *explicit_path, const char *dir, char *out, gr_error *err)
{
	const char *env = getenv(GR_CUDA_MODULE_ENV);
	int			n;

	if (explicit_path != NULL && explicit_path[0] != '\0')
		n = snprintf(out, GR_DEVICE_PATH_LEN, "%s", explicit_path);
	else if (env != NULL && env[0] != '\0')
		n = snprintf(out, GR_DEVICE_PATH_LEN, "%s", env);
	else if (dir != NULL && dir[0] != '\0')
		n = snprintf(out, GR_DEVICE_PATH_LEN, "%s/%s", dir, GR_CUDA_MODULE_NAME);
	else
		n = snprintf(out, GR_DEVICE_PATH_LEN, "%s", GR_CUDA_MODULE_NAME);
	if (n < 0 || n >= GR_DEVICE_PATH_LEN)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "CUDA module path is too long");
	return GR_OK;
}

/* dlopen the module, check its ABI and open the CUDA backend. */
static gr_status
open_cuda(gr_device *dev, gr_math_mode math, gr_error *err)
{
	const char *path = dev->module_path;
	gr_cuda_abi_version_fn abi_fn;
	gr_cuda_open_fn open_fn;
	gr_cuda_close_fn close_fn;
	gr_cuda_options opt;
	gr_ops	   *ops = NULL;
	gr_status	st;
	void	   *h;

	/* a bare name goes through the dynamic linker's search path; a path must exist */
	if (strchr(path, '/') != NULL && access(path, F_OK) != 0)
		return gr_fail(err, GR_ERR_DEVICE,
					   "%s not found at %s (build it with make where nvcc is installed, "
					   "or set %s)", GR_CUDA_MODULE_NAME, path, GR_CUDA_MODULE_ENV);
	dlerror();
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (h == NULL)
	{
		const char *why = dlerror();

		return gr_fail(err, GR_ERR_DEVICE, "cannot load the CUDA module %s: %s", path,
					   why ? why : "unknown dlopen error");
	}
	abi_fn = (gr_cuda_abi_version_fn) dlsym(h, "gr_cuda_abi_version");
	open_fn = (gr_cuda_open_fn) dlsym(h, "gr_cuda_open");
	close_fn = (gr_cuda_close_fn) dlsym(h, "gr_cuda_close");
	if (abi_fn == NULL || open_fn == NULL || close_fn == NULL)
	{
		dlclose(h);
		return gr_fail(err, GR_ERR_DEVICE,
					   "%s is not a genrec CUDA module (gr_cuda_open, gr_cuda_close or "
					   "gr_cuda_abi_version missing)", path);
	}
	if (abi_fn() != GR_CUDA_ABI_VERSION)
	{
		int			v = abi_fn();

		dlclose(h);
		return gr_fail(err, GR_ERR_DEVICE,
					   "CUDA module %s has interface version %d, the engine needs %d; rebuild it",
					   path, v, GR_CUDA_ABI_VERSION);
	}
	memset(&opt, 0, sizeof(opt));
	opt.abi_version = GR_CUDA_ABI_VERSION;
	opt.device_ordinal = 0;
	opt.math = math;
	st = open_fn(&opt, &ops, err);
	if (st != GR_OK || ops == NULL)
	{
		dlclose(h);
		if (st == GR_OK)
			st = gr_fail(err, GR_ERR_INTERNAL, "CUDA module returned no ops");
		return st;
	}
	dev->module = h;
	dev->cuda_ops = ops;
	dev->close_fn = close_fn;
	dev->ops = ops;
	dev->kind = GR_DEVICE_CUDA;
	dev->math = math;
	return GR_OK;
}

/* Open the CPU, CUDA or automatically chosen backend. */
gr_status
gr_device_open(const char *kind, const char *math, const char *explicit_path,
			   const char *module_dir, gr_device *out, char *notice, gr_error *err)
{
	gr_math_mode mm;
	gr_status	st;
	gr_error	e;
	bool		strict;

	memset(out, 0, sizeof(*out));
	if (notice)
		notice[0] = '\0';
	if (kind == NULL)
		kind = "auto";
	if (math == NULL || math[0] == '\0')
		math = getenv(GR_CUDA_MATH_ENV);
	GR_TRY(gr_math_mode_parse(math && math[0] ? math : NULL, &mm, err));
	if (strcmp(kind, "cpu") == 0)
	{
		use_cpu(out);
		return GR_OK;
	}
	if (strcmp(kind, "cuda") == 0)
		strict = true;
	else if (strcmp(kind, "auto") == 0)
		strict = false;
	else
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "unknown device \"%s\" (expected cpu, cuda or auto)", kind);
	GR_TRY(module_path(explicit_path, module_dir, out->module_path, err));
	memset(&e, 0, sizeof(e));
	st = open_cuda(out, mm, &e);
	if (st == GR_OK)
		return GR_OK;
	if (strict || st != GR_ERR_DEVICE)
		return gr_fail(err, st, "%s", e.message);
	/* auto: fall back to the CPU and say why */
	if (notice)
		snprintf(notice, GR_DEVICE_NOTICE_LEN, "no usable GPU, using the CPU: %.220s", e.message);
	use_cpu(out);
	return GR_OK;
}

/* Close the CUDA backend, if one was opened. */
void
gr_device_close(gr_device *dev)
{
	if (dev == NULL)
		return;
	if (dev->cuda_ops != NULL && dev->close_fn != NULL)
		dev->close_fn(dev->cuda_ops);
	if (dev->module != NULL)
		dlclose(dev->module);		/* RTLD_NODELETE: stays mapped for CUDA's exit handlers */
	dev->cuda_ops = NULL;
	dev->close_fn = NULL;
	dev->module = NULL;
	dev->ops = NULL;
}
