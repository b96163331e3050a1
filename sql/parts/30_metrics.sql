-- ---------------------------------------------------------------- metrics

CREATE FUNCTION genrec_hr(rank integer, k integer) RETURNS double precision
    AS 'MODULE_PATHNAME', 'genrec_hr'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_hr(integer, integer) IS
'HR@k of one 1-based rank: 1 if rank <= k, else 0. rank or k < 1 is an error.';

CREATE FUNCTION genrec_ndcg(rank integer, k integer) RETURNS double precision
    AS 'MODULE_PATHNAME', 'genrec_ndcg'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_ndcg(integer, integer) IS
'NDCG@k of one 1-based rank (one relevant item): 1/log2(rank+1) if rank <= k, else 0. rank or k < 1 is an error.';

CREATE FUNCTION genrec_mrr(rank integer) RETURNS double precision
    AS 'MODULE_PATHNAME', 'genrec_mrr'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_mrr(integer) IS
'Reciprocal rank 1/rank of one 1-based rank (average it for MRR). rank < 1 is an error.';

-- Aggregate support: the state is double precision[2] = {count, sum}.
CREATE FUNCTION genrec_hit_rate_trans(double precision[], integer, integer)
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'genrec_hit_rate_trans'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_hit_rate_trans(double precision[], integer, integer) IS
'Transition function of genrec_hit_rate: a NULL rank counts as a miss; a NULL k is an error.';

CREATE FUNCTION genrec_ndcg_trans(double precision[], integer, integer)
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'genrec_ndcg_trans'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_ndcg_trans(double precision[], integer, integer) IS
'Transition function of genrec_mean_ndcg: a NULL rank counts as a miss; a NULL k is an error.';

CREATE FUNCTION genrec_mrr_trans(double precision[], integer)
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'genrec_mrr_trans'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_mrr_trans(double precision[], integer) IS
'Transition function of genrec_mean_mrr: a NULL rank counts as a miss.';

CREATE FUNCTION genrec_rmse_trans(double precision[], double precision, double precision)
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'genrec_rmse_trans'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_rmse_trans(double precision[], double precision, double precision) IS
'Transition function of genrec_rmse: adds one squared error (strict, so NULL pairs are skipped).';

CREATE FUNCTION genrec_metric_combine(double precision[], double precision[])
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'genrec_metric_combine'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_metric_combine(double precision[], double precision[]) IS
'Combine function of the genrec metric aggregates: adds two {count, sum} states.';

CREATE FUNCTION genrec_metric_mean(double precision[]) RETURNS double precision
    AS 'MODULE_PATHNAME', 'genrec_metric_mean'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_metric_mean(double precision[]) IS
'Final function of the genrec ranking aggregates: sum / count, NULL for no rows.';

CREATE FUNCTION genrec_rmse_final(double precision[]) RETURNS double precision
    AS 'MODULE_PATHNAME', 'genrec_rmse_final'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_rmse_final(double precision[]) IS
'Final function of genrec_rmse: sqrt(sum of squared errors / count), NULL for no rows.';

CREATE AGGREGATE genrec_hit_rate(rank integer, k integer) (
    SFUNC = genrec_hit_rate_trans,
    STYPE = double precision[],
    INITCOND = '{0,0}',
    COMBINEFUNC = genrec_metric_combine,
    FINALFUNC = genrec_metric_mean,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE genrec_hit_rate(integer, integer) IS
'Mean HR@k over rows; a NULL rank (target not ranked) counts as a miss; NULL for no rows.';

CREATE AGGREGATE genrec_mean_ndcg(rank integer, k integer) (
    SFUNC = genrec_ndcg_trans,
    STYPE = double precision[],
    INITCOND = '{0,0}',
    COMBINEFUNC = genrec_metric_combine,
    FINALFUNC = genrec_metric_mean,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE genrec_mean_ndcg(integer, integer) IS
'Mean NDCG@k over rows; a NULL rank (target not ranked) counts as a miss; NULL for no rows.';

CREATE AGGREGATE genrec_mean_mrr(rank integer) (
    SFUNC = genrec_mrr_trans,
    STYPE = double precision[],
    INITCOND = '{0,0}',
    COMBINEFUNC = genrec_metric_combine,
    FINALFUNC = genrec_metric_mean,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE genrec_mean_mrr(integer) IS
'MRR: mean reciprocal rank over rows; a NULL rank (target not ranked) counts as 0; NULL for no rows.';

CREATE AGGREGATE genrec_rmse(prediction double precision, actual double precision) (
    SFUNC = genrec_rmse_trans,
    STYPE = double precision[],
    INITCOND = '{0,0}',
    COMBINEFUNC = genrec_metric_combine,
    FINALFUNC = genrec_rmse_final,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE genrec_rmse(double precision, double precision) IS
'Root mean squared error of prediction against actual; rows with a NULL in either are skipped; NULL for no rows.';
