/*
 * pg_metrics.c — ranking and rating metrics for analysts' own SQL (PROTOCOL.md definitions,
 * computed by the engine's gr_metric_* so SQL and genrec_evaluate agree).
 *
 * Scalars: genrec_hr(rank, k), genrec_ndcg(rank, k), genrec_mrr(rank) score one 1-based rank.
 * Aggregates: genrec_hit_rate(rank, k), genrec_mean_ndcg(rank, k), genrec_mean_mrr(rank)
 * average them, counting a NULL rank as a miss (the target was not ranked, e.g. a LEFT JOIN
 * against a top-k list found nothing); genrec_rmse(prediction, actual) skips NULL pairs.
 * The aggregates keep a float8[2] state {count, sum} (sum of squared errors for RMSE), so they
 * combine in parallel aggregation without serialisation functions.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"

/* engine headers are C11; PostgreSQL builds with -Wdeclaration-after-statement */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#include "gr_eval.h"
#pragma GCC diagnostic pop

PG_FUNCTION_INFO_V1(genrec_hr);
PG_FUNCTION_INFO_V1(genrec_ndcg);
PG_FUNCTION_INFO_V1(genrec_mrr);
PG_FUNCTION_INFO_V1(genrec_hit_rate_trans);
PG_FUNCTION_INFO_V1(genrec_ndcg_trans);
PG_FUNCTION_INFO_V1(genrec_mrr_trans);
PG_FUNCTION_INFO_V1(genrec_rmse_trans);
PG_FUNCTION_INFO_V1(genrec_metric_combine);
PG_FUNCTION_INFO_V1(genrec_metric_mean);
PG_FUNCTION_INFO_V1(genrec_rmse_final);

/* Reject a rank below 1. */
static void
metric_check_rank(int32 rank)
{
	if (rank < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rank must be at least 1, got %d", rank),
				 errhint("Ranks are 1-based; pass NULL to an aggregate for a target that was not ranked.")));
}

/* Reject a cut-off k below 1. */
static void
metric_check_k(int32 k)
{
	if (k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be at least 1, got %d", k)));
}

/* Return HR@k of one rank: 1 if rank <= k, else 0. */
Datum
genrec_hr(PG_FUNCTION_ARGS)
{
	int32		rank = PG_GETARG_INT32(0);
	int32		k = PG_GETARG_INT32(1);

	metric_check_rank(rank);
	metric_check_k(k);
	PG_RETURN_FLOAT8(gr_metric_hr(rank, k));
}

/* Return NDCG@k of one rank: 1 / log2(rank + 1) if rank <= k, else 0. */
Datum
genrec_ndcg(PG_FUNCTION_ARGS)
{
	int32		rank = PG_GETARG_INT32(0);
	int32		k = PG_GETARG_INT32(1);

	metric_check_rank(rank);
	metric_check_k(k);
	PG_RETURN_FLOAT8(gr_metric_ndcg(rank, k));
}

/* Return the reciprocal rank 1 / rank. */
Datum
genrec_mrr(PG_FUNCTION_ARGS)
{
	int32		rank = PG_GETARG_INT32(0);

	metric_check_rank(rank);
	PG_RETURN_FLOAT8(gr_metric_mrr(rank));
}

/* Return the float8[2] state's values, checking its shape (the functions are callable). */
static float8 *
metric_state(ArrayType *a)
{
	if (ARR_NDIM(a) != 1 || ARR_DIMS(a)[0] != 2 || ARR_HASNULL(a) ||
		ARR_ELEMTYPE(a) != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec metric state must be a float8[] of two non-NULL elements")));
	return (float8 *) ARR_DATA_PTR(a);
}

/*
 * Add (count, value) to the state in argument 0 and return it: in place inside an aggregate
 * (the state is then ours), on a copy otherwise.
 */
static Datum
metric_accum(FunctionCallInfo fcinfo, float8 count, float8 value)
{
	ArrayType  *a;
	float8	   *s;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("genrec metric state must not be NULL")));
	if (AggCheckCallContext(fcinfo, NULL))
		a = PG_GETARG_ARRAYTYPE_P(0);
	else
		a = PG_GETARG_ARRAYTYPE_P_COPY(0);
	s = metric_state(a);
	s[0] += count;
	s[1] += value;
	PG_RETURN_ARRAYTYPE_P(a);
}

/* Add metric(rank, k) of one rank to a state (args: state, rank, k); a NULL rank is a miss. */
static Datum
rank_at_k_accum(FunctionCallInfo fcinfo, double (*metric) (int rank, int k))
{
	int32		k;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("k must not be NULL")));
	k = PG_GETARG_INT32(2);
	metric_check_k(k);
	if (PG_ARGISNULL(1))
		return metric_accum(fcinfo, 1.0, 0.0);
	metric_check_rank(PG_GETARG_INT32(1));
	return metric_accum(fcinfo, 1.0, metric(PG_GETARG_INT32(1), k));
}

/* Add one rank's HR@k to a state; a NULL rank is a miss. */
Datum
genrec_hit_rate_trans(PG_FUNCTION_ARGS)
{
	return rank_at_k_accum(fcinfo, gr_metric_hr);
}

/* Add one rank's NDCG@k to a state; a NULL rank is a miss. */
Datum
genrec_ndcg_trans(PG_FUNCTION_ARGS)
{
	return rank_at_k_accum(fcinfo, gr_metric_ndcg);
}

/* Add one rank's reciprocal rank to a state; a NULL rank is a miss. */
Datum
genrec_mrr_trans(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(1))
		return metric_accum(fcinfo, 1.0, 0.0);
	metric_check_rank(PG_GETARG_INT32(1));
	return metric_accum(fcinfo, 1.0, gr_metric_mrr(PG_GETARG_INT32(1)));
}

/* Add one squared error to a state (strict: NULL pairs never get here). */
Datum
genrec_rmse_trans(PG_FUNCTION_ARGS)
{
	float8		err = PG_GETARG_FLOAT8(1) - PG_GETARG_FLOAT8(2);

	return metric_accum(fcinfo, 1.0, err * err);
}

/* Combine two partial states. */
Datum
genrec_metric_combine(PG_FUNCTION_ARGS)
{
	float8	   *other = metric_state(PG_GETARG_ARRAYTYPE_P(1));

	return metric_accum(fcinfo, other[0], other[1]);
}

/* Return sum / count, or NULL for no rows. */
Datum
genrec_metric_mean(PG_FUNCTION_ARGS)
{
	float8	   *s = metric_state(PG_GETARG_ARRAYTYPE_P(0));

	if (s[0] == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(s[1] / s[0]);
}

/* Return sqrt(sum of squared errors / count), or NULL for no rows. */
Datum
genrec_rmse_final(PG_FUNCTION_ARGS)
{
	float8	   *s = metric_state(PG_GETARG_ARRAYTYPE_P(0));

	if (s[0] == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(sqrt(s[1] / s[0]));
}
