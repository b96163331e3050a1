/*
 * pg_engine.c — the bridge between the backend and the engine: allocation in memory contexts,
 * interrupt polling, the compute device chosen by genrec.device and genrec.cuda_math, and
 * engine errors as ereport with SQLSTATEs.
 *
 * Devices. The backend opens the device its settings name on first use and keeps it. Each
 * engine environment built on it (a training, a cached model's view and session, a load)
 * holds a reference that its memory context releases. When a setting changes, the new device
 * is opened first, then every cached model built on an older device is retired (pg_cache.c:
 * freed now, or at its last unpin when a call still uses it), and an old device is closed
 * only when its last reference is gone: identity is a generation number, never a pointer
 * compared after it was freed, and nothing is freed while something still runs on it.
 *
 * Quiet defaults. With genrec.device = auto on a server without a usable GPU, the reason the
 * CPU is used is written once to the server log (and at DEBUG1 for the session), not as a
 * NOTICE to every client; genrec_device_info() tells it on demand.
 *
 * The serving worker. When it is on (pg_worker.h) it owns the device: auto means the CPU in
 * every backend (which then never initialises CUDA; an explicit cuda still opens it), and the
 * worker process forces genrec.device to its own device.
 */
#include "pg_genrec.h"
#include "pg_cache.h"
#include "pg_worker.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "gr_device.h"

/* An opened device and the environments that use it. */
typedef struct BackendDevice
{
	gr_device	dev;
	int			kind;			/* GENREC_DEVICE_* it was opened for */
	int			math;			/* GENREC_MATH_* */
	uint64		gen;
	int			refs;			/* environments holding it */
	bool		retired;		/* the settings moved on: close at the last reference */
	char		notice[GR_DEVICE_NOTICE_LEN];	/* why auto chose the CPU, or "" */
	struct BackendDevice *next_retired;
} BackendDevice;

/* A reference of an environment to a device, released with its memory context. */
typedef struct DeviceRef
{
	MemoryContextCallback cb;
	BackendDevice *device;
} DeviceRef;

static BackendDevice *current_device = NULL;
static BackendDevice *retired_devices = NULL;
static uint64 device_generations = 0;

static const char *const device_kind_names[] = {"auto", "cpu", "cuda"};
static const char *const math_names[] = {"tf32", "fp32", "bf16"};

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

/* Close a retired device nobody uses any more. */
static void
device_close_if_unused(BackendDevice *d)
{
	BackendDevice **p;

	if (!d->retired || d->refs > 0)
		return;
	for (p = &retired_devices; *p != NULL; p = &(*p)->next_retired)
		if (*p == d)
		{
			*p = d->next_retired;
			break;
		}
	gr_device_close(&d->dev);
	pfree(d);
}

/* Release an environment's device reference (memory context reset callback). */
static void
device_ref_release(void *arg)
{
	DeviceRef  *ref = arg;

	ref->device->refs--;
	device_close_if_unused(ref->device);
}

/* Open the device the settings name (ERROR 55000 for cuda without a usable GPU). */
static BackendDevice *
device_open(void)
{
	BackendDevice *d = MemoryContextAllocZero(TopMemoryContext, sizeof(BackendDevice));
	char		libdir[MAXPGPATH];
	gr_error	err = {0};
	bool		worker_owns = genrec_device_guc == GENREC_DEVICE_AUTO && !genrec_in_worker &&
		genrec_worker_enabled();

	get_pkglib_path(my_exec_path, libdir);
	if (gr_device_open(worker_owns ? "cpu" : device_kind_names[genrec_device_guc],
					   math_names[genrec_cuda_math_guc], NULL, libdir, &d->dev, d->notice,
					   &err) != GR_OK)
	{
		pfree(d);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("genrec.device = %s: %s", device_kind_names[genrec_device_guc],
						err.message),
				 errhint("Set genrec.device to 'auto' or 'cpu' to use the CPU.")));
	}
	d->kind = genrec_device_guc;
	d->math = genrec_cuda_math_guc;
	d->gen = ++device_generations;
	if (worker_owns)
		snprintf(d->notice, sizeof(d->notice), "genrec.worker is on: the worker owns the device "
				 "and serves scoring; this backend computes on the CPU.");
	if (d->notice[0] != '\0')
	{
		if (genrec_cache_first_cpu_notice())
			ereport(LOG,
					(errmsg("genrec.device = auto: using the CPU"),
					 errdetail("%s", d->notice)));
		ereport(DEBUG1,
				(errmsg("genrec.device = auto: using the CPU"),
				 errdetail("%s", d->notice)));
	}
	return d;
}

/* The device for the current settings, switching (and retiring the old one) when they changed. */
static BackendDevice *
device_current(void)
{
	BackendDevice *old = current_device;

	if (old != NULL && old->kind == genrec_device_guc && old->math == genrec_cuda_math_guc)
		return old;
	current_device = device_open();
	if (old != NULL)
	{
		old->retired = true;
		old->next_retired = retired_devices;
		retired_devices = old;
		/* hold it while its models go: the last one's release must not free it under us */
		old->refs++;
		genrec_cache_retire_device(current_device->gen);
		old->refs--;
		device_close_if_unused(old);
	}
	return current_device;
}

/* The generation of the device for the current settings (switching first when they changed). */
uint64
genrec_device_generation(void)
{
	return device_current()->gen;
}

/* Fill an engine environment bound to a memory context and the backend's interrupts. */
void
genrec_engine_env(gr_env *env, MemoryContext mcxt,
				  void (*progress) (void *user, const gr_progress *p), void *user)
{
	BackendDevice *d = device_current();
	DeviceRef  *ref = MemoryContextAlloc(mcxt, sizeof(DeviceRef));

	ref->device = d;
	ref->cb.func = device_ref_release;
	ref->cb.arg = ref;
	d->refs++;
	MemoryContextRegisterResetCallback(mcxt, &ref->cb);

	gr_env_default(env);
	env->allocator.alloc = context_alloc;
	env->allocator.free = context_free;
	env->allocator.user = mcxt;
	env->interrupted = interrupt_pending;
	env->progress = progress;
	env->callback_user = user;
	env->n_threads = genrec_threads;
	env->ops = d->dev.ops;
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

PG_FUNCTION_INFO_V1(genrec_device_info);

/* Describe the device this backend uses for its settings. */
Datum
genrec_device_info(PG_FUNCTION_ARGS)
{
	BackendDevice *d = device_current();
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, d->notice[0] == '\0'};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "genrec_device_info: return type must be a row type");
	values[0] = CStringGetTextDatum(device_kind_names[d->kind]);
	values[1] = CStringGetTextDatum(d->dev.ops->device == GR_DEVICE_CPU ? "cpu" : "cuda");
	values[2] = CStringGetTextDatum(gr_math_mode_name(d->dev.math));
	values[3] = CStringGetTextDatum(d->notice);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
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
