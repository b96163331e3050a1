/*
 * pg_cache.h — trained models resolved from the catalogue (genrec.models) and kept in memory:
 * one read-only copy per (name, version) in a dynamic shared memory segment that every
 * backend maps, plus each backend's engine state for it (a model view and a scoring session).
 *
 * A segment holds [GenrecBlob header][int64 item ids, V + 1][float parameters]; backends build
 * their gr_model with gr_model_create_view over the mapping, so a new connection never reloads
 * and never copies the weights. A small registry in the main shared memory segment (fixed
 * slots, an LWLock and a condition variable) maps (name, version, created, stored size) to a
 * segment handle; a slot is published (READY) only after its segment is fully written, and
 * concurrent loaders of one version wait for the first. See pg_cache.c for the eviction policy.
 * A version can carry one IVF retrieval index in a segment of its own, published by the
 * first backend that builds it (pg_index.c) and evicted with the version.
 *
 * Callers are glue functions with SPI connected: genrec_model_acquire() looks up the version
 * that serves a name (the deployed one, else the newest) in the caller's snapshot, so a deploy
 * switches versions atomically per statement.
 */
#ifndef PG_CACHE_H
#define PG_CACHE_H

#include "pg_genrec.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "storage/dsm.h"

/* engine headers are C11; PostgreSQL builds with -Wdeclaration-after-statement */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#include "gr_serve.h"
#pragma GCC diagnostic pop

/* Where a model's interactions live (genrec.models.source), identifiers already quoted. */
typedef struct GenrecSource
{
	char	   *relation;		/* quoted qualified table name, or NULL */
	bool		physical;		/* relation is a table or materialized view (has ctid) */
	char	   *query;			/* SQL text (names schema-qualified), or NULL */
	Oid			owner;			/* the model's owner: the source is read with its rights */
	char	   *user_col;
	char	   *item_col;
	int			n_actions;
	char	   *action_cols[GR_MAX_ACTIONS];
	char	   *action_names[GR_MAX_ACTIONS];	/* unquoted, for labels */
	char	   *time_col;		/* or NULL */
	char	   *tiebreak_col;	/* or NULL */
} GenrecSource;

/* The model segment's header. */
typedef struct GenrecBlob
{
	uint32		magic;
	uint32		format;
	Size		total;			/* bytes of the whole segment */
	Size		items_off;		/* int64 [V + 1] */
	Size		params_off;		/* float [n_params] */
	Size		n_params;
	int32		version;
	TimestampTz created;
	int64		stored_size;
	Oid			database;
	uint8		sha256[32];		/* of the safetensors bytes it was loaded from */
	uint64		key;
	uint64		checksum;		/* hash of the bytes [items_off, total) */
	gr_model_config cfg;
	uint32		name_len;
	char		name[FLEXIBLE_ARRAY_MEMBER];
} GenrecBlob;

/* One backend's handle on one model version. */
typedef struct GenrecModel
{
	char	   *name;
	int32		version;
	bool		deployed;
	TimestampTz created;
	int64		stored_size;	/* pg_column_size(weights) */
	Oid			owner;			/* the model's owner */
	MemoryContext cxt;			/* owns everything below */
	gr_env		env;
	uint64		device_gen;		/* genrec_device_generation() when the view was built */
	gr_model   *model;			/* a view over blob */
	gr_session *session;
	gr_ivf	   *ivf;			/* retrieval index (pg_index.c): a view of index_seg, or private */
	dsm_segment *index_seg;		/* the shared index's segment, mapped; NULL: none or private */
	const GenrecBlob *blob;
	GenrecSource source;
	SPIPlanPtr	history_plan;	/* prepared on first use by pg_source.c, as plan_owner */
	Oid			plan_owner;
	dsm_segment *seg;			/* NULL: a private copy in cxt */
	int			slot;			/* registry slot counted as attached, or -1 */
	uint64		slot_gen;
	int			pins;			/* calls in progress using it */
	bool		zombie;			/* replaced while pinned: free at the last unpin */
	TimestampTz loaded_at;
	double		load_ms;		/* time to load (or attach) in this backend */
} GenrecModel;

/* Grantees remembered with a lookup; a model with more is looked up on every call. */
#define GENREC_MEMO_GRANTEES 16

/* A model version as the catalogue names it, with who may use it. */
typedef struct GenrecIdent
{
	const char *name;
	int32		version;
	bool		deployed;
	TimestampTz created;
	int64		stored_size;
	uint8		sha256[32];		/* genrec.models.weights_sha256 */
	Oid			owner;
	int			n_grantees;		/* -1: more than GENREC_MEMO_GRANTEES (not remembered) */
	Oid			grantees[GENREC_MEMO_GRANTEES];	/* InvalidOid = PUBLIC */
	uint64		name_hash;
	uint64		key;			/* hash of (database, name, version, created, size, sha256) */
} GenrecIdent;

/* ---- between pg_cache.c and pg_lookup.c */

/* Prepare and keep a plan (ERROR on failure). */
SPIPlanPtr	genrec_keep_plan(const char *sql, int nargs, Oid *argtypes);

/*
 * The version that serves name in the current snapshot (ERROR 42704 when none), with its owner
 * and grantees; ERROR 42501 when the current role may not use it (checked on every call).
 */
void		genrec_catalogue_lookup(const char *name, GenrecIdent *id);

/* Read a version's source mapping into m->source (in m->cxt). */
void		genrec_read_source(GenrecModel *m);

/*
 * The catalogue's change counter in shared memory: *gen counts committed (or prepared)
 * transactions that wrote genrec.models, *writer is the newest of them. False when there is
 * no registry.
 */
bool		genrec_catalogue_generation(uint64 *gen, TransactionId *writer);

/* Count a transaction that wrote genrec.models (called just before it commits). */
void		genrec_catalogue_bump(TransactionId xid);

/* Define the cache's settings and, when preloaded, reserve its shared memory (from _PG_init). */
void		genrec_cache_init(void);

/*
 * Retire every cached model built on a device generation other than keep (freed now, or at
 * the last unpin of one in use): called before a device is closed.
 */
void		genrec_cache_retire_device(uint64 keep);

/* Say once for the whole server (in its log) that auto chose the CPU; false without a registry. */
bool		genrec_cache_first_cpu_notice(void);

/*
 * The model that serves name, ready to score: looked up in genrec.models in the current
 * snapshot (ERROR 42704 when no version exists), then found in this backend's cache, the
 * shared registry, or loaded. Needs SPI connected. Pinned until genrec_model_release.
 */
GenrecModel *genrec_model_acquire(const char *name);

/* Unpin a model from genrec_model_acquire. */
void		genrec_model_release(GenrecModel *m);

/*
 * For the serving worker, which has no catalogue row at hand: whether a segment it mapped
 * (mapped bytes) is a well-formed model segment with the identity (key, version, created,
 * stored size, database, SHA-256, total, checksum) of the header want that a backend sent,
 * recomputing the payload checksum when asked.
 */
bool		genrec_blob_same(const GenrecBlob *b, Size mapped, const GenrecBlob *want,
							 bool checksum);

/*
 * Create a dynamic shared memory segment (mapped under the current resource owner), or return
 * NULL with the reason in why when none can be had: the segment limit, or the memory behind
 * it is exhausted (a full /dev/shm), caught in a subtransaction (not in a parallel worker).
 */
dsm_segment *genrec_segment_create(Size size, char **why);

/* Whether the registry lists a READY version with this key in segment handle. */
bool		genrec_cache_lists(uint64 key, dsm_handle handle);

/* A counter the registry bumps at every publish and eviction (0 without a registry). */
uint64		genrec_cache_epoch(void);

/* The model name in genrec.default_model, or ERROR 22023 when it is not set. */
const char *genrec_default_model_name(void);

/* The layout's name for a model. */
static inline const char *
genrec_layout_name(const GenrecModel *m)
{
	return m->model->layout->name;
}

/* ---- pg_index.c */

/*
 * The model's IVF index of lists lists for indexed retrieval: this backend's, the one
 * published beside the model's shared copy, or one built now (published when it can be,
 * else kept by this backend, with a NOTICE either way). ERROR when the build fails or is
 * cancelled, or a published index is corrupt. The caller has detached the old index from the
 * model's session.
 */
gr_ivf	   *genrec_model_index(GenrecModel *m, int lists);

/* Drop this backend's index of a model. */
void		genrec_model_index_drop(GenrecModel *m);

#endif							/* PG_CACHE_H */
