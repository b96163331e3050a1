/*
 * gr_report.h — a trained model at a glance, as one HTML document with inline SVG charts (no
 * script, nothing fetched): training curves per epoch (loss; validation HR@10 and NDCG@10;
 * validation RMSE), the test metrics beside the popularity and bias baselines, and, for
 * several models, bars per layout with error bars (mean ± standard deviation over the models
 * of that layout, e.g. seeds).
 *
 * The input is each model's summary JSON as genrec stores it: genrec.models.metrics (SQL:
 * "valid", "test", "baselines", "history"), or a model file's genrec.extra (the command-line
 * program's: "valid", "test", "result", "history"; an export from genrec.models: the same
 * metrics under "metrics"). Missing parts are left out of the report.
 * Used by `genrec report` and genrec_report() alike, so both draw the same document.
 */
#ifndef GR_REPORT_H
#define GR_REPORT_H

#include "gr_common.h"

/* One model to report. */
typedef struct gr_report_model
{
	const char *name;			/* shown as the model's title, e.g. "movies v3" */
	const char *layout;			/* groups models in the comparison; may be NULL */
	const char *summary_json;	/* the summary (see above); NULL or "" for none */
} gr_report_model;

/*
 * Render n >= 1 models into a NUL-terminated HTML document in *html (allocated through env,
 * free with gr_free), *len bytes without the NUL. A summary that is not JSON within the
 * limits of model metadata is GR_ERR_INVALID_ARGUMENT.
 */
gr_status	gr_report_html(const gr_env *env, const gr_report_model *models, int n,
						   char **html, size_t *len, gr_error *err);

#endif							/* GR_REPORT_H */
