/*
 * pg_evaluate.c — genrec_evaluate (a model on its source's leave-one-out split) and
 * genrec_model_info (what a model is, as loaded).
 *
 * genrec_evaluate reads the model's whole source ordered by user and time (tiebreak), builds
 * the dataset in the model's item and action space (gr_dataset_mapping: the model's item ids
 * and training action ranges) and runs gr_evaluate: the protocol of PROTOCOL.md, exactly as
 * `genrec eval --model FILE --data FILE` does for the same rows. genrec_leakage_check reads
 * the source the same way and runs the P3 perturbation test (gr_leakage.h).
 */
#include "pg_serve.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#include "gr_arch.h"
#include "gr_eval.h"
#include "gr_leakage.h"
#pragma GCC diagnostic pop

/* Parse the split name. */
static gr_split
parse_split(const char *s)
{
	if (strcmp(s, "test") == 0)
		return GR_SPLIT_TEST;
	if (strcmp(s, "valid") == 0 || strcmp(s, "validation") == 0)
		return GR_SPLIT_VALID;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown split \"%s\"", s),
			 errhint("Use 'test' (last interaction) or 'valid' (second to last).")));
	pg_unreachable();
}

/* Read the cut-offs K of HR@K and NDCG@K. */
static void
parse_ks(ArrayType *arr, gr_eval_options *opt)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ks must be a one-dimensional array")));
	deconstruct_array(arr, INT4OID, sizeof(int32), true, TYPALIGN_INT, &elems, &nulls, &n);
	if (n < 1 || n > GR_MAX_KS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ks must hold 1 to %d cut-offs, got %d", GR_MAX_KS, n)));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i] || DatumGetInt32(elems[i]) < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("every cut-off in ks must be a positive integer")));
		opt->ks[i] = DatumGetInt32(elems[i]);
	}
	opt->n_ks = n;
}

/* Append one (metric, k, value) row; NaN values are left out. */
static void
put_metric(ReturnSetInfo *rsinfo, const char *metric, int k, double value)
{
	Datum		v[3];
	bool		n[3] = {false, k <= 0, false};

	if (isnan(value))
		return;
	v[0] = CStringGetTextDatum(metric);
	v[1] = Int32GetDatum(k);
	v[2] = Float8GetDatum(value);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
}

/* Name of action column k (from the source mapping, else actionK). */
static const char *
action_name(const GenrecModel *m, int k)
{
	if (k < m->source.n_actions && m->source.action_names[k] != NULL)
		return m->source.action_names[k];
	return psprintf("action%d", k);
}

/* Emit every metric of an evaluation. */
static void
put_metrics(ReturnSetInfo *rsinfo, const GenrecModel *m, const gr_metrics *mt)
{
	put_metric(rsinfo, "users", 0, mt->n_users);
	for (int j = 0; j < mt->n_ks; j++)
	{
		put_metric(rsinfo, "hr", mt->ks[j], mt->hr[j]);
		put_metric(rsinfo, "ndcg", mt->ks[j], mt->ndcg[j]);
	}
	put_metric(rsinfo, "mrr", 0, mt->mrr);
	for (int j = 0; j < mt->n_ks; j++)
	{
		put_metric(rsinfo, "hr_all", mt->ks[j], mt->hr_all[j]);
		put_metric(rsinfo, "ndcg_all", mt->ks[j], mt->ndcg_all[j]);
	}
	put_metric(rsinfo, "mrr_all", 0, mt->mrr_all);
	for (int j = 0; j < mt->n_ks; j++)
	{
		put_metric(rsinfo, "popularity_hr", mt->ks[j], mt->pop_hr[j]);
		put_metric(rsinfo, "popularity_ndcg", mt->ks[j], mt->pop_ndcg[j]);
	}
	for (int k = 0; k < m->model->cfg.n_actions; k++)
	{
		const char *a = action_name(m, k);

		put_metric(rsinfo, psprintf("rmse:%s", a), 0, mt->rmse[k]);
		put_metric(rsinfo, psprintf("baseline_rmse:%s", a), 0, mt->baseline_rmse[k]);
		put_metric(rsinfo, psprintf("logloss:%s", a), 0, mt->logloss[k]);
		put_metric(rsinfo, psprintf("ne:%s", a), 0, mt->ne[k]);
		put_metric(rsinfo, psprintf("auc:%s", a), 0, mt->auc[k]);
	}
}

/*
 * Read model m's whole source (with its owner's rights, genrec_source_rows) into a dataset in
 * the model's item and action space, and a view of the model's weights, both allocated in
 * cxt through env.
 */
static void
source_dataset(GenrecModel *m, MemoryContext cxt, gr_env *env, gr_model **view,
			   gr_dataset **ds, const char *what)
{
	SourceRows	rows;
	gr_error	err = {0};
	const GenrecBlob *b = m->blob;
	const gr_model_config *cfg = &m->model->cfg;

	genrec_source_rows(m, m->model->cfg.n_actions, cxt, &rows);
	{
		gr_raw_interactions raw = {
			.n = rows.n,.user = rows.user,.item = rows.item,.time = rows.time,
			.actions = cfg->n_actions > 0 ? rows.actions : NULL,
			.n_actions = cfg->n_actions,.action_binary = cfg->action_binary,
		};
		gr_dataset_mapping map = {
			.item_ids = m->model->item_ids + 1,.n_items = cfg->n_items,
			.action_min = cfg->action_min,.action_max = cfg->action_max,
		};

		/* a view of its own: evaluation buffers live (and die) in this call's context */
		genrec_engine_env(env, cxt, NULL, NULL);
		if (gr_model_create_view(env, &b->cfg,
								 (const int64_t *) ((const char *) b + b->items_off),
								 (const float *) ((const char *) b + b->params_off),
								 b->n_params, view, &err) != GR_OK ||
			gr_dataset_build(env, &raw, &map, ds, &err) != GR_OK)
			genrec_raise_engine_error(&err, what);
	}
}

PG_FUNCTION_INFO_V1(genrec_evaluate);

/* genrec_evaluate(model, split, ks): the model's metrics on its source. */
Datum
genrec_evaluate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	gr_split	split = parse_split(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	gr_eval_options opt;
	MemoryContext cxt;
	GenrecModel *m;
	gr_env		env;
	gr_error	err = {0};
	gr_model   *view = NULL;
	gr_dataset *ds = NULL;
	gr_metrics	mt;
	char	   *what;

	gr_eval_options_default(&opt);
	parse_ks(PG_GETARG_ARRAYTYPE_P(2), &opt);
	InitMaterializedSRF(fcinfo, 0);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "genrec evaluate",
								ALLOCSET_DEFAULT_SIZES);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	m = genrec_model_acquire(name);
	what = psprintf("evaluating model \"%s\"", m->name);
	source_dataset(m, cxt, &env, &view, &ds, what);
	if (gr_evaluate(view, ds, split, &opt, &mt, &err) != GR_OK)
		genrec_raise_engine_error(&err, what);
	put_metrics(rsinfo, m, &mt);
	gr_dataset_free(ds);
	gr_model_free(view);
	genrec_model_release(m);
	SPI_finish();
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

/* Append one (check, passed, max_change) row. */
static void
put_check(ReturnSetInfo *rsinfo, const char *check, bool passed, double change)
{
	Datum		v[3] = {CStringGetTextDatum(check), BoolGetDatum(passed), Float8GetDatum(change)};
	bool		n[3] = {false, false, false};

	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
}

/* The P3 perturbation test on a model's source; inject_leak only for the tests' variant. */
static Datum
leakage_check(FunctionCallInfo fcinfo, bool inject_leak)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int32		users = PG_GETARG_INT32(1);
	MemoryContext cxt;
	GenrecModel *m;
	gr_env		env;
	gr_error	err = {0};
	gr_model   *view = NULL;
	gr_dataset *ds = NULL;
	gr_leakage_result r;
	char	   *what;

	if (users < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("users must be at least 1, got %d", users)));
	InitMaterializedSRF(fcinfo, 0);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "genrec leakage check",
								ALLOCSET_DEFAULT_SIZES);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	m = genrec_model_acquire(name);
	what = psprintf("checking model \"%s\" for leakage", m->name);
	source_dataset(m, cxt, &env, &view, &ds, what);
	if (gr_leakage_check(view, ds, users, inject_leak, &r, &err) != GR_OK)
		genrec_raise_engine_error(&err, what);
	put_check(rsinfo, "own_label", r.own_change <= GR_LEAKAGE_TOLERANCE, r.own_change);
	put_check(rsinfo, "future_interaction", r.future_change <= GR_LEAKAGE_TOLERANCE,
			  r.future_change);
	put_check(rsinfo, "reaches_later", r.later_change > GR_LEAKAGE_TOLERANCE, r.later_change);
	gr_dataset_free(ds);
	gr_model_free(view);
	genrec_model_release(m);
	SPI_finish();
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(genrec_leakage_check);

/* genrec_leakage_check(model, users): the P3 perturbation test. */
Datum
genrec_leakage_check(PG_FUNCTION_ARGS)
{
	return leakage_check(fcinfo, false);
}

PG_FUNCTION_INFO_V1(genrec_leakage_check_leaky);

/*
 * The same check with a leak injected (every action row's token carries its own target):
 * for the tests only, so they can show the check fails. The extension's SQL does not
 * declare it; a test declares it in pg_temp (which needs a superuser).
 */
Datum
genrec_leakage_check_leaky(PG_FUNCTION_ARGS)
{
	return leakage_check(fcinfo, true);
}

PG_FUNCTION_INFO_V1(genrec_model_info);

/* genrec_model_info(model): the serving version's configuration and memory. */
Datum
genrec_model_info(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	MemoryContext cxt = CurrentMemoryContext;
	GenrecModel *m;
	Datum		v[16];
	bool		n[16] = {0};

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	m = genrec_model_acquire(name);
	MemoryContextSwitchTo(cxt);
	{
		const gr_model_config *c = &m->model->cfg;
		Datum	   *names = palloc(sizeof(Datum) * (c->n_actions + 1));

		for (int k = 0; k < c->n_actions; k++)
			names[k] = CStringGetTextDatum(action_name(m, k));
		v[0] = CStringGetTextDatum(m->name);
		v[1] = Int32GetDatum(m->version);
		v[2] = BoolGetDatum(m->deployed);
		v[3] = CStringGetTextDatum(genrec_layout_name(m));
		v[4] = Int32GetDatum(c->n_items);
		v[5] = Int32GetDatum(c->n_actions);
		v[6] = PointerGetDatum(construct_array(names, c->n_actions, TEXTOID, -1, false,
											   TYPALIGN_INT));
		v[7] = Int32GetDatum(c->d_model);
		v[8] = Int32GetDatum(c->n_layer);
		v[9] = Int32GetDatum(c->n_head);
		v[10] = Int32GetDatum(c->max_len);
		v[11] = Int64GetDatum((int64) m->model->n_params);
		v[12] = Int64GetDatum((int64) m->blob->total);
		v[13] = BoolGetDatum(m->seg != NULL);
		n[14] = m->source.user_col == NULL;
		if (!n[14])
			v[14] = CStringGetTextDatum(genrec_history_sql(m));
		v[15] = CStringGetTextDatum(m->model->arch->name);
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	genrec_model_release(m);
	SPI_finish();
	return (Datum) 0;
}
