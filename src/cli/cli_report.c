/*
 * cli_report.c — tables and JSON for the genrec program (see cli_report.h).
 */
#include "cli_report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Print the protocol every metric follows. */
void
cli_report_protocol(FILE *f, const gr_train_config *tcfg)
{
	fprintf(f, "protocol: leave-one-out per user (last interaction = test, second to last = "
			"validation, the rest = train; users with < 3 interactions train only), "
			"full-catalogue ranking, seen items excluded (numbers with nothing excluded "
			"alongside), action RMSE on the [0,1]-normalised scale");
	if (tcfg)
		fprintf(f, ", early stopping on validation log NDCG@10 - mean log action error "
				"(patience %d), test at the best validation epoch", tcfg->patience);
	fprintf(f, "\n");
}

/* Print the data summary. */
void
cli_report_data(FILE *f, const char *path, const cli_data *d, const gr_dataset *ds)
{
	fprintf(f, "data: %s (%s%s): %zu interactions, %d users, %d items, max %d per user\n",
			path, cli_format_name(d->format), d->had_header ? ", header skipped" : "",
			ds->n_interactions, ds->n_users, ds->n_items, ds->max_user_len);
	fprintf(f, "columns: user %d, item %d, time ", d->user_col, d->item_col);
	if (d->time_col >= 0)
		fprintf(f, "%d", d->time_col);
	else
		fprintf(f, "- (file order)");
	if (d->n_actions == 0)
		fprintf(f, ", no action column");
	for (int k = 0; k < d->n_actions; k++)
		fprintf(f, ", action \"%s\" = column %d (%s, raw range [%g, %g])", d->action_names.name[k],
				d->action_cols[k], d->action_binary[k] ? "binary" : "continuous",
				ds->action_min[k], ds->action_max[k]);
	fprintf(f, "\n");
}

/* Print the model's layout and configuration. */
void
cli_report_model(FILE *f, const gr_model *m, const cli_names *names)
{
	const gr_model_config *c = &m->cfg;

	fprintf(f, "model: layout %s, d %d, layers %d, heads %d, max_len %d, buckets %d, "
			"head_hidden %d, emb_scale %g, %d items, %zu parameters\n",
			m->layout->name, c->d_model, c->n_layer, c->n_head, c->max_len, c->n_buckets,
			c->head_hidden, (double) c->emb_scale, c->n_items, m->n_params);
	for (int k = 0; k < c->n_actions; k++)
		fprintf(f, "  action %d \"%s\": %s, raw range [%g, %g]%s\n", k, names->name[k],
				c->action_binary[k] ? "binary (BCE)" : "continuous (MSE)", c->action_min[k],
				c->action_max[k], gr_layout_needs_actions(m->layout) ? "" : " (input ignored by this layout)");
}

/* Print the epoch table's header. */
void
cli_report_epoch_header(FILE *f, bool actions)
{
	fprintf(f, "%5s %7s %9s %9s %9s  %8s %8s %8s %8s %8s\n", "epoch", "steps", "loss",
			"item", "action", "vHR@10", "vNDCG@10", actions ? "vRMSE" : "", "train_s", "wall_s");
}

/* Print one epoch line, '*' when the validation score improved. */
void
cli_report_epoch(FILE *f, const gr_progress *p, double wall, bool actions)
{
	char		rmse[32] = "", aloss[32] = "-";

	if (actions)
	{
		snprintf(rmse, sizeof(rmse), "%.4f", p->valid_rmse);
		snprintf(aloss, sizeof(aloss), "%.4f", p->train_action_loss);
	}
	fprintf(f, "%5d %7lld %9.4f %9.4f %9s  %8.4f %8.4f %8s %8.2f %8.2f%s\n", p->epoch,
			(long long) p->step, p->train_loss, p->train_item_loss, aloss, p->valid_hr10,
			p->valid_ndcg10, rmse, p->seconds, wall, p->improved ? " *" : "");
	fflush(f);
}

/* Print one row of ranking metrics. */
static void
ranking_row(FILE *f, const char *label, const gr_metrics *mt, const double *hr,
			const double *ndcg, double mrr)
{
	fprintf(f, "  %-18s", label);
	for (int j = 0; j < mt->n_ks; j++)
		fprintf(f, " %9.4f", hr[j]);
	for (int j = 0; j < mt->n_ks; j++)
		fprintf(f, " %9.4f", ndcg[j]);
	fprintf(f, " %9.4f\n", mrr);
}

/* Print a split's metric table. */
void
cli_report_metrics(FILE *f, const char *title, const gr_metrics *mt, const gr_model *m,
				   const cli_names *names)
{
	char		h[32];
	int			K = m->cfg.n_actions;

	fprintf(f, "%s: %d users\n", title, mt->n_users);
	if (mt->has_ranking)
	{
		fprintf(f, "  %-18s", "");
		for (int j = 0; j < mt->n_ks; j++)
		{
			snprintf(h, sizeof(h), "HR@%d", mt->ks[j]);
			fprintf(f, " %9s", h);
		}
		for (int j = 0; j < mt->n_ks; j++)
		{
			snprintf(h, sizeof(h), "NDCG@%d", mt->ks[j]);
			fprintf(f, " %9s", h);
		}
		fprintf(f, " %9s\n", "MRR");
		ranking_row(f, "seen excluded", mt, mt->hr, mt->ndcg, mt->mrr);
		ranking_row(f, "nothing excluded", mt, mt->hr_all, mt->ndcg_all, mt->mrr_all);
		if (!isnan(mt->pop_hr[0]))
		{
			fprintf(f, "  %-18s", "popularity");
			for (int j = 0; j < mt->n_ks; j++)
				fprintf(f, " %9.4f", mt->pop_hr[j]);
			for (int j = 0; j < mt->n_ks; j++)
				fprintf(f, " %9.4f", mt->pop_ndcg[j]);
			fprintf(f, " %9s\n", "-");
		}
	}
	else if (!gr_layout_has_item_head(m->layout))
		fprintf(f, "  no ranking (layout %s predicts no next item)\n", m->layout->name);
	else
		fprintf(f, "  no ranking (no user had a target)\n");
	if (K == 0)
		return;
	if (!gr_layout_has_action_head(m->layout))
	{
		fprintf(f, "  actions: layout %s predicts none\n", m->layout->name);
		return;
	}
	fprintf(f, "  %-18s %9s %9s %9s %9s %9s %9s\n", "action", "targets", "RMSE", "baseline",
			"logloss", "NE", "AUC");
	for (int k = 0; k < K; k++)
	{
		fprintf(f, "  %-18.18s %9d", names->name[k], mt->n_action_targets[k]);
		if (m->cfg.action_binary[k])
			fprintf(f, " %9s %9s %9.4f %9.4f %9.4f\n", "-", "-", mt->logloss[k], mt->ne[k],
					mt->auc[k]);
		else
			fprintf(f, " %9.4f %9.4f %9s %9s %9s\n", mt->rmse[k], mt->baseline_rmse[k], "-", "-",
					"-");
	}
	fprintf(f, "  (RMSE on the [0,1]-normalised scale; baseline = global mean + user bias + "
			"item bias fitted on train; NE = log loss / entropy of the training positive rate)\n");
}

/* Print throughput and timing. */
void
cli_report_throughput(FILE *f, const gr_train_result *r)
{
	double		ts = r->train_seconds > 0 ? r->train_seconds : NAN;

	fprintf(f, "throughput: %.0f train interactions/s, %.0f tokens/s, %.2f s per epoch "
			"(training only; %.2f s training + %.2f s validation over %d epochs, %lld steps)\n",
			(double) r->train_interactions / ts, (double) r->train_tokens / ts,
			r->epochs_run > 0 ? r->train_seconds / r->epochs_run : NAN, r->train_seconds,
			r->eval_seconds, r->epochs_run, (long long) r->steps);
}

/* Print the tensor table. */
void
cli_report_tensors(FILE *f, const gr_model *m)
{
	fprintf(f, "tensors (%d):\n", m->n_tensors);
	for (int i = 0; i < m->n_tensors; i++)
	{
		const gr_tensor *t = &m->tensors[i];
		char		shape[96];
		int			o = 0;

		for (int j = 0; j < t->ndim; j++)
			o += snprintf(shape + o, sizeof(shape) - o, "%s%lld", j ? ", " : "",
						  (long long) t->shape[j]);
		fprintf(f, "  %-32s [%s] %zu\n", t->name, shape, t->numel);
	}
}

/* A float option as the double its decimal text means (0.001f prints as 0.001). */
static double
float_value(float x)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), "%.7g", (double) x);
	return strtod(buf, NULL);
}

/* Add a finite number, or null. */
void
cli_json_num(cJSON *obj, const char *name, double v)
{
	if (isfinite(v))
		cJSON_AddNumberToObject(obj, name, v);
	else
		cJSON_AddNullToObject(obj, name);
}

/* The protocol as JSON. */
cJSON *
cli_json_protocol(const gr_train_config *tcfg)
{
	cJSON	   *p = cJSON_CreateObject();

	cJSON_AddStringToObject(p, "split", "leave-one-out (last = test, second to last = validation)");
	cJSON_AddStringToObject(p, "ranking", "full catalogue");
	cJSON_AddStringToObject(p, "headline", "seen items excluded");
	cJSON_AddStringToObject(p, "action_scale", "[0,1]-normalised with the training range");
	if (tcfg)
	{
		cJSON_AddStringToObject(p, "early_stopping",
								"validation log NDCG@10 - mean log action error");
		cJSON_AddNumberToObject(p, "patience", tcfg->patience);
	}
	return p;
}

/* The data summary as JSON. */
cJSON *
cli_json_data(const char *path, const cli_data *d, const gr_dataset *ds)
{
	cJSON	   *o = cJSON_CreateObject();
	cJSON	   *acts = cJSON_CreateArray();

	cJSON_AddStringToObject(o, "path", path);
	cJSON_AddStringToObject(o, "format", cli_format_name(d->format));
	cJSON_AddBoolToObject(o, "header", d->had_header);
	cJSON_AddNumberToObject(o, "interactions", (double) ds->n_interactions);
	cJSON_AddNumberToObject(o, "users", ds->n_users);
	cJSON_AddNumberToObject(o, "items", ds->n_items);
	cJSON_AddNumberToObject(o, "max_user_len", ds->max_user_len);
	cJSON_AddNumberToObject(o, "user_col", d->user_col);
	cJSON_AddNumberToObject(o, "item_col", d->item_col);
	cJSON_AddNumberToObject(o, "time_col", d->time_col);
	for (int k = 0; k < d->n_actions; k++)
	{
		cJSON	   *a = cJSON_CreateObject();

		cJSON_AddStringToObject(a, "name", d->action_names.name[k]);
		cJSON_AddNumberToObject(a, "column", d->action_cols[k]);
		cJSON_AddBoolToObject(a, "binary", d->action_binary[k]);
		cli_json_num(a, "min", ds->action_min[k]);
		cli_json_num(a, "max", ds->action_max[k]);
		cJSON_AddItemToArray(acts, a);
	}
	cJSON_AddItemToObject(o, "actions", acts);
	return o;
}

/* A model configuration as JSON. */
cJSON *
cli_json_model(const gr_model *m, const cli_names *names)
{
	const gr_model_config *c = &m->cfg;
	cJSON	   *o = cJSON_CreateObject();
	cJSON	   *acts = cJSON_CreateArray();

	cJSON_AddStringToObject(o, "layout", m->layout->name);
	cJSON_AddNumberToObject(o, "n_items", c->n_items);
	cJSON_AddNumberToObject(o, "d_model", c->d_model);
	cJSON_AddNumberToObject(o, "n_layer", c->n_layer);
	cJSON_AddNumberToObject(o, "n_head", c->n_head);
	cJSON_AddNumberToObject(o, "max_len", c->max_len);
	cJSON_AddNumberToObject(o, "n_buckets", c->n_buckets);
	cJSON_AddNumberToObject(o, "head_hidden", c->head_hidden);
	cJSON_AddNumberToObject(o, "emb_scale", float_value(c->emb_scale));
	cJSON_AddNumberToObject(o, "n_params", (double) m->n_params);
	cJSON_AddNumberToObject(o, "n_tensors", m->n_tensors);
	for (int k = 0; k < c->n_actions; k++)
	{
		cJSON	   *a = cJSON_CreateObject();

		cJSON_AddStringToObject(a, "name", names->name[k]);
		cJSON_AddBoolToObject(a, "binary", c->action_binary[k]);
		cli_json_num(a, "min", c->action_min[k]);
		cli_json_num(a, "max", c->action_max[k]);
		cJSON_AddItemToArray(acts, a);
	}
	cJSON_AddItemToObject(o, "actions", acts);
	return o;
}

/* Training options as JSON. */
cJSON *
cli_json_train_config(const gr_train_config *t)
{
	cJSON	   *o = cJSON_CreateObject();
	char		seed[32];

	cJSON_AddNumberToObject(o, "epochs", t->epochs);
	cJSON_AddNumberToObject(o, "batch", t->batch_size);
	cJSON_AddNumberToObject(o, "lr", float_value(t->lr));
	cJSON_AddNumberToObject(o, "beta1", float_value(t->beta1));
	cJSON_AddNumberToObject(o, "beta2", float_value(t->beta2));
	cJSON_AddNumberToObject(o, "weight_decay", float_value(t->weight_decay));
	cJSON_AddNumberToObject(o, "dropout", float_value(t->dropout));
	cJSON_AddNumberToObject(o, "w_item", float_value(t->w_item));
	cJSON_AddNumberToObject(o, "w_action", float_value(t->w_action));
	cJSON_AddNumberToObject(o, "patience", t->patience);
	cJSON_AddNumberToObject(o, "warmup", t->warmup_steps);
	cJSON_AddNumberToObject(o, "eval_users", t->eval_max_users);
	/* a string too, since a double cannot hold every 64-bit seed */
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long) t->seed);
	cJSON_AddNumberToObject(o, "seed", (double) t->seed);
	cJSON_AddStringToObject(o, "seed_str", seed);
	return o;
}

/* One epoch as JSON. */
cJSON *
cli_json_epoch(const gr_progress *p, double wall)
{
	cJSON	   *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "epoch", p->epoch);
	cJSON_AddNumberToObject(o, "steps", (double) p->step);
	cli_json_num(o, "train_loss", p->train_loss);
	cli_json_num(o, "train_item_loss", p->train_item_loss);
	cli_json_num(o, "train_action_loss", p->train_action_loss);
	cli_json_num(o, "valid_hr@10", p->valid_hr10);
	cli_json_num(o, "valid_ndcg@10", p->valid_ndcg10);
	cli_json_num(o, "valid_rmse", p->valid_rmse);
	cli_json_num(o, "train_seconds", p->seconds);
	cli_json_num(o, "wall_seconds", wall);
	cJSON_AddBoolToObject(o, "improved", p->improved);
	return o;
}

/* Add HR@K, NDCG@K and MRR under their names. */
static void
json_ranking(cJSON *o, const gr_metrics *mt, const double *hr, const double *ndcg, double mrr)
{
	char		key[32];

	for (int j = 0; j < mt->n_ks; j++)
	{
		snprintf(key, sizeof(key), "hr@%d", mt->ks[j]);
		cli_json_num(o, key, hr[j]);
	}
	for (int j = 0; j < mt->n_ks; j++)
	{
		snprintf(key, sizeof(key), "ndcg@%d", mt->ks[j]);
		cli_json_num(o, key, ndcg[j]);
	}
	cli_json_num(o, "mrr", mrr);
}

/* Metrics of a split as JSON: headline ranking at top level, the rest nested. */
cJSON *
cli_json_metrics(const gr_metrics *mt, const gr_model *m, const cli_names *names)
{
	cJSON	   *o = cJSON_CreateObject();
	cJSON	   *all = cJSON_CreateObject();
	cJSON	   *acts = cJSON_CreateArray();

	cJSON_AddNumberToObject(o, "users", mt->n_users);
	json_ranking(o, mt, mt->hr, mt->ndcg, mt->mrr);
	json_ranking(all, mt, mt->hr_all, mt->ndcg_all, mt->mrr_all);
	cJSON_AddItemToObject(o, "nothing_excluded", all);
	if (!isnan(mt->pop_hr[0]))
	{
		cJSON	   *pop = cJSON_CreateObject();
		char		key[32];

		for (int j = 0; j < mt->n_ks; j++)
		{
			snprintf(key, sizeof(key), "hr@%d", mt->ks[j]);
			cli_json_num(pop, key, mt->pop_hr[j]);
			snprintf(key, sizeof(key), "ndcg@%d", mt->ks[j]);
			cli_json_num(pop, key, mt->pop_ndcg[j]);
		}
		cJSON_AddItemToObject(o, "popularity", pop);
	}
	for (int k = 0; k < m->cfg.n_actions; k++)
	{
		cJSON	   *a = cJSON_CreateObject();

		cJSON_AddStringToObject(a, "name", names->name[k]);
		cJSON_AddBoolToObject(a, "binary", m->cfg.action_binary[k]);
		cJSON_AddNumberToObject(a, "targets", mt->n_action_targets[k]);
		cli_json_num(a, "rmse", mt->rmse[k]);
		cli_json_num(a, "baseline_rmse", mt->baseline_rmse[k]);
		cli_json_num(a, "logloss", mt->logloss[k]);
		cli_json_num(a, "ne", mt->ne[k]);
		cli_json_num(a, "auc", mt->auc[k]);
		cJSON_AddItemToArray(acts, a);
	}
	cJSON_AddItemToObject(o, "actions", acts);
	return o;
}

/* Training counters and throughput as JSON. */
cJSON *
cli_json_result(const gr_train_result *r)
{
	cJSON	   *o = cJSON_CreateObject();
	double		ts = r->train_seconds > 0 ? r->train_seconds : NAN;

	cJSON_AddNumberToObject(o, "epochs_run", r->epochs_run);
	cJSON_AddNumberToObject(o, "best_epoch", r->best_epoch);
	cJSON_AddNumberToObject(o, "steps", (double) r->steps);
	cli_json_num(o, "train_seconds", r->train_seconds);
	cli_json_num(o, "eval_seconds", r->eval_seconds);
	cJSON_AddNumberToObject(o, "train_tokens", (double) r->train_tokens);
	cJSON_AddNumberToObject(o, "train_interactions", (double) r->train_interactions);
	cli_json_num(o, "final_train_loss", r->final_train_loss);
	cli_json_num(o, "interactions_per_second", (double) r->train_interactions / ts);
	cli_json_num(o, "tokens_per_second", (double) r->train_tokens / ts);
	cli_json_num(o, "seconds_per_epoch",
				 r->epochs_run > 0 ? r->train_seconds / r->epochs_run : NAN);
	return o;
}

/* Write JSON to a file or stdout. */
bool
cli_json_write(const cJSON *root, const char *path)
{
	char	   *text = cJSON_Print(root);
	FILE	   *f;
	bool		ok;

	if (text == NULL)
	{
		fprintf(stderr, "genrec: out of memory printing JSON\n");
		return false;
	}
	f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
	if (f == NULL)
	{
		fprintf(stderr, "genrec: cannot write %s: %s\n", path, strerror(errno));
		cJSON_free(text);
		return false;
	}
	ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
	ok = (f == stdout ? fflush(f) == 0 : fclose(f) == 0) && ok;
	if (!ok)
		fprintf(stderr, "genrec: cannot write %s: %s\n", path, strerror(errno));
	cJSON_free(text);
	return ok;
}
