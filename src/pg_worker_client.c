/*
 * pg_worker_client.c — the backend's side of the serving worker (protocol in pg_worker.h):
 * the settings, the control block in shared memory, registering the worker, the backend's
 * mailbox, submitting a request and waiting for it (cancellable), the fallback to local
 * scoring, and genrec_worker_status().
 *
 * The mailbox is a dynamic shared memory segment created at the backend's first request and
 * mapped for its lifetime (regrown, when a request needs more room, only while its slot is
 * FREE). Waiting is WaitLatch on the backend's own latch, set by the worker when the answer is
 * there, with a 100 ms timeout to notice a worker that stopped; CHECK_FOR_INTERRUPTS runs on
 * every wake-up, and an ERROR (cancel, statement_timeout) or a FATAL (terminate) withdraws the
 * request before it leaves (PG_CATCH, before_shmem_exit).
 */
#include "pg_worker.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#define WORKER_SHMEM_NAME "genrec worker v1"
#define MAILBOX_MIN_BYTES (64 * 1024)
#define WAIT_POLL_MS 100

int			genrec_worker_mode = GENREC_WORKER_OFF;
int			genrec_worker_batch_us = 200;
int			genrec_worker_max_batch = 64;
int			genrec_worker_fallback = GENREC_FALLBACK_LOCAL;
int			genrec_worker_test_delay_ms = 0;
bool		genrec_in_worker = false;
WorkerShared *genrec_worker_shared = NULL;

static bool worker_preloaded = false;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static dsm_segment *mailbox_seg = NULL;
static bool in_flight = false;		/* this backend's slot holds a request of ours */
static bool exit_hook_set = false;
static bool fallback_noticed = false;

static const struct config_enum_entry worker_options[] = {
	{"off", GENREC_WORKER_OFF, false},
	{"cpu", GENREC_WORKER_CPU, false},
	{"gpu", GENREC_WORKER_GPU, false},
	{NULL, 0, false}
};

static const struct config_enum_entry fallback_options[] = {
	{"local", GENREC_FALLBACK_LOCAL, false},
	{"error", GENREC_FALLBACK_ERROR, false},
	{NULL, 0, false}
};

/* Bytes of the control block for the server's backends. */
static Size
worker_shmem_size(void)
{
	return MAXALIGN(add_size(offsetof(WorkerShared, slots),
							 mul_size(sizeof(WorkerSlot), MaxBackends)));
}

/* Reserve the control block (preloaded, worker on). */
static void
worker_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(worker_shmem_size());
}

/* Create the control block at server start (and after a crash restart). */
static void
worker_shmem_startup(void)
{
	bool		found;
	WorkerShared *ws;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ws = ShmemInitStruct(WORKER_SHMEM_NAME, worker_shmem_size(), &found);
	if (!found)
	{
		memset(ws, 0, worker_shmem_size());
		SpinLockInit(&ws->mutex);
		pg_atomic_init_u64(&ws->requests, 0);
		pg_atomic_init_u64(&ws->batches, 0);
		pg_atomic_init_u64(&ws->passes, 0);
		pg_atomic_init_u64(&ws->batched, 0);
		pg_atomic_init_u32(&ws->max_batch, 0);
		pg_atomic_init_u64(&ws->cancelled, 0);
		pg_atomic_init_u64(&ws->failed, 0);
		pg_atomic_init_u64(&ws->fallbacks, 0);
		ws->n_slots = MaxBackends;
		for (int i = 0; i < ws->n_slots; i++)
			SpinLockInit(&ws->slots[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
	genrec_worker_shared = ws;
}

/* Define the worker's settings; when preloaded with it on, reserve shared memory and register it. */
void
genrec_worker_init(void)
{
	BackgroundWorker bgw;

	DefineCustomIntVariable("genrec.worker_batch_us",
							"How long the worker waits, after taking requests, for those of "
							"other active backends to join the engine pass.",
							NULL, &genrec_worker_batch_us, 200, 0, 100000, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("genrec.worker_max_batch",
							"Most requests the worker serves in one engine pass (1: each "
							"alone, bit-identical to scoring in the backend).",
							NULL, &genrec_worker_max_batch, 64, 1, 1024, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("genrec.worker_fallback",
							 "When the worker cannot serve a call: local (score in this "
							 "backend, with a NOTICE) or error (ERROR 55000).",
							 NULL, &genrec_worker_fallback, GENREC_FALLBACK_LOCAL,
							 fallback_options, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("genrec.worker_test_delay_ms",
							"For tests: the worker waits this long before the engine pass "
							"that serves this session's requests.",
							NULL, &genrec_worker_test_delay_ms, 0, 0, 600000, PGC_SUSET,
							GUC_NOT_IN_SAMPLE | GUC_UNIT_MS, NULL, NULL, NULL);
	/* a server-start setting: it exists only where the library is preloaded */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomEnumVariable("genrec.worker",
							 "Serve scoring and retrieval from one background worker that owns "
							 "the device: off, cpu (the CPU ops; for tests) or gpu (needs "
							 "shared_preload_libraries).",
							 NULL, &genrec_worker_mode, GENREC_WORKER_OFF, worker_options,
							 PGC_POSTMASTER, 0, NULL, NULL, NULL);
	if (genrec_worker_mode == GENREC_WORKER_OFF)
		return;
	worker_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = worker_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = worker_shmem_startup;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 1;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "genrec");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "genrec_worker_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "genrec worker");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "genrec worker");
	RegisterBackgroundWorker(&bgw);
}

/* Whether this server sends requests to the worker. */
bool
genrec_worker_enabled(void)
{
	return worker_preloaded && genrec_worker_shared != NULL;
}

/* The running worker's generation and latch; false when none takes requests. */
static bool
worker_ready(uint64 *gen, Latch **latch)
{
	WorkerShared *ws = genrec_worker_shared;
	bool		ok;

	SpinLockAcquire(&ws->mutex);
	ok = ws->pid != 0 && ws->ready;
	*gen = ws->generation;
	*latch = ws->latch;
	SpinLockRelease(&ws->mutex);
	return ok;
}

/* This backend's request slot. */
static WorkerSlot *
my_slot(void)
{
	Assert(MyBackendId >= 1 && MyBackendId <= genrec_worker_shared->n_slots);
	return &genrec_worker_shared->slots[MyBackendId - 1];
}

/* The state of a slot, read under its spinlock. */
static WorkerSlotState
slot_state(WorkerSlot *slot)
{
	WorkerSlotState st;

	SpinLockAcquire(&slot->mutex);
	st = slot->state;
	SpinLockRelease(&slot->mutex);
	return st;
}

/*
 * Withdraw this backend's request: never run (SUBMITTED), or left to the worker to finish
 * and free (RUNNING); an answer not yet read is dropped.
 */
static void
withdraw_request(void)
{
	WorkerSlot *slot;
	bool		counted = false;

	if (!in_flight || genrec_worker_shared == NULL)
		return;
	slot = my_slot();
	SpinLockAcquire(&slot->mutex);
	if (slot->pid == MyProcPid)
	{
		if (slot->state == WSLOT_SUBMITTED || slot->state == WSLOT_DONE ||
			slot->state == WSLOT_FAILED)
		{
			counted = slot->state == WSLOT_SUBMITTED;
			slot->state = WSLOT_FREE;
		}
		else if (slot->state == WSLOT_RUNNING)
		{
			counted = true;
			slot->state = WSLOT_CANCELLED;
		}
	}
	SpinLockRelease(&slot->mutex);
	in_flight = false;
	if (counted)
		pg_atomic_fetch_add_u64(&genrec_worker_shared->cancelled, 1);
}

/* Withdraw a request in flight when the backend exits (FATAL, terminate). */
static void
client_exit(int code, Datum arg)
{
	withdraw_request();
}

/* Wait until this backend's slot is FREE (a withdrawn request still running before it). */
static void
wait_slot_free(WorkerSlot *slot)
{
	for (;;)
	{
		WorkerSlotState st = slot_state(slot);

		if (st == WSLOT_FREE)
			return;
		if (st == WSLOT_DONE || st == WSLOT_FAILED)
		{
			/* an answer nobody waits for any more (its backend is gone) */
			SpinLockAcquire(&slot->mutex);
			if (slot->state == WSLOT_DONE || slot->state == WSLOT_FAILED)
				slot->state = WSLOT_FREE;
			SpinLockRelease(&slot->mutex);
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 WAIT_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* The mailbox, with at least bytes of room (regrown only while the slot is FREE). */
static WorkerMailbox *
mailbox_get(Size bytes, char **why)
{
	WorkerMailbox *mb;
	Size		size = MAILBOX_MIN_BYTES;
	dsm_segment *seg;

	if (mailbox_seg != NULL && ((WorkerMailbox *) dsm_segment_address(mailbox_seg))->size >= bytes)
		return dsm_segment_address(mailbox_seg);
	while (size < bytes)
		size *= 2;
	seg = genrec_segment_create(size, why);
	if (seg == NULL)
		return NULL;			/* no segment (limit, or a full /dev/shm): score locally */
	dsm_pin_mapping(seg);
	if (mailbox_seg != NULL)
		dsm_detach(mailbox_seg);
	mailbox_seg = seg;
	mb = dsm_segment_address(seg);
	memset(mb, 0, sizeof(WorkerMailbox));
	mb->magic = GENREC_MAILBOX_MAGIC;
	mb->size = size;
	return mb;
}

/* Lay out a request's arrays after the header; returns the bytes it needs. */
static Size
mailbox_layout(WorkerMailbox *mb, int n_hist, int n_hist_actions, bool times, int n_cands, int K,
			   int k)
{
	Size		off = MAXALIGN(sizeof(WorkerMailbox));

#define PLACE(field, bytes) (mb->field = off, off = TYPEALIGN(64, off + (Size) (bytes)))
	PLACE(hist_items_off, sizeof(int64) * (Size) n_hist);
	PLACE(hist_actions_off, sizeof(double) * (Size) n_hist * n_hist_actions);
	PLACE(hist_times_off, times ? sizeof(int64) * (Size) n_hist : 0);
	PLACE(cands_off, sizeof(int64) * (Size) n_cands);
	if (mb->kind == WREQ_SCORE)
	{
		PLACE(out_a_off, sizeof(float) * (Size) n_cands * K);
		PLACE(out_b_off, sizeof(float) * (Size) n_cands);
		PLACE(out_c_off, (Size) n_cands);
	}
	else
	{
		PLACE(out_a_off, sizeof(int64) * (Size) k);
		PLACE(out_b_off, sizeof(float) * (Size) k);
		PLACE(out_c_off, 0);
	}
#undef PLACE
	return off;
}

/* Say (or raise, with genrec.worker_fallback = error) that this call is scored locally. */
static bool
fall_back(const char *why)
{
	pg_atomic_fetch_add_u64(&genrec_worker_shared->fallbacks, 1);
	if (genrec_worker_fallback == GENREC_FALLBACK_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the genrec worker cannot serve this call"),
				 errdetail("%s", why),
				 errhint("SET genrec.worker_fallback = local to score in this backend.")));
	if (!fallback_noticed)
		ereport(NOTICE,
				(errmsg("genrec worker unavailable: scoring in this backend"),
				 errdetail("%s", why)));
	fallback_noticed = true;
	return false;
}

/* Free the slot after the answer was read (or the worker stopped). */
static void
finish_request(void)
{
	WorkerSlot *slot = my_slot();

	SpinLockAcquire(&slot->mutex);
	if (slot->state == WSLOT_DONE || slot->state == WSLOT_FAILED)
		slot->state = WSLOT_FREE;
	SpinLockRelease(&slot->mutex);
	in_flight = false;
}

/*
 * Send the request laid out in the mailbox and wait for its answer. True when it is there
 * (the slot stays DONE until finish_request); false, with the slot free and why set, when no
 * worker took it or the worker stopped before answering.
 */
static bool
submit_and_wait(char **why)
{
	WorkerSlot *slot = my_slot();
	uint64		gen;
	Latch	   *latch;
	WorkerSlotState st;

	if (!worker_ready(&gen, &latch))
	{
		*why = pstrdup("The genrec worker is not running.");
		return false;
	}
	SpinLockAcquire(&slot->mutex);
	slot->mailbox = dsm_segment_handle(mailbox_seg);
	slot->proc = MyProc;
	slot->pid = MyProcPid;
	slot->worker_gen = gen;
	slot->state = WSLOT_SUBMITTED;
	SpinLockRelease(&slot->mutex);
	in_flight = true;
	SetLatch(latch);
	PG_TRY();
	{
		for (;;)
		{
			st = slot_state(slot);
			if (st == WSLOT_DONE || st == WSLOT_FAILED)
				break;
			if (st == WSLOT_SUBMITTED && !worker_ready(&gen, &latch))
			{
				/* no worker will take it: withdraw it, unless one just did */
				SpinLockAcquire(&slot->mutex);
				st = slot->state;
				if (st == WSLOT_SUBMITTED)
					slot->state = WSLOT_FREE;
				SpinLockRelease(&slot->mutex);
				if (st == WSLOT_SUBMITTED)
					break;
				continue;
			}
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 WAIT_POLL_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		withdraw_request();
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (st == WSLOT_DONE)
		return true;
	if (st == WSLOT_FAILED)
	{
		finish_request();
		*why = pstrdup("The genrec worker stopped while serving the request.");
	}
	else
	{
		in_flight = false;
		*why = pstrdup("The genrec worker stopped before it took the request.");
	}
	return false;
}

/*
 * Prepare a request of kind for model m: the mailbox with room for it, the model's identity
 * and the history copied in. NULL (with why) when the worker cannot take it.
 */
static WorkerMailbox *
request_begin(GenrecModel *m, int kind, const ServeHistory *h, int n_cands, int k, char **why)
{
	WorkerMailbox probe;
	WorkerMailbox *mb;
	int			K = m->model->cfg.n_actions;
	int			KA = h->actions != NULL ? h->K : 0;
	Size		need;

	*why = NULL;
	if (m->seg == NULL)
		return NULL;			/* a private copy: the worker cannot see it */
	if (!exit_hook_set)
	{
		before_shmem_exit(client_exit, (Datum) 0);
		exit_hook_set = true;
	}
	wait_slot_free(my_slot());
	memset(&probe, 0, sizeof(probe));
	probe.kind = kind;
	need = mailbox_layout(&probe, h->n, KA, h->times != NULL, n_cands, K, k);
	mb = mailbox_get(need, why);
	if (mb == NULL)
		return NULL;
	mb->kind = kind;
	(void) mailbox_layout(mb, h->n, KA, h->times != NULL, n_cands, K, k);
	mb->model_segment = dsm_segment_handle(m->seg);
	memcpy(&mb->model, m->blob, offsetof(GenrecBlob, name));
	mb->n_hist = h->n;
	mb->n_hist_actions = KA;
	mb->hist_has_times = h->times != NULL;
	mb->n_cands = n_cands;
	mb->k = k;
	mb->delay_ms = genrec_worker_test_delay_ms;
	mb->outcome = WOUT_UNAVAILABLE;
	mb->n_out = 0;
	mb->batch_size = 0;
	memset(&mb->err, 0, sizeof(mb->err));
	if (h->n > 0)
		memcpy((char *) mb + mb->hist_items_off, h->items, sizeof(int64) * h->n);
	if (KA > 0 && h->n > 0)
		memcpy((char *) mb + mb->hist_actions_off, h->actions, sizeof(double) * h->n * KA);
	if (h->times != NULL && h->n > 0)
		memcpy((char *) mb + mb->hist_times_off, h->times, sizeof(int64) * h->n);
	return mb;
}

/*
 * Read the outcome of an answered request: true when its results are in the mailbox (the
 * caller copies them, then finish_request); false, after the fallback, when the worker could
 * not serve it; the engine's refusal is raised as local scoring would raise it.
 */
static bool
request_outcome(GenrecModel *m, WorkerMailbox *mb, const char *what)
{
	gr_error	err = mb->err;

	if (mb->outcome == WOUT_UNAVAILABLE)
	{
		finish_request();
		return fall_back(err.message);
	}
	fallback_noticed = false;
	if (mb->outcome != WOUT_OK)
	{
		finish_request();
		genrec_raise_engine_error(&err, psprintf("%s with model \"%s\"", what, m->name));
	}
	return true;
}

/* Score candidates through the worker. */
bool
genrec_worker_score(GenrecModel *m, const ServeHistory *h, const int64 *cands, int n_cands,
					float *action, float *logit, uint8 *known)
{
	char	   *why = NULL;
	WorkerMailbox *mb;
	int			K = m->model->cfg.n_actions;

	if (!genrec_worker_enabled())
		return false;
	mb = request_begin(m, WREQ_SCORE, h, n_cands, 0, &why);
	if (mb == NULL)
		return why ? fall_back(why) : false;
	if (n_cands > 0)
		memcpy((char *) mb + mb->cands_off, cands, sizeof(int64) * n_cands);
	if (!submit_and_wait(&why))
		return fall_back(why);
	if (!request_outcome(m, mb, "scoring"))
		return false;
	memcpy(action, (char *) mb + mb->out_a_off, sizeof(float) * (Size) n_cands * K);
	memcpy(logit, (char *) mb + mb->out_b_off, sizeof(float) * (Size) n_cands);
	memcpy(known, (char *) mb + mb->out_c_off, (Size) n_cands);
	finish_request();
	return true;
}

/* Top k through the worker. */
bool
genrec_worker_recommend(GenrecModel *m, const ServeHistory *h, int k, bool exclude_seen,
						int64 *items, float *scores, int *n_out)
{
	char	   *why = NULL;
	WorkerMailbox *mb;

	if (!genrec_worker_enabled())
		return false;
	mb = request_begin(m, WREQ_RECOMMEND, h, 0, k, &why);
	if (mb == NULL)
		return why ? fall_back(why) : false;
	mb->exclude_seen = exclude_seen;
	if (!submit_and_wait(&why))
		return fall_back(why);
	if (!request_outcome(m, mb, "recommending"))
		return false;
	*n_out = Max(0, Min(mb->n_out, k));
	memcpy(items, (char *) mb + mb->out_a_off, sizeof(int64) * (Size) *n_out);
	memcpy(scores, (char *) mb + mb->out_b_off, sizeof(float) * (Size) *n_out);
	finish_request();
	return true;
}

PG_FUNCTION_INFO_V1(genrec_worker_status);

/* The worker's state and counters (NULL counters when no worker is configured). */
Datum
genrec_worker_status(PG_FUNCTION_ARGS)
{
	static const char *const modes[] = {"off", "cpu", "gpu"};
	WorkerShared *ws = genrec_worker_enabled() ? genrec_worker_shared : NULL;
	TupleDesc	tupdesc;
	Datum		v[16];
	bool		n[16];
	int			pid = 0;
	bool		ready = false;
	uint64		gen = 0;
	TimestampTz started = 0;
	char		device[16] = "",
				message[256] = "";
	int			resident = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "genrec_worker_status: return type must be a row type");
	memset(n, ws == NULL, sizeof(n));
	if (ws != NULL)
	{
		SpinLockAcquire(&ws->mutex);
		pid = ws->pid;
		ready = ws->ready;
		gen = ws->generation;
		started = ws->started;
		memcpy(device, ws->device, sizeof(device));
		memcpy(message, ws->message, sizeof(message));
		resident = ws->resident;
		SpinLockRelease(&ws->mutex);
		v[5] = Int64GetDatum((int64) gen);
		v[6] = Int64GetDatum((int64) pg_atomic_read_u64(&ws->requests));
		v[7] = Int64GetDatum((int64) pg_atomic_read_u64(&ws->batches));
		v[8] = Int64GetDatum((int64) pg_atomic_read_u64(&ws->passes));
		v[9] = Int64GetDatum((int64) pg_atomic_read_u64(&ws->batched));
		v[10] = Int32GetDatum((int32) pg_atomic_read_u32(&ws->max_batch));
		v[11] = Int64GetDatum((int64) pg_atomic_read_u64(&ws->cancelled));
		v[12] = Int64GetDatum((int64) pg_atomic_read_u64(&ws->failed));
		v[13] = Int64GetDatum((int64) pg_atomic_read_u64(&ws->fallbacks));
		v[14] = Int32GetDatum(resident);
	}
	v[0] = CStringGetTextDatum(modes[genrec_worker_mode]);
	n[0] = false;
	v[1] = BoolGetDatum(pid != 0 && ready);
	n[1] = false;
	v[2] = Int32GetDatum(pid);
	n[2] = pid == 0;
	v[3] = CStringGetTextDatum(device);
	n[3] = device[0] == '\0';
	v[4] = TimestampTzGetDatum(started);
	n[4] = gen == 0;
	v[15] = CStringGetTextDatum(message);
	n[15] = message[0] == '\0';
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), v, n)));
}
