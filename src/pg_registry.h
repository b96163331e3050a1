/*
 * pg_registry.h — the model registry in the main shared memory segment, shared by pg_cache.c
 * (models) and pg_index.c (the retrieval index published beside a model). Not for other
 * files: they go through pg_cache.h.
 *
 * Every field of a slot is read and written under registry->lock; a slot's gen changes
 * whenever it changes identity, so a backend that remembered (slot, gen) can tell whether
 * the slot still holds its model.
 */
#ifndef PG_REGISTRY_H
#define PG_REGISTRY_H

#include "pg_cache.h"

#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

#define GENREC_CACHE_SLOTS	64
#define GENREC_SLOT_NAME	64
#define GENREC_BLOB_MAGIC	0x42524d47	/* "GMRB" */
#define GENREC_BLOB_FORMAT	2
#define GENREC_SHMEM_NAME	"genrec model registry v3"

typedef enum SlotState
{
	SLOT_EMPTY = 0,
	SLOT_LOADING,
	SLOT_READY
} SlotState;

typedef struct GenrecSlot
{
	SlotState	state;
	uint64		gen;			/* bumped whenever the slot changes identity */
	uint64		key;			/* hash of the identity (see GenrecIdent) */
	uint64		name_hash;
	Oid			database;
	Oid			owner;
	uint8		sha256[32];
	int32		version;
	TimestampTz created;
	int64		stored_size;
	char		name[GENREC_SLOT_NAME]; /* clipped; the segment holds the full name */
	dsm_handle	handle;
	Size		bytes;
	int			attached;		/* backends with the segment mapped */
	int			loader;			/* pid writing the segment (LOADING) */
	uint64		used_tick;		/* when a backend last switched to this version */
	TimestampTz loaded_at;
	double		load_ms;
	/* the retrieval index published beside the model (pg_index.c) */
	int			index_lists;	/* lists of the published index; 0 = none */
	dsm_handle	index_handle;
	Size		index_bytes;	/* of its segment (counted in bytes too) */
	int			index_builder;	/* pid building one to publish; 0 = none */
	int			index_build_lists;
} GenrecSlot;

typedef struct GenrecRegistry
{
	LWLock		lock;
	int			tranche;
	ConditionVariable cv;		/* broadcast when a LOADING slot changes */
	pg_atomic_uint64 epoch;		/* bumped at every publish and eviction */
	slock_t		catalogue_mutex;
	uint64		catalogue_gen;	/* transactions that wrote genrec.models */
	TransactionId catalogue_writer; /* the newest of them */
	pg_atomic_flag cpu_noticed; /* auto's CPU fallback was logged */
	uint64		tick;
	uint64		loads;
	uint64		evictions;
	GenrecSlot	slots[GENREC_CACHE_SLOTS];
} GenrecRegistry;

/* The registry, attached (or NULL when this backend has none). */
GenrecRegistry *genrec_registry(void);

/* Make room for bytes more in shared memory beside slot keep; false if it cannot fit. */
bool		genrec_reserve_bytes_locked(int keep, Size bytes);

/* Forget a slot's published index (unpin its segment) and any build in progress. */
void		genrec_index_forget_locked(GenrecSlot *s);

/* Give up this backend's index builds (at exit). */
void		genrec_index_exit_locked(void);

#endif							/* PG_REGISTRY_H */
