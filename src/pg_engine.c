/*
 * pg_engine.c — the bridge between the backend and the engine: allocation in memory contexts,
 * interrupt polling, the compute device chosen by genrec.device, and engine errors as
 * ereport with SQLSTATEs.
 */
#include "pg_genrec.h"

#include "access/parallel.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "gr_device.h"

/* The backend's opened device; opened lazily, kept for the backend's life. */
static gr_device backend_device;
static bool backend_device_open = false;
static int	backend_device_kind = -1;

/* Allocate engine memory in the context given as user; NULL on failure (the engine reports it). */
static void *
context_alloc(void *user, size_t bytes)
{
	return MemoryContextAllocExtended((MemoryContext) user, bytes,
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

/* Free engine memory. */
static void
context_free(void *user, void *ptr)
{
	pfree(ptr);
}

/* Report a pending cancel or timeout so the engine unwinds; the caller then raises it. */
static bool
interrupt_pending(void *user)
{
	return InterruptPending && (QueryCancelPending || ProcDiePending);
}

/* Fill an engine environment bound to a memory context and the backend's interrupts. */
void
genrec_engine_env(gr_env *env, MemoryContext mcxt,
				  void (*progress) (void *user, const gr_progress *p), void *user)
{
	gr_env_default(env);
	env->allocator.alloc = context_alloc;
	env->allocator.free = context_free;
	env->allocator.user = mcxt;
	env->interrupted = interrupt_pending;
	env->progress = progress;
	env->callback_user = user;
	env->n_threads = genrec_threads;
	env->ops = genrec_backend_ops();
	if (env->ops->device == GR_DEVICE_CPU)
	{
		/* CPU buffers (parameters, activations) live in mcxt too, so an ERROR frees them */
		gr_allocator *a = MemoryContextAlloc(mcxt, sizeof(gr_allocator));
		gr_ops	   *ops = MemoryContextAlloc(mcxt, sizeof(gr_ops));

		*a = env->allocator;
		gr_ops_cpu_bind(ops, a);
		env->ops = ops;
	}
	gr_ops_cpu_set_threads(genrec_threads);
}

/* The ops for genrec.device, opening the CUDA module on first GPU use. */
const gr_ops *
genrec_backend_ops(void)
{
	static const char *const kinds[] = {"auto", "cpu", "cuda"};
	char		notice[GR_DEVICE_NOTICE_LEN];
	char		libdir[MAXPGPATH];
	gr_error	err = {0};

	if (backend_device_open && backend_device_kind == genrec_device_guc)
		return backend_device.ops;
	if (backend_device_open)
	{
		gr_device_close(&backend_device);
		backend_device_open = false;
	}
	get_pkglib_path(my_exec_path, libdir);
	if (gr_device_open(kinds[genrec_device_guc], genrec_cuda_math, NULL, libdir,
					   &backend_device, notice, &err) != GR_OK)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("genrec.device = %s: %s", kinds[genrec_device_guc], err.message),
				 errhint("Set genrec.device to 'auto' or 'cpu' to use the CPU.")));
	if (notice[0] != '\0' && !IsParallelWorker())
		ereport(NOTICE,
				(errmsg("genrec.device = auto: using the CPU"),
				 errdetail("%s", notice)));
	backend_device_open = true;
	backend_device_kind = genrec_device_guc;
	return backend_device.ops;
}

/* Raise an engine failure as an ERROR (or the pending interrupt for a cancel). */
void
genrec_raise_engine_error(const gr_error *err, const char *context)
{
	int			code;

	switch (err->status)
	{
		case GR_ERR_CANCELLED:
			CHECK_FOR_INTERRUPTS();
			code = ERRCODE_QUERY_CANCELED;
			break;
		case GR_ERR_INVALID_ARGUMENT:
		case GR_ERR_EMPTY_HISTORY:
		case GR_ERR_NO_DATA:
			code = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
		case GR_ERR_OUT_OF_MEMORY:
			code = ERRCODE_OUT_OF_MEMORY;
			break;
		case GR_ERR_CORRUPT_MODEL:
			code = ERRCODE_DATA_CORRUPTED;
			break;
		case GR_ERR_DEVICE:
			code = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
			break;
		case GR_ERR_IO:
			code = ERRCODE_IO_ERROR;
			break;
		case GR_ERR_NUMERIC:
			code = ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
			break;
		default:
			code = ERRCODE_INTERNAL_ERROR;
			break;
	}
	ereport(ERROR,
			(errcode(code),
			 context ? errmsg("%s: %s", context, err->message) : errmsg("%s", err->message)));
	pg_unreachable();
}
