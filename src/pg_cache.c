/*
 * pg_cache.c — models in shared memory (see pg_cache.h).
 *
 * Registry. GENREC_CACHE_SLOTS slots in the main shared memory segment, under one LWLock. A
 * slot is EMPTY, LOADING (one backend is writing its segment; others wait on the condition
 * variable) or READY (the segment is complete and pinned). With shared_preload_libraries the
 * registry is reserved at startup (shmem_request_hook); without it, the first backend that
 * needs it places it in the slack the main segment keeps for late allocations (about 100 kB;
 * the registry takes about 11 kB). If that fails, or genrec.shared_cache is off, or the
 * registry is full of models in use, a backend keeps a private copy (NOTICE once).
 *
 * Identity. A slot is keyed by the database, the model name, version, creation time, stored
 * size and the SHA-256 of its weights (genrec.models.weights_sha256, computed by the server);
 * the loader checks the bytes it read against that hash and writes it into the segment, and
 * every attach compares the segment's header (database, name, version, hash) and its payload
 * checksum with the catalogue row, so a row of another database (same name, version, time and
 * size) is never served in place of this one.
 *
 * Eviction. Each slot counts the backends attached to it and remembers when a backend last
 * switched to it. A version is dropped (its segment unpinned; the memory goes when the last
 * mapping goes) as soon as no backend is attached and a later-used version of the same name
 * exists: in practice right after every backend has moved to a newly deployed version. When
 * all slots are taken, or the segments would exceed genrec.shared_cache_size, the least
 * recently used versions make room, unattached ones first and then attached ones: a backend
 * that has an evicted version mapped keeps using its mapping (the memory stays until it lets
 * go), so an idle session that touched many models never holds slots that others need.
 * genrec_cache_evict() drops unattached versions on demand (e.g. after deleting a model). A
 * backend holds its attachment until its next genrec call notices the change, or it exits.
 *
 * Out of shared memory. When no segment can be created (the segment limit, or /dev/shm is
 * full), or a model alone exceeds genrec.shared_cache_size, the backend keeps a private copy
 * and says so in a NOTICE: serving never fails for lack of shared memory.
 */
#include "pg_cache.h"
#include "pg_registry.h"
#include "pg_security.h"

#include <math.h>

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/hashfn.h"
#include "common/sha2.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#include "gr_io.h"
#pragma GCC diagnostic pop


static bool genrec_shared_cache = true;
static int	genrec_shared_cache_mb = 1024;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static GenrecRegistry *registry = NULL;
static bool registry_failed = false;
static bool fallback_noticed = false;
static bool exit_hook_set = false;
static bool xact_hooks_set = false;
static uint64 seen_epoch = 0;
static int	threads_set = 0;		/* genrec.threads last given to the CPU backend */

static MemoryContext cache_cxt = NULL;
static List *local_models = NIL;	/* GenrecModel * in use by name */
static List *zombies = NIL;		/* replaced while pinned */
static SPIPlanPtr weights_plan = NULL;

/* Pins taken by calls in progress, with the subtransaction that took them. */
typedef struct PinRecord
{
	GenrecModel *model;
	SubTransactionId subxid;
} PinRecord;

static PinRecord *pin_stack = NULL;
static int	n_pin_stack = 0;
static int	cap_pin_stack = 0;

static void registry_attach(void);

/* Bytes of the registry in the main shared memory segment. */
static Size
registry_size(void)
{
	return MAXALIGN(sizeof(GenrecRegistry));
}

/* Ask for the registry's shared memory (preloaded only). */
static void
cache_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(registry_size());
}

/* Create the registry at postmaster start (preloaded only). */
static void
cache_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	registry_attach();
}

/* Define genrec.shared_cache and, when preloaded, reserve the registry. */
void
genrec_cache_init(void)
{
	DefineCustomBoolVariable("genrec.shared_cache",
							 "Keep loaded models in shared memory, one copy for all "
							 "backends (off: each backend loads its own copy).",
							 NULL, &genrec_shared_cache, true, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("genrec.shared_cache_size",
							"Most memory the models in shared memory may take together; a "
							"model that does not fit after evicting others is kept as a "
							"private copy.",
							NULL, &genrec_shared_cache_mb, 1024, 0, INT_MAX / 2, PGC_SIGHUP,
							GUC_UNIT_MB, NULL, NULL, NULL);
	if (process_shared_preload_libraries_in_progress)
	{
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = cache_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = cache_shmem_startup;
	}
}

/* Find or create the registry in the main segment and register its lock's tranche. */
static void
registry_attach(void)
{
	bool		found;
	GenrecRegistry *r;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	r = ShmemInitStruct(GENREC_SHMEM_NAME, registry_size(), &found);
	if (!found)
	{
		memset(r, 0, registry_size());
		r->tranche = LWLockNewTrancheId();
		LWLockInitialize(&r->lock, r->tranche);
		ConditionVariableInit(&r->cv);
		pg_atomic_init_u64(&r->epoch, 1);
		pg_atomic_init_flag(&r->cpu_noticed);
		SpinLockInit(&r->catalogue_mutex);
		r->catalogue_writer = InvalidTransactionId;
	}
	LWLockRelease(AddinShmemInitLock);
	LWLockRegisterTranche(r->tranche, "genrec_model_registry");
	registry = r;
}

/* Say once per backend that models are kept per backend, and why. */
static void
notice_fallback(const char *why)
{
	if (fallback_noticed)
		return;
	fallback_noticed = true;
	ereport(NOTICE,
			(errmsg("genrec keeps models in this backend's memory"),
			 errdetail("%s", why)));
}

static void cache_exit(int code, Datum arg);

/* The registry, created on first use; NULL when it cannot be had (a private cache then). */
static GenrecRegistry *
registry_get(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;

	if (registry != NULL || registry_failed)
		return registry;
	PG_TRY();
	{
		registry_attach();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		if (LWLockHeldByMe(AddinShmemInitLock))
			LWLockRelease(AddinShmemInitLock);
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		registry_failed = true;
		notice_fallback(psprintf("The shared model registry could not be placed in shared "
								 "memory (%s); add genrec to shared_preload_libraries to "
								 "reserve it.", edata->message));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	if (registry != NULL && !exit_hook_set)
	{
		before_shmem_exit(cache_exit, (Datum) 0);
		exit_hook_set = true;
	}
	return registry;
}

/* The registry this backend attached, or NULL (pg_index.c). */
GenrecRegistry *
genrec_registry(void)
{
	return registry;
}

/* Read the catalogue's change count and newest writer. */
bool
genrec_catalogue_generation(uint64 *gen, TransactionId *writer)
{
	GenrecRegistry *r = registry_get();

	if (r == NULL)
		return false;
	SpinLockAcquire(&r->catalogue_mutex);
	*gen = r->catalogue_gen;
	*writer = r->catalogue_writer;
	SpinLockRelease(&r->catalogue_mutex);
	return true;
}

/* Count a transaction that wrote genrec.models. */
void
genrec_catalogue_bump(TransactionId xid)
{
	if (registry == NULL)
		return;
	SpinLockAcquire(&registry->catalogue_mutex);
	registry->catalogue_gen++;
	if (TransactionIdIsValid(xid) &&
		(!TransactionIdIsValid(registry->catalogue_writer) ||
		 TransactionIdFollows(xid, registry->catalogue_writer)))
		registry->catalogue_writer = xid;
	SpinLockRelease(&registry->catalogue_mutex);
}

/* Bytes of name kept in a slot: whole characters only, at most GENREC_SLOT_NAME - 1. */
static int
slot_name_len(const char *name)
{
	return pg_mbcliplen(name, (int) strlen(name), GENREC_SLOT_NAME - 1);
}

/* A slot holds a model of this database with this name (the clipped name and the full hash). */
static bool
slot_has_name(const GenrecSlot *s, const char *name, uint64 name_hash)
{
	int			len = slot_name_len(name);

	return s->database == MyDatabaseId && s->name_hash == name_hash &&
		memcmp(s->name, name, len) == 0 && s->name[len] == '\0';
}

/* Identity of a slot equals ident. */
static bool
slot_matches(const GenrecSlot *s, const GenrecIdent *id)
{
	return s->state != SLOT_EMPTY && s->key == id->key && s->version == id->version &&
		s->created == id->created && s->stored_size == id->stored_size &&
		memcmp(s->sha256, id->sha256, sizeof(s->sha256)) == 0 &&
		slot_has_name(s, id->name, id->name_hash);
}

/* Two slots hold versions of the same model name of one database. */
static bool
slot_same_name(const GenrecSlot *a, const GenrecSlot *b)
{
	return a->database == b->database && a->name_hash == b->name_hash &&
		strcmp(a->name, b->name) == 0;
}

/* Drop a READY, unattached slot: unpin its segment (freed with the last mapping). */
static void
evict_locked(GenrecSlot *s)
{
	Assert(s->state == SLOT_READY && s->attached == 0);
	genrec_index_forget_locked(s);
	dsm_unpin_segment(s->handle);
	s->state = SLOT_EMPTY;
	s->gen++;
	registry->evictions++;
	pg_atomic_fetch_add_u64(&registry->epoch, 1);
}

/* A slot whose name has a more recently used READY version. */
static bool
superseded_locked(const GenrecSlot *s)
{
	for (int i = 0; i < GENREC_CACHE_SLOTS; i++)
	{
		const GenrecSlot *o = &registry->slots[i];

		if (o != s && o->state == SLOT_READY && slot_same_name(o, s) &&
			o->used_tick > s->used_tick)
			return true;
	}
	return false;
}

/* Mark a slot as the version in use for its name; drop unattached other versions. */
static void
touch_locked(GenrecSlot *s)
{
	s->used_tick = ++registry->tick;
	for (int i = 0; i < GENREC_CACHE_SLOTS; i++)
	{
		GenrecSlot *o = &registry->slots[i];

		if (o != s && o->state == SLOT_READY && o->attached == 0 && slot_same_name(o, s))
			evict_locked(o);
	}
}

/* Stop counting this backend as attached to a slot; drop it if superseded and unused. */
static void
slot_detach_locked(int slot, uint64 gen)
{
	GenrecSlot *s = &registry->slots[slot];

	if (s->gen != gen || s->state != SLOT_READY)
		return;				/* evicted meanwhile: nothing counts us any more */
	if (s->attached > 0)
		s->attached--;
	if (s->attached == 0 && superseded_locked(s))
		evict_locked(s);
}

/* Give a LOADING slot back (the load failed or its loader is gone). */
static void
abandon_loading_locked(GenrecSlot *s)
{
	s->state = SLOT_EMPTY;
	s->gen++;
	s->loader = 0;
}

/* The least recently used READY slot other than keep, unattached ones first; -1 if none. */
static int
lru_slot_locked(int keep)
{
	int			best = -1;

	for (int i = 0; i < GENREC_CACHE_SLOTS; i++)
	{
		GenrecSlot *s = &registry->slots[i];
		GenrecSlot *b = best >= 0 ? &registry->slots[best] : NULL;

		if (i == keep || s->state != SLOT_READY)
			continue;
		if (b == NULL || (s->attached == 0) > (b->attached == 0) ||
			((s->attached == 0) == (b->attached == 0) && s->used_tick < b->used_tick))
			best = i;
	}
	return best;
}

/*
 * Drop a READY slot even while backends have it mapped: they keep their mapping (the memory
 * goes with the last one), the registry forgets it.
 */
static void
evict_any_locked(GenrecSlot *s)
{
	s->attached = 0;
	evict_locked(s);
}

/* A slot for a new version: an empty one, else the least recently used one made free. */
static int
claim_slot_locked(void)
{
	int			best;

	for (int i = 0; i < GENREC_CACHE_SLOTS; i++)
		if (registry->slots[i].state == SLOT_EMPTY)
			return i;
	best = lru_slot_locked(-1);
	if (best >= 0)
		evict_any_locked(&registry->slots[best]);
	return best;
}

/* Make room for bytes more in shared memory beside slot keep; false if it cannot fit. */
bool
genrec_reserve_bytes_locked(int keep, Size bytes)
{
	Size		cap = (Size) genrec_shared_cache_mb * 1024 * 1024;

	if (bytes > cap)
		return false;			/* it would not fit alone: evict nothing */
	for (;;)
	{
		Size		used = 0;
		int			victim;

		for (int i = 0; i < GENREC_CACHE_SLOTS; i++)
			if (i != keep && registry->slots[i].state != SLOT_EMPTY)
				used += registry->slots[i].bytes;
		if (used <= cap - bytes)
			return true;
		victim = lru_slot_locked(keep);
		if (victim < 0)
			return false;
		evict_any_locked(&registry->slots[victim]);
	}
}

/* Release this backend's registry state at exit: attachments and unfinished loads. */
static void
cache_exit(int code, Datum arg)
{
	ListCell   *lc;

	if (registry == NULL)
		return;
	if (LWLockHeldByMe(&registry->lock))
		LWLockRelease(&registry->lock);
	LWLockAcquire(&registry->lock, LW_EXCLUSIVE);
	foreach(lc, local_models)
	{
		GenrecModel *m = lfirst(lc);

		if (m->slot >= 0)
			slot_detach_locked(m->slot, m->slot_gen);
		m->slot = -1;
	}
	foreach(lc, zombies)
	{
		GenrecModel *m = lfirst(lc);

		if (m->slot >= 0)
			slot_detach_locked(m->slot, m->slot_gen);
		m->slot = -1;
	}
	for (int i = 0; i < GENREC_CACHE_SLOTS; i++)
		if (registry->slots[i].state == SLOT_LOADING && registry->slots[i].loader == MyProcPid)
			abandon_loading_locked(&registry->slots[i]);
	genrec_index_exit_locked();
	LWLockRelease(&registry->lock);
	ConditionVariableBroadcast(&registry->cv);
}

/* ---------------------------------------------------------------- model segments */

/* Hash the payload of a segment (in chunks: hash_bytes_extended takes an int length). */
static uint64
blob_checksum(const GenrecBlob *b)
{
	const unsigned char *p = (const unsigned char *) b + b->items_off;
	Size		left = b->total - b->items_off;
	uint64		h = 0x9e3779b97f4a7c15ULL;

	while (left > 0)
	{
		int			chunk = (int) Min(left, (Size) 1 << 24);

		h = hash_bytes_extended(p, chunk, h);
		p += chunk;
		left -= chunk;
	}
	return h;
}

/* SHA-256 of bytes. */
static void
sha256_bytes(const uint8 *data, size_t len, uint8 *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, data, len) < 0 ||
		pg_cryptohash_final(ctx, out, PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
}

/* Load and validate a version's safetensors bytes (gr_model_load) into a temporary model. */
static gr_model *
load_engine_model(const GenrecIdent *id, MemoryContext tmp, gr_env *env)
{
	Datum		values[2];
	bool		isnull;
	bytea	   *bytes;
	gr_model   *model = NULL;
	gr_error	err = {0};
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	int			rc;

	if (weights_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, INT4OID};

		weights_plan = genrec_keep_plan("SELECT m.weights FROM genrec.models m "
										"WHERE m.name OPERATOR(pg_catalog.=) $1 "
										"AND m.version OPERATOR(pg_catalog.=) $2", 2, types);
	}
	values[0] = CStringGetTextDatum(id->name);
	values[1] = Int32GetDatum(id->version);
	rc = SPI_execute_plan(weights_plan, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" version %d does not exist", id->name, id->version)));
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(tmp);

		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("model \"%s\" version %d has no weights", id->name, id->version)));
		bytes = DatumGetByteaPP(d);
		MemoryContextSwitchTo(old);
	}
	/* the bytes must be the ones the catalogue's hash names (the registry is keyed by it) */
	sha256_bytes((const uint8 *) VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes), digest);
	if (memcmp(digest, id->sha256, sizeof(digest)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the weights of model \"%s\" version %d do not match their SHA-256",
						id->name, id->version)));
	/* validate and parse on the CPU, whatever the device: the segment is host memory */
	genrec_engine_env(env, tmp, NULL, NULL);
	if (env->ops->device != GR_DEVICE_CPU)
	{
		gr_ops	   *cpu = MemoryContextAlloc(tmp, sizeof(gr_ops));

		gr_ops_cpu_bind(cpu, &env->allocator);
		env->ops = cpu;
	}
	if (gr_model_load(env, (const uint8_t *) VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes),
					  &model, NULL, &err) != GR_OK)
		genrec_raise_engine_error(&err, psprintf("loading model \"%s\" version %d",
												 id->name, id->version));
	return model;
}

/* Bytes of the segment for a model. */
static Size
blob_size(const gr_model *model, const char *name, Size *items_off, Size *params_off)
{
	Size		head = offsetof(GenrecBlob, name) + strlen(name) + 1;

	*items_off = TYPEALIGN(64, head);
	*params_off = TYPEALIGN(64, *items_off + sizeof(int64) * ((Size) model->cfg.n_items + 1));
	return *params_off + sizeof(float) * model->n_params;
}

/* Write a model into a segment of blob_size bytes. */
static void
blob_fill(GenrecBlob *b, const gr_model *model, const GenrecIdent *id, Size total,
		  Size items_off, Size params_off)
{
	Size		name_len = strlen(id->name);

	memset(b, 0, items_off);
	b->magic = GENREC_BLOB_MAGIC;
	b->format = GENREC_BLOB_FORMAT;
	b->total = total;
	b->items_off = items_off;
	b->params_off = params_off;
	b->n_params = model->n_params;
	b->version = id->version;
	b->created = id->created;
	b->stored_size = id->stored_size;
	b->database = MyDatabaseId;
	memcpy(b->sha256, id->sha256, sizeof(b->sha256));
	b->key = id->key;
	b->cfg = model->cfg;
	b->name_len = (uint32) name_len;
	memcpy(b->name, id->name, name_len + 1);
	memcpy((char *) b + items_off, model->item_ids,
		   sizeof(int64) * ((Size) model->cfg.n_items + 1));
	gr_model_download_params(model, (float *) ((char *) b + params_off));
	b->checksum = blob_checksum(b);
}

/* A mapped segment is a complete model segment whose parts fit (payload checksum optional). */
static bool
blob_well_formed(const GenrecBlob *b, Size mapped, bool checksum)
{
	return mapped >= offsetof(GenrecBlob, name) && b->magic == GENREC_BLOB_MAGIC &&
		b->format == GENREC_BLOB_FORMAT && b->total <= mapped &&
		b->items_off < b->params_off && b->params_off <= b->total &&
		offsetof(GenrecBlob, name) + b->name_len < b->items_off &&
		b->n_params == gr_model_config_param_count(&b->cfg) &&
		b->items_off + sizeof(int64) * ((Size) b->cfg.n_items + 1) <= b->params_off &&
		b->params_off + sizeof(float) * b->n_params == b->total &&
		(!checksum || blob_checksum(b) == b->checksum);
}

/* Check a mapped segment against the version it should hold (and its checksum). */
static bool
blob_valid(const GenrecBlob *b, Size mapped, const GenrecIdent *id, bool checksum)
{
	return blob_well_formed(b, mapped, false) &&
		b->key == id->key && b->version == id->version && b->created == id->created &&
		b->stored_size == id->stored_size && b->database == MyDatabaseId &&
		memcmp(b->sha256, id->sha256, sizeof(b->sha256)) == 0 &&
		b->name_len == strlen(id->name) && strcmp(b->name, id->name) == 0 &&
		(!checksum || blob_checksum(b) == b->checksum);
}

/* A segment mapped elsewhere holds the model whose header a backend sent (see pg_cache.h). */
bool
genrec_blob_same(const GenrecBlob *b, Size mapped, const GenrecBlob *want, bool checksum)
{
	return blob_well_formed(b, mapped, false) &&
		b->key == want->key && b->version == want->version && b->created == want->created &&
		b->stored_size == want->stored_size && b->database == want->database &&
		memcmp(b->sha256, want->sha256, sizeof(b->sha256)) == 0 &&
		b->total == want->total && b->checksum == want->checksum &&
		(!checksum || blob_checksum(b) == b->checksum);
}

/* Whether the registry lists a READY segment of this key and handle (see pg_cache.h). */
bool
genrec_cache_lists(uint64 key, dsm_handle handle)
{
	bool		found = false;

	if (registry == NULL)
		return false;
	LWLockAcquire(&registry->lock, LW_SHARED);
	for (int i = 0; i < GENREC_CACHE_SLOTS && !found; i++)
		found = registry->slots[i].state == SLOT_READY && registry->slots[i].key == key &&
			registry->slots[i].handle == handle;
	LWLockRelease(&registry->lock);
	return found;
}

/* The registry's change counter (0 without a registry). */
uint64
genrec_cache_epoch(void)
{
	return registry != NULL ? pg_atomic_read_u64(&registry->epoch) : 0;
}

/*
 * Create a segment, or return NULL (with the reason in why) when none can be had: the
 * segment limit, or the memory behind it is exhausted (a full /dev/shm). dsm_create raises an
 * ERROR for the latter, caught in a subtransaction so that serving goes on with a private copy
 * (a parallel worker cannot start one: there the ERROR stands).
 */
dsm_segment *
genrec_segment_create(Size size, char **why)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	dsm_segment *seg = NULL;

	*why = NULL;
	if (IsInParallelMode())
		seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	else
	{
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcxt);
		PG_TRY();
		{
			seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
			/* out of the subtransaction's resource owner before it ends */
			if (seg != NULL)
				dsm_pin_mapping(seg);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;
			*why = psprintf("A shared memory segment of %zu bytes could not be created: %s",
							(size_t) size, edata->message);
			FreeErrorData(edata);
			seg = NULL;
		}
		PG_END_TRY();
		/* back under the statement's resource owner: an ERROR while filling detaches it */
		if (seg != NULL)
			dsm_unpin_mapping(seg);
	}
	if (seg == NULL && *why == NULL)
		*why = pstrdup("No more dynamic shared memory segments could be created.");
	return seg;
}

/*
 * Load a version. With seg_out, into a new segment when it fits genrec.shared_cache_size
 * beside the other versions (slot is the LOADING slot it will fill) and one can be created;
 * otherwise (and without seg_out) into memory of cxt, *seg_out = NULL and *why says why.
 */
static GenrecBlob *
load_blob(const GenrecIdent *id, MemoryContext cxt, dsm_segment **seg_out, int slot,
		  char **why)
{
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "genrec model load",
											  ALLOCSET_DEFAULT_SIZES);
	gr_env		env;
	gr_model   *model = load_engine_model(id, tmp, &env);
	Size		items_off,
				params_off,
				total = blob_size(model, id->name, &items_off, &params_off);
	GenrecBlob *b = NULL;

	if (seg_out != NULL)
	{
		bool		fits;

		*seg_out = NULL;
		LWLockAcquire(&registry->lock, LW_EXCLUSIVE);
		fits = genrec_reserve_bytes_locked(slot, total);
		if (fits)
			registry->slots[slot].bytes = total;
		LWLockRelease(&registry->lock);
		if (!fits)
			*why = psprintf("Model \"%s\" takes %zu bytes, more than genrec.shared_cache_size "
							"(%d MB) leaves.", id->name, (size_t) total, genrec_shared_cache_mb);
		else
			*seg_out = genrec_segment_create(total, why);
		if (*seg_out != NULL)
			b = dsm_segment_address(*seg_out);
	}
	if (b == NULL)
		b = MemoryContextAllocHuge(cxt, total);
	blob_fill(b, model, id, total, items_off, params_off);
	gr_model_free(model);
	MemoryContextDelete(tmp);
	return b;
}

/*
 * Attach to (or load and publish) a version in the registry. Returns the mapped segment,
 * counted as attached in the slot it returns; or NULL when the version cannot be shared (no
 * free slot, no room, no segment), with *private_blob the version loaded into cxt when it was
 * loaded here (NULL when the caller must load it) and *why the reason.
 */
static dsm_segment *
shared_get(const GenrecIdent *id, MemoryContext cxt, int *slot_out, uint64 *gen_out,
		   bool *loaded, GenrecBlob **private_blob, char **why)
{
	dsm_segment *seg = NULL;
	int			slot;

	*loaded = false;
	*private_blob = NULL;
	*why = NULL;
	for (;;)
	{
		GenrecSlot *s = NULL;

		LWLockAcquire(&registry->lock, LW_EXCLUSIVE);
		for (slot = 0; slot < GENREC_CACHE_SLOTS; slot++)
			if (slot_matches(&registry->slots[slot], id))
			{
				s = &registry->slots[slot];
				break;
			}
		if (s != NULL && s->state == SLOT_READY)
		{
			if (dsm_find_mapping(s->handle) != NULL)
			{
				/* an older handle of ours still maps it (a model replaced while in use) */
				LWLockRelease(&registry->lock);
				ConditionVariableCancelSleep();
				return NULL;
			}
			seg = dsm_attach(s->handle);
			if (seg == NULL)
			{
				/* cannot happen while pinned; forget the slot rather than loop */
				genrec_index_forget_locked(s);
				s->state = SLOT_EMPTY;
				s->gen++;
				LWLockRelease(&registry->lock);
				continue;
			}
			s->attached++;
			touch_locked(s);
			*slot_out = slot;
			*gen_out = s->gen;
			LWLockRelease(&registry->lock);
			ConditionVariableCancelSleep();
			return seg;
		}
		if (s != NULL)
		{
			/* LOADING: wait for the loader, or take over when it is gone */
			if (s->loader != MyProcPid && BackendPidGetProc(s->loader) != NULL)
			{
				LWLockRelease(&registry->lock);
				ConditionVariableTimedSleep(&registry->cv, 100, PG_WAIT_EXTENSION);
				continue;
			}
			abandon_loading_locked(s);
		}
		slot = claim_slot_locked();
		if (slot < 0)
		{
			LWLockRelease(&registry->lock);
			ConditionVariableCancelSleep();
			*why = psprintf("All %d shared model slots are being loaded.", GENREC_CACHE_SLOTS);
			return NULL;
		}
		s = &registry->slots[slot];
		memset(s->name, 0, sizeof(s->name));
		memcpy(s->name, id->name, slot_name_len(id->name));
		s->state = SLOT_LOADING;
		s->gen++;
		s->key = id->key;
		s->name_hash = id->name_hash;
		s->database = MyDatabaseId;
		s->owner = id->owner;
		memcpy(s->sha256, id->sha256, sizeof(s->sha256));
		s->version = id->version;
		s->created = id->created;
		s->stored_size = id->stored_size;
		s->bytes = 0;
		s->index_lists = 0;
		s->index_bytes = 0;
		s->index_builder = 0;
		s->loader = MyProcPid;
		s->attached = 0;
		*gen_out = s->gen;
		LWLockRelease(&registry->lock);
		break;
	}
	ConditionVariableCancelSleep();

	/* load outside the lock; on any error give the slot back */
	{
		TimestampTz start = GetCurrentTimestamp();
		GenrecBlob *b = NULL;
		GenrecSlot *s = &registry->slots[slot];

		PG_TRY();
		{
			b = load_blob(id, cxt, &seg, slot, why);
		}
		PG_CATCH();
		{
			if (LWLockHeldByMe(&registry->lock))
				LWLockRelease(&registry->lock);
			LWLockAcquire(&registry->lock, LW_EXCLUSIVE);
			if (s->gen == *gen_out && s->state == SLOT_LOADING)
				abandon_loading_locked(s);
			LWLockRelease(&registry->lock);
			ConditionVariableBroadcast(&registry->cv);
			PG_RE_THROW();
		}
		PG_END_TRY();
		LWLockAcquire(&registry->lock, LW_EXCLUSIVE);
		if (seg == NULL)
		{
			if (s->gen == *gen_out && s->state == SLOT_LOADING)
				abandon_loading_locked(s);
			LWLockRelease(&registry->lock);
			ConditionVariableBroadcast(&registry->cv);
			*private_blob = b;
			return NULL;
		}
		dsm_pin_segment(seg);
		s->handle = dsm_segment_handle(seg);
		s->bytes = b->total;
		s->attached = 1;
		s->loader = 0;
		s->loaded_at = GetCurrentTimestamp();
		s->load_ms = (double) (s->loaded_at - start) / 1000.0;
		s->state = SLOT_READY;
		touch_locked(s);
		registry->loads++;
		pg_atomic_fetch_add_u64(&registry->epoch, 1);
		LWLockRelease(&registry->lock);
		ConditionVariableBroadcast(&registry->cv);
	}
	*slot_out = slot;
	*loaded = true;
	return seg;
}

/* ---------------------------------------------------------------- backend entries */

/* Free an entry: engine state, plan, attachment and memory. */
static void
entry_free(GenrecModel *m)
{
	if (m->history_plan)
		SPI_freeplan(m->history_plan);
	gr_session_free(m->session);
	gr_model_free(m->model);
	if (m->slot >= 0 && registry != NULL)
	{
		LWLockAcquire(&registry->lock, LW_EXCLUSIVE);
		slot_detach_locked(m->slot, m->slot_gen);
		LWLockRelease(&registry->lock);
	}
	if (m->index_seg)
		dsm_detach(m->index_seg);
	if (m->seg)
		dsm_detach(m->seg);
	MemoryContextDelete(m->cxt);
}

/* Free an entry taken out of the backend's list now, or when its last pin goes. */
static void
entry_drop(GenrecModel *m)
{
	if (m->pins > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(cache_cxt);

		m->zombie = true;
		zombies = lappend(zombies, m);
		MemoryContextSwitchTo(old);
	}
	else
		entry_free(m);
}

/* Take an entry out of the backend's list; free it now or when its last pin goes. */
static void
entry_retire(GenrecModel *m)
{
	local_models = list_delete_ptr(local_models, m);
	entry_drop(m);
}

/* Build the engine view and session over a complete segment. */
static void
entry_bind(GenrecModel *m)
{
	gr_error	err = {0};
	const GenrecBlob *b = m->blob;
	char	   *what = psprintf("model \"%s\" version %d", m->name, m->version);

	m->device_gen = genrec_device_generation();
	genrec_engine_env(&m->env, m->cxt, NULL, NULL);
	if (gr_model_create_view(&m->env, &b->cfg, (const int64_t *) ((const char *) b + b->items_off),
							 (const float *) ((const char *) b + b->params_off), b->n_params,
							 &m->model, &err) != GR_OK ||
		gr_session_create(m->model, &m->session, &err) != GR_OK)
		genrec_raise_engine_error(&err, what);
	pfree(what);
}

/* Build a backend entry for a version: shared segment if possible, else a private copy. */
static GenrecModel *
entry_build(const GenrecIdent *id)
{
	MemoryContext cxt = AllocSetContextCreate(cache_cxt, "genrec model",
											  ALLOCSET_SMALL_SIZES);
	GenrecModel *m = MemoryContextAllocZero(cxt, sizeof(GenrecModel));
	TimestampTz start = GetCurrentTimestamp();

	m->cxt = cxt;
	m->name = MemoryContextStrdup(cxt, id->name);
	m->version = id->version;
	m->deployed = id->deployed;
	m->created = id->created;
	m->stored_size = id->stored_size;
	m->owner = id->owner;
	m->slot = -1;
	PG_TRY();
	{
		GenrecRegistry *r = genrec_shared_cache ? registry_get() : NULL;
		bool		loaded = false;
		GenrecBlob *private_blob = NULL;
		char	   *why = NULL;

		genrec_read_source(m);
		if (r != NULL)
			m->seg = shared_get(id, cxt, &m->slot, &m->slot_gen, &loaded, &private_blob, &why);
		if (why != NULL)
			ereport(NOTICE,
					(errmsg("model \"%s\" version %d is kept in this backend's memory",
							id->name, id->version),
					 errdetail("%s", why)));
		if (m->seg != NULL)
		{
			m->blob = dsm_segment_address(m->seg);
			if (!blob_valid(m->blob, dsm_segment_map_length(m->seg), id, !loaded))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("shared memory segment of model \"%s\" version %d is corrupt",
								id->name, id->version)));
			dsm_pin_mapping(m->seg);
		}
		else if (private_blob != NULL)
			m->blob = private_blob;
		else
		{
			if (!genrec_shared_cache)
				notice_fallback("genrec.shared_cache is off.");
			m->blob = load_blob(id, cxt, NULL, -1, &why);
		}
		entry_bind(m);
	}
	PG_CATCH();
	{
		if (registry != NULL && LWLockHeldByMe(&registry->lock))
			LWLockRelease(&registry->lock);
		if (m->slot >= 0)
		{
			LWLockAcquire(&registry->lock, LW_EXCLUSIVE);
			slot_detach_locked(m->slot, m->slot_gen);
			LWLockRelease(&registry->lock);
		}
		if (m->seg)
			dsm_detach(m->seg);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	m->loaded_at = GetCurrentTimestamp();
	m->load_ms = (double) (m->loaded_at - start) / 1000.0;
	return m;
}

/* Free retired entries nobody pins any more. */
static void
free_zombies(void)
{
	ListCell   *lc;

	foreach(lc, zombies)
	{
		GenrecModel *m = lfirst(lc);

		if (m->pins == 0)
		{
			zombies = foreach_delete_current(zombies, lc);
			entry_free(m);
		}
	}
}

/* After the registry changed, let go of versions other backends have moved away from. */
static void
sweep_superseded(const char *keep)
{
	ListCell   *lc;
	uint64		epoch;

	if (registry == NULL)
		return;
	epoch = pg_atomic_read_u64(&registry->epoch);
	if (epoch == seen_epoch)
		return;
	seen_epoch = epoch;
	foreach(lc, local_models)
	{
		GenrecModel *m = lfirst(lc);
		bool		stale;

		if (m->slot < 0 || m->pins > 0 || strcmp(m->name, keep) == 0)
			continue;
		LWLockAcquire(&registry->lock, LW_SHARED);
		stale = registry->slots[m->slot].gen != m->slot_gen ||
			superseded_locked(&registry->slots[m->slot]);
		LWLockRelease(&registry->lock);
		if (stale)
		{
			local_models = foreach_delete_current(local_models, lc);
			entry_free(m);
		}
	}
}

/* Drop a backend's pins taken in an aborted (sub)transaction. */
static void
unwind_pins(SubTransactionId from)
{
	while (n_pin_stack > 0 && pin_stack[n_pin_stack - 1].subxid >= from)
	{
		GenrecModel *m = pin_stack[--n_pin_stack].model;

		if (m->pins > 0)
			m->pins--;
	}
}

/* Forget pins of an aborted transaction (the entries stay cached). */
static void
cache_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		unwind_pins(InvalidSubTransactionId);
}

/* Forget pins of an aborted subtransaction. */
static void
cache_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		unwind_pins(mySubid);
}

/* Retire every entry built on another device generation (see pg_cache.h). */
void
genrec_cache_retire_device(uint64 keep)
{
	ListCell   *lc;

	foreach(lc, local_models)
	{
		GenrecModel *m = lfirst(lc);

		if (m->device_gen == keep)
			continue;
		local_models = foreach_delete_current(local_models, lc);
		entry_drop(m);
	}
}

/* Whether this backend is the first of the server to report auto's CPU fallback. */
bool
genrec_cache_first_cpu_notice(void)
{
	GenrecRegistry *r = registry_get();

	return r == NULL || pg_atomic_test_set_flag(&r->cpu_noticed);
}

/* Find a backend entry by model name. */
static GenrecModel *
local_find(const char *name)
{
	ListCell   *lc;

	foreach(lc, local_models)
	{
		GenrecModel *m = lfirst(lc);

		if (strcmp(m->name, name) == 0)
			return m;
	}
	return NULL;
}

/* Resolve, load if needed, and pin the model that serves name. */
GenrecModel *
genrec_model_acquire(const char *name)
{
	GenrecIdent id;
	GenrecModel *m;
	uint64		device_gen;

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "genrec model cache",
										  ALLOCSET_SMALL_SIZES);
	if (!xact_hooks_set)
	{
		RegisterXactCallback(cache_xact_callback, NULL);
		RegisterSubXactCallback(cache_subxact_callback, NULL);
		xact_hooks_set = true;
	}
	genrec_require_schema_version();
	/* first: a device switch retires (and may free) entries */
	device_gen = genrec_device_generation();
	genrec_catalogue_lookup(name, &id);
	free_zombies();
	sweep_superseded(name);
	m = local_find(name);
	if (m != NULL && (m->version != id.version || m->created != id.created ||
					  m->stored_size != id.stored_size ||
					  memcmp(m->blob->sha256, id.sha256, sizeof(id.sha256)) != 0 ||
					  m->device_gen != device_gen))
	{
		entry_retire(m);
		m = NULL;
	}
	if (m == NULL)
	{
		MemoryContext old;

		m = entry_build(&id);
		old = MemoryContextSwitchTo(cache_cxt);
		local_models = lappend(local_models, m);
		MemoryContextSwitchTo(old);
	}
	m->deployed = id.deployed;
	m->env.n_threads = genrec_threads;
	if (genrec_threads != threads_set)
	{
		gr_ops_cpu_set_threads(genrec_threads);
		threads_set = genrec_threads;
	}
	if (n_pin_stack == cap_pin_stack)
	{
		cap_pin_stack = cap_pin_stack ? 2 * cap_pin_stack : 8;
		pin_stack = pin_stack ?
			repalloc(pin_stack, sizeof(PinRecord) * cap_pin_stack) :
			MemoryContextAlloc(cache_cxt, sizeof(PinRecord) * cap_pin_stack);
	}
	pin_stack[n_pin_stack].model = m;
	pin_stack[n_pin_stack].subxid = GetCurrentSubTransactionId();
	n_pin_stack++;
	m->pins++;
	return m;
}

/* Unpin a model. */
void
genrec_model_release(GenrecModel *m)
{
	for (int i = n_pin_stack - 1; i >= 0; i--)
		if (pin_stack[i].model == m)
		{
			memmove(&pin_stack[i], &pin_stack[i + 1], sizeof(PinRecord) * (n_pin_stack - i - 1));
			n_pin_stack--;
			m->pins--;
			break;
		}
}

/* The default model's name, or an ERROR telling how to set it. */
const char *
genrec_default_model_name(void)
{
	if (genrec_default_model == NULL || genrec_default_model[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no model given and genrec.default_model is not set"),
				 errhint("SET genrec.default_model = 'name', or pass the model name first.")));
	return genrec_default_model;
}

/* ---------------------------------------------------------------- SQL functions */

PG_FUNCTION_INFO_V1(genrec_cache_status);

/* List the shared registry's versions and this backend's private copies. */
Datum
genrec_cache_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	GenrecRegistry *r = genrec_shared_cache ? registry_get() : registry;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	if (r != NULL)
	{
		GenrecSlot *copy = palloc(sizeof(GenrecSlot) * GENREC_CACHE_SLOTS);
		bool	   *sup = palloc0(sizeof(bool) * GENREC_CACHE_SLOTS);

		LWLockAcquire(&r->lock, LW_SHARED);
		memcpy(copy, r->slots, sizeof(GenrecSlot) * GENREC_CACHE_SLOTS);
		for (int i = 0; i < GENREC_CACHE_SLOTS; i++)
			sup[i] = copy[i].state == SLOT_READY && superseded_locked(&r->slots[i]);
		LWLockRelease(&r->lock);
		for (int i = 0; i < GENREC_CACHE_SLOTS; i++)
		{
			GenrecSlot *s = &copy[i];
			Datum		v[12];
			bool		n[12] = {0};
			bool		mine = false;

			if (s->state == SLOT_EMPTY)
				continue;
			/* other databases' and other roles' models: superusers only */
			if (!superuser() && (s->database != MyDatabaseId || !genrec_has_privs_of(s->owner)))
				continue;
			foreach(lc, local_models)
				mine |= ((GenrecModel *) lfirst(lc))->slot == i &&
				((GenrecModel *) lfirst(lc))->slot_gen == s->gen;
			v[0] = CStringGetTextDatum(s->name);
			v[1] = Int32GetDatum(s->version);
			v[2] = CStringGetTextDatum(s->state == SLOT_READY ? "ready" : "loading");
			v[3] = BoolGetDatum(true);
			v[4] = Int64GetDatum((int64) s->bytes);
			v[5] = Int32GetDatum(s->attached);
			v[6] = TimestampTzGetDatum(s->loaded_at);
			n[6] = s->state != SLOT_READY;
			v[7] = Float8GetDatum(s->load_ms);
			n[7] = s->state != SLOT_READY;
			v[8] = BoolGetDatum(mine);
			v[9] = Int64GetDatum((int64) s->handle);
			n[9] = s->state != SLOT_READY;
			v[10] = Int32GetDatum(s->index_lists);
			n[10] = s->index_lists == 0;
			v[11] = Int64GetDatum((int64) s->index_bytes);
			n[11] = s->index_lists == 0;
			if (sup[i])
				v[2] = CStringGetTextDatum("superseded");
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
		}
	}
	foreach(lc, local_models)
	{
		GenrecModel *m = lfirst(lc);
		Datum		v[12];
		bool		n[12] = {0};

		if (m->seg != NULL)
			continue;
		if (!superuser() && !genrec_has_privs_of(m->owner))
			continue;
		v[0] = CStringGetTextDatum(m->name);
		v[1] = Int32GetDatum(m->version);
		v[2] = CStringGetTextDatum("private");
		v[3] = BoolGetDatum(false);
		v[4] = Int64GetDatum((int64) m->blob->total);
		v[5] = Int32GetDatum(1);
		v[6] = TimestampTzGetDatum(m->loaded_at);
		v[7] = Float8GetDatum(m->load_ms);
		v[8] = BoolGetDatum(true);
		n[9] = true;
		v[10] = Int32GetDatum(m->ivf != NULL ? m->ivf->lists : 0);
		n[10] = m->ivf == NULL;
		v[11] = Int64GetDatum(m->ivf != NULL ? (int64) gr_ivf_flat_size(m->ivf) : 0);
		n[11] = m->ivf == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(genrec_cache_evict);

/* Drop cached versions (of one model, or all) that no backend has attached. */
Datum
genrec_cache_evict(PG_FUNCTION_ARGS)
{
	char	   *name = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		all = superuser();
	uint64		name_hash = name ? hash_bytes_extended((const unsigned char *) name,
													   (int) strlen(name), 0) : 0;
	ListCell   *lc;
	int			dropped = 0;

	foreach(lc, local_models)
	{
		GenrecModel *m = lfirst(lc);

		if (m->pins == 0 && (name == NULL || strcmp(m->name, name) == 0))
		{
			local_models = foreach_delete_current(local_models, lc);
			entry_free(m);
		}
	}
	free_zombies();
	if (registry_get() == NULL)
		PG_RETURN_INT32(0);
	LWLockAcquire(&registry->lock, LW_EXCLUSIVE);
	for (int i = 0; i < GENREC_CACHE_SLOTS; i++)
	{
		GenrecSlot *s = &registry->slots[i];

		if (s->state == SLOT_READY && s->attached == 0 &&
			(all || (s->database == MyDatabaseId && genrec_has_privs_of(s->owner))) &&
			(name == NULL || slot_has_name(s, name, name_hash)))
		{
			evict_locked(s);
			dropped++;
		}
	}
	LWLockRelease(&registry->lock);
	PG_RETURN_INT32(dropped);
}
