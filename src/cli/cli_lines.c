/*
 * cli_lines.c — line reading, field splitting and number parsing (see cli_lines.h).
 */
#include "cli_lines.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define READ_CHUNK (1 << 20)

/* Print "genrec: NAME:LINE: message" on stderr. */
void
cli_data_error(const char *name, size_t line, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "genrec: %s:", name);
	if (line > 0)
		fprintf(stderr, "%zu:", line);
	fputc(' ', stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Name of a format. */
const char *
cli_format_name(cli_format f)
{
	switch (f)
	{
		case CLI_FMT_TSV:
			return "tsv";
		case CLI_FMT_CSV:
			return "csv";
		case CLI_FMT_MOVIELENS:
			return "movielens";
		default:
			return "auto";
	}
}

/* Open a file (or stdin for "-") for line reading. */
bool
cli_reader_open(cli_reader *r, const char *path)
{
	memset(r, 0, sizeof(*r));
	r->name = strcmp(path, "-") == 0 ? "<stdin>" : path;
	if (strcmp(path, "-") == 0)
	{
		int			fd = dup(STDIN_FILENO);

		r->gz = fd >= 0 ? gzdopen(fd, "rb") : NULL;
		if (r->gz == NULL && fd >= 0)
			close(fd);
	}
	else
		r->gz = gzopen(path, "rb");
	if (r->gz == NULL)
	{
		cli_data_error(r->name, 0, "cannot open: %s", errno ? strerror(errno) : "out of memory");
		return false;
	}
	gzbuffer(r->gz, 1 << 17);
	r->cap = READ_CHUNK + CLI_MAX_LINE + 2;
	r->buf = malloc(r->cap);
	if (r->buf == NULL)
	{
		gzclose(r->gz);
		r->gz = NULL;
		cli_data_error(r->name, 0, "out of memory for a read buffer");
		return false;
	}
	return true;
}

/* Close a reader. */
void
cli_reader_close(cli_reader *r)
{
	if (r->gz)
		gzclose(r->gz);
	free(r->buf);
	r->gz = NULL;
	r->buf = NULL;
}

/* Refill the buffer; false on a read error (printed). */
static bool
reader_fill(cli_reader *r)
{
	int			errnum;

	memmove(r->buf, r->buf + r->start, r->end - r->start);
	r->end -= r->start;
	r->start = 0;
	int			got = gzread(r->gz, r->buf + r->end, (unsigned) (r->cap - 1 - r->end));

	if (got < 0)
	{
		const char *m = gzerror(r->gz, &errnum);

		cli_data_error(r->name, 0, "read error: %s", errnum == Z_ERRNO ? strerror(errno) : m);
		return false;
	}
	if (got == 0)
	{
		const char *m = gzerror(r->gz, &errnum);

		if (errnum != Z_OK && errnum != Z_STREAM_END)
		{
			cli_data_error(r->name, 0, "read error: %s", errnum == Z_ERRNO ? strerror(errno) : m);
			return false;
		}
		r->eof = true;
	}
	r->end += (size_t) got;
	return true;
}

/* Next line without its newline (and '\r'); 1 = a line, 0 = end of file, -1 = error. */
static int
reader_next(cli_reader *r, char **line)
{
	size_t		len;

	for (;;)
	{
		char	   *nl = memchr(r->buf + r->start, '\n', r->end - r->start);

		if (nl)
		{
			*line = r->buf + r->start;
			len = (size_t) (nl - *line);
			r->start += len + 1;
			break;
		}
		if (r->end - r->start > CLI_MAX_LINE)
		{
			cli_data_error(r->name, r->lineno + 1, "line longer than %d bytes", CLI_MAX_LINE);
			return -1;
		}
		if (r->eof)
		{
			if (r->start == r->end)
				return 0;
			*line = r->buf + r->start;
			len = r->end - r->start;
			r->start = r->end;
			break;
		}
		if (!reader_fill(r))
			return -1;
	}
	r->lineno++;
	(*line)[len] = '\0';
	if (len > CLI_MAX_LINE)
	{
		cli_data_error(r->name, r->lineno, "line longer than %d bytes", CLI_MAX_LINE);
		return -1;
	}
	if (memchr(*line, '\0', len) != NULL)
	{
		cli_data_error(r->name, r->lineno, "NUL byte in the line (binary file?)");
		return -1;
	}
	if (len > 0 && (*line)[len - 1] == '\r')
		(*line)[len - 1] = '\0';
	return 1;
}

/* Next line that is neither blank nor a '#' comment. */
int
cli_reader_next_data(cli_reader *r, char **line)
{
	int			rc;

	while ((rc = reader_next(r, line)) == 1)
	{
		const char *p = *line;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '\0' && *p != '#')
			return 1;
	}
	return rc;
}

/* Trim spaces around a field in place. */
static char *
trim(char *s, char *end)
{
	while (s < end && *s == ' ')
		s++;
	while (end > s && end[-1] == ' ')
		end--;
	*end = '\0';
	return s;
}

/* Split a line in place into fields; false (with msg) on a CSV quoting error or too many. */
bool
cli_split_line(char *line, cli_format fmt, cli_fields *out, const char **msg)
{
	char	   *p = line;

	out->n = 0;
	for (;;)
	{
		char	   *start = p, *end;

		if (out->n >= CLI_MAX_FIELDS)
		{
			*msg = "too many fields";
			return false;
		}
		if (fmt == CLI_FMT_CSV)
		{
			while (*p == ' ')
				p++;
			if (*p == '"')
			{
				char	   *w = p;

				start = p++;
				for (;;)
				{
					if (*p == '\0')
					{
						*msg = "unterminated quoted field";
						return false;
					}
					if (*p == '"' && p[1] == '"')
						p += 2, *w++ = '"';
					else if (*p == '"')
						break;
					else
						*w++ = *p++;
				}
				p++;
				while (*p == ' ')
					p++;
				if (*p != ',' && *p != '\0')
				{
					*msg = "text after a closing quote";
					return false;
				}
				end = w;
				out->f[out->n++] = trim(start, end);
				if (*p == '\0')
					return true;
				p++;
				continue;
			}
			start = p;
			while (*p && *p != ',')
				p++;
			end = p;
		}
		else if (fmt == CLI_FMT_MOVIELENS)
		{
			char	   *sep = strstr(p, "::");

			end = sep ? sep : p + strlen(p);
			p = sep ? sep + 1 : end;
		}
		else
		{
			while (*p && *p != '\t')
				p++;
			end = p;
		}
		bool		last = (*p == '\0');

		out->f[out->n++] = trim(start, end);
		if (last)
			return true;
		p++;
	}
}

/* Parse a whole field as a 64-bit integer. */
bool
cli_parse_i64(const char *s, int64_t *out)
{
	char	   *end;

	if (*s == '\0')
		return false;
	errno = 0;
	long long	v = strtoll(s, &end, 10);

	if (errno || *end != '\0')
		return false;
	*out = (int64_t) v;
	return true;
}

/* Parse a time: an integer, or an integral number such as 874724710.0. */
bool
cli_parse_time(const char *s, int64_t *out)
{
	char	   *end;

	if (cli_parse_i64(s, out))
		return true;
	if (*s == '\0')
		return false;
	errno = 0;
	double		v = strtod(s, &end);

	if (errno || *end != '\0' || !isfinite(v) || v != floor(v) || fabs(v) > 9.0e18)
		return false;
	*out = (int64_t) v;
	return true;
}

/* Parse an action value; an empty field or NA/NaN/null/\N is missing (NaN). */
bool
cli_parse_action_value(const char *s, double *out)
{
	char	   *end;

	if (*s == '\0' || strcasecmp(s, "nan") == 0 || strcmp(s, "NA") == 0 ||
		strcasecmp(s, "null") == 0 || strcmp(s, "\\N") == 0)
	{
		*out = NAN;
		return true;
	}
	errno = 0;
	double		v = strtod(s, &end);

	if (errno || *end != '\0' || !isfinite(v))
		return false;
	*out = v;
	return true;
}
