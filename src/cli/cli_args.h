/*
 * cli_args.h — command-line options of the genrec program: one table of options, each
 * belonging to groups, and the subcommands that accept those groups.
 *
 * Options are written "--name value" or "--name=value"; flags take no value. Numeric values
 * are range-checked here; anything wrong with the command line is a usage error (exit 2).
 */
#ifndef CLI_ARGS_H
#define CLI_ARGS_H

#include "gr_train.h"

#include <stdio.h>

/* Exit codes of the program. */
#define CLI_EXIT_OK			0
#define CLI_EXIT_RUNTIME	1
#define CLI_EXIT_USAGE		2

/* Option groups: a subcommand accepts the options of its groups. */
#define CLI_G_COMMON	0x0001u		/* --device --threads --quiet --help */
#define CLI_G_DATA		0x0002u		/* --data and how to read it */
#define CLI_G_ARCH		0x0004u		/* layout and architecture */
#define CLI_G_TRAIN		0x0008u		/* optimiser and protocol */
#define CLI_G_SAVE		0x0010u		/* --save */
#define CLI_G_JSON		0x0020u		/* --json */
#define CLI_G_MODEL		0x0040u		/* --model */
#define CLI_G_SPLIT		0x0080u		/* --split --ks */
#define CLI_G_HISTORY	0x0100u		/* --history --user */
#define CLI_G_CANDS		0x0200u		/* --candidates */
#define CLI_G_TOPK		0x0400u		/* --k --include-seen */
#define CLI_G_SYNTH		0x0800u		/* --users --items --per-user (and --seed) */
#define CLI_G_REPORT	0x1000u		/* --out */

#define CLI_MAX_OPTIONS 64

typedef struct cli_opts
{
	/* common */
	const char *device;
	int			threads;
	bool		quiet;
	bool		help;
	/* data */
	const char *data;
	const char *format;
	const char *cols;
	const char *actions;
	const char *binary;
	const char *task_weights;	/* train: one loss weight per action column, comma-separated */
	bool		header;
	bool		no_header;
	/* architecture and training (the engine's own structs, defaults from the engine) */
	const char *layout;
	const char *loss;			/* the item loss and its sampler, by name */
	const char *trunk;			/* the trunk architecture, by name */
	const char *sampler;
	const char *negatives_per;	/* "batch" | "user" */
	const char *similarity;		/* "dot" | "cosine" */
	const char *item_update;	/* gr_item_update by name */
	gr_model_config mcfg;
	gr_train_config tcfg;
	/* outputs */
	const char *save;
	const char *json;
	const char *out;
	bool		dry_run;		/* train: report the data and the memory estimate, then stop */
	/* evaluation */
	const char *model;
	const char *split;
	const char *ks;
	/* serving */
	const char *history;
	int64_t		user;
	const char *candidates;
	int			k;
	bool		include_seen;
	/* synthetic data */
	int			syn_users;
	int			syn_items;
	int			syn_per_user;

	bool		given[CLI_MAX_OPTIONS]; /* which options the command line set */
} cli_opts;

/* A subcommand: its name, groups, one-line summary and entry point. */
typedef struct cli_command
{
	const char *name;
	unsigned	groups;
	const char *usage;
	const char *summary;
	int			(*run) (cli_opts *opts);
} cli_command;

/* Fill opts with the defaults (the engine's protocol defaults for training). */
void		cli_opts_default(cli_opts *opts);

/* Parse argv[first..argc) for a command; prints the problem and returns CLI_EXIT_USAGE. */
int			cli_parse(const cli_command *cmd, int argc, char **argv, int first, cli_opts *opts);

/* True when the command line set the named option (without dashes). */
bool		cli_given(const cli_opts *opts, const char *name);

/* Print a command's help: usage, summary and every option it accepts with its default. */
void		cli_print_command_help(FILE *f, const cli_command *cmd);

/* Print a usage error with the program prefix and a hint; returns CLI_EXIT_USAGE. */
int			cli_usage_error(const char *cmd, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

/* Parse a comma-separated list of int64 values into a new malloc'd array; false on error. */
bool		cli_parse_i64_list(const char *text, int64_t **out, int *n);

/* Parse a comma-separated list of positive ints into out[max]; false on error. */
bool		cli_parse_int_list(const char *text, int *out, int max, int *n);

#endif							/* CLI_ARGS_H */
