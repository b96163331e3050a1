/*
 * cli_serve.c — the score, recommend and info subcommands: one user's history (from the
 * command line or a data file) against a saved model, and a model file's description.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A history in external ids and raw action values, owned by the CLI. */
typedef struct cli_history
{
	int64_t    *items;
	double	   *actions;		/* [n * K] or NULL */
	int64_t    *times;			/* [n] from --data's time column, or NULL */
	int			n;
} cli_history;

/* Free a history. */
static void
history_free(cli_history *h)
{
	free(h->items);
	free(h->actions);
	free(h->times);
	memset(h, 0, sizeof(*h));
}

/* Allocate a history of n interactions with every action missing. */
static bool
history_alloc(cli_history *h, size_t n, int K)
{
	memset(h, 0, sizeof(*h));
	if (n > INT32_MAX)
		return false;
	h->items = malloc(sizeof(int64_t) * (n > 0 ? n : 1));
	h->actions = K > 0 ? malloc(sizeof(double) * (n > 0 ? n : 1) * (size_t) K) : NULL;
	if (!h->items || (K > 0 && !h->actions))
	{
		history_free(h);
		return false;
	}
	for (size_t i = 0; i < n * (size_t) K; i++)
		h->actions[i] = NAN;
	h->n = (int) n;
	return true;
}

/* Parse one "ITEM[:ACTION...]" entry of --history into row i. */
static bool
parse_history_entry(const char *s, size_t len, int K, cli_history *h, int i)
{
	char		buf[128];
	char	   *p, *end;
	int			k = 0;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	p = strchr(buf, ':');
	if (p)
		*p++ = '\0';
	long long	item = strtoll(buf, &end, 10);

	if (end == buf || *end != '\0')
		return false;
	h->items[i] = (int64_t) item;
	while (p)
	{
		char	   *next = strchr(p, ':');

		if (next)
			*next++ = '\0';
		if (k >= K || !cli_parse_action_value(p, &h->actions[(size_t) i * K + k]))
			return false;
		k++;
		p = next;
	}
	return true;
}

/* Parse --history "ITEM[:A[:A...]],..." ("-" = empty) for a model with K actions. */
static int
history_from_text(const char *cmd, const char *text, int K, cli_history *h)
{
	size_t		n = 1;

	if (strcmp(text, "-") == 0)
		return history_alloc(h, 0, K) ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
	for (const char *p = text; *p; p++)
		n += (*p == ',');
	if (!history_alloc(h, n, K))
	{
		fprintf(stderr, "genrec: out of memory for a history\n");
		return CLI_EXIT_RUNTIME;
	}
	const char *s = text;

	for (int i = 0; i < h->n; i++)
	{
		const char *c = strchr(s, ',');
		size_t		len = c ? (size_t) (c - s) : strlen(s);

		if (!parse_history_entry(s, len, K, h, i))
		{
			history_free(h);
			return cli_usage_error(cmd, "--history entry %d \"%.*s\" is not ITEM[:ACTION...] "
								   "with at most %d action(s)", i + 1, (int) GR_MIN(len, 64),
								   s, K);
		}
		s = c ? c + 1 : s + len;
	}
	return CLI_EXIT_OK;
}

/* Row order of one user's interactions: by time, ties in file order. */
typedef struct time_key
{
	int64_t		time;
	size_t		index;
} time_key;

/* Compare two rows by (time, file position). */
static int
cmp_time_key(const void *pa, const void *pb)
{
	const time_key *a = pa, *b = pb;

	if (a->time != b->time)
		return a->time < b->time ? -1 : 1;
	return a->index < b->index ? -1 : (a->index > b->index);
}

/* Take --user's whole history from --data, in time order. */
static int
history_from_user(const char *cmd, const cli_opts *opts, const cli_model *cm, cli_history *h)
{
	cli_data_spec spec;
	cli_data	d;
	time_key   *keys = NULL;
	int			K = cm->model->cfg.n_actions;
	int			rc;

	if ((rc = cli_data_spec_from_opts(cmd, opts, &spec)) != CLI_EXIT_OK)
		return rc;
	spec.filter_user = true;
	spec.only_user = opts->user;
	if (!cli_data_read(&spec, &d))
		return CLI_EXIT_RUNTIME;
	if ((rc = cli_data_fit_model(opts, cm, &d)) != CLI_EXIT_OK)
		goto done;
	if (d.n == 0)
	{
		fprintf(stderr, "genrec %s: user %lld has no interactions in %s\n", cmd,
				(long long) opts->user, opts->data);
		rc = CLI_EXIT_RUNTIME;
		goto done;
	}
	keys = malloc(sizeof(time_key) * d.n);
	if (keys == NULL || !history_alloc(h, d.n, K) ||
		(d.time && (h->times = malloc(sizeof(int64_t) * d.n)) == NULL))
	{
		fprintf(stderr, "genrec: out of memory for a history\n");
		rc = CLI_EXIT_RUNTIME;
		goto done;
	}
	for (size_t i = 0; i < d.n; i++)
	{
		keys[i].time = d.time ? d.time[i] : 0;
		keys[i].index = i;
	}
	qsort(keys, d.n, sizeof(time_key), cmp_time_key);
	for (size_t i = 0; i < d.n; i++)
	{
		size_t		src = keys[i].index;

		h->items[i] = d.item[src];
		if (h->times)
			h->times[i] = d.time[src];	/* the time-aware trunk's gaps, as in training */
		for (int k = 0; k < d.n_actions; k++)
			h->actions[i * K + k] = d.actions[src * d.n_actions + k];
	}
done:
	free(keys);
	cli_data_free(&d);
	return rc;
}

/* Get the history from --history or --user/--data (exactly one of them). */
static int
get_history(const char *cmd, const cli_opts *opts, const cli_model *cm, cli_history *h)
{
	bool		by_user = cli_given(opts, "user");

	memset(h, 0, sizeof(*h));
	if (by_user == (opts->history != NULL))
		return cli_usage_error(cmd, "give either --history LIST or --user UID with --data FILE");
	if (!by_user)
		return history_from_text(cmd, opts->history, cm->model->cfg.n_actions, h);
	if (opts->data == NULL)
		return cli_usage_error(cmd, "--user needs --data FILE");
	return history_from_user(cmd, opts, cm, h);
}

/* Check a serving command's options before any work; returns an exit code. */
static int
check_serving_options(const char *cmd, const cli_opts *opts)
{
	if (opts->model == NULL)
		return cli_usage_error(cmd, "--model FILE is required");
	if (cli_given(opts, "user") == (opts->history != NULL))
		return cli_usage_error(cmd, "give either --history LIST or --user UID with --data FILE");
	if (cli_given(opts, "user") && opts->data == NULL)
		return cli_usage_error(cmd, "--user needs --data FILE");
	if (!cli_given(opts, "user") && opts->data != NULL)
		return cli_usage_error(cmd, "--data is only used with --user");
	return CLI_EXIT_OK;
}

/* Print a float, "nan" for NaN whatever its sign. */
static void
print_value(FILE *f, double v)
{
	if (isnan(v))
		fputs("\tnan", f);
	else
		fprintf(f, "\t%.6g", v);
}

/* genrec score: predictions for candidates given one history. */
int
cli_cmd_score(cli_opts *opts)
{
	gr_env		env;
	gr_error	err = {0};
	cli_model	cm;
	cli_history h = {0};
	gr_session *s = NULL;
	int64_t    *cands = NULL;
	int			n_cands = 0, rc;
	float	   *act = NULL, *logit = NULL;
	uint8_t    *known = NULL;
	FILE	   *out = cli_out(opts);

	memset(&cm, 0, sizeof(cm));
	if ((rc = check_serving_options("score", opts)) != CLI_EXIT_OK)
		return rc;
	if (opts->candidates == NULL)
		return cli_usage_error("score", "--candidates LIST is required");
	if (!cli_parse_i64_list(opts->candidates, &cands, &n_cands))
		return cli_usage_error("score", "--candidates wants ID,ID,... (64-bit integers), got \"%s\"",
							   opts->candidates);
	if ((rc = cli_setup_env("score", opts, &env)) != CLI_EXIT_OK ||
		(rc = cli_model_load(&env, opts->model, &cm)) != CLI_EXIT_OK)
	{
		free(cands);
		return rc;
	}
	int			K = cm.model->cfg.n_actions;

	if ((rc = get_history("score", opts, &cm, &h)) != CLI_EXIT_OK)
		goto done;
	act = malloc(sizeof(float) * (size_t) n_cands * (K > 0 ? K : 1));
	logit = malloc(sizeof(float) * (size_t) n_cands);
	known = malloc((size_t) n_cands);
	if (!act || !logit || !known)
	{
		fprintf(stderr, "genrec: out of memory for %d candidates\n", n_cands);
		rc = CLI_EXIT_RUNTIME;
		goto done;
	}
	gr_history gh = {.items = h.items,.actions = h.actions,.n = h.n,.times = h.times};
	gr_scores	sc = {.action = act,.logit = logit,.known = known};

	if (gr_session_create(cm.model, &s, &err) != GR_OK ||
		gr_score(s, &gh, cands, n_cands, &sc, &err) != GR_OK)
	{
		rc = cli_engine_error("scoring failed", &err);
		goto done;
	}
	/* a user-level estimate is not a candidate's score: say so instead of implying one */
	bool		user_level = gr_layout_has_action_head(cm.model->layout) &&
		!gr_layout_candidate_actions(cm.model->layout);

	if (user_level)
		fprintf(stderr, "genrec score: note: layout %s has no candidate-specific action score; "
				"the action columns are the user-level estimate f(h_N), the same for every "
				"candidate%s\n", cm.model->layout->name,
				gr_layout_has_item_head(cm.model->layout) ? " (rank by the logit)" : "");
	fprintf(out, "item\tknown\tlogit");
	for (int k = 0; k < K; k++)
		fprintf(out, "\t%s%s", cm.names.name[k], user_level ? "(user)" : "");
	fputc('\n', out);
	for (int c = 0; c < n_cands; c++)
	{
		fprintf(out, "%lld\t%d", (long long) cands[c], known[c]);
		print_value(out, logit[c]);
		for (int k = 0; k < K; k++)
			print_value(out, act[(size_t) c * K + k]);
		fputc('\n', out);
	}
	if (opts->json)
	{
		cJSON	   *root = cJSON_CreateObject();
		cJSON	   *arr = cJSON_CreateArray();

		cJSON_AddStringToObject(root, "command", "score");
		cJSON_AddStringToObject(root, "model_file", opts->model);
		cJSON_AddNumberToObject(root, "history_length", h.n);
		cJSON_AddStringToObject(root, "action_scope", !gr_layout_has_action_head(cm.model->layout) ?
								"none" : user_level ? "user" : "candidate");
		for (int c = 0; c < n_cands; c++)
		{
			cJSON	   *o = cJSON_CreateObject();
			cJSON	   *a = cJSON_CreateObject();

			cJSON_AddNumberToObject(o, "item", (double) cands[c]);
			cJSON_AddBoolToObject(o, "known", known[c]);
			cli_json_num(o, "logit", logit[c]);
			for (int k = 0; k < K; k++)
				cli_json_num(a, cm.names.name[k], act[(size_t) c * K + k]);
			cJSON_AddItemToObject(o, "actions", a);
			cJSON_AddItemToArray(arr, o);
		}
		cJSON_AddItemToObject(root, "candidates", arr);
		if (!cli_json_write(root, opts->json))
			rc = CLI_EXIT_RUNTIME;
		cJSON_Delete(root);
	}
done:
	gr_session_free(s);
	free(act);
	free(logit);
	free(known);
	free(cands);
	history_free(&h);
	cli_model_free(&env, &cm);
	return rc;
}

/* genrec recommend: top-k over the catalogue for one history. */
int
cli_cmd_recommend(cli_opts *opts)
{
	gr_env		env;
	gr_error	err = {0};
	cli_model	cm;
	cli_history h = {0};
	gr_session *s = NULL;
	int64_t    *items = NULL;
	float	   *scores = NULL;
	int			n_out = 0, rc;
	FILE	   *out = cli_out(opts);

	memset(&cm, 0, sizeof(cm));
	if ((rc = check_serving_options("recommend", opts)) != CLI_EXIT_OK)
		return rc;
	if ((rc = cli_setup_env("recommend", opts, &env)) != CLI_EXIT_OK ||
		(rc = cli_model_load(&env, opts->model, &cm)) != CLI_EXIT_OK)
		return rc;
	if ((rc = get_history("recommend", opts, &cm, &h)) != CLI_EXIT_OK)
		goto done;

	int			k = GR_MIN(opts->k, cm.model->cfg.n_items);

	items = malloc(sizeof(int64_t) * (size_t) k);
	scores = malloc(sizeof(float) * (size_t) k);
	if (!items || !scores)
	{
		fprintf(stderr, "genrec: out of memory for %d results\n", k);
		rc = CLI_EXIT_RUNTIME;
		goto done;
	}
	gr_history gh = {.items = h.items,.actions = h.actions,.n = h.n,.times = h.times};

	if (gr_session_create(cm.model, &s, &err) != GR_OK ||
		gr_recommend(s, &gh, k, !opts->include_seen, items, scores, &n_out, &err) != GR_OK)
	{
		rc = cli_engine_error("recommendation failed", &err);
		goto done;
	}
	fprintf(out, "rank\titem\tlogit\n");
	for (int i = 0; i < n_out; i++)
	{
		fprintf(out, "%d\t%lld", i + 1, (long long) items[i]);
		print_value(out, scores[i]);
		fputc('\n', out);
	}
	if (opts->json)
	{
		cJSON	   *root = cJSON_CreateObject();
		cJSON	   *arr = cJSON_CreateArray();

		cJSON_AddStringToObject(root, "command", "recommend");
		cJSON_AddStringToObject(root, "model_file", opts->model);
		cJSON_AddNumberToObject(root, "history_length", h.n);
		cJSON_AddBoolToObject(root, "exclude_seen", !opts->include_seen);
		for (int i = 0; i < n_out; i++)
		{
			cJSON	   *o = cJSON_CreateObject();

			cJSON_AddNumberToObject(o, "rank", i + 1);
			cJSON_AddNumberToObject(o, "item", (double) items[i]);
			cli_json_num(o, "logit", scores[i]);
			cJSON_AddItemToArray(arr, o);
		}
		cJSON_AddItemToObject(root, "items", arr);
		if (!cli_json_write(root, opts->json))
			rc = CLI_EXIT_RUNTIME;
		cJSON_Delete(root);
	}
done:
	gr_session_free(s);
	free(items);
	free(scores);
	history_free(&h);
	cli_model_free(&env, &cm);
	return rc;
}

/* genrec info: describe a model file. */
int
cli_cmd_info(cli_opts *opts)
{
	gr_env		env;
	cli_model	cm;
	cJSON	   *extra = NULL;
	FILE	   *out = cli_out(opts);
	int			rc;

	if (opts->model == NULL)
		return cli_usage_error("info", "--model FILE is required");
	if ((rc = cli_setup_env("info", opts, &env)) != CLI_EXIT_OK ||
		(rc = cli_model_load(&env, opts->model, &cm)) != CLI_EXIT_OK)
		return rc;
	const gr_model *m = cm.model;

	fprintf(out, "file: %s\n", opts->model);
	cli_report_model(out, m, &cm.names);
	fprintf(out, "items: %d, external ids %lld .. %lld\n", m->cfg.n_items,
			(long long) m->item_ids[1], (long long) m->item_ids[m->cfg.n_items]);
	cli_report_tensors(out, m);
	if (cm.extra)
	{
		extra = cJSON_Parse(cm.extra);
		char	   *pretty = extra ? cJSON_Print(extra) : NULL;

		fprintf(out, "summary stored with the model:\n%s\n", pretty ? pretty : cm.extra);
		if (pretty)
			cJSON_free(pretty);
	}
	if (opts->json)
	{
		cJSON	   *root = cJSON_CreateObject();
		cJSON	   *tensors = cJSON_CreateArray();

		cJSON_AddStringToObject(root, "command", "info");
		cJSON_AddStringToObject(root, "model_file", opts->model);
		cJSON_AddItemToObject(root, "model", cli_json_model(m, &cm.names));
		for (int i = 0; i < m->n_tensors; i++)
		{
			cJSON	   *t = cJSON_CreateObject();
			cJSON	   *shape = cJSON_CreateArray();

			cJSON_AddStringToObject(t, "name", m->tensors[i].name);
			for (int j = 0; j < m->tensors[i].ndim; j++)
				cJSON_AddItemToArray(shape, cJSON_CreateNumber((double) m->tensors[i].shape[j]));
			cJSON_AddItemToObject(t, "shape", shape);
			cJSON_AddItemToArray(tensors, t);
		}
		cJSON_AddItemToObject(root, "tensors", tensors);
		if (extra)
		{
			cJSON_AddItemToObject(root, "extra", extra);
			extra = NULL;
		}
		if (!cli_json_write(root, opts->json))
			rc = CLI_EXIT_RUNTIME;
		cJSON_Delete(root);
	}
	cJSON_Delete(extra);
	cli_model_free(&env, &cm);
	return rc;
}
