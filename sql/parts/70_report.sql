-- ---------------------------------------------------------------- report

CREATE FUNCTION genrec_report(model text) RETURNS text
    AS 'MODULE_PATHNAME', 'genrec_report'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_report(text) IS
'An HTML document (inline SVG, no script) showing the version that serves a model at a glance: training loss, validation HR@10 / NDCG@10 and RMSE per epoch, and the test metrics beside the popularity and bias baselines. The same page as `genrec report`. A model the caller may not use: 42501; unknown: 42704.';

CREATE FUNCTION genrec_report(models text[]) RETURNS text
    AS 'MODULE_PATHNAME', 'genrec_report_many'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION genrec_report(text[]) IS
'The HTML report of several models (1 to 64 names), with a comparison first: test HR@10 and NDCG@10 per layout as bars with error bars (mean and standard deviation over the models of that layout, e.g. trained with different seeds). NULL names: 22004.';
