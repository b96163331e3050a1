/*
 * cli.h — what the genrec program's files share: the subcommands, the environment and
 * device set-up, and helpers to load models and read data the way every command does.
 */
#ifndef CLI_H
#define CLI_H

#include "cli_args.h"
#include "cli_data.h"
#include "cli_report.h"
#include "gr_io.h"
#include "gr_serve.h"

#define CLI_VERSION "0.2.0"

/* A loaded model with what the command line needs beside it. */
typedef struct cli_model
{
	gr_model   *model;
	char	   *extra;			/* "genrec.extra" JSON or NULL (engine allocation) */
	cli_names	names;			/* action column names from extra, or "action<k>" */
} cli_model;

/* Subcommands; each returns an exit code. */
int			cli_cmd_train(cli_opts *opts);
int			cli_cmd_eval(cli_opts *opts);
int			cli_cmd_score(cli_opts *opts);
int			cli_cmd_recommend(cli_opts *opts);
int			cli_cmd_info(cli_opts *opts);
int			cli_cmd_report(cli_opts *opts);
int			cli_cmd_synth(cli_opts *opts);

/* Set up env for a command: allocator, device, threads, Ctrl-C handling. */
int			cli_setup_env(const char *cmd, const cli_opts *opts, gr_env *env);

/* Print an engine failure as "genrec: what: message" and return CLI_EXIT_RUNTIME. */
int			cli_engine_error(const char *what, const gr_error *err);

/* Load a model file and the action names stored beside it; returns an exit code. */
int			cli_model_load(const gr_env *env, const char *path, cli_model *out);

/* Free a loaded model. */
void		cli_model_free(const gr_env *env, cli_model *cm);

/* Build a data spec from the command line; prints a usage error and returns non-zero. */
int			cli_data_spec_from_opts(const char *cmd, const cli_opts *opts, cli_data_spec *spec);

/*
 * Make read data fit a model's action columns: for a layout that reads no action, replace
 * them by the model's count of missing columns; take the model's binary kinds; fail
 * (printed) on a count mismatch.
 */
int			cli_data_fit_model(const cli_opts *opts, const cli_model *cm, cli_data *d);

/* Where human-readable results go: stderr when --json writes to stdout. */
FILE	   *cli_out(const cli_opts *opts);

#endif							/* CLI_H */
