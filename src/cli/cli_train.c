/*
 * cli_train.c — the train and eval subcommands: read a file, build the dataset (in the
 * model's space for eval), run the protocol, print the tables and write JSON.
 */
#include "cli.h"
#include "gr_arch.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* What the progress callback needs. */
typedef struct train_progress
{
	FILE	   *out;
	bool		quiet;
	bool		actions;		/* print the validation RMSE column */
	cJSON	   *epochs;			/* per-epoch JSON records */
	double		last;			/* wall clock at the previous report */
} train_progress;

/* Monotonic seconds. */
static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* Print and record one epoch. */
static void
on_progress(void *user, const gr_progress *p)
{
	train_progress *tp = user;
	double		now = now_seconds();
	double		wall = now - tp->last;

	tp->last = now;
	cJSON_AddItemToArray(tp->epochs, cli_json_epoch(p, wall));
	if (!tp->quiet)
		cli_report_epoch(tp->out, p, wall, tp->actions);
}

/* Read --data with the command line's format options; returns an exit code. */
static int
read_data(const char *cmd, const cli_opts *opts, cli_data *d)
{
	cli_data_spec spec;
	int			rc;

	if (opts->data == NULL)
		return cli_usage_error(cmd, "--data FILE is required");
	if ((rc = cli_data_spec_from_opts(cmd, opts, &spec)) != CLI_EXIT_OK)
		return rc;
	return cli_data_read(&spec, d) ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
}

/* The training summary stored in the model file. */
static char *
summary_json(const cli_opts *opts, const cli_data *d, const gr_dataset *ds, const gr_model *m,
			 const gr_train_result *res, const cJSON *epochs)
{
	cJSON	   *root = cJSON_CreateObject();
	cJSON	   *names = cJSON_CreateArray();
	char	   *text;

	cJSON_AddStringToObject(root, "created_by", "genrec " CLI_VERSION " (cli)");
	for (int k = 0; k < d->n_actions; k++)
		cJSON_AddItemToArray(names, cJSON_CreateString(d->action_names.name[k]));
	cJSON_AddItemToObject(root, "action_names", names);
	cJSON_AddItemToObject(root, "data", cli_json_data(opts->data, d, ds));
	cJSON_AddItemToObject(root, "train", cli_json_train_config(&opts->tcfg));
	cJSON_AddItemToObject(root, "result", cli_json_result(res));
	cJSON_AddItemToObject(root, "valid", cli_json_metrics(&res->valid, m, &d->action_names));
	cJSON_AddItemToObject(root, "test", cli_json_metrics(&res->test, m, &d->action_names));
	/* the per-epoch records, as genrec.models.metrics keeps them (genrec report draws them) */
	if (epochs)
		cJSON_AddItemToObject(root, "history", cJSON_Duplicate(epochs, 1));
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return text;
}

/* Parse --task-weights into the training configuration; false on a malformed list. */
static bool
parse_task_weights(const char *list, gr_train_config *t)
{
	const char *p = list;

	t->n_task_weights = 0;
	while (*p)
	{
		char	   *end;
		double		x = strtod(p, &end);

		if (end == p || t->n_task_weights >= GR_MAX_ACTIONS || !(x >= 0.0 && x <= 1e6))
			return false;
		t->task_weights[t->n_task_weights++] = (float) x;
		if (*end == ',')
			end++;
		else if (*end != '\0')
			return false;
		p = end;
	}
	return t->n_task_weights > 0;
}

/* Check options that need no data, and pick the layout; returns an exit code. */
static int
train_check_options(cli_opts *opts, const gr_layout **layout)
{
	gr_error	err = {0};

	*layout = NULL;
	if (opts->task_weights && !parse_task_weights(opts->task_weights, &opts->tcfg))
		return cli_usage_error("train", "--task-weights wants up to %d numbers in [0, 1e6] "
							   "W1,W2,..., got \"%s\"", GR_MAX_ACTIONS, opts->task_weights);
	if (opts->layout && (*layout = gr_layout_by_name(opts->layout)) == NULL)
	{
		char		names[256];

		gr_layout_list(names, sizeof(names), false);
		return cli_usage_error("train", "unknown layout \"%s\" (%s)", opts->layout, names);
	}
	if (opts->loss && (opts->mcfg.item_loss = gr_item_loss_by_name(opts->loss)) < 0)
		return cli_usage_error("train", "unknown loss \"%s\" (full, sampled, infonce)",
							   opts->loss);
	if (opts->trunk)
	{
		const gr_arch *arch = gr_arch_by_name(opts->trunk);

		if (arch == NULL)
			return cli_usage_error("train", "unknown trunk \"%s\" (gpt2, hstu)", opts->trunk);
		opts->mcfg.trunk = arch->id;
	}
	if (opts->sampler && (opts->mcfg.sampler = gr_sampler_by_name(opts->sampler)) < 0)
		return cli_usage_error("train", "unknown sampler \"%s\" (uniform, popularity)",
							   opts->sampler);
	if (opts->negatives_per &&
		(opts->mcfg.negatives_per = gr_negatives_per_by_name(opts->negatives_per)) < 0)
		return cli_usage_error("train", "unknown negatives-per \"%s\" (batch, user)",
							   opts->negatives_per);
	if (opts->similarity &&
		(opts->mcfg.similarity = gr_similarity_by_name(opts->similarity)) < 0)
		return cli_usage_error("train", "unknown similarity \"%s\" (dot, cosine)",
							   opts->similarity);
	if (opts->item_update &&
		(opts->tcfg.item_update = gr_item_update_by_name(opts->item_update)) < 0)
		return cli_usage_error("train", "unknown item update \"%s\" (auto, dense, lazy)",
							   opts->item_update);
	if (opts->mcfg.item_loss == GR_LOSS_INFONCE && !cli_given(opts, "negatives"))
		opts->mcfg.negatives = 0;
	/* sampled negatives are drawn per user unless --negatives-per says otherwise */
	if (opts->mcfg.item_loss == GR_LOSS_SAMPLED && !opts->negatives_per)
		opts->mcfg.negatives_per = GR_NEGATIVES_PER_USER;
	if (gr_train_config_validate(&opts->tcfg, &err) != GR_OK)
		return cli_usage_error("train", "%s", err.message);
	return CLI_EXIT_OK;
}

/* Fail before training when an output could not be written: its directory must be. */
static bool
output_writable(const char *opt, const char *path)
{
	char		dir[4096];
	const char *slash = strrchr(path, '/');

	if (strcmp(path, "-") == 0)
		return true;
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int) (slash - path), path);
	if (access(dir, W_OK | X_OK) != 0 ||
		(strcmp(opt, "json") == 0 && access(path, F_OK) == 0 && access(path, W_OK) != 0))
	{
		fprintf(stderr, "genrec train: --%s %s: cannot write there: %s\n", opt, path,
				strerror(errno));
		return false;
	}
	return true;
}

/* Print the options of a run in one line. */
static void
report_train_options(FILE *f, const cli_opts *o, const gr_model_config *c, const gr_layout *l)
{
	const gr_train_config *t = &o->tcfg;

	fprintf(f, "train: layout %s, trunk %s, d %d, layers %d, heads %d, max_len %d, buckets %d, "
			"head_hidden %d; loss %s",
			l->name, gr_arch_by_id(c->trunk)->name, c->d_model, c->n_layer, c->n_head, c->max_len, c->n_buckets,
			c->head_hidden, gr_item_loss_name(c->item_loss));
	if (c->item_loss != GR_LOSS_FULL)
		fprintf(f, " (negatives %d%s%s%s, %s, temperature %g)", c->negatives,
				c->item_loss == GR_LOSS_SAMPLED ? ", " : "",
				c->item_loss == GR_LOSS_SAMPLED ? gr_sampler_name(c->sampler) : "",
				c->negatives_per == GR_NEGATIVES_PER_USER ? " per user" : "",
				gr_similarity_name(c->similarity), (double) c->temperature);
	fprintf(f, "; epochs %d, batch %d, lr %g, dropout %g, patience %d, warmup %d, "
			"weight_decay %g, w_item %g, w_action %g, seed %llu, device %s, threads %d\n",
			t->epochs, t->batch_size, (double) t->lr, (double) t->dropout,
			t->patience, t->warmup_steps, (double) t->weight_decay, (double) t->w_item,
			(double) t->w_action, (unsigned long long) t->seed, o->device, o->threads);
}

/* Megabytes of a byte count. */
static double
megabytes(size_t bytes)
{
	return (double) bytes / (1024.0 * 1024.0);
}

/* Print the memory estimate of a training run. */
static void
report_memory(FILE *f, const gr_train_memory *m)
{
	fprintf(f, "memory: an estimated %.1f MB at the peak (parameters %.1f, gradients %.1f, "
			"optimiser state %.1f, activations %.1f, evaluation %.1f, data %.1f MB); "
			"model file %.1f MB plus its header\n", megabytes(m->total),
			megabytes(m->parameters), megabytes(m->gradients), megabytes(m->optimiser),
			megabytes(m->activations), megabytes(m->evaluation), megabytes(m->dataset),
			megabytes(m->weights_file));
}

/* The memory estimate as JSON (bytes). */
static cJSON *
memory_json(const gr_train_memory *m)
{
	cJSON	   *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "total", (double) m->total);
	cJSON_AddNumberToObject(o, "parameters", (double) m->parameters);
	cJSON_AddNumberToObject(o, "gradients", (double) m->gradients);
	cJSON_AddNumberToObject(o, "optimiser", (double) m->optimiser);
	cJSON_AddNumberToObject(o, "activations", (double) m->activations);
	cJSON_AddNumberToObject(o, "evaluation", (double) m->evaluation);
	cJSON_AddNumberToObject(o, "data", (double) m->dataset);
	cJSON_AddNumberToObject(o, "weights_file", (double) m->weights_file);
	return o;
}

/* genrec train: the whole protocol on one file. */
int
cli_cmd_train(cli_opts *opts)
{
	gr_env		env;
	gr_error	err = {0};
	cli_data	d;
	gr_dataset *ds = NULL;
	gr_model   *model = NULL;
	gr_train_result res;
	const gr_layout *layout;
	cJSON	   *root = NULL;
	char	   *extra = NULL;
	FILE	   *out = cli_out(opts);
	int			rc;
	train_progress tp = {0};
	gr_train_memory mem;
	gr_train_sizes sizes;

	memset(&d, 0, sizeof(d));
	if (opts->data == NULL)
		return cli_usage_error("train", "--data FILE is required");
	if ((opts->save && !output_writable("save", opts->save)) ||
		(opts->json && !output_writable("json", opts->json)))
		return CLI_EXIT_RUNTIME;
	if ((rc = train_check_options(opts, &layout)) != CLI_EXIT_OK ||
		(rc = cli_setup_env("train", opts, &env)) != CLI_EXIT_OK ||
		(rc = read_data("train", opts, &d)) != CLI_EXIT_OK)
		return rc;
	if (layout == NULL)
	{
		layout = d.n_actions > 0 ? &gr_layout_lac : &gr_layout_item;
		if (!opts->quiet)
			fprintf(stderr, "genrec train: note: no --layout given; using %s (the data has %d "
					"action column%s)\n", layout->name, d.n_actions, d.n_actions == 1 ? "" : "s");
	}
	if (opts->tcfg.n_task_weights > 0 && opts->tcfg.n_task_weights != d.n_actions)
	{
		rc = cli_usage_error("train", "--task-weights gives %d weights for %d action columns",
							 opts->tcfg.n_task_weights, d.n_actions);
		goto done;
	}
	if (gr_layout_needs_actions(layout) && d.n_actions == 0)
	{
		rc = cli_usage_error("train", "layout %s needs an action column, and the data has none "
							 "(see --cols and --actions)", layout->name);
		goto done;
	}

	gr_raw_interactions raw;

	cli_data_raw(&d, &raw);
	if (gr_dataset_build(&env, &raw, NULL, &ds, &err) != GR_OK)
	{
		rc = cli_engine_error(opts->data, &err);
		goto done;
	}
	cli_data_free(&d);			/* the dataset holds its own copy */
	opts->mcfg.layout = layout->id;
	opts->mcfg.n_items = ds->n_items;
	opts->mcfg.n_actions = ds->n_actions;
	if (gr_model_config_validate(&opts->mcfg, &err) != GR_OK)
	{
		rc = cli_usage_error("train", "%s", err.message);
		goto done;
	}
	sizes = (gr_train_sizes) {
		.n_interactions = (int64_t) ds->n_interactions,.n_users = ds->n_users,
		.n_items = ds->n_items,.max_user_len = ds->max_user_len,
	};
	if (gr_train_memory_estimate(&opts->mcfg, &opts->tcfg, &sizes, &mem, &err) != GR_OK)
	{
		rc = cli_usage_error("train", "%s", err.message);
		goto done;
	}
	if (!opts->quiet || opts->dry_run)
	{
		cli_report_protocol(out, &opts->tcfg);
		cli_report_data(out, opts->data, &d, ds);
		report_train_options(out, opts, &opts->mcfg, layout);
		report_memory(out, &mem);
	}
	if (opts->dry_run)
	{
		if (opts->json)
		{
			root = cJSON_CreateObject();
			cJSON_AddStringToObject(root, "command", "train");
			cJSON_AddStringToObject(root, "version", CLI_VERSION);
			cJSON_AddBoolToObject(root, "dry_run", true);
			cJSON_AddItemToObject(root, "data", cli_json_data(opts->data, &d, ds));
			cJSON_AddItemToObject(root, "memory", memory_json(&mem));
			if (!cli_json_write(root, opts->json))
				rc = CLI_EXIT_RUNTIME;
		}
		goto done;
	}
	if (!opts->quiet)
		cli_report_epoch_header(out, gr_layout_has_action_head(layout));
	tp.out = out;
	tp.quiet = opts->quiet;
	tp.actions = gr_layout_has_action_head(layout);
	tp.epochs = cJSON_CreateArray();
	tp.last = now_seconds();
	env.progress = on_progress;
	env.callback_user = &tp;
	if (gr_train(&env, &opts->mcfg, &opts->tcfg, ds, &model, &res, &err) != GR_OK)
	{
		rc = cli_engine_error("training failed", &err);
		goto done;
	}

	cli_report_model(out, model, &d.action_names);
	if (gr_layout_has_item_head(layout))
	{
		fprintf(out, "best epoch %d of %d (validation NDCG@10 %.4f", res.best_epoch,
				res.epochs_run, res.valid.ndcg[0]);
		if (gr_layout_has_action_head(layout) && model->cfg.n_actions > 0)
			fprintf(out, " and %s %.4f; log NDCG@10 - mean log action error",
					model->cfg.action_binary[0] ? "log loss" : "RMSE",
					model->cfg.action_binary[0] ? res.valid.logloss[0] : res.valid.rmse[0]);
		fprintf(out, ")\n");
	}
	else
		fprintf(out, "best epoch %d of %d (validation action loss; layout %s predicts no "
				"next item)\n", res.best_epoch, res.epochs_run, layout->name);
	cli_report_metrics(out, "test (seen items excluded; nothing excluded below)", &res.test,
					   model, &d.action_names);
	cli_report_throughput(out, &res);

	if (opts->save)
	{
		extra = summary_json(opts, &d, ds, model, &res, tp.epochs);
		if (gr_model_save_file(model, opts->save, extra, &err) != GR_OK)
		{
			char		what[600];

			snprintf(what, sizeof(what), "cannot save %s", opts->save);
			rc = cli_engine_error(what, &err);
			goto done;
		}
		if (!opts->quiet)
			fprintf(out, "saved %s\n", opts->save);
	}
	if (opts->json)
	{
		root = cJSON_CreateObject();
		cJSON_AddStringToObject(root, "command", "train");
		cJSON_AddStringToObject(root, "version", CLI_VERSION);
		cJSON_AddStringToObject(root, "device", env.ops->name);
		cJSON_AddNumberToObject(root, "threads", opts->threads);
		cJSON_AddItemToObject(root, "protocol", cli_json_protocol(&opts->tcfg));
		cJSON_AddItemToObject(root, "data", cli_json_data(opts->data, &d, ds));
		cJSON_AddItemToObject(root, "model", cli_json_model(model, &d.action_names));
		cJSON_AddItemToObject(root, "train", cli_json_train_config(&opts->tcfg));
		cJSON_AddItemToObject(root, "memory", memory_json(&mem));
		cJSON_AddItemToObject(root, "epochs", tp.epochs);
		tp.epochs = NULL;
		cJSON_AddItemToObject(root, "result", cli_json_result(&res));
		cJSON_AddItemToObject(root, "valid", cli_json_metrics(&res.valid, model, &d.action_names));
		cJSON_AddItemToObject(root, "test", cli_json_metrics(&res.test, model, &d.action_names));
		if (opts->save)
			cJSON_AddStringToObject(root, "saved", opts->save);
		if (!cli_json_write(root, opts->json))
			rc = CLI_EXIT_RUNTIME;
	}
done:
	cJSON_Delete(root);
	cJSON_Delete(tp.epochs);
	if (extra)
		cJSON_free(extra);
	gr_model_free(model);
	gr_dataset_free(ds);
	cli_data_free(&d);
	return rc;
}

/* Parse --split. */
static bool
parse_split(const char *s, gr_split *out)
{
	if (strcmp(s, "test") == 0)
		*out = GR_SPLIT_TEST;
	else if (strcmp(s, "valid") == 0 || strcmp(s, "validation") == 0)
		*out = GR_SPLIT_VALID;
	else
		return false;
	return true;
}

/* genrec eval: a saved model on a file's leave-one-out split. */
int
cli_cmd_eval(cli_opts *opts)
{
	gr_env		env;
	gr_error	err = {0};
	cli_model	cm;
	cli_data	d;
	gr_dataset *ds = NULL;
	gr_eval_options eopt;
	gr_metrics	mt;
	gr_split	split;
	FILE	   *out = cli_out(opts);
	int			rc;

	memset(&d, 0, sizeof(d));
	memset(&cm, 0, sizeof(cm));
	gr_eval_options_default(&eopt);
	if (opts->model == NULL)
		return cli_usage_error("eval", "--model FILE is required");
	if (opts->data == NULL)
		return cli_usage_error("eval", "--data FILE is required");
	if (!parse_split(opts->split, &split))
		return cli_usage_error("eval", "unknown split \"%s\" (test, valid)", opts->split);
	if (!cli_parse_int_list(opts->ks, eopt.ks, GR_MAX_KS, &eopt.n_ks))
		return cli_usage_error("eval", "--ks wants up to %d positive integers K,K,..., got \"%s\"",
							   GR_MAX_KS, opts->ks);
	if ((rc = cli_setup_env("eval", opts, &env)) != CLI_EXIT_OK ||
		(rc = cli_model_load(&env, opts->model, &cm)) != CLI_EXIT_OK)
		return rc;
	if ((rc = read_data("eval", opts, &d)) != CLI_EXIT_OK ||
		(rc = cli_data_fit_model(opts, &cm, &d)) != CLI_EXIT_OK)
		goto done;

	const gr_model *m = cm.model;
	gr_dataset_mapping map = {
		.item_ids = m->item_ids + 1,.n_items = m->cfg.n_items,
		.action_min = m->cfg.action_min,.action_max = m->cfg.action_max,
	};
	gr_raw_interactions raw;

	cli_data_raw(&d, &raw);
	if (gr_dataset_build(&env, &raw, &map, &ds, &err) != GR_OK)
	{
		rc = cli_engine_error(opts->data, &err);
		goto done;
	}
	size_t		unknown = 0;

	for (size_t i = 0; i < ds->n_interactions; i++)
		unknown += ds->items[i] == 0;
	if (!opts->quiet)
	{
		cli_report_protocol(out, NULL);
		cli_report_data(out, opts->data, &d, ds);
		cli_report_model(out, m, &cm.names);
		if (unknown > 0)
			fprintf(out, "note: %zu interactions are of items the model does not know\n",
					unknown);
	}
	if (gr_evaluate(m, ds, split, &eopt, &mt, &err) != GR_OK)
	{
		rc = cli_engine_error("evaluation failed", &err);
		goto done;
	}
	cli_report_metrics(out, split == GR_SPLIT_TEST ?
					   "test (seen items excluded; nothing excluded below)" :
					   "valid (seen items excluded; nothing excluded below)", &mt, m, &cm.names);
	if (opts->json)
	{
		cJSON	   *root = cJSON_CreateObject();

		cJSON_AddStringToObject(root, "command", "eval");
		cJSON_AddStringToObject(root, "version", CLI_VERSION);
		cJSON_AddStringToObject(root, "model_file", opts->model);
		cJSON_AddStringToObject(root, "split", split == GR_SPLIT_TEST ? "test" : "valid");
		cJSON_AddItemToObject(root, "protocol", cli_json_protocol(NULL));
		cJSON_AddItemToObject(root, "data", cli_json_data(opts->data, &d, ds));
		cJSON_AddNumberToObject(root, "unknown_item_interactions", (double) unknown);
		cJSON_AddItemToObject(root, "model", cli_json_model(m, &cm.names));
		cJSON_AddItemToObject(root, "metrics", cli_json_metrics(&mt, m, &cm.names));
		if (!cli_json_write(root, opts->json))
			rc = CLI_EXIT_RUNTIME;
		cJSON_Delete(root);
	}
done:
	gr_dataset_free(ds);
	cli_data_free(&d);
	cli_model_free(&env, &cm);
	return rc;
}
