/*
 * pg_worker.c — the serving worker process (protocol in pg_worker.h).
 *
 * It opens the device of genrec.worker once (genrec.device forced to cpu or cuda in this
 * process, so pg_engine.c's device and environments are the worker's), then loops: take every
 * SUBMITTED request (at most genrec.worker_max_batch, starting after the slot it stopped at,
 * so no backend waits behind the others for ever), wait up to genrec.worker_batch_us for more
 * while other backends are active (sent requests in the last 20 ms but have none in the set;
 * a lone client never waits), and serve them. Serving maps each requester's mailbox (kept mapped per slot), finds the
 * model among the resident ones or attaches its registry segment (the header a backend sent
 * must match the segment's, and its payload checksum is recomputed once), groups the requests
 * by model and kind (retrieval also by k, so each pass has one top-k), and runs one
 * gr_score_batch / gr_recommend_batch per group with results written straight into the
 * mailboxes. A group whose pass fails as a whole is served again one request at a time.
 *
 * Resident models stay attached, with their engine view and scoring session (on the GPU their
 * parameters stay on the device), until the registry no longer lists their segment: then the
 * worker lets go (checked when the registry's epoch moves).
 *
 * Errors. An ERROR while serving (a mailbox or segment that cannot be mapped, memory) answers
 * the requests it held with WOUT_UNAVAILABLE and the message (their backends score locally),
 * and the worker goes on. SIGTERM, pg_terminate_backend and FATAL end the process through
 * worker_exit, which fails the requests it holds; the postmaster starts it again a second
 * later. With genrec.worker = gpu and no usable GPU the worker records why (genrec_worker_status)
 * and exits for good; backends then score locally.
 */
#include "pg_worker.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#define WORKER_IDLE_MS 1000
#define WORKER_POLL_US 50
#define WORKER_MAX_PASS_TOKENS (1 << 16)	/* tokens of one engine pass, unless one request alone */
#define WORKER_MAX_TAKE 1024
#define WORKER_ACTIVE_US 20000	/* a backend that sent a request this recently is "active" */

/* A model the worker holds: its segment, engine view and scoring session. */
typedef struct ResidentModel
{
	uint64		key;
	dsm_handle	handle;
	dsm_segment *seg;
	const GenrecBlob *blob;
	MemoryContext cxt;
	gr_env		env;
	gr_model   *model;
	gr_session *session;
} ResidentModel;

/* A request taken from a slot. */
typedef struct Taken
{
	int			slot;
	WorkerMailbox *mb;			/* NULL: its mailbox could not be mapped */
	ResidentModel *rm;
	bool		grouped;		/* in a pass already */
	bool		done;			/* answered */
} Taken;

/* The requesters' mailboxes, mapped per slot. */
typedef struct MappedMailbox
{
	dsm_handle	handle;
	dsm_segment *seg;
} MappedMailbox;

static MemoryContext worker_cxt = NULL;
static MemoryContext pass_cxt = NULL;
static List *resident = NIL;
static MappedMailbox *mailboxes = NULL;
static uint64 seen_epoch = 0;
static int	next_slot = 0;
static Taken *taken = NULL;		/* the requests held now */
static int	held = 0;
static TimestampTz *slot_seen = NULL;	/* per slot: when the worker last took its request */

/* Mark the requests a stopping worker holds FAILED and wake their backends; then say it is gone. */
static void
worker_exit(int code, Datum arg)
{
	WorkerShared *ws = genrec_worker_shared;

	SpinLockAcquire(&ws->mutex);
	ws->ready = false;
	SpinLockRelease(&ws->mutex);
	for (int i = 0; i < ws->n_slots; i++)
	{
		WorkerSlot *slot = &ws->slots[i];
		PGPROC	   *wake = NULL;

		SpinLockAcquire(&slot->mutex);
		if (slot->state == WSLOT_RUNNING || slot->state == WSLOT_SUBMITTED)
		{
			slot->state = WSLOT_FAILED;
			pg_atomic_fetch_add_u64(&ws->failed, 1);
			wake = slot->proc;
		}
		else if (slot->state == WSLOT_CANCELLED)
		{
			slot->state = WSLOT_FREE;
			wake = slot->proc;
		}
		SpinLockRelease(&slot->mutex);
		if (wake != NULL)
			SetLatch(&wake->procLatch);
	}
	SpinLockAcquire(&ws->mutex);
	ws->pid = 0;
	ws->latch = NULL;
	ws->resident = 0;
	SpinLockRelease(&ws->mutex);
}

/* Record why the worker stopped or could not start (shown by genrec_worker_status). */
static void
worker_message(const char *msg)
{
	WorkerShared *ws = genrec_worker_shared;

	SpinLockAcquire(&ws->mutex);
	strlcpy(ws->message, msg, sizeof(ws->message));
	SpinLockRelease(&ws->mutex);
}

/* Open the device of genrec.worker; with no usable GPU for gpu, say why and stop for good. */
static void
worker_open_device(void)
{
	MemoryContext old = CurrentMemoryContext;
	const char *kind = genrec_worker_mode == GENREC_WORKER_GPU ? "cuda" : "cpu";

	SetConfigOption("genrec.device", kind, PGC_SUSET, PGC_S_OVERRIDE);
	PG_TRY();
	{
		(void) genrec_device_generation();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(old);
		edata = CopyErrorData();
		FlushErrorState();
		worker_message(psprintf("genrec.worker = %s: %s",
								genrec_worker_mode == GENREC_WORKER_GPU ? "gpu" : "cpu",
								edata->message));
		ereport(LOG,
				(errmsg("genrec worker cannot open its device, backends score locally"),
				 errdetail("%s", edata->message)));
		proc_exit(0);			/* not restarted: the setting needs a device this server lacks */
	}
	PG_END_TRY();
}

/* Publish the worker as running and settle requests a previous worker left. */
static void
worker_publish(void)
{
	WorkerShared *ws = genrec_worker_shared;

	for (int i = 0; i < ws->n_slots; i++)
	{
		WorkerSlot *slot = &ws->slots[i];

		SpinLockAcquire(&slot->mutex);
		if (slot->state == WSLOT_RUNNING)
			slot->state = WSLOT_FAILED;
		else if (slot->state == WSLOT_CANCELLED)
			slot->state = WSLOT_FREE;
		SpinLockRelease(&slot->mutex);
	}
	SpinLockAcquire(&ws->mutex);
	ws->pid = MyProcPid;
	ws->latch = MyLatch;
	ws->generation++;
	ws->started = GetCurrentTimestamp();
	strlcpy(ws->device, genrec_worker_mode == GENREC_WORKER_GPU ? "cuda" : "cpu",
			sizeof(ws->device));
	ws->message[0] = '\0';
	ws->ready = true;
	SpinLockRelease(&ws->mutex);
}

/* Free a resident model: session, view, mapping and memory. */
static void
resident_free(ResidentModel *rm)
{
	gr_session_free(rm->session);
	gr_model_free(rm->model);
	dsm_detach(rm->seg);
	MemoryContextDelete(rm->cxt);
	pfree(rm);
}

/* Publish how many models the worker holds. */
static void
resident_count(void)
{
	SpinLockAcquire(&genrec_worker_shared->mutex);
	genrec_worker_shared->resident = list_length(resident);
	SpinLockRelease(&genrec_worker_shared->mutex);
}

/* Let go of models the registry no longer lists (after its epoch moved). */
static void
resident_sweep(void)
{
	uint64		epoch = genrec_cache_epoch();
	ListCell   *lc;

	if (epoch == seen_epoch)
		return;
	seen_epoch = epoch;
	foreach(lc, resident)
	{
		ResidentModel *rm = lfirst(lc);

		if (!genrec_cache_lists(rm->key, rm->handle))
		{
			resident = foreach_delete_current(resident, lc);
			resident_free(rm);
		}
	}
	resident_count();
}

/* The resident model a request names, attached now if needed; NULL with err set if it cannot be. */
static ResidentModel *
resident_get(const WorkerMailbox *mb, gr_error *err)
{
	ListCell   *lc;
	ResidentModel *rm;
	dsm_segment *seg;
	const GenrecBlob *b;
	MemoryContext old;

	foreach(lc, resident)
	{
		rm = lfirst(lc);
		if (rm->key == mb->model.key && rm->handle == mb->model_segment)
			return rm;
	}
	if (dsm_find_mapping(mb->model_segment) != NULL)
	{
		gr_fail(err, GR_ERR_INTERNAL, "the worker maps segment %u for another model",
				(unsigned) mb->model_segment);
		return NULL;
	}
	seg = dsm_attach(mb->model_segment);
	if (seg == NULL)
	{
		gr_fail(err, GR_ERR_INTERNAL, "the model's shared memory segment is gone");
		return NULL;
	}
	dsm_pin_mapping(seg);
	b = dsm_segment_address(seg);
	if (!genrec_blob_same(b, dsm_segment_map_length(seg), &mb->model, true))
	{
		dsm_detach(seg);
		gr_fail(err, GR_ERR_CORRUPT_MODEL, "the shared memory segment does not hold the model");
		return NULL;
	}
	old = MemoryContextSwitchTo(worker_cxt);
	rm = palloc0(sizeof(ResidentModel));
	rm->key = b->key;
	rm->handle = mb->model_segment;
	rm->seg = seg;
	rm->blob = b;
	rm->cxt = AllocSetContextCreate(worker_cxt, "genrec worker model", ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(old);
	genrec_engine_env(&rm->env, rm->cxt, NULL, NULL);
	if (gr_model_create_view(&rm->env, &b->cfg, (const int64_t *) ((const char *) b + b->items_off),
							 (const float *) ((const char *) b + b->params_off), b->n_params,
							 &rm->model, err) != GR_OK ||
		gr_session_create(rm->model, &rm->session, err) != GR_OK)
	{
		gr_model_free(rm->model);
		dsm_detach(seg);
		MemoryContextDelete(rm->cxt);
		pfree(rm);
		return NULL;
	}
	old = MemoryContextSwitchTo(worker_cxt);
	resident = lappend(resident, rm);
	MemoryContextSwitchTo(old);
	resident_count();
	return rm;
}

/* Map a slot's mailbox (kept mapped until the slot names another); NULL if it is gone or bad. */
static WorkerMailbox *
mailbox_map(int slot, dsm_handle handle)
{
	MappedMailbox *mm = &mailboxes[slot];
	WorkerMailbox *mb;

	if (mm->seg != NULL && mm->handle != handle)
	{
		dsm_detach(mm->seg);
		mm->seg = NULL;
	}
	if (mm->seg == NULL)
	{
		mm->seg = dsm_attach(handle);
		if (mm->seg == NULL)
			return NULL;
		dsm_pin_mapping(mm->seg);
		mm->handle = handle;
	}
	mb = dsm_segment_address(mm->seg);
	if (mb->magic != GENREC_MAILBOX_MAGIC || mb->size > dsm_segment_map_length(mm->seg))
		return NULL;
	return mb;
}

/* Whether the arrays a mailbox describes lie inside it. */
static bool
mailbox_sane(const WorkerMailbox *mb, int K)
{
	Size		size = mb->size;
	int			k = mb->k;

#define INSIDE(off, bytes) ((off) <= size && (Size) (bytes) <= size - (off))
	if (mb->n_hist < 0 || mb->n_cands < 0 || mb->n_hist_actions < 0 || k < 0 ||
		mb->n_hist_actions > GR_MAX_ACTIONS)
		return false;
	if (!INSIDE(mb->hist_items_off, sizeof(int64) * (Size) mb->n_hist) ||
		!INSIDE(mb->hist_actions_off, sizeof(double) * (Size) mb->n_hist * mb->n_hist_actions) ||
		!INSIDE(mb->hist_times_off, mb->hist_has_times ? sizeof(int64) * (Size) mb->n_hist : 0) ||
		!INSIDE(mb->cands_off, sizeof(int64) * (Size) mb->n_cands))
		return false;
	if (mb->kind == WREQ_SCORE)
		return INSIDE(mb->out_a_off, sizeof(float) * (Size) mb->n_cands * K) &&
			INSIDE(mb->out_b_off, sizeof(float) * (Size) mb->n_cands) &&
			INSIDE(mb->out_c_off, (Size) mb->n_cands);
	return mb->kind == WREQ_RECOMMEND && INSIDE(mb->out_a_off, sizeof(int64) * (Size) k) &&
		INSIDE(mb->out_b_off, sizeof(float) * (Size) k);
#undef INSIDE
}

/*
 * Take SUBMITTED requests (RUNNING now) into taken[held..max), starting after the last slot
 * taken. Each is counted in held before its mailbox is mapped, so an ERROR while mapping
 * still answers it.
 */
static void
take_requests(int max)
{
	WorkerShared *ws = genrec_worker_shared;
	int			before = held;
	TimestampTz now = GetCurrentTimestamp();

	for (int j = 0; j < ws->n_slots && held < max; j++)
	{
		int			i = (next_slot + j) % ws->n_slots;
		WorkerSlot *slot = &ws->slots[i];
		bool		got = false;
		dsm_handle	handle = 0;
		Taken	   *t = &taken[held];

		SpinLockAcquire(&slot->mutex);
		if (slot->state == WSLOT_SUBMITTED)
		{
			slot->state = WSLOT_RUNNING;
			handle = slot->mailbox;
			got = true;
		}
		SpinLockRelease(&slot->mutex);
		if (!got)
			continue;
		memset(t, 0, sizeof(*t));
		t->slot = i;
		slot_seen[i] = now;
		held++;
		next_slot = (i + 1) % ws->n_slots;
		t->mb = mailbox_map(i, handle);
	}
	if (held > before)
		pg_atomic_fetch_add_u64(&ws->requests, held - before);
}

/* Answer a request: DONE for its backend (or FREE if it was withdrawn) and wake it. */
static void
complete(Taken *t)
{
	WorkerSlot *slot = &genrec_worker_shared->slots[t->slot];
	PGPROC	   *wake;

	if (t->done)
		return;
	t->done = true;
	SpinLockAcquire(&slot->mutex);
	if (slot->state == WSLOT_RUNNING)
		slot->state = WSLOT_DONE;
	else if (slot->state == WSLOT_CANCELLED)
		slot->state = WSLOT_FREE;
	wake = slot->proc;
	SpinLockRelease(&slot->mutex);
	if (wake != NULL)
		SetLatch(&wake->procLatch);
}

/* Answer a request the worker cannot serve (its backend scores locally). */
static void
answer_unavailable(Taken *t, const char *why)
{
	if (t->done)
		return;
	if (t->mb != NULL)
	{
		t->mb->outcome = WOUT_UNAVAILABLE;
		t->mb->err.status = GR_ERR_INTERNAL;
		strlcpy(t->mb->err.message, why, sizeof(t->mb->err.message));
	}
	complete(t);
}

/* Wait the longest test delay any taken request asked for (interrupts are served). */
static void
test_delay(Taken *taken, int n)
{
	int			delay = 0;
	TimestampTz until;

	for (int i = 0; i < n; i++)
		if (taken[i].mb != NULL)
			delay = Max(delay, taken[i].mb->delay_ms);
	if (delay <= 0)
		return;
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Tokens a request adds to a pass (bound for grouping). */
static int
request_tokens(const ResidentModel *rm, const WorkerMailbox *mb)
{
	const gr_model *m = rm->model;
	int			hist = Min(mb->n_hist, m->layout->history_cap(m->cfg.max_len)) + 1;

	return m->layout->tokens_per_interaction * hist + mb->n_cands;
}

/* The engine view of a request's history. */
static gr_history
request_history(const WorkerMailbox *mb, int K)
{
	gr_history	h;

	h.items = (const int64_t *) ((const char *) mb + mb->hist_items_off);
	h.actions = mb->n_hist_actions > 0 && mb->n_hist_actions == K ?
		(const double *) ((const char *) mb + mb->hist_actions_off) : NULL;
	h.n = mb->n_hist;
	h.times = mb->hist_has_times ? (const int64_t *) ((const char *) mb + mb->hist_times_off) :
		NULL;
	h.has_now = false;
	h.now = 0;
	return h;
}

/* Run one engine pass over group[0..n) (same model and kind; same k for retrieval). */
static gr_status
run_pass(Taken **group, int n, gr_error *err)
{
	ResidentModel *rm = group[0]->rm;
	int			K = rm->model->cfg.n_actions;
	WorkerMailbox *first = group[0]->mb;
	gr_status	st;

	if (first->kind == WREQ_SCORE)
	{
		gr_score_request *q = palloc0(sizeof(gr_score_request) * n);

		for (int i = 0; i < n; i++)
		{
			WorkerMailbox *mb = group[i]->mb;

			q[i].h = request_history(mb, K);
			q[i].cands = (const int64_t *) ((char *) mb + mb->cands_off);
			q[i].n_cands = mb->n_cands;
			q[i].out.action = (float *) ((char *) mb + mb->out_a_off);
			q[i].out.logit = (float *) ((char *) mb + mb->out_b_off);
			q[i].out.known = (uint8_t *) ((char *) mb + mb->out_c_off);
		}
		st = gr_score_batch(rm->session, q, n, err);
		for (int i = 0; st == GR_OK && i < n; i++)
		{
			group[i]->mb->outcome = q[i].status == GR_OK ? WOUT_OK : WOUT_ENGINE_ERROR;
			group[i]->mb->err = q[i].err;
			group[i]->mb->err.status = q[i].status;
		}
	}
	else
	{
		gr_recommend_request *q = palloc0(sizeof(gr_recommend_request) * n);

		for (int i = 0; i < n; i++)
		{
			WorkerMailbox *mb = group[i]->mb;

			q[i].h = request_history(mb, K);
			q[i].exclude_seen = mb->exclude_seen;
			q[i].items = (int64_t *) ((char *) mb + mb->out_a_off);
			q[i].scores = (float *) ((char *) mb + mb->out_b_off);
		}
		st = gr_recommend_batch(rm->session, first->k, q, n, err);
		for (int i = 0; st == GR_OK && i < n; i++)
		{
			group[i]->mb->outcome = q[i].status == GR_OK ? WOUT_OK : WOUT_ENGINE_ERROR;
			group[i]->mb->n_out = q[i].n_out;
			group[i]->mb->err = q[i].err;
			group[i]->mb->err.status = q[i].status;
		}
	}
	if (st == GR_ERR_CANCELLED)
		CHECK_FOR_INTERRUPTS();	/* the worker is being stopped */
	if (st == GR_OK)
	{
		WorkerShared *ws = genrec_worker_shared;
		uint32		old = pg_atomic_read_u32(&ws->max_batch);

		pg_atomic_fetch_add_u64(&ws->passes, 1);
		if (n > 1)
			pg_atomic_fetch_add_u64(&ws->batched, n);
		while (old < (uint32) n && !pg_atomic_compare_exchange_u32(&ws->max_batch, &old, n))
			;
		for (int i = 0; i < n; i++)
			group[i]->mb->batch_size = n;
	}
	return st;
}

/* Whether two taken requests can share a pass. */
static bool
same_pass(const Taken *a, const Taken *b)
{
	return a->rm == b->rm && a->mb->kind == b->mb->kind &&
		(a->mb->kind == WREQ_SCORE || a->mb->k == b->mb->k);
}

/* Serve the taken requests: group, run the passes, answer. */
static void
serve(Taken *taken, int n)
{
	Taken	  **group = palloc(sizeof(Taken *) * n);

	test_delay(taken, n);
	for (int i = 0; i < n; i++)
	{
		Taken	   *t = &taken[i];
		gr_error	err = {0};

		if (t->mb == NULL)
		{
			complete(t);		/* its backend is gone */
			continue;
		}
		if (!mailbox_sane(t->mb, 0) || (t->rm = resident_get(t->mb, &err)) == NULL)
		{
			answer_unavailable(t, err.message[0] ? err.message : "a malformed request");
			continue;
		}
		if (!mailbox_sane(t->mb, t->rm->model->cfg.n_actions))
			answer_unavailable(t, "a malformed request");
	}
	for (int i = 0; i < n; i++)
	{
		int			g = 0,
					tokens = 0;
		gr_error	err = {0};

		if (taken[i].done || taken[i].grouped)
			continue;
		for (int j = i; j < n && g < genrec_worker_max_batch; j++)
		{
			Taken	   *t = &taken[j];
			int			need;

			if (t->done || t->grouped || !same_pass(&taken[i], t))
				continue;
			need = request_tokens(t->rm, t->mb);
			if (g > 0 && tokens + need > WORKER_MAX_PASS_TOKENS)
				continue;
			tokens += need;
			t->grouped = true;
			group[g++] = t;
		}
		if (run_pass(group, g, &err) != GR_OK)
		{
			if (g == 1)
				answer_unavailable(group[0], err.message);
			else
				/* the pass failed as a whole (memory, device): serve each alone */
				for (int j = 0; j < g; j++)
				{
					gr_error	one = {0};

					if (run_pass(&group[j], 1, &one) != GR_OK)
						answer_unavailable(group[j], one.message);
				}
		}
		for (int j = 0; j < g; j++)
			complete(group[j]);
	}
}

/* Backends that sent a request within WORKER_ACTIVE_US (those just taken included). */
static int
active_requesters(TimestampTz now)
{
	int			n = 0;

	for (int i = 0; i < genrec_worker_shared->n_slots; i++)
		n += slot_seen[i] != 0 && now - slot_seen[i] < WORKER_ACTIVE_US;
	return n;
}

/*
 * Take a set of requests: what is there, plus, while other backends are active (sent requests
 * lately but have none in this set), what arrives within genrec.worker_batch_us. A lone
 * client never waits for the window; the wait ends as soon as every active backend is in.
 */
static void
collect(void)
{
	int			max = Min(genrec_worker_max_batch, WORKER_MAX_TAKE);
	TimestampTz deadline;
	int			active;

	take_requests(max);
	if (held == 0 || held >= max || genrec_worker_batch_us <= 0)
		return;
	deadline = GetCurrentTimestamp() + genrec_worker_batch_us;
	active = Min(active_requesters(GetCurrentTimestamp()), max);
	while (held < active)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (now >= deadline)
			break;
		pg_usleep(Min(WORKER_POLL_US, deadline - now));
		take_requests(max);
	}
}

/* The worker's main loop. */
void
genrec_worker_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pqsignal(SIGINT, SIG_IGN);	/* nothing to cancel: requests are cancelled by their backends */
	genrec_in_worker = true;
	if (genrec_worker_shared == NULL)
		proc_exit(0);
	worker_cxt = AllocSetContextCreate(TopMemoryContext, "genrec worker", ALLOCSET_DEFAULT_SIZES);
	pass_cxt = AllocSetContextCreate(worker_cxt, "genrec worker pass", ALLOCSET_DEFAULT_SIZES);
	mailboxes = MemoryContextAllocZero(worker_cxt,
									   sizeof(MappedMailbox) * genrec_worker_shared->n_slots);
	taken = MemoryContextAlloc(worker_cxt, sizeof(Taken) * WORKER_MAX_TAKE);
	slot_seen = MemoryContextAllocZero(worker_cxt,
									   sizeof(TimestampTz) * genrec_worker_shared->n_slots);
	before_shmem_exit(worker_exit, (Datum) 0);
	MemoryContextSwitchTo(worker_cxt);
	worker_open_device();
	worker_publish();
	ereport(LOG, (errmsg("genrec worker started on the %s", genrec_worker_shared->device)));

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		held = 0;
		MemoryContextSwitchTo(pass_cxt);
		PG_TRY();
		{
			resident_sweep();
			collect();
			if (held > 0)
			{
				pg_atomic_fetch_add_u64(&genrec_worker_shared->batches, 1);
				serve(taken, held);
			}
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(worker_cxt);
			edata = CopyErrorData();
			FlushErrorState();
			LWLockReleaseAll();
			ereport(LOG,
					(errmsg("genrec worker could not serve %d request(s)", held),
					 errdetail("%s", edata->message)));
			for (int i = 0; i < held; i++)
				answer_unavailable(&taken[i], edata->message);
			FreeErrorData(edata);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(worker_cxt);
		MemoryContextReset(pass_cxt);
		if (held == 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 WORKER_IDLE_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}
