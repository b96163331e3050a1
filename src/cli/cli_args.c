/*
 * cli_args.c — the option table, the parser and the per-command help (see cli_args.h).
 */
#include "cli_args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum opt_kind
{
	OPT_FLAG,
	OPT_STR,
	OPT_INT,
	OPT_FLOAT,
	OPT_I64,
	OPT_U64
} opt_kind;

typedef struct cli_option
{
	const char *name;			/* without the leading dashes */
	const char *metavar;		/* NULL for flags */
	opt_kind	kind;
	size_t		offset;			/* of the value inside cli_opts */
	double		lo, hi;			/* inclusive range for OPT_INT and OPT_FLOAT */
	unsigned	groups;
	const char *help;
} cli_option;

#define O(field) offsetof(cli_opts, field)

static const cli_option options[] = {
	/* data */
	{"data", "FILE", OPT_STR, O(data), 0, 0, CLI_G_DATA,
	"interaction file: plain or gzip, \"-\" for stdin"},
	{"format", "FMT", OPT_STR, O(format), 0, 0, CLI_G_DATA,
	"auto | tsv | csv | movielens (\"::\" separated, as ML-1M ratings.dat)"},
	{"cols", "U,I,A,T", OPT_STR, O(cols), 0, 0, CLI_G_DATA,
	"0-based columns (or header names) of user, item, action(s), time; A is \"-\" for no "
	"action or several joined by \"+\" (2+3); T is \"-\" for input order"},
	{"actions", "LIST", OPT_STR, O(actions), 0, 0, CLI_G_DATA,
	"action columns, comma-separated (overrides the A of --cols); \"-\" for none"},
	{"binary", "LIST", OPT_STR, O(binary), 0, 0, CLI_G_DATA,
	"action columns that are binary 0/1 (BCE); the others are continuous (MSE)"},
	{"header", NULL, OPT_FLAG, O(header), 0, 0, CLI_G_DATA,
	"the first line is a header (default: detected when its user/item are not integers)"},
	{"no-header", NULL, OPT_FLAG, O(no_header), 0, 0, CLI_G_DATA,
	"never treat the first line as a header"},
	/* model file */
	{"model", "FILE", OPT_STR, O(model), 0, 0, CLI_G_MODEL, "model file (safetensors)"},
	/* architecture */
	{"layout", "NAME", OPT_STR, O(layout), 0, 0, CLI_G_ARCH,
	"item | int | lac | pc | attnlfa | attnmvp | l2 | l3 | l4 | l5 | l6 | l7 | l9 (l2 ... l9: the\n"
	"ablations of LAYOUTS.md 4.7; aliases l0 = item, l8 = lac, l10 = pc; default: lac with\n"
	"action columns, item without)"},
	{"d", "N", OPT_INT, O(mcfg.d_model), 2, 8192, CLI_G_ARCH, "model width"},
	{"layers", "N", OPT_INT, O(mcfg.n_layer), 1, 64, CLI_G_ARCH, "transformer blocks"},
	{"heads", "N", OPT_INT, O(mcfg.n_head), 1, 128, CLI_G_ARCH, "attention heads (divide --d)"},
	{"max-len", "N", OPT_INT, O(mcfg.max_len), 2, 8192, CLI_G_ARCH,
	"interactions per training window"},
	{"buckets", "N", OPT_INT, O(mcfg.n_buckets), 1, 1024, CLI_G_ARCH,
	"input buckets per action column"},
	{"head-hidden", "N", OPT_INT, O(mcfg.head_hidden), 1, 65536, CLI_G_ARCH,
	"hidden width of the action head"},
	/* training */
	{"epochs", "N", OPT_INT, O(tcfg.epochs), 1, 100000, CLI_G_TRAIN, "maximum epochs"},
	{"batch", "N", OPT_INT, O(tcfg.batch_size), 1, 65536, CLI_G_TRAIN, "users per step"},
	{"lr", "X", OPT_FLOAT, O(tcfg.lr), 1e-12, 10, CLI_G_TRAIN, "AdamW learning rate"},
	{"dropout", "X", OPT_FLOAT, O(tcfg.dropout), 0, 0.99, CLI_G_TRAIN, "dropout rate"},
	{"patience", "N", OPT_INT, O(tcfg.patience), 1, 100000, CLI_G_TRAIN,
	"epochs without a better validation score (log NDCG@10 - mean log action error) "
	"before stopping"},
	{"warmup", "N", OPT_INT, O(tcfg.warmup_steps), 0, INT_MAX, CLI_G_TRAIN,
	"linear learning-rate warm-up steps"},
	{"weight-decay", "X", OPT_FLOAT, O(tcfg.weight_decay), 0, 10, CLI_G_TRAIN,
	"AdamW weight decay"},
	{"loss", "NAME", OPT_STR, O(loss), 0, 0, CLI_G_TRAIN,
	"item loss: full (softmax over the catalogue) | sampled (shared negatives, log-Q "
	"corrected) | infonce (the batch's other targets as negatives)"},
	{"negatives", "N", OPT_INT, O(mcfg.negatives), 0, 65536, CLI_G_TRAIN,
	"negatives per step of --loss sampled; infonce: in-batch negatives drawn (0 = every row, "
	"its default)"},
	{"trunk", "NAME", OPT_STR, O(trunk), 0, 0, CLI_G_TRAIN,
	"trunk architecture: gpt2 (pre-LN GPT-2 blocks, the default) | hstu (HSTU blocks: SiLU "
	"attention with relative position and time biases)"},
	{"sampler", "NAME", OPT_STR, O(sampler), 0, 0, CLI_G_TRAIN,
	"negatives of --loss sampled: uniform | popularity"},
	{"negatives-per", "NAME", OPT_STR, O(negatives_per), 0, 0, CLI_G_TRAIN,
	"who shares a draw of --loss sampled's negatives: user (each sequence of the step its own "
	"S, the default) | batch (one set of S for the whole step)"},
	{"temperature", "X", OPT_FLOAT, O(mcfg.temperature), 1e-3, 1e3, CLI_G_TRAIN,
	"sampled and infonce logits are divided by it"},
	{"similarity", "NAME", OPT_STR, O(similarity), 0, 0, CLI_G_TRAIN,
	"item logits of --loss sampled or infonce: dot (the default) | cosine (unit item rows and a "
	"normalised user state, divided by --temperature)"},
	{"emb-scale", "X", OPT_FLOAT, O(mcfg.emb_scale), 1e-4, 1e4, CLI_G_TRAIN,
	"the item embedding's factor in the input, x0 = X E[item] + P[pos] (default 1)"},
	{"item-update", "NAME", OPT_STR, O(item_update), 0, 0, CLI_G_TRAIN,
	"AdamW on the item table: auto (lazy for sampled/infonce, dense for full) | dense | lazy "
	"(only the rows a step touches)"},
	{"w-item", "X", OPT_FLOAT, O(tcfg.w_item), 0, 1e6, CLI_G_TRAIN, "next-item loss weight"},
	{"w-action", "X", OPT_FLOAT, O(tcfg.w_action), 0, 1e6, CLI_G_TRAIN,
	"action loss weight (every column)"},
	{"task-weights", "LIST", OPT_STR, O(task_weights), 0, 0, CLI_G_TRAIN,
	"one loss weight per action column, in column order (times --w-action)"},
	{"seed", "N", OPT_U64, O(tcfg.seed), 0, 0, CLI_G_TRAIN | CLI_G_SYNTH,
	"seed of init, shuffling, dropout (synth: of the generated data)"},
	{"eval-users", "N", OPT_INT, O(tcfg.eval_max_users), 0, INT_MAX, CLI_G_TRAIN,
	"validation users per epoch (0 = all; the final test always uses all)"},
	{"dry-run", NULL, OPT_FLAG, O(dry_run), 0, 0, CLI_G_TRAIN,
	"read the data, print the training memory estimate and stop"},
	/* outputs */
	{"save", "FILE", OPT_STR, O(save), 0, 0, CLI_G_SAVE,
	"write the best model (safetensors)"},
	{"json", "FILE", OPT_STR, O(json), 0, 0, CLI_G_JSON,
	"also write the results as JSON (\"-\" = stdout; the table then goes to stderr)"},
	{"out", "FILE", OPT_STR, O(out), 0, 0, CLI_G_REPORT,
	"write the HTML report there (default: stdout)"},
	/* evaluation */
	{"split", "NAME", OPT_STR, O(split), 0, 0, CLI_G_SPLIT,
	"test (last interaction) | valid (second to last)"},
	{"ks", "LIST", OPT_STR, O(ks), 0, 0, CLI_G_SPLIT, "cut-offs K of HR@K and NDCG@K"},
	/* serving */
	{"history", "LIST", OPT_STR, O(history), 0, 0, CLI_G_HISTORY,
	"history, oldest first: ITEM[:ACTION[:ACTION...]],... (empty action = missing)"},
	{"user", "UID", OPT_I64, O(user), 0, 0, CLI_G_HISTORY,
	"take the history from --data: all of the user's interactions in time order"},
	{"candidates", "LIST", OPT_STR, O(candidates), 0, 0, CLI_G_CANDS,
	"items to score: ID,ID,..."},
	{"k", "N", OPT_INT, O(k), 1, INT_MAX, CLI_G_TOPK,
	"how many items to recommend (at most the catalogue)"},
	{"include-seen", NULL, OPT_FLAG, O(include_seen), 0, 0, CLI_G_TOPK,
	"allow items of the history in the result"},
	/* synthetic data */
	{"users", "N", OPT_INT, O(syn_users), 1, 10000000, CLI_G_SYNTH, "users 1..N"},
	{"items", "N", OPT_INT, O(syn_items), 1, 100000000, CLI_G_SYNTH, "items 1..N"},
	{"per-user", "N", OPT_INT, O(syn_per_user), 1, 100000, CLI_G_SYNTH,
	"mean interactions per user (each user has N - N/2 .. N + N/2)"},
	/* common */
	{"device", "NAME", OPT_STR, O(device), 0, 0, CLI_G_COMMON,
	"cpu | cuda | auto (auto: CUDA when built and usable, else the CPU)"},
	{"threads", "N", OPT_INT, O(threads), 0, 4096, CLI_G_COMMON,
	"CPU threads for BLAS and OpenMP (0 = library default)"},
	{"quiet", NULL, OPT_FLAG, O(quiet), 0, 0, CLI_G_COMMON,
	"no progress lines or notes, only results and errors"},
	{"help", NULL, OPT_FLAG, O(help), 0, 0, CLI_G_COMMON, "show this help"},
};

#define N_OPTIONS ((int) (sizeof(options) / sizeof(options[0])))

_Static_assert(sizeof(options) / sizeof(options[0]) <= CLI_MAX_OPTIONS,
			   "raise CLI_MAX_OPTIONS");

/* Fill opts with defaults; architecture and training defaults come from the engine. */
void
cli_opts_default(cli_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->device = "cpu";
	opts->format = "auto";
	opts->split = "test";
	opts->ks = "10,50";
	opts->k = 10;
	opts->syn_per_user = 50;
	gr_model_config_default(&opts->mcfg, GR_LAYOUT_ITEM, 1, 0);
	gr_train_config_default(&opts->tcfg);
}

/* Print a usage error and return the usage exit code. */
int
cli_usage_error(const char *cmd, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "genrec%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'genrec %s%s--help' for more information.\n",
			cmd ? cmd : "", cmd ? " " : "");
	return CLI_EXIT_USAGE;
}

/* Find an option by name among those a command accepts. */
static int
find_option(const cli_command *cmd, const char *name, size_t len)
{
	for (int i = 0; i < N_OPTIONS; i++)
		if ((options[i].groups & cmd->groups) && strlen(options[i].name) == len &&
			strncmp(options[i].name, name, len) == 0)
			return i;
	return -1;
}

/* Store one option value into opts, checking its syntax and range. */
static int
set_option(const cli_command *cmd, const cli_option *o, const char *value, cli_opts *opts)
{
	char	   *p = (char *) opts + o->offset;
	char	   *end;

	errno = 0;
	switch (o->kind)
	{
		case OPT_FLAG:
			*(bool *) p = true;
			return CLI_EXIT_OK;
		case OPT_STR:
			if (*value == '\0')
				return cli_usage_error(cmd->name, "option --%s needs a non-empty value", o->name);
			*(const char **) p = value;
			return CLI_EXIT_OK;
		case OPT_INT:
			{
				long long	v = strtoll(value, &end, 10);

				if (errno || end == value || *end != '\0' || v < o->lo || v > o->hi)
					return cli_usage_error(cmd->name, "option --%s wants an integer in %.0f..%.0f, got \"%s\"",
										   o->name, o->lo, o->hi, value);
				*(int *) p = (int) v;
				return CLI_EXIT_OK;
			}
		case OPT_FLOAT:
			{
				double		v = strtod(value, &end);

				if (errno || end == value || *end != '\0' || !isfinite(v) || v < o->lo ||
					v > o->hi)
					return cli_usage_error(cmd->name, "option --%s wants a number in [%g, %g], got \"%s\"",
										   o->name, o->lo, o->hi, value);
				*(float *) p = (float) v;
				return CLI_EXIT_OK;
			}
		case OPT_I64:
			{
				long long	v = strtoll(value, &end, 10);

				if (errno || end == value || *end != '\0')
					return cli_usage_error(cmd->name, "option --%s wants a 64-bit integer, got \"%s\"",
										   o->name, value);
				*(int64_t *) p = (int64_t) v;
				return CLI_EXIT_OK;
			}
		case OPT_U64:
			{
				unsigned long long v = strtoull(value, &end, 10);

				if (errno || end == value || *end != '\0' || value[0] == '-')
					return cli_usage_error(cmd->name, "option --%s wants a non-negative integer, got \"%s\"",
										   o->name, value);
				*(uint64_t *) p = (uint64_t) v;
				return CLI_EXIT_OK;
			}
	}
	return CLI_EXIT_USAGE;
}

/* Parse a command's options; any unknown, repeated or malformed option is a usage error. */
int
cli_parse(const cli_command *cmd, int argc, char **argv, int first, cli_opts *opts)
{
	for (int a = first; a < argc; a++)
	{
		const char *arg = argv[a];

		if (strcmp(arg, "-h") == 0)
			arg = "--help";
		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
			return cli_usage_error(cmd->name, "unexpected argument \"%s\"", arg);
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t		len = eq ? (size_t) (eq - name) : strlen(name);
		int			i = find_option(cmd, name, len);

		if (i < 0)
			return cli_usage_error(cmd->name, "unknown option --%.*s", (int) len, name);
		const cli_option *o = &options[i];
		const char *value = NULL;

		if (o->kind == OPT_FLAG)
		{
			if (eq)
				return cli_usage_error(cmd->name, "option --%s takes no value", o->name);
		}
		else if (eq)
			value = eq + 1;
		else if (a + 1 < argc)
			value = argv[++a];
		else
			return cli_usage_error(cmd->name, "option --%s needs a value (%s)", o->name,
								   o->metavar);
		if (opts->given[i] && o->kind != OPT_FLAG)
			return cli_usage_error(cmd->name, "option --%s given twice", o->name);
		opts->given[i] = true;
		int			rc = set_option(cmd, o, value, opts);

		if (rc != CLI_EXIT_OK)
			return rc;
	}
	return CLI_EXIT_OK;
}

/* Report whether the command line set an option. */
bool
cli_given(const cli_opts *opts, const char *name)
{
	for (int i = 0; i < N_OPTIONS; i++)
		if (strcmp(options[i].name, name) == 0)
			return opts->given[i];
	return false;
}

/* Format an option's default value from a defaults struct, or "" when it has none. */
static void
format_default(const cli_option *o, const cli_opts *def, char *buf, size_t len)
{
	const char *p = (const char *) def + o->offset;

	buf[0] = '\0';
	switch (o->kind)
	{
		case OPT_FLAG:
		case OPT_I64:
			break;
		case OPT_STR:
			if (*(const char *const *) p)
				snprintf(buf, len, "%s", *(const char *const *) p);
			break;
		case OPT_INT:
			snprintf(buf, len, "%d", *(const int *) p);
			break;
		case OPT_FLOAT:
			snprintf(buf, len, "%g", (double) *(const float *) p);
			break;
		case OPT_U64:
			snprintf(buf, len, "%llu", (unsigned long long) *(const uint64_t *) p);
			break;
	}
}

/* Print "  --opt METAVAR   help [default]" with the help wrapped at 96 columns. */
static void
print_wrapped(FILE *f, const char *head, const char *help, const char *dflt)
{
	char		text[512];
	const char *p = text;
	int			col;

	snprintf(text, sizeof(text), dflt[0] ? "%s [%s]" : "%s", help, dflt);
	col = fprintf(f, "  %-22s", head);
	if (col > 25)
	{
		fputc('\n', f);
		col = fprintf(f, "%25s", "");
	}
	while (*p)
	{
		const char *w = p;

		while (*w && *w != ' ')
			w++;
		int			len = (int) (w - p);

		if (col + 1 + len > 96 && col > 25)
		{
			fputc('\n', f);
			col = fprintf(f, "%24s", "");
		}
		col += fprintf(f, " %.*s", len, p);
		p = *w ? w + 1 : w;
	}
	fputc('\n', f);
}

/* Print a command's usage line, summary and options, grouped as in the table. */
void
cli_print_command_help(FILE *f, const cli_command *cmd)
{
	cli_opts	def;
	char		dflt[64];

	cli_opts_default(&def);
	fprintf(f, "usage: genrec %s %s\n\n%s\n\noptions:\n", cmd->name, cmd->usage, cmd->summary);
	for (int i = 0; i < N_OPTIONS; i++)
	{
		const cli_option *o = &options[i];
		char		head[64];

		if (!(o->groups & cmd->groups))
			continue;
		snprintf(head, sizeof(head), "--%s%s%s", o->name, o->metavar ? " " : "",
				 o->metavar ? o->metavar : "");
		format_default(o, &def, dflt, sizeof(dflt));
		if (strcmp(o->name, "layout") == 0 || strcmp(o->name, "users") == 0 ||
			strcmp(o->name, "items") == 0)
			dflt[0] = '\0';
		print_wrapped(f, head, o->help, dflt);
	}
}

/* Parse "a,b,c" into a malloc'd int64 array. */
bool
cli_parse_i64_list(const char *text, int64_t **out, int *n)
{
	int			cap = 1;
	const char *p;
	int64_t    *v;

	*out = NULL;
	*n = 0;
	for (p = text; *p; p++)
		cap += (*p == ',');
	v = malloc(sizeof(int64_t) * (size_t) cap);
	if (v == NULL)
		return false;
	p = text;
	for (;;)
	{
		char	   *end;

		errno = 0;
		long long	x = strtoll(p, &end, 10);

		if (errno || end == p || (*end != ',' && *end != '\0'))
		{
			free(v);
			return false;
		}
		v[(*n)++] = (int64_t) x;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	*out = v;
	return true;
}

/* Parse "a,b,c" into at most max positive ints. */
bool
cli_parse_int_list(const char *text, int *out, int max, int *n)
{
	const char *p = text;

	*n = 0;
	for (;;)
	{
		char	   *end;

		errno = 0;
		long		x = strtol(p, &end, 10);

		if (errno || end == p || x < 1 || x > INT_MAX || (*end != ',' && *end != '\0') ||
			*n >= max)
			return false;
		out[(*n)++] = (int) x;
		if (*end == '\0')
			return true;
		p = end + 1;
	}
}
