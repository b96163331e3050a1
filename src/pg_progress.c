/*
 * pg_progress.c — shared progress slots of running trainings and the function behind the
 * genrec.training_progress view (see pg_progress.h).
 */
#include "pg_progress.h"
#include "pg_security.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#define PROGRESS_NAME_LEN	256
#define PROGRESS_PHASE_LEN	16

typedef struct ProgressSlot
{
	int			pid;			/* 0 = free */
	Oid			dbid;
	Oid			roleid;
	char		name[PROGRESS_NAME_LEN];
	char		phase[PROGRESS_PHASE_LEN];
	int64		rows;
	int			epoch;			/* epochs finished */
	int			epochs;
	int64		step;
	int			steps_per_epoch;
	double		train_loss;
	double		valid_ndcg10;
	double		best_valid_ndcg10;
	TimestampTz started;
	TimestampTz updated;
} ProgressSlot;

typedef struct ProgressShared
{
	slock_t		mutex;
	ProgressSlot slots[GENREC_PROGRESS_SLOTS];
} ProgressShared;

static ProgressShared *progress = NULL;
static bool progress_unavailable = false;
static bool exit_callback_registered = false;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PG_FUNCTION_INFO_V1(genrec_training_progress);

/* Attach to (or create) the slots; false when the shared memory could not be had. */
static bool
progress_attach(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	bool		found;

	if (progress != NULL)
		return true;
	if (progress_unavailable)
		return false;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	PG_TRY();
	{
		progress = ShmemInitStruct("genrec progress", sizeof(ProgressShared), &found);
		if (!found)
		{
			memset(progress, 0, sizeof(ProgressShared));
			SpinLockInit(&progress->mutex);
		}
	}
	PG_CATCH();
	{
		/*
		 * ShmemInitStruct raises "not enough shared memory" after releasing its own lock and
		 * changing nothing, so the error can be dropped here: progress then goes to NOTICEs
		 * only.
		 */
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		LWLockRelease(AddinShmemInitLock);
		progress = NULL;
		progress_unavailable = true;
		ereport(NOTICE,
				(errmsg("genrec: no shared memory for training progress; "
						"genrec.training_progress stays empty in this session"),
				 errdetail("%s", edata->message),
				 errhint("Add genrec to shared_preload_libraries to reserve it at server start.")));
		FreeErrorData(edata);
		return false;
	}
	PG_END_TRY();
	LWLockRelease(AddinShmemInitLock);
	return true;
}

/* Ask for the slots' shared memory at server start. */
static void
progress_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ProgressShared)));
}

/* Create the slots at server start. */
static void
progress_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	progress_attach();
}

/* Install the hooks that reserve the slots when the library is preloaded. */
void
genrec_progress_preload(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = progress_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = progress_shmem_startup;
}

/* Free every slot this process holds. */
static void
progress_release_own(int code, Datum arg)
{
	if (progress == NULL)
		return;
	SpinLockAcquire(&progress->mutex);
	for (int i = 0; i < GENREC_PROGRESS_SLOTS; i++)
		if (progress->slots[i].pid == MyProcPid)
			progress->slots[i].pid = 0;
	SpinLockRelease(&progress->mutex);
}

/* Claim a free slot for a training in this backend. */
int
genrec_progress_begin(const char *name, int epochs)
{
	TimestampTz now = GetCurrentTimestamp();
	int			slot = -1;

	if (!progress_attach())
		return -1;
	if (!exit_callback_registered)
	{
		before_shmem_exit(progress_release_own, (Datum) 0);
		exit_callback_registered = true;
	}
	SpinLockAcquire(&progress->mutex);
	for (int i = 0; i < GENREC_PROGRESS_SLOTS && slot < 0; i++)
	{
		ProgressSlot *s = &progress->slots[i];

		if (s->pid != 0)
			continue;
		slot = i;
		memset(s, 0, sizeof(*s));
		s->pid = MyProcPid;
		s->dbid = MyDatabaseId;
		s->roleid = GetUserId();
		strlcpy(s->name, name, sizeof(s->name));
		strlcpy(s->phase, "starting", sizeof(s->phase));
		s->epochs = epochs;
		s->train_loss = NAN;
		s->valid_ndcg10 = NAN;
		s->best_valid_ndcg10 = NAN;
		s->started = now;
		s->updated = now;
	}
	SpinLockRelease(&progress->mutex);
	if (slot < 0)
		ereport(NOTICE,
				(errmsg("genrec: all %d training progress slots are in use; this training "
						"reports its progress only as NOTICEs", GENREC_PROGRESS_SLOTS)));
	return slot;
}

/* Set a slot's phase and rows read. */
void
genrec_progress_phase(int slot, const char *phase, int64 rows)
{
	TimestampTz now = GetCurrentTimestamp();

	if (slot < 0 || progress == NULL)
		return;
	SpinLockAcquire(&progress->mutex);
	strlcpy(progress->slots[slot].phase, phase, PROGRESS_PHASE_LEN);
	progress->slots[slot].rows = rows;
	progress->slots[slot].updated = now;
	SpinLockRelease(&progress->mutex);
}

/* Enter the training phase. */
void
genrec_progress_training(int slot, int steps_per_epoch)
{
	TimestampTz now = GetCurrentTimestamp();

	if (slot < 0 || progress == NULL)
		return;
	SpinLockAcquire(&progress->mutex);
	strlcpy(progress->slots[slot].phase, "training", PROGRESS_PHASE_LEN);
	progress->slots[slot].steps_per_epoch = steps_per_epoch;
	progress->slots[slot].updated = now;
	SpinLockRelease(&progress->mutex);
}

/* Record a finished epoch. */
void
genrec_progress_epoch(int slot, const gr_progress *p)
{
	TimestampTz now = GetCurrentTimestamp();
	ProgressSlot *s;

	if (slot < 0 || progress == NULL)
		return;
	SpinLockAcquire(&progress->mutex);
	s = &progress->slots[slot];
	s->epoch = p->epoch;
	s->epochs = p->epochs;
	s->step = p->step;
	s->train_loss = p->train_loss;
	s->valid_ndcg10 = p->valid_ndcg10;
	if (p->improved || isnan(s->best_valid_ndcg10))
		s->best_valid_ndcg10 = p->valid_ndcg10;
	s->updated = now;
	SpinLockRelease(&progress->mutex);
}

/* Record the steps taken so far. */
void
genrec_progress_step(int slot, int64 step)
{
	TimestampTz now = GetCurrentTimestamp();

	if (slot < 0 || progress == NULL)
		return;
	SpinLockAcquire(&progress->mutex);
	progress->slots[slot].step = step;
	progress->slots[slot].updated = now;
	SpinLockRelease(&progress->mutex);
}

/* Release a slot. */
void
genrec_progress_end(int slot)
{
	if (slot < 0 || progress == NULL)
		return;
	SpinLockAcquire(&progress->mutex);
	if (progress->slots[slot].pid == MyProcPid)
		progress->slots[slot].pid = 0;
	SpinLockRelease(&progress->mutex);
}

/* Return a double as a Datum, NULL when it is NaN. */
static Datum
progress_float(double v, bool *isnull)
{
	*isnull = isnan(v);
	return Float8GetDatum(v);
}

/* Return one row per running training in the cluster. */
Datum
genrec_training_progress(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ProgressSlot slots[GENREC_PROGRESS_SLOTS];

	InitMaterializedSRF(fcinfo, 0);
	if (!progress_attach())
		return (Datum) 0;
	SpinLockAcquire(&progress->mutex);
	memcpy(slots, progress->slots, sizeof(slots));
	SpinLockRelease(&progress->mutex);

	for (int i = 0; i < GENREC_PROGRESS_SLOTS; i++)
	{
		ProgressSlot *s = &slots[i];
		Datum		values[15];
		bool		nulls[15] = {0};

		if (s->pid == 0)
			continue;
		/* other databases' and other roles' trainings: superusers only */
		if (!superuser() && (s->dbid != MyDatabaseId || !genrec_has_privs_of(s->roleid)))
			continue;
		values[0] = Int32GetDatum(s->pid);
		values[1] = ObjectIdGetDatum(s->dbid);
		values[2] = ObjectIdGetDatum(s->roleid);
		values[3] = CStringGetTextDatum(s->name);
		values[4] = CStringGetTextDatum(s->phase);
		values[5] = Int64GetDatum(s->rows);
		/* the epoch in progress while training, the last one once it ends */
		values[6] = Int32GetDatum(strcmp(s->phase, "training") == 0 ?
								  Min(s->epoch + 1, s->epochs) : s->epoch);
		values[7] = Int32GetDatum(s->epochs);
		values[8] = Int64GetDatum(s->step);
		values[9] = Int32GetDatum(s->steps_per_epoch);
		nulls[9] = s->steps_per_epoch == 0;
		values[10] = progress_float(s->train_loss, &nulls[10]);
		values[11] = progress_float(s->valid_ndcg10, &nulls[11]);
		values[12] = progress_float(s->best_valid_ndcg10, &nulls[12]);
		values[13] = TimestampTzGetDatum(s->started);
		values[14] = TimestampTzGetDatum(s->updated);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
