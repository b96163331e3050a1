/*
 * pg_serve.c — scoring and retrieval from SQL: genrec_score, genrec_score_detail and
 * genrec_recommend, each for a user id (history read from the model's source), for a
 * genrec_history value, and (score, recommend) for genrec.default_model.
 *
 * Per call: SPI connects, the model is resolved in the caller's snapshot (pg_cache.c), the
 * history is read with the version's prepared plan, the engine scores — in the serving worker
 * when one runs (pg_worker.h), else with the backend's session for that version — and results
 * are built in the caller's memory context.
 *
 * Policies (README "Serving"): unknown candidate items and NULL candidates give NULL scores;
 * an empty candidate array gives an empty array; a user without interactions (or an empty
 * history) is scored as a cold start by the layouts that pack candidates, and is an ERROR P0002
 * (no_data_found) for the others, and for every genrec_recommend. Layouts without an item
 * head (l4, l5, l7) cannot recommend (0A000); l5 and l7 have no candidate-specific score for
 * genrec_score (0A000), and genrec_score_detail reports their user-level estimate.
 */
#include "pg_serve.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "pg_history.h"
#include "pg_worker.h"
#include "gr_arch.h"

/* Where a call's history comes from. */
typedef struct ServeInput
{
	const char *model;
	GenrecHistory *history;		/* NULL: read user's history from the source */
	int64		user;
} ServeInput;

/* Candidates of a call: the non-NULL ids, and where each input element went. */
typedef struct Candidates
{
	int			n_in;			/* elements of the input array */
	int			n;				/* non-NULL ones, passed to the engine */
	int64	   *ids;			/* [n] */
	int		   *index;			/* [n_in]: position in ids, or -1 for NULL */
} Candidates;

/* Engine output for the candidates. */
typedef struct Scores
{
	float	   *action;			/* [n * K] */
	float	   *logit;			/* [n] */
	uint8	   *known;			/* [n] */
	int			K;
} Scores;

/* Copy a genrec_history into engine form for a model (its action is the first column). */
static void
history_from_value(const GenrecModel *m, GenrecHistory *gh, ServeHistory *h)
{
	int			K = genrec_model_history_actions(m);
	float4	   *acts = gh_actions(gh);

	h->n = gh->n;
	h->K = K;
	h->items = palloc(sizeof(int64) * (gh->n + 1));
	memcpy(h->items, gh_items(gh), sizeof(int64) * gh->n);
	h->actions = NULL;
	if (K > 0)
	{
		h->actions = palloc(sizeof(double) * (gh->n + 1) * K);
		for (int i = 0; i < gh->n; i++)
			for (int k = 0; k < K; k++)
				h->actions[(size_t) i * K + k] = (k == 0 && acts != NULL) ?
					genrec_float4_to_double(acts[i]) : NAN;
	}
	/* a time-aware trunk reads the value's timestamps, in microseconds since 1970 as a
	 * timestamp time column is; a history without times serves with every gap 0 */
	h->times = NULL;
	if (genrec_model_reads_time(m) && gh_times(gh) != NULL)
	{
		h->times = palloc(sizeof(int64) * (gh->n + 1));
		for (int i = 0; i < gh->n; i++)
		{
			if (gh_time_isnull(gh, i))
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("interaction %d of the history has no time", i + 1),
						 errdetail("Model \"%s\" (trunk %s) reads interaction times.", m->name,
								   m->model->arch->name)));
			h->times[i] = genrec_time_value(TimestampTzGetDatum(gh_times(gh)[i]),
											TIMESTAMPTZOID, "history");
		}
	}
}

/* Connect SPI, resolve the model and (when asked) read the history into cxt. */
static GenrecModel *
serve_begin(const ServeInput *in, bool read, bool whole, MemoryContext cxt, ServeHistory *h)
{
	GenrecModel *m;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	m = genrec_model_acquire(in->model);
	if (!read)
		return m;
	if (in->history == NULL)
		genrec_history_from_source(m, in->user, whole, cxt, h);
	else
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		history_from_value(m, in->history, h);
		MemoryContextSwitchTo(old);
	}
	return m;
}

/* Unpin the model and disconnect SPI. */
static void
serve_end(GenrecModel *m)
{
	genrec_model_release(m);
	SPI_finish();
}

/* Raise P0002 for an empty history unless the layout scores cold starts. */
static void
require_history(const GenrecModel *m, const ServeInput *in, const ServeHistory *h,
				bool retrieval)
{
	char		packing[256];

	if (h->n > 0 || (!retrieval && gr_layout_packs_candidates(m->model->layout)))
		return;
	gr_layout_list(packing, sizeof(packing), true);
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 in->history ? errmsg("the history is empty") :
			 errmsg("user " INT64_FORMAT " has no interactions in the source of model \"%s\"",
					in->user, m->name),
			 retrieval ? errdetail("Retrieval needs at least one interaction.") :
			 errdetail("Layout %s needs at least one interaction; layouts %s score "
					   "a user without history as a cold start.", genrec_layout_name(m),
					   packing)));
}

/* Read a candidate array (one dimension; NULL elements allowed). */
static void
candidates_read(ArrayType *arr, Candidates *c)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("candidates must be a one-dimensional array")));
	deconstruct_array(arr, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, &n);
	c->n_in = n;
	c->n = 0;
	c->ids = palloc(sizeof(int64) * (n + 1));
	c->index = palloc(sizeof(int) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		c->index[i] = nulls[i] ? -1 : c->n;
		if (!nulls[i])
			c->ids[c->n++] = DatumGetInt64(elems[i]);
	}
}

/* Score the candidates in one engine pass. */
static void
run_score(GenrecModel *m, const ServeHistory *h, const Candidates *c, Scores *s)
{
	gr_history	gh = {.items = h->items,.actions = h->actions,.n = h->n,.times = h->times};
	gr_scores	out;
	gr_error	err = {0};
	int			K = m->model->cfg.n_actions;

	s->K = K;
	s->action = palloc(sizeof(float) * ((size_t) c->n * K + 1));
	s->logit = palloc(sizeof(float) * (c->n + 1));
	s->known = palloc(c->n + 1);
	out.action = s->action;
	out.logit = s->logit;
	out.known = s->known;
	if (c->n == 0)
		return;
	if (genrec_worker_score(m, h, c->ids, c->n, s->action, s->logit, s->known))
		return;
	if (gr_score(m->session, &gh, c->ids, c->n, &out, &err) != GR_OK)
		genrec_raise_engine_error(&err, psprintf("scoring with model \"%s\"", m->name));
}

/*
 * Refuse genrec_score for a layout with no candidate score at all: an action head whose
 * estimate is the same for every candidate (l5, l7) and no item head to rank by.
 */
static void
require_candidate_score(const GenrecModel *m)
{
	const gr_layout *l = m->model->layout;

	if (gr_layout_candidate_actions(l) || gr_layout_has_item_head(l))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("model \"%s\" (layout %s) has no candidate-specific score", m->name,
					l->name),
			 errdetail("Layout %s predicts the next action without the next item (LAYOUTS.md "
					   "4.7), so its action estimate is the same for every candidate, and it "
					   "has no item head to rank by.", l->name),
			 errhint("genrec_score_detail reports the user-level estimate (action_scope "
					 "'user' in genrec_layouts()).")));
}

/* The single score of candidate j: the first action where it depends on the candidate
 * (lac, int, pc, l4), else the retrieval logit (item, l2, l3, l6, l9). */
static bool
score_value(const GenrecModel *m, const Scores *s, int j, float4 *v)
{
	if (!s->known[j])
		return false;
	if (gr_layout_candidate_actions(m->model->layout) && s->K > 0)
		*v = s->action[(size_t) j * s->K];
	else
		*v = s->logit[j];
	return !isnan(*v);
}

/* genrec_score for any input: one real per candidate, aligned with the array. */
static Datum
score_array(const ServeInput *in, ArrayType *arr)
{
	MemoryContext cxt = CurrentMemoryContext;
	Candidates	c;
	ServeHistory h = {0};
	Scores		s;
	GenrecModel *m;
	Datum	   *out;
	bool	   *nulls;
	int			dims[1],
				lbs[1] = {1};

	candidates_read(arr, &c);
	m = serve_begin(in, c.n_in > 0, false, cxt, &h);
	if (c.n_in == 0)
	{
		serve_end(m);
		return PointerGetDatum(construct_empty_array(FLOAT4OID));
	}
	require_history(m, in, &h, false);
	require_candidate_score(m);
	MemoryContextSwitchTo(cxt);
	run_score(m, &h, &c, &s);
	out = palloc(sizeof(Datum) * c.n_in);
	nulls = palloc(sizeof(bool) * c.n_in);
	for (int i = 0; i < c.n_in; i++)
	{
		float4		v = 0;

		nulls[i] = c.index[i] < 0 || !score_value(m, &s, c.index[i], &v);
		out[i] = Float4GetDatum(v);
	}
	serve_end(m);
	dims[0] = c.n_in;
	return PointerGetDatum(construct_md_array(out, nulls, 1, dims, lbs, FLOAT4OID,
											  sizeof(float4), true, TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(genrec_score_user);

/* genrec_score(model, user_id, candidates). */
Datum
genrec_score_user(PG_FUNCTION_ARGS)
{
	ServeInput	in = {text_to_cstring(PG_GETARG_TEXT_PP(0)), NULL, PG_GETARG_INT64(1)};

	return score_array(&in, PG_GETARG_ARRAYTYPE_P(2));
}

PG_FUNCTION_INFO_V1(genrec_score_default);

/* genrec_score(user_id, candidates) with genrec.default_model. */
Datum
genrec_score_default(PG_FUNCTION_ARGS)
{
	ServeInput	in = {genrec_default_model_name(), NULL, PG_GETARG_INT64(0)};

	return score_array(&in, PG_GETARG_ARRAYTYPE_P(1));
}

PG_FUNCTION_INFO_V1(genrec_score_history);

/* genrec_score(model, history, candidates). */
Datum
genrec_score_history(PG_FUNCTION_ARGS)
{
	ServeInput	in = {text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_GENREC_HISTORY_P(1), 0};

	return score_array(&in, PG_GETARG_ARRAYTYPE_P(2));
}

/* genrec_score_detail for any input: one row per candidate. */
static Datum
score_detail(FunctionCallInfo fcinfo, const ServeInput *in, ArrayType *arr)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt = CurrentMemoryContext;
	Candidates	c;
	ServeHistory h = {0};
	Scores		s;
	GenrecModel *m;
	bool		acts;

	InitMaterializedSRF(fcinfo, 0);
	candidates_read(arr, &c);
	m = serve_begin(in, c.n_in > 0, false, cxt, &h);
	if (c.n_in == 0)
	{
		serve_end(m);
		return (Datum) 0;
	}
	require_history(m, in, &h, false);
	MemoryContextSwitchTo(cxt);
	run_score(m, &h, &c, &s);
	acts = gr_layout_has_action_head(m->model->layout) && s.K > 0;
	for (int i = 0; i < c.n_in; i++)
	{
		int			j = c.index[i];
		Datum		v[4];
		bool		n[4] = {j < 0, false, true, true};

		v[0] = Int64GetDatum(j >= 0 ? c.ids[j] : 0);
		v[1] = BoolGetDatum(j >= 0 && s.known[j]);
		if (j >= 0 && s.known[j])
		{
			n[2] = isnan(s.logit[j]);
			v[2] = Float4GetDatum(s.logit[j]);
			if (acts)
			{
				Datum	   *a = palloc(sizeof(Datum) * s.K);
				bool	   *an = palloc(sizeof(bool) * s.K);
				int			dims[1] = {s.K},
							lbs[1] = {1};

				for (int k = 0; k < s.K; k++)
				{
					float4		x = s.action[(size_t) j * s.K + k];

					an[k] = isnan(x);
					a[k] = Float4GetDatum(x);
				}
				v[3] = PointerGetDatum(construct_md_array(a, an, 1, dims, lbs, FLOAT4OID,
														  sizeof(float4), true,
														  TYPALIGN_INT));
				n[3] = false;
			}
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	serve_end(m);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(genrec_score_detail_user);

/* genrec_score_detail(model, user_id, candidates). */
Datum
genrec_score_detail_user(PG_FUNCTION_ARGS)
{
	ServeInput	in = {text_to_cstring(PG_GETARG_TEXT_PP(0)), NULL, PG_GETARG_INT64(1)};

	return score_detail(fcinfo, &in, PG_GETARG_ARRAYTYPE_P(2));
}

PG_FUNCTION_INFO_V1(genrec_score_detail_history);

/* genrec_score_detail(model, history, candidates). */
Datum
genrec_score_detail_history(PG_FUNCTION_ARGS)
{
	ServeInput	in = {text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_GENREC_HISTORY_P(1), 0};

	return score_detail(fcinfo, &in, PG_GETARG_ARRAYTYPE_P(2));
}

/*
 * Point the model's session at its IVF index when genrec.ivf_probes asks for one (built or
 * mapped by pg_index.c on this backend's first indexed retrieval, and again when
 * genrec.ivf_lists changes); exact retrieval otherwise.
 */
static void
choose_retrieval(GenrecModel *m)
{
	gr_error	err = {0};
	int			V = m->model->cfg.n_items;
	int			lists = genrec_ivf_lists > 0 ? Min(genrec_ivf_lists, V) : gr_ivf_default_lists(V);
	gr_ivf	   *ivf;

	if (genrec_ivf_probes <= 0)
	{
		(void) gr_session_use_index(m->session, NULL, 0, &err);
		return;
	}
	if (m->ivf == NULL || m->ivf->lists != lists)
		(void) gr_session_use_index(m->session, NULL, 0, &err);
	ivf = genrec_model_index(m, lists);
	if (gr_session_use_index(m->session, ivf, genrec_ivf_probes, &err) != GR_OK)
		genrec_raise_engine_error(&err, psprintf("recommending with model \"%s\"", m->name));
}

/* genrec_recommend for any input: the top k items as (rank, item_id, score) rows. */
static Datum
recommend(FunctionCallInfo fcinfo, const ServeInput *in, int32 k, bool exclude_seen)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt = CurrentMemoryContext;
	ServeHistory h = {0};
	GenrecModel *m;
	gr_history	gh;
	gr_error	err = {0};
	int64	   *items;
	float	   *scores;
	int			n_out = 0;

	if (k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be at least 1, got %d", k)));
	InitMaterializedSRF(fcinfo, 0);
	m = serve_begin(in, true, exclude_seen, cxt, &h);
	if (!gr_layout_has_item_head(m->model->layout))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" (layout %s) predicts no next item, so it cannot "
						"recommend", m->name, m->model->layout->name),
				 errhint("Layouts l4, l5 and l7 predict actions only; score candidates with "
						 "genrec_score or genrec_score_detail.")));
	require_history(m, in, &h, true);
	MemoryContextSwitchTo(cxt);
	k = Min(k, m->model->cfg.n_items);
	items = palloc(sizeof(int64) * k);
	scores = palloc(sizeof(float) * k);
	gh.items = h.items;
	gh.actions = h.actions;
	gh.n = h.n;
	gh.times = h.times;
	gh.has_now = false;
	gh.now = 0;
	choose_retrieval(m);
	/* indexed retrieval runs here, on the CPU: the worker serves exact retrieval only */
	if ((genrec_ivf_probes > 0 ||
		 !genrec_worker_recommend(m, &h, k, exclude_seen, items, scores, &n_out)) &&
		gr_recommend(m->session, &gh, k, exclude_seen, items, scores, &n_out, &err) != GR_OK)
		genrec_raise_engine_error(&err, psprintf("recommending with model \"%s\"", m->name));
	for (int i = 0; i < n_out; i++)
	{
		Datum		v[3];
		bool		n[3] = {false, false, isnan(scores[i])};

		v[0] = Int32GetDatum(i + 1);
		v[1] = Int64GetDatum(items[i]);
		v[2] = Float4GetDatum(scores[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	serve_end(m);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(genrec_recommend_user);

/* genrec_recommend(model, user_id, k, exclude_seen). */
Datum
genrec_recommend_user(PG_FUNCTION_ARGS)
{
	ServeInput	in = {text_to_cstring(PG_GETARG_TEXT_PP(0)), NULL, PG_GETARG_INT64(1)};

	return recommend(fcinfo, &in, PG_GETARG_INT32(2), PG_GETARG_BOOL(3));
}

PG_FUNCTION_INFO_V1(genrec_recommend_history);

/* genrec_recommend(model, history, k, exclude_seen). */
Datum
genrec_recommend_history(PG_FUNCTION_ARGS)
{
	ServeInput	in = {text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_GENREC_HISTORY_P(1), 0};

	return recommend(fcinfo, &in, PG_GETARG_INT32(2), PG_GETARG_BOOL(3));
}

PG_FUNCTION_INFO_V1(genrec_recommend_default);

/* genrec_recommend(user_id, k, exclude_seen) with genrec.default_model (k is bigint). */
Datum
genrec_recommend_default(PG_FUNCTION_ARGS)
{
	ServeInput	in = {genrec_default_model_name(), NULL, PG_GETARG_INT64(0)};
	int64		k = PG_GETARG_INT64(1);

	return recommend(fcinfo, &in, (int32) Max(Min(k, PG_INT32_MAX), PG_INT32_MIN),
					 PG_GETARG_BOOL(2));
}
