/*
 * pg_report.c — genrec_report(model) and genrec_report(models[]): the HTML report of models
 * of the catalogue (the engine's gr_report.h, the same document as `genrec report`), drawn
 * from each version's genrec.models.metrics (per-epoch history, test metrics, baselines).
 * Each name resolves like serving does (the deployed version, else the newest) and the
 * caller must be allowed to use it (42501); unknown names are 42704.
 */
#include "pg_cache.h"
#include "pg_catalog.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#include "gr_report.h"
#pragma GCC diagnostic pop

#define REPORT_MAX_MODELS 64

PG_FUNCTION_INFO_V1(genrec_report);
PG_FUNCTION_INFO_V1(genrec_report_many);

/* Fill one report entry for a model name from the version that serves it. */
static void
report_entry(const char *name, gr_report_model *rm)
{
	static SPIPlanPtr plan = NULL;
	GenrecIdent id;
	Datum		values[2];

	genrec_catalogue_lookup(name, &id);
	if (plan == NULL)
	{
		Oid			types[2] = {TEXTOID, INT4OID};

		plan = genrec_keep_plan("SELECT m.metrics::pg_catalog.text, m.layout FROM genrec.models m "
								"WHERE m.name OPERATOR(pg_catalog.=) $1 "
								"AND m.version OPERATOR(pg_catalog.=) $2", 2, types);
	}
	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(id.version);
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" version %d does not exist", name, id.version)));
	rm->name = psprintf("%s v%d", name, id.version);
	rm->summary_json = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	rm->layout = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
}

/* Render the report of n named models as text. */
static text *
report_text(char **names, int n)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "genrec report",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	gr_report_model *rm = palloc0(sizeof(gr_report_model) * n);
	gr_env		env;
	gr_error	err = {0};
	char	   *html;
	size_t		len;
	text	   *out;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (int i = 0; i < n; i++)
		report_entry(names[i], &rm[i]);
	/* SPI's copies go with SPI_finish: keep ours in cxt */
	MemoryContextSwitchTo(cxt);
	for (int i = 0; i < n; i++)
	{
		rm[i].name = pstrdup(rm[i].name);
		rm[i].layout = pstrdup(rm[i].layout);
		rm[i].summary_json = rm[i].summary_json ? pstrdup(rm[i].summary_json) : NULL;
	}
	SPI_finish();
	MemoryContextSwitchTo(cxt);
	genrec_cpu_env(&env, cxt);
	if (gr_report_html(&env, rm, n, &html, &len, &err) != GR_OK)
		genrec_raise_engine_error(&err, "genrec_report");
	MemoryContextSwitchTo(old);
	out = cstring_to_text_with_len(html, (int) len);
	MemoryContextDelete(cxt);
	return out;
}

/* genrec_report(model): the report of one model. */
Datum
genrec_report(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_TEXT_P(report_text(&name, 1));
}

/* genrec_report(models[]): several models, with the comparison by layout. */
Datum
genrec_report_many(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	  **names;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_report: models must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n < 1 || n > REPORT_MAX_MODELS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_report: give 1 to %d model names, got %d", REPORT_MAX_MODELS, n)));
	names = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("genrec_report: a model name is NULL")));
		names[i] = TextDatumGetCString(elems[i]);
	}
	PG_RETURN_TEXT_P(report_text(names, n));
}
