/*
 * cli_data.h — reading interaction files for the genrec program.
 *
 * A file holds one interaction per line: user, item, any number of action columns and a time,
 * in TSV, CSV (quoted fields allowed, no embedded newlines) or MovieLens "::" form, plain or
 * gzip (detected by zlib), or "-" for stdin. Blank lines and lines starting with '#' are
 * skipped. Ids and times are 64-bit integers; actions are doubles, an empty field (or NA,
 * NaN, null, \N) is a missing value. Any malformed line stops the read with FILE:LINE and the
 * reason.
 */
#ifndef CLI_DATA_H
#define CLI_DATA_H

#include "cli_lines.h"
#include "gr_dataset.h"

#define CLI_NAME_LEN	64

/* Names of the action columns (a struct, so that const pointers to it convert cleanly). */
typedef struct cli_names
{
	char		name[GR_MAX_ACTIONS][CLI_NAME_LEN];
} cli_names;

/* A column: a 0-based index, a header name, or none. */
typedef struct cli_colref
{
	int			index;			/* >= 0, or CLI_COL_NONE, or CLI_COL_NAMED */
	char		name[CLI_NAME_LEN];
} cli_colref;

#define CLI_COL_NONE	(-1)
#define CLI_COL_NAMED	(-2)

/* How to read a file: what the command line said (unset parts are detected). */
typedef struct cli_data_spec
{
	const char *path;
	cli_format	format;
	int			header;			/* -1 detect, 0 no header, 1 the first line is a header */
	bool		cols_given;		/* user, item, time (and actions) fixed by --cols */
	cli_colref	user, item, time;
	bool		actions_given;	/* action columns fixed by --cols or --actions */
	int			n_actions;
	cli_colref	actions[GR_MAX_ACTIONS];
	int			n_binary;
	cli_colref	binary[GR_MAX_ACTIONS];
	bool		filter_user;	/* keep only the rows of only_user */
	int64_t		only_user;
} cli_data_spec;

/* Interactions read from a file, in file order. */
typedef struct cli_data
{
	size_t		n;
	size_t		cap;
	int64_t    *user;
	int64_t    *item;
	int64_t    *time;			/* NULL without a time column: file order is time order */
	double	   *actions;		/* [n * n_actions], NaN = missing */
	int			n_actions;
	uint8_t		action_binary[GR_MAX_ACTIONS];
	cli_names	action_names;
	/* what was resolved, for reports */
	cli_format	format;
	bool		had_header;
	int			user_col, item_col, time_col;
	int			action_cols[GR_MAX_ACTIONS];
	size_t		lines;			/* lines read, header and blank lines included */
} cli_data;

/*
 * Fill a spec from the command-line strings (any may be NULL); on a syntax error write the
 * reason to msg and return false.
 */
bool		cli_data_spec_init(cli_data_spec *spec, const char *path, const char *format,
							   const char *cols, const char *actions, const char *binary,
							   bool header, bool no_header, char *msg, size_t msg_len);

/* Read a whole file; prints "genrec: FILE:LINE: reason" and returns false on any problem. */
bool		cli_data_read(const cli_data_spec *spec, cli_data *out);

/* Free what cli_data_read allocated (the struct itself is the caller's). */
void		cli_data_free(cli_data *d);

/* Replace the action columns by K all-missing ones (for a model that reads no action). */
bool		cli_data_missing_actions(cli_data *d, int K);

/* Describe the rows as the engine's raw interactions (pointers into d). */
void		cli_data_raw(const cli_data *d, gr_raw_interactions *raw);

#endif							/* CLI_DATA_H */
