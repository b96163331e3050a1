/*
 * cli_lines.h — the lowest layer of reading interaction files: a buffered line reader over
 * zlib (plain and gzip files alike, or stdin), field splitting for TSV, CSV (quoted fields,
 * no embedded newlines) and MovieLens "::", and strict parsing of ids, times and actions.
 */
#ifndef CLI_LINES_H
#define CLI_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#define CLI_MAX_LINE	65536		/* longest accepted line in bytes */
#define CLI_MAX_FIELDS	1024

typedef enum cli_format
{
	CLI_FMT_AUTO = 0,
	CLI_FMT_TSV,
	CLI_FMT_CSV,
	CLI_FMT_MOVIELENS
} cli_format;

/* A file being read line by line. */
typedef struct cli_reader
{
	gzFile		gz;
	const char *name;			/* for messages: the path, or <stdin> */
	char	   *buf;
	size_t		cap;
	size_t		start;			/* unread bytes are buf[start, end) */
	size_t		end;
	bool		eof;
	size_t		lineno;			/* 1-based number of the last line returned */
} cli_reader;

/* The fields of one split line (pointers into the line). */
typedef struct cli_fields
{
	int			n;
	char	   *f[CLI_MAX_FIELDS];
} cli_fields;

/* Print "genrec: NAME:LINE: message" on stderr (no line number when line is 0). */
void		cli_data_error(const char *name, size_t line, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* Name of a format. */
const char *cli_format_name(cli_format f);

/* Open a path ("-" = stdin) for reading; prints the reason and returns false on failure. */
bool		cli_reader_open(cli_reader *r, const char *path);

/* Close a reader. */
void		cli_reader_close(cli_reader *r);

/*
 * Next line that is neither blank nor a '#' comment, NUL-terminated without its newline;
 * 1 = a line, 0 = end of file, -1 = error (printed: too long, NUL byte, read error).
 * The line stays valid until the next call.
 */
int			cli_reader_next_data(cli_reader *r, char **line);

/* Split a line in place into fields; false with *msg on a quoting error or too many fields. */
bool		cli_split_line(char *line, cli_format fmt, cli_fields *out, const char **msg);

/* Parse a whole field as a 64-bit integer. */
bool		cli_parse_i64(const char *s, int64_t *out);

/* Parse a time: an integer, or an integral number such as 874724710.0. */
bool		cli_parse_time(const char *s, int64_t *out);

/* Parse one action value; empty, NA, NaN, null or \N is missing (NaN). */
bool		cli_parse_action_value(const char *s, double *out);

#endif							/* CLI_LINES_H */
