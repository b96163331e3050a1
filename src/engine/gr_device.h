/*
 * gr_device.h — choosing the compute backend: the CPU ops, or the CUDA ops of the separate
 * module genrec_cuda.so, loaded with dlopen on first GPU use.
 *
 * Nothing here needs CUDA headers: the engine, the CLI and the PostgreSQL extension load and
 * run where CUDA is absent. The module exports the C entry points declared below
 * (gr_cuda_abi_version, gr_cuda_open, gr_cuda_close); the loader resolves them by name.
 *
 * Device kinds: "cpu" always works; "cuda" fails with GR_ERR_DEVICE and a clear message when
 * the module or a usable GPU is missing; "auto" uses the GPU when it can and otherwise falls
 * back to the CPU, saying why in a notice (the caller shows it, e.g. as a NOTICE).
 *
 * Math modes (GPU only; the CPU is always fp32):
 *   fp32  GEMMs in full fp32 (CUBLAS_COMPUTE_32F)
 *   tf32  GEMMs on TF32 tensor cores with fp32 accumulation (the GPU default)
 *   bf16  GEMMs on bf16 tensor cores with fp32 accumulation (CUBLAS_COMPUTE_32F_FAST_16BF):
 *         weights, activations and optimiser state stay fp32 in memory (fp32 master weights)
 *         and only the GEMM inputs are rounded to bf16 inside cuBLAS
 * Everything other than GEMMs (attention, LayerNorm, losses, AdamW, ...) runs in fp32 in
 * every mode.
 */
#ifndef GR_DEVICE_H
#define GR_DEVICE_H

#include "gr_ops.h"

#define GR_CUDA_ABI_VERSION 2	/* 2: gr_ops gained hstu_attn, gate and adamw_rows */
#define GR_CUDA_MODULE_NAME "genrec_cuda.so"
#define GR_CUDA_MODULE_ENV "GENREC_CUDA_MODULE"
#define GR_CUDA_MATH_ENV "GENREC_CUDA_MATH"
#define GR_DEVICE_NOTICE_LEN 256
#define GR_DEVICE_PATH_LEN 1024

typedef enum gr_math_mode
{
	GR_MATH_FP32 = 0,
	GR_MATH_TF32 = 1,
	GR_MATH_BF16 = 2
} gr_math_mode;

/* Options handed to the module's gr_cuda_open. */
typedef struct gr_cuda_options
{
	int			abi_version;	/* GR_CUDA_ABI_VERSION */
	int			device_ordinal; /* CUDA device index, normally 0 */
	gr_math_mode math;
} gr_cuda_options;

/* The module's entry points (C linkage, exported by genrec_cuda.so). */
typedef int (*gr_cuda_abi_version_fn) (void);
typedef gr_status (*gr_cuda_open_fn) (const gr_cuda_options *opt, gr_ops **out,
									  gr_error *err);
typedef void (*gr_cuda_close_fn) (gr_ops *ops);

int			gr_cuda_abi_version(void);
gr_status	gr_cuda_open(const gr_cuda_options *opt, gr_ops **out, gr_error *err);
void		gr_cuda_close(gr_ops *ops);

/* An opened backend: put ops into gr_env.ops; close it after every model using it is gone. */
typedef struct gr_device
{
	const gr_ops *ops;			/* CPU or CUDA ops */
	gr_device_kind kind;		/* what was opened */
	gr_math_mode math;			/* fp32 on the CPU */
	void	   *module;			/* dlopen handle, or NULL */
	gr_ops	   *cuda_ops;		/* owned by the module */
	gr_cuda_close_fn close_fn;
	char		module_path[GR_DEVICE_PATH_LEN];	/* the module tried, if any */
} gr_device;

/*
 * Open a backend. kind is "cpu", "cuda" or "auto" (NULL = "auto"); math is "fp32", "tf32" or
 * "bf16" (NULL = $GENREC_CUDA_MATH when set, else "tf32"). The module is module_path when
 * given, else $GENREC_CUDA_MODULE when set, else module_dir/genrec_cuda.so (module_dir NULL:
 * the dynamic linker's search path).
 * notice (GR_DEVICE_NOTICE_LEN bytes, may be NULL) receives the reason for an auto fallback
 * to the CPU and is empty otherwise. CUDA is only initialised for "cuda" and "auto".
 */
gr_status	gr_device_open(const char *kind, const char *math, const char *module_path,
						   const char *module_dir, gr_device *out, char *notice,
						   gr_error *err);

/* Release a backend opened by gr_device_open (the CPU needs nothing); NULL is ignored. */
void		gr_device_close(gr_device *dev);

/* Parse "fp32" | "tf32" | "bf16". */
gr_status	gr_math_mode_parse(const char *s, gr_math_mode *out, gr_error *err);

/* Name of a math mode. */
const char *gr_math_mode_name(gr_math_mode m);

/* Directory of the running executable (for module_dir), or false. */
bool		gr_device_exe_dir(char *buf, size_t len);

#endif							/* GR_DEVICE_H */
