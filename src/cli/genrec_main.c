/*
 * genrec_main.c — the genrec command-line program: subcommand dispatch, global help, the
 * environment (device, threads, Ctrl-C) and the helpers every subcommand shares.
 *
 * Exit codes: 0 success, 1 runtime error (the engine's or a file's message on stderr),
 * 2 usage error.
 */
#include "cli.h"
#include "gr_device.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const cli_command commands[] = {
	{"train", CLI_G_COMMON | CLI_G_DATA | CLI_G_ARCH | CLI_G_TRAIN | CLI_G_SAVE | CLI_G_JSON,
		"--data FILE [options]",
		"Read interactions, train a model with the leave-one-out protocol (early stopping on\n"
		"validation log NDCG@10 - mean log action error over the heads the layout has, best\n"
		"weights restored), print one line per epoch, then the test metrics at the best epoch\n"
		"and the throughput. --save writes the model.",
	cli_cmd_train},
	{"eval", CLI_G_COMMON | CLI_G_MODEL | CLI_G_DATA | CLI_G_SPLIT | CLI_G_JSON,
		"--model FILE --data FILE [options]",
		"Evaluate a saved model on a data file, built in the model's item and action space\n"
		"(items the model does not know can never be ranked).",
	cli_cmd_eval},
	{"score", CLI_G_COMMON | CLI_G_MODEL | CLI_G_HISTORY | CLI_G_DATA | CLI_G_CANDS | CLI_G_JSON,
		"--model FILE (--history LIST | --user UID --data FILE) --candidates LIST",
		"Score candidates for one history in one pass. Prints one line per candidate:\n"
		"item, known (1 if the model knows it), retrieval logit, predicted action(s) on the\n"
		"raw scale (probability for binary columns); nan where there is no prediction.",
	cli_cmd_score},
	{"recommend", CLI_G_COMMON | CLI_G_MODEL | CLI_G_HISTORY | CLI_G_DATA | CLI_G_TOPK | CLI_G_JSON,
		"--model FILE (--history LIST | --user UID --data FILE) [--k N]",
		"Top-k items over the whole catalogue for one history, best first (items of the\n"
		"history excluded unless --include-seen). Prints rank, item and retrieval logit.",
	cli_cmd_recommend},
	{"info", CLI_G_COMMON | CLI_G_MODEL | CLI_G_JSON,
		"--model FILE",
		"Print a model file's layout, configuration, parameter count, tensors and the\n"
		"training summary stored with it.",
	cli_cmd_info},
	{"report", CLI_G_COMMON | CLI_G_MODEL | CLI_G_REPORT,
		"--model FILE[,FILE...] [--out report.html]",
		"Write an HTML page (inline SVG, no script) of the models: training curves per epoch,\n"
		"test metrics beside the popularity and bias baselines, and for several files bars per\n"
		"layout with error bars (mean +- sd over the files of a layout, e.g. seeds).",
	cli_cmd_report},
	{"synth", CLI_G_COMMON | CLI_G_SYNTH,
		"--users N --items M [--per-user K] [--seed S]",
		"Print the deterministic synthetic interaction log of the SQL function\n"
		"genrec_synthetic(N, M, K, S) as TSV (user, item, action, Unix time; no header), so\n"
		"the program has a data set that needs no download: genrec synth ... | genrec train\n"
		"--data -. Same arguments, same rows, on every machine.",
	cli_cmd_synth},
};

#define N_COMMANDS ((int) (sizeof(commands) / sizeof(commands[0])))

static volatile sig_atomic_t interrupted = 0;

/* Remember a Ctrl-C (or SIGTERM); a second one ends the process at once. */
static void
on_signal(int sig)
{
	if (interrupted)
	{
		signal(sig, SIG_DFL);
		raise(sig);
	}
	interrupted = 1;
}

/* Tell the engine whether the user asked to stop. */
static bool
poll_interrupted(void *user)
{
	(void) user;
	return interrupted != 0;
}

/* Print the program's overview: commands, data syntax and exit codes. */
static void
print_main_help(FILE *f)
{
	fprintf(f,
			"genrec " CLI_VERSION " — generative recommendation engine, command line\n\n"
			"usage: genrec COMMAND [options]      genrec COMMAND --help\n\n"
			"commands:\n");
	for (int i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  genrec %s %s\n", commands[i].name, commands[i].usage);
	fprintf(f,
			"\n"
			"data files (--data): one interaction per line, TSV, CSV or MovieLens \"::\", plain or\n"
			"gzip, \"-\" for stdin; blank and '#' lines skipped. Without --cols, columns are\n"
			"user,item | user,item,time | user,item,action,time for 2 | 3 | 4+ fields, or taken\n"
			"from a header by name (user/user_id, item/item_id/movie_id, time/timestamp; every\n"
			"other column is an action). A header is detected when the first line's user or item\n"
			"is not an integer. Examples:\n"
			"  ML-100k u.data:           --data u.data                     (= --cols 0,1,2,3)\n"
			"  ML-1M 5-core TSV:         --data ml1m_5core_implicit.tsv.gz (= --header --cols 0,1,-,2)\n"
			"  ML-1M ratings.dat:        --data ratings.dat.gz             (--format movielens)\n"
			"  two actions, one binary:  --cols 0,1,2+3,4 --binary 3\n"
			"\n"
			"protocol: leave-one-out (last = test, second to last = validation), full-catalogue\n"
			"ranking, seen items excluded (numbers with nothing excluded alongside), early\n"
			"stopping on validation log NDCG@10 - mean log action error (RMSE or log loss)\n"
			"over the heads the layout has, test at the best epoch.\n"
			"\n"
			"exit codes: 0 success, 1 runtime error, 2 usage error.\n");
}

/* Open the backend named by --device (the CUDA module is looked up next to the program);
 * an auto fallback to the CPU is noted on stderr. */
static int
select_device(const char *cmd, const char *name, bool quiet, gr_env *env)
{
	static gr_device device;	/* lives until the program exits */
	char		dir[GR_DEVICE_PATH_LEN], notice[GR_DEVICE_NOTICE_LEN];
	gr_error	err = {0};

	if (strcmp(name, "cpu") != 0 && strcmp(name, "cuda") != 0 && strcmp(name, "auto") != 0)
		return cli_usage_error(cmd, "unknown device \"%s\" (cpu, cuda, auto)", name);
	if (!gr_device_exe_dir(dir, sizeof(dir)))
		dir[0] = '\0';
	if (gr_device_open(name, NULL, NULL, dir[0] ? dir : NULL, &device, notice, &err) != GR_OK)
	{
		fprintf(stderr, "genrec %s: --device %s: %s\n", cmd, name, err.message);
		return CLI_EXIT_RUNTIME;
	}
	if (notice[0] != '\0' && !quiet)
		fprintf(stderr, "genrec %s: note: --device %s: %s\n", cmd, name, notice);
	env->ops = device.ops;
	return CLI_EXIT_OK;
}

/* Set up the environment: allocator, device, threads and the interrupt callback. */
int
cli_setup_env(const char *cmd, const cli_opts *opts, gr_env *env)
{
	struct sigaction sa;
	int			rc;

	gr_env_default(env);
	if ((rc = select_device(cmd, opts->device, opts->quiet, env)) != CLI_EXIT_OK)
		return rc;
	if (opts->threads > 0)
	{
		env->n_threads = opts->threads;
		if (env->ops->device == GR_DEVICE_CPU)
			gr_ops_cpu_set_threads(opts->threads);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	env->interrupted = poll_interrupted;
	return CLI_EXIT_OK;
}

/* Print an engine failure and return the runtime exit code. */
int
cli_engine_error(const char *what, const gr_error *err)
{
	if (err->status == GR_ERR_CANCELLED)
		fprintf(stderr, "genrec: %s: interrupted\n", what);
	else
		fprintf(stderr, "genrec: %s: %s (%s)\n", what,
				err->message[0] ? err->message : "failed", gr_status_name(err->status));
	return CLI_EXIT_RUNTIME;
}

/* Load a model and the action names its training summary recorded. */
int
cli_model_load(const gr_env *env, const char *path, cli_model *out)
{
	gr_error	err = {0};

	memset(out, 0, sizeof(*out));
	if (gr_model_load_file(env, path, &out->model, &out->extra, &err) != GR_OK)
	{
		char		what[600];

		snprintf(what, sizeof(what), "cannot load model %s", path);
		return cli_engine_error(what, &err);
	}
	for (int k = 0; k < GR_MAX_ACTIONS; k++)
		snprintf(out->names.name[k], CLI_NAME_LEN, "action%d", k);
	if (out->extra)
	{
		cJSON	   *root = cJSON_Parse(out->extra);
		const cJSON *names = cJSON_GetObjectItemCaseSensitive(root, "action_names");
		int			k = 0;
		const cJSON *n;

		cJSON_ArrayForEach(n, names)
		{
			if (k < GR_MAX_ACTIONS && cJSON_IsString(n))
				snprintf(out->names.name[k], CLI_NAME_LEN, "%s", n->valuestring);
			k++;
		}
		cJSON_Delete(root);
	}
	return CLI_EXIT_OK;
}

/* Free a loaded model and its summary. */
void
cli_model_free(const gr_env *env, cli_model *cm)
{
	gr_model_free(cm->model);
	gr_free(env, cm->extra);
	cm->model = NULL;
	cm->extra = NULL;
}

/* Build a data spec from the options, or print why not. */
int
cli_data_spec_from_opts(const char *cmd, const cli_opts *opts, cli_data_spec *spec)
{
	char		msg[256];

	if (!cli_data_spec_init(spec, opts->data, opts->format, opts->cols, opts->actions,
							opts->binary, opts->header, opts->no_header, msg, sizeof(msg)))
		return cli_usage_error(cmd, "%s", msg);
	return CLI_EXIT_OK;
}

/* Fit read data to a model's action columns. */
int
cli_data_fit_model(const cli_opts *opts, const cli_model *cm, cli_data *d)
{
	const gr_model_config *c = &cm->model->cfg;

	if (d->n_actions != c->n_actions && !gr_layout_needs_actions(cm->model->layout))
	{
		/* the layout reads no action: the columns only have to exist, as missing values */
		if (!opts->quiet)
			fprintf(stderr, "genrec: note: layout %s reads no action; using %d missing action "
					"column(s) instead of the data's %d\n", cm->model->layout->name,
					c->n_actions, d->n_actions);
		if (!cli_data_missing_actions(d, c->n_actions))
		{
			fprintf(stderr, "genrec: out of memory\n");
			return CLI_EXIT_RUNTIME;
		}
	}
	if (d->n_actions != c->n_actions)
	{
		fprintf(stderr, "genrec: the model has %d action column(s), the data %d; choose them "
				"with --actions or --cols\n", c->n_actions, d->n_actions);
		return CLI_EXIT_RUNTIME;
	}
	for (int k = 0; k < c->n_actions; k++)
		d->action_binary[k] = c->action_binary[k];
	return CLI_EXIT_OK;
}

/* Where the human-readable results go. */
FILE *
cli_out(const cli_opts *opts)
{
	return (opts->json && strcmp(opts->json, "-") == 0) ? stderr : stdout;
}

/* Find a subcommand by name. */
static const cli_command *
find_command(const char *name)
{
	for (int i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Dispatch to a subcommand. */
int
main(int argc, char **argv)
{
	const cli_command *cmd;
	cli_opts   *opts;
	int			rc;

	setvbuf(stdout, NULL, _IOLBF, 0);	/* progress lines and notes in order in logs */
	if (argc < 2)
	{
		print_main_help(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
	{
		print_main_help(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0)
	{
		printf("genrec " CLI_VERSION "\n");
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "help") == 0)
	{
		if (argc < 3)
		{
			print_main_help(stdout);
			return CLI_EXIT_OK;
		}
		if ((cmd = find_command(argv[2])) == NULL)
			return cli_usage_error(NULL, "unknown command \"%s\"", argv[2]);
		cli_print_command_help(stdout, cmd);
		return CLI_EXIT_OK;
	}
	if ((cmd = find_command(argv[1])) == NULL)
		return cli_usage_error(NULL, "unknown command \"%s\"", argv[1]);
	opts = malloc(sizeof(cli_opts));
	if (opts == NULL)
	{
		fprintf(stderr, "genrec: out of memory\n");
		return CLI_EXIT_RUNTIME;
	}
	cli_opts_default(opts);
	rc = cli_parse(cmd, argc, argv, 2, opts);
	if (rc == CLI_EXIT_OK && opts->help)
		cli_print_command_help(stdout, cmd);
	else if (rc == CLI_EXIT_OK)
		rc = cmd->run(opts);
	free(opts);
	return rc;
}
