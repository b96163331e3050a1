/*
 * pg_layouts.c — genrec_layouts(): the engine's layout table as rows, so SQL (and users) learn
 * what a layout predicts from its declared behaviours (gr_layout.h) instead of re-deriving
 * them from layout names: whether tokens carry actions, whether it retrieves (item head),
 * what its action head reads, how serving scores candidates and whether the served action
 * is candidate-specific ('candidate'), a user-level estimate ('user') or absent ('none').
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "catalog/pg_type.h"

/* engine headers are C11; PostgreSQL builds with -Wdeclaration-after-statement */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#include "gr_layout.h"
#pragma GCC diagnostic pop

PG_FUNCTION_INFO_V1(genrec_layouts);

/* Name of an action-head behaviour. */
static const char *
action_head_name(const gr_layout *l)
{
	switch (l->action_head)
	{
		case GR_ACTION_HEAD_NONE:
			return "none";
		case GR_ACTION_HEAD_STATE:
			return "state";
		case GR_ACTION_HEAD_COUPLER:
			return "coupler";
		case GR_ACTION_HEAD_POOLED:
			return "pooled";
		default:
			return "other";
	}
}

/* Name of a candidate-scoring behaviour. */
static const char *
candidates_name(const gr_layout *l)
{
	switch (l->candidates)
	{
		case GR_CANDIDATES_LOGIT:
			return "logit";
		case GR_CANDIDATES_PACKED:
			return "packed";
		case GR_CANDIDATES_COUPLED:
			return "coupled";
		case GR_CANDIDATES_USER:
			return "user";
		default:
			return "other";
	}
}

/* The Table-2 alias of a layout, or NULL. */
static const char *
layout_alias(const gr_layout *l)
{
	static const char *const aliases[] = {"l0", "l8", "l10"};

	for (int i = 0; i < 3; i++)
		if (gr_layout_by_name(aliases[i]) == l)
			return aliases[i];
	return NULL;
}

/* genrec_layouts(): one row per layout of the engine. */
Datum
genrec_layouts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int id = 0; id < GR_LAYOUT_COUNT; id++)
	{
		const gr_layout *l = gr_layout_by_id(id);
		const char *alias = layout_alias(l);
		Datum		v[8];
		bool		n[8] = {false, alias == NULL, false, false, false, false, false, false};

		v[0] = CStringGetTextDatum(l->name);
		v[1] = alias ? CStringGetTextDatum(alias) : (Datum) 0;
		v[2] = BoolGetDatum(gr_layout_reads_actions(l));
		v[3] = BoolGetDatum(gr_layout_has_item_head(l));
		v[4] = CStringGetTextDatum(action_head_name(l));
		v[5] = CStringGetTextDatum(candidates_name(l));
		v[6] = CStringGetTextDatum(!gr_layout_has_action_head(l) ? "none" :
								   gr_layout_candidate_actions(l) ? "candidate" : "user");
		v[7] = BoolGetDatum(gr_layout_packs_candidates(l));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}
