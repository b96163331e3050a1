/*
 * cli_data.c — interaction files as rows: the --cols/--actions/--binary syntax, format,
 * header and column detection, and the rows themselves (see cli_data.h).
 */
#include "cli_data.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse one column reference: an index, "-" for none, or a header name. */
static bool
parse_colref(const char *s, size_t len, bool allow_none, cli_colref *c)
{
	char		tmp[CLI_NAME_LEN];
	char	   *end;

	while (len > 0 && isspace((unsigned char) *s))
		s++, len--;
	while (len > 0 && isspace((unsigned char) s[len - 1]))
		len--;
	if (len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	memset(c, 0, sizeof(*c));
	if (strcmp(tmp, "-") == 0)
	{
		c->index = CLI_COL_NONE;
		return allow_none;
	}
	errno = 0;
	long		v = strtol(tmp, &end, 10);

	if (*end == '\0')
	{
		if (errno || v < 0 || v >= CLI_MAX_FIELDS)
			return false;
		c->index = (int) v;
		return true;
	}
	c->index = CLI_COL_NAMED;
	memcpy(c->name, tmp, len + 1);
	return true;
}

/* Parse a list of column references separated by sep into refs[max]. */
static bool
parse_col_list(const char *s, size_t len, char sep, cli_colref *refs, int max, int *n)
{
	*n = 0;
	if (len == 1 && s[0] == '-')
		return true;
	while (len > 0)
	{
		const char *p = memchr(s, sep, len);
		size_t		l = p ? (size_t) (p - s) : len;

		if (*n >= max || !parse_colref(s, l, false, &refs[*n]))
			return false;
		(*n)++;
		if (!p)
			break;
		len -= l + 1;
		s = p + 1;
		if (len == 0)
			return false;
	}
	return *n > 0;
}

/* Fill a spec from the command-line strings. */
bool
cli_data_spec_init(cli_data_spec *spec, const char *path, const char *format, const char *cols,
				   const char *actions, const char *binary, bool header, bool no_header,
				   char *msg, size_t msg_len)
{
	memset(spec, 0, sizeof(*spec));
	spec->path = path;
	spec->header = header ? 1 : (no_header ? 0 : -1);
	spec->user.index = 0;
	spec->item.index = 1;
	spec->time.index = CLI_COL_NONE;
	if (header && no_header)
	{
		snprintf(msg, msg_len, "--header and --no-header contradict each other");
		return false;
	}
	if (format == NULL || strcmp(format, "auto") == 0)
		spec->format = CLI_FMT_AUTO;
	else if (strcmp(format, "tsv") == 0)
		spec->format = CLI_FMT_TSV;
	else if (strcmp(format, "csv") == 0)
		spec->format = CLI_FMT_CSV;
	else if (strcmp(format, "movielens") == 0 || strcmp(format, "ml") == 0)
		spec->format = CLI_FMT_MOVIELENS;
	else
	{
		snprintf(msg, msg_len, "unknown format \"%s\" (auto, tsv, csv, movielens)", format);
		return false;
	}
	if (cols)
	{
		const char *part[4];
		size_t		plen[4];
		int			np = 0;
		const char *s = cols;

		for (;;)
		{
			const char *c = strchr(s, ',');

			if (np == 4)
			{
				np++;			/* a fifth part: wrong */
				break;
			}
			part[np] = s;
			plen[np++] = c ? (size_t) (c - s) : strlen(s);
			if (!c)
				break;
			s = c + 1;
		}
		if (np != 4 || !parse_colref(part[0], plen[0], false, &spec->user) ||
			!parse_colref(part[1], plen[1], false, &spec->item) ||
			!parse_col_list(part[2], plen[2], '+', spec->actions, GR_MAX_ACTIONS,
							&spec->n_actions) ||
			!parse_colref(part[3], plen[3], true, &spec->time))
		{
			snprintf(msg, msg_len,
					 "--cols wants USER,ITEM,ACTIONS,TIME (indexes or header names; ACTIONS "
					 "\"-\" or A+B+...; TIME \"-\" for none), got \"%s\"", cols);
			return false;
		}
		spec->cols_given = spec->actions_given = true;
	}
	if (actions)
	{
		if (!parse_col_list(actions, strlen(actions), ',', spec->actions, GR_MAX_ACTIONS,
							&spec->n_actions))
		{
			snprintf(msg, msg_len, "--actions wants \"-\" or up to %d columns A,B,..., got \"%s\"",
					 GR_MAX_ACTIONS, actions);
			return false;
		}
		spec->actions_given = true;
	}
	if (binary && !parse_col_list(binary, strlen(binary), ',', spec->binary, GR_MAX_ACTIONS,
								  &spec->n_binary))
	{
		snprintf(msg, msg_len, "--binary wants up to %d action columns A,B,..., got \"%s\"",
				 GR_MAX_ACTIONS, binary);
		return false;
	}
	return true;
}

/* Lower-case a header name and drop a RecBole-style ":type" suffix. */
static void
header_key(const char *name, char *key, size_t len)
{
	size_t		i = 0;

	for (; name[i] && name[i] != ':' && i + 1 < len; i++)
		key[i] = (char) tolower((unsigned char) name[i]);
	key[i] = '\0';
}

/* True when a header name is one of a NULL-terminated list of names. */
static bool
name_in(const char *name, const char *const *list)
{
	char		key[CLI_NAME_LEN];

	header_key(name, key, sizeof(key));
	for (; *list; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

static const char *const user_names[] = {"user", "user_id", "userid", "uid", "users",
"reviewer_id", "reviewerid", "customer_id", "visitorid", NULL};
static const char *const item_names[] = {"item", "item_id", "itemid", "iid", "items",
"movie_id", "movieid", "product_id", "productid", "asin", NULL};
static const char *const time_names[] = {"time", "timestamp", "ts", "unix_time",
"unixreviewtime", "time_stamp", "unixtime", NULL};

/* Resolve a column reference against the header; false (printed) when not found. */
static bool
resolve_ref(const cli_reader *r, cli_colref *c, const cli_fields *hdr)
{
	if (c->index != CLI_COL_NAMED)
		return true;
	if (hdr == NULL)
	{
		cli_data_error(r->name, 0, "column \"%s\" is named, but the file has no header", c->name);
		return false;
	}
	for (int i = 0; i < hdr->n; i++)
		if (strcmp(hdr->f[i], c->name) == 0)
		{
			c->index = i;
			return true;
		}
	cli_data_error(r->name, 0, "no column named \"%s\" in the header", c->name);
	return false;
}

/* Choose the columns that the command line left open, from the header or the field count. */
static void
default_columns(cli_data_spec *s, const cli_fields *hdr, int n_fields)
{
	if (!s->cols_given && hdr != NULL)
	{
		int			u = -1, i = -1, t = -1;

		for (int c = 0; c < hdr->n; c++)
		{
			if (u < 0 && name_in(hdr->f[c], user_names))
				u = c;
			else if (i < 0 && name_in(hdr->f[c], item_names))
				i = c;
			else if (t < 0 && name_in(hdr->f[c], time_names))
				t = c;
		}
		if (u >= 0 && i >= 0)
		{
			s->user.index = u;
			s->item.index = i;
			s->time.index = t >= 0 ? t : CLI_COL_NONE;
			if (!s->actions_given)
			{
				s->n_actions = 0;
				for (int c = 0; c < hdr->n && s->n_actions < GR_MAX_ACTIONS; c++)
					if (c != u && c != i && c != t)
						s->actions[s->n_actions++].index = c;
			}
			return;
		}
	}
	if (s->cols_given)
		return;
	/* positional: u,i | u,i,t | u,i,a,t (ML-100k u.data, ML-1M ratings.dat) */
	s->user.index = 0;
	s->item.index = 1;
	s->time.index = n_fields == 3 ? 2 : (n_fields >= 4 ? 3 : CLI_COL_NONE);
	if (!s->actions_given)
	{
		s->n_actions = n_fields >= 4 ? 1 : 0;
		s->actions[0].index = 2;
	}
}

/* Detect the format from the first data line. */
static cli_format
detect_format(const char *line)
{
	if (strstr(line, "::"))
		return CLI_FMT_MOVIELENS;
	if (strchr(line, '\t'))
		return CLI_FMT_TSV;
	if (strchr(line, ','))
		return CLI_FMT_CSV;
	return CLI_FMT_AUTO;
}

/* Resolve every column, check them, and record names and kinds in out. */
static bool
setup_columns(const cli_reader *r, cli_data_spec *s, const cli_fields *hdr, int n_fields,
			  cli_data *out)
{
	default_columns(s, hdr, n_fields);
	if (!resolve_ref(r, &s->user, hdr) || !resolve_ref(r, &s->item, hdr) ||
		!resolve_ref(r, &s->time, hdr))
		return false;
	for (int k = 0; k < s->n_actions; k++)
		if (!resolve_ref(r, &s->actions[k], hdr))
			return false;
	for (int b = 0; b < s->n_binary; b++)
		if (!resolve_ref(r, &s->binary[b], hdr))
			return false;
	out->user_col = s->user.index;
	out->item_col = s->item.index;
	out->time_col = s->time.index;
	out->n_actions = s->n_actions;
	if (out->user_col == out->item_col)
	{
		cli_data_error(r->name, 0, "user and item are the same column (%d)", out->user_col);
		return false;
	}
	for (int k = 0; k < s->n_actions; k++)
	{
		int			c = s->actions[k].index;

		out->action_cols[k] = c;
		if (c == out->user_col || c == out->item_col || c == out->time_col)
		{
			cli_data_error(r->name, 0, "action column %d is also the user, item or time column", c);
			return false;
		}
		if (hdr && c < hdr->n)
			snprintf(out->action_names.name[k], CLI_NAME_LEN, "%s", hdr->f[c]);
		else
			snprintf(out->action_names.name[k], CLI_NAME_LEN, "col%d", c);
	}
	for (int b = 0; b < s->n_binary; b++)
	{
		int			k = 0;

		while (k < s->n_actions && s->actions[k].index != s->binary[b].index)
			k++;
		if (k == s->n_actions)
		{
			cli_data_error(r->name, 0, "--binary column %d is not an action column",
					   s->binary[b].index);
			return false;
		}
		out->action_binary[k] = 1;
	}
	return true;
}

/* Make room for one more row. */
static bool
grow(cli_data *d)
{
	if (d->n < d->cap)
		return true;
	size_t		cap = d->cap ? d->cap * 2 : 4096;
	size_t		K = (size_t) d->n_actions;
	int64_t    *u = realloc(d->user, cap * sizeof(int64_t));

	if (u)
		d->user = u;
	int64_t    *i = u ? realloc(d->item, cap * sizeof(int64_t)) : NULL;

	if (i)
		d->item = i;
	int64_t    *t = (i && d->time_col >= 0) ? realloc(d->time, cap * sizeof(int64_t)) : NULL;

	if (t)
		d->time = t;
	double	   *a = (i && K > 0 && (t || d->time_col < 0)) ?
		realloc(d->actions, cap * K * sizeof(double)) : NULL;

	if (a)
		d->actions = a;
	if (!u || !i || (d->time_col >= 0 && !t) || (K > 0 && !a))
		return false;
	d->cap = cap;
	return true;
}

/* Parse one split data line into the next row (or skip it for another user). */
static bool
add_row(const cli_reader *r, const cli_data_spec *s, const cli_fields *fl, int need, cli_data *d)
{
	int64_t		user, item, time = 0;
	double		act[GR_MAX_ACTIONS];
	const char *bad;

	if (fl->n < need)
	{
		cli_data_error(r->name, r->lineno, "expected at least %d %s fields, found %d", need,
				   cli_format_name(d->format), fl->n);
		return false;
	}
	if (!cli_parse_i64(fl->f[d->user_col], &user))
	{
		bad = "user id";
		goto fail_field;
	}
	if (!cli_parse_i64(fl->f[d->item_col], &item))
	{
		bad = "item id";
		goto fail_field;
	}
	if (d->time_col >= 0 && !cli_parse_time(fl->f[d->time_col], &time))
	{
		bad = "time";
		goto fail_field;
	}
	for (int k = 0; k < d->n_actions; k++)
	{
		if (!cli_parse_action_value(fl->f[d->action_cols[k]], &act[k]))
		{
			cli_data_error(r->name, r->lineno, "action column %d: \"%s\" is not a number",
					   d->action_cols[k], fl->f[d->action_cols[k]]);
			return false;
		}
		if (d->action_binary[k] && !isnan(act[k]) && act[k] != 0.0 && act[k] != 1.0)
		{
			cli_data_error(r->name, r->lineno, "binary action column %d: \"%s\" is not 0 or 1",
					   d->action_cols[k], fl->f[d->action_cols[k]]);
			return false;
		}
	}
	if (s->filter_user && user != s->only_user)
		return true;
	if (!grow(d))
	{
		cli_data_error(r->name, r->lineno, "out of memory after %zu interactions", d->n);
		return false;
	}
	d->user[d->n] = user;
	d->item[d->n] = item;
	if (d->time)
		d->time[d->n] = time;
	for (int k = 0; k < d->n_actions; k++)
		d->actions[d->n * d->n_actions + k] = act[k];
	d->n++;
	return true;

fail_field:
	{
		int			col = bad[0] == 'u' ? d->user_col : (bad[0] == 'i' ? d->item_col : d->time_col);

		cli_data_error(r->name, r->lineno, "%s in column %d: \"%.64s\" is not a 64-bit integer%s",
				   bad, col, fl->f[col],
				   r->lineno == 1 ? " (a header? use --header)" : "");
	}
	return false;
}

/* Read the whole file described by spec into out. */
bool
cli_data_read(const cli_data_spec *spec_in, cli_data *out)
{
	cli_data_spec s = *spec_in;
	cli_reader	r;
	cli_fields *hdr = NULL, *fl = NULL;
	char	   *line, *hdr_line = NULL;
	const char *msg;
	bool		ok = false;
	int			rc;

	memset(out, 0, sizeof(*out));
	if (!cli_reader_open(&r, s.path))
		return false;
	fl = malloc(sizeof(cli_fields));
	hdr = malloc(sizeof(cli_fields));
	if (!fl || !hdr)
	{
		cli_data_error(r.name, 0, "out of memory");
		goto done;
	}
	if ((rc = cli_reader_next_data(&r, &line)) <= 0)
	{
		if (rc == 0)
			cli_data_error(r.name, 0, "no data lines");
		goto done;
	}
	out->format = s.format != CLI_FMT_AUTO ? s.format : detect_format(line);
	if (out->format == CLI_FMT_AUTO)
	{
		cli_data_error(r.name, r.lineno, "cannot detect the format (no tab, comma or \"::\"); "
				   "use --format");
		goto done;
	}
	if (!cli_split_line(line, out->format, fl, &msg))
	{
		cli_data_error(r.name, r.lineno, "%s", msg);
		goto done;
	}

	/* header: given, or detected from a non-integer user or item field */
	bool		is_header = s.header == 1;

	if (s.header == -1)
	{
		int64_t		v;
		int			uc = s.user.index >= 0 ? s.user.index : 0;
		int			ic = s.item.index >= 0 ? s.item.index : 1;

		is_header = s.user.index == CLI_COL_NAMED || s.item.index == CLI_COL_NAMED ||
			(uc < fl->n && !cli_parse_i64(fl->f[uc], &v)) || (ic < fl->n && !cli_parse_i64(fl->f[ic], &v));
	}
	if (is_header)
	{
		size_t		lineno = r.lineno;

		/* keep the header's text: the buffer moves on the next read */
		hdr_line = malloc(CLI_MAX_LINE + 1);
		if (hdr_line == NULL)
		{
			cli_data_error(r.name, 0, "out of memory");
			goto done;
		}
		hdr->n = fl->n;
		size_t		off = 0;

		for (int i = 0; i < fl->n; i++)
		{
			size_t		l = strlen(fl->f[i]);

			memcpy(hdr_line + off, fl->f[i], l + 1);
			hdr->f[i] = hdr_line + off;
			off += l + 1;
		}
		out->had_header = true;
		if ((rc = cli_reader_next_data(&r, &line)) <= 0)
		{
			if (rc == 0)
				cli_data_error(r.name, lineno, "a header but no data lines");
			goto done;
		}
		if (!cli_split_line(line, out->format, fl, &msg))
		{
			cli_data_error(r.name, r.lineno, "%s", msg);
			goto done;
		}
	}
	if (!setup_columns(&r, &s, is_header ? hdr : NULL, is_header ? hdr->n : fl->n, out))
		goto done;

	int			need = GR_MAX(out->user_col, out->item_col);

	need = GR_MAX(need, out->time_col);
	for (int k = 0; k < out->n_actions; k++)
		need = GR_MAX(need, out->action_cols[k]);
	need++;
	for (;;)
	{
		if (!add_row(&r, &s, fl, need, out))
			goto done;
		if ((rc = cli_reader_next_data(&r, &line)) < 0)
			goto done;
		if (rc == 0)
			break;
		if (!cli_split_line(line, out->format, fl, &msg))
		{
			cli_data_error(r.name, r.lineno, "%s", msg);
			goto done;
		}
	}
	out->lines = r.lineno;
	ok = true;
done:
	cli_reader_close(&r);
	free(fl);
	free(hdr);
	free(hdr_line);
	if (!ok)
		cli_data_free(out);
	return ok;
}

/* Free a dataset's arrays. */
void
cli_data_free(cli_data *d)
{
	free(d->user);
	free(d->item);
	free(d->time);
	free(d->actions);
	d->user = d->item = d->time = NULL;
	d->actions = NULL;
	d->n = d->cap = 0;
}

/* Replace the action columns by K columns of missing values. */
bool
cli_data_missing_actions(cli_data *d, int K)
{
	double	   *a = NULL;

	if (K > 0)
	{
		a = malloc(sizeof(double) * (d->n > 0 ? d->n : 1) * (size_t) K);
		if (a == NULL)
			return false;
		for (size_t i = 0; i < d->n * (size_t) K; i++)
			a[i] = NAN;
	}
	free(d->actions);
	d->actions = a;
	d->n_actions = K;
	for (int k = 0; k < K; k++)
	{
		d->action_cols[k] = -1;
		d->action_binary[k] = 0;
		snprintf(d->action_names.name[k], CLI_NAME_LEN, "action%d", k);
	}
	return true;
}

/* Describe the rows as the engine's raw interactions. */
void
cli_data_raw(const cli_data *d, gr_raw_interactions *raw)
{
	memset(raw, 0, sizeof(*raw));
	raw->n = d->n;
	raw->user = d->user;
	raw->item = d->item;
	raw->time = d->time;
	raw->actions = d->n_actions > 0 ? d->actions : NULL;
	raw->n_actions = d->n_actions;
	raw->action_binary = d->action_binary;
}
