/*
 * pg_index.c — the IVF retrieval index of a model, built once per server and shared.
 *
 * A model version in the shared registry (pg_cache.c) can carry one published index: a
 * dynamic shared memory segment holding the index as a flat block (gr_ivf_flat.c), tagged
 * with the model's identity hash, whose rows are read from the model's own segment. The
 * first backend that asks for an index with genrec.ivf_probes > 0 builds it (k-means over
 * the item table: seconds at 10^6 items) and publishes it; every other backend maps it and
 * checks it (gr_ivf_view) instead of building its own. While one backend builds, others
 * asking for the same list count wait for it (interruptibly; a builder that errors out or
 * exits hands the job back), so a burst of new sessions after a deploy builds once.
 *
 * One index per version: a backend whose genrec.ivf_lists asks for another list count than
 * the published one, or whose model is a private copy, or when the index would not fit
 * genrec.shared_cache_size beside the other models, builds and keeps its own (NOTICE). The
 * index's bytes count in its model's slot, and it goes when its model is evicted: backends
 * that mapped it keep their mapping until they let go of the model.
 */
#include "pg_cache.h"
#include "pg_registry.h"

#include "miscadmin.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

/* Forget a slot's published index (unpin its segment) and any build in progress. */
void
genrec_index_forget_locked(GenrecSlot *s)
{
	if (s->index_lists > 0)
	{
		dsm_unpin_segment(s->index_handle);
		s->bytes -= Min(s->bytes, s->index_bytes);
	}
	s->index_lists = 0;
	s->index_bytes = 0;
	s->index_builder = 0;
	s->index_build_lists = 0;
}

/* Give up this backend's index builds (at exit). */
void
genrec_index_exit_locked(void)
{
	GenrecRegistry *r = genrec_registry();

	for (int i = 0; r != NULL && i < GENREC_CACHE_SLOTS; i++)
		if (r->slots[i].index_builder == MyProcPid)
			r->slots[i].index_builder = 0;
}

/* The item table the index is built over and reads: the item embeddings past row 0. */
static const float *
index_items(const GenrecModel *m)
{
	const gr_tensor *t = gr_model_tensor(m->model, "item_emb");
	const float *params = (const float *) ((const char *) m->blob + m->blob->params_off);

	if (t == NULL)
		elog(ERROR, "model \"%s\" has no item table", m->name);
	return params + t->offset + m->model->cfg.d_model;
}

/* Map a published index segment and check it; the view, or ERROR when it is corrupt. */
static gr_ivf *
index_attach(GenrecModel *m, dsm_handle handle)
{
	gr_error	err = {0};
	gr_ivf	   *view = NULL;
	dsm_segment *seg = dsm_attach(handle);

	if (seg == NULL)
		return NULL;			/* unpinned meanwhile: the caller builds its own */
	if (gr_ivf_view(&m->env, dsm_segment_address(seg), dsm_segment_map_length(seg),
					m->blob->key, index_items(m), m->model->cfg.n_items,
					m->model->cfg.d_model, &view, &err) != GR_OK)
	{
		dsm_detach(seg);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("shared retrieval index of model \"%s\" version %d is corrupt",
						m->name, m->version),
				 errdetail("%s", err.message)));
	}
	dsm_pin_mapping(seg);
	m->index_seg = seg;
	return view;
}

typedef enum IndexClaim
{
	INDEX_PRIVATE,				/* build one and keep it */
	INDEX_BUILD,				/* build one and publish it (this backend is the builder) */
	INDEX_ATTACHED				/* a published one was mapped into *out */
} IndexClaim;

/* Find the slot's published index, wait for a build in progress, or claim the build. */
static IndexClaim
index_claim(GenrecModel *m, int lists, gr_ivf **out, char **why)
{
	GenrecRegistry *r = genrec_registry();
	IndexClaim	claim = INDEX_PRIVATE;

	*out = NULL;
	if (r == NULL || m->slot < 0)
	{
		*why = pstrdup("The model is kept in this backend's memory.");
		return INDEX_PRIVATE;
	}
	for (;;)
	{
		GenrecSlot *s = &r->slots[m->slot];
		dsm_handle	handle = DSM_HANDLE_INVALID;

		LWLockAcquire(&r->lock, LW_EXCLUSIVE);
		if (s->gen != m->slot_gen || s->state != SLOT_READY)
			*why = pstrdup("The model's shared copy was evicted.");
		else if (s->index_lists == lists)
			handle = s->index_handle;
		else if (s->index_lists > 0)
			*why = psprintf("The shared index has %d lists (genrec.ivf_lists).", s->index_lists);
		else if (s->index_builder != 0 && s->index_builder != MyProcPid &&
				 BackendPidGetProc(s->index_builder) != NULL)
		{
			if (s->index_build_lists == lists)
			{
				LWLockRelease(&r->lock);
				ConditionVariableTimedSleep(&r->cv, 100, PG_WAIT_EXTENSION);
				continue;
			}
			*why = psprintf("Another session is building an index of %d lists.",
							s->index_build_lists);
		}
		else
		{
			s->index_builder = MyProcPid;
			s->index_build_lists = lists;
			claim = INDEX_BUILD;
		}
		LWLockRelease(&r->lock);
		if (handle != DSM_HANDLE_INVALID && (*out = index_attach(m, handle)) != NULL)
			claim = INDEX_ATTACHED;
		break;
	}
	ConditionVariableCancelSleep();
	return claim;
}

/* Hand a claimed build back (it failed, or its index was published or dropped). */
static void
index_unclaim(GenrecModel *m)
{
	GenrecRegistry *r = genrec_registry();
	GenrecSlot *s = &r->slots[m->slot];

	if (LWLockHeldByMe(&r->lock))
		LWLockRelease(&r->lock);
	LWLockAcquire(&r->lock, LW_EXCLUSIVE);
	if (s->gen == m->slot_gen && s->index_builder == MyProcPid)
		s->index_builder = 0;
	LWLockRelease(&r->lock);
	ConditionVariableBroadcast(&r->cv);
}

/*
 * Publish a freshly built index beside its model: a new segment, counted in the model's
 * slot. Returns the view over the segment (the private index is freed), or NULL with *why.
 */
static gr_ivf *
index_publish(GenrecModel *m, gr_ivf *built, char **why)
{
	GenrecRegistry *r = genrec_registry();
	GenrecSlot *s = &r->slots[m->slot];
	Size		size = gr_ivf_flat_size(built);
	dsm_segment *seg = NULL;
	bool		fits,
				published = false;

	LWLockAcquire(&r->lock, LW_EXCLUSIVE);
	fits = s->gen == m->slot_gen && s->state == SLOT_READY &&
		genrec_reserve_bytes_locked(m->slot, s->bytes + size);
	if (fits)
		s->bytes += size;		/* held while the segment is made */
	LWLockRelease(&r->lock);
	if (!fits)
		*why = psprintf("The index (%zu bytes) does not fit genrec.shared_cache_size beside "
						"the models in memory.", (size_t) size);
	else
		seg = genrec_segment_create(size, why);
	if (seg != NULL)
	{
		gr_ivf_flatten(built, m->blob->key, dsm_segment_address(seg));
		dsm_pin_segment(seg);
	}
	LWLockAcquire(&r->lock, LW_EXCLUSIVE);
	if (s->gen == m->slot_gen && s->state == SLOT_READY)
	{
		if (fits)
			s->bytes -= Min(s->bytes, size);
		if (seg != NULL && s->index_lists == 0)
		{
			s->index_lists = built->lists;
			s->index_handle = dsm_segment_handle(seg);
			s->index_bytes = size;
			s->bytes += size;
			published = true;
		}
	}
	if (s->gen == m->slot_gen && s->index_builder == MyProcPid)
		s->index_builder = 0;
	if (seg != NULL && !published)
		dsm_unpin_segment(dsm_segment_handle(seg));
	LWLockRelease(&r->lock);
	ConditionVariableBroadcast(&r->cv);
	if (seg == NULL)
		return NULL;
	if (!published)
	{
		dsm_detach(seg);
		*why = pstrdup("The model's shared copy was evicted while the index was built.");
		return NULL;
	}
	{
		gr_error	err = {0};
		gr_ivf	   *view = NULL;

		if (gr_ivf_view(&m->env, dsm_segment_address(seg), size, m->blob->key, built->items,
						built->n_items, built->d, &view, &err) != GR_OK)
			genrec_raise_engine_error(&err, "viewing the index just published");
		dsm_pin_mapping(seg);
		m->index_seg = seg;
		gr_ivf_free(&m->env, built);
		return view;
	}
}

/* Build an index of lists lists over the model's items (ERROR on failure or cancel). */
static gr_ivf *
index_build(GenrecModel *m, int lists)
{
	gr_error	err = {0};
	gr_ivf	   *ivf = NULL;

	if (gr_ivf_build(&m->env, index_items(m), m->model->cfg.n_items, m->model->cfg.d_model,
					 lists, 1, &ivf, &err) != GR_OK)
		genrec_raise_engine_error(&err, psprintf("building the retrieval index of model "
												 "\"%s\"", m->name));
	return ivf;
}

/* Drop this backend's index of a model (its view, mapping or private copy). */
void
genrec_model_index_drop(GenrecModel *m)
{
	gr_ivf_free(&m->env, m->ivf);
	m->ivf = NULL;
	if (m->index_seg)
		dsm_detach(m->index_seg);
	m->index_seg = NULL;
}

/*
 * The model's index of lists lists: this backend's, the published one, or one built now
 * (published when it can be, else kept here with a NOTICE). The caller has detached the old
 * one from the model's session.
 */
gr_ivf *
genrec_model_index(GenrecModel *m, int lists)
{
	gr_ivf	   *ivf = NULL;
	char	   *why = NULL;
	IndexClaim	claim;
	bool		shared;

	if (m->ivf != NULL && m->ivf->lists == lists)
		return m->ivf;
	genrec_model_index_drop(m);
	claim = index_claim(m, lists, &ivf, &why);
	if (claim == INDEX_ATTACHED)
		return m->ivf = ivf;
	if (claim == INDEX_BUILD)
	{
		PG_TRY();
		{
			ivf = index_build(m, lists);
		}
		PG_CATCH();
		{
			index_unclaim(m);
			PG_RE_THROW();
		}
		PG_END_TRY();
		{
			gr_ivf	   *view = index_publish(m, ivf, &why);

			if (view != NULL)
				ivf = view;
		}
	}
	else
		ivf = index_build(m, lists);
	shared = m->index_seg != NULL;
	ereport(NOTICE,
			(errmsg("built an IVF index of %d lists over the %d items of model \"%s\" version "
					"%d in %.0f ms (%.1f MB, %s)", lists, m->model->cfg.n_items, m->name,
					m->version, ivf->build_ms, gr_ivf_flat_size(ivf) / 1048576.0,
					shared ? "shared by every session" : "kept by this session"),
			 why != NULL ? errdetail("%s", why) : 0));
	return m->ivf = ivf;
}
