/*
 * gr_json.h — cJSON inside the engine: allocated through the engine call's environment, and
 * bounded before it is parsed.
 *
 * cJSON allocates through process-global hooks (cJSON_InitHooks). The engine installs its
 * hooks once, when it is loaded (a constructor in gr_json.c), and from then on every cJSON
 * block of the process records the allocator that made it in a 16-byte prefix, so a block is
 * always freed by its own allocator, whatever runs in between. Which allocator a new block
 * gets is per thread: inside a gr_json_scope, the scope's gr_env allocator (inside
 * PostgreSQL, the memory context of the engine call, so an ERROR or cancel frees the trees
 * with the context and their bytes are accounted); outside any scope, malloc. Scopes nest
 * and restore the previous allocator when they end. Nothing inside a scope calls back into the
 * host but the allocator, which must return NULL on failure rather than longjmp (genrec's
 * memory-context allocator does), so a scope always ends.
 *
 * gr_json_parse() first scans the text without allocating — its length, the number of JSON
 * values in it, the nesting depth, and \u0000 escapes (which cJSON would silently truncate
 * a string at) — and parses only text inside the caller's limits.
 */
#ifndef GR_JSON_H
#define GR_JSON_H

#include "gr_common.h"

#include <cJSON.h>

/* Bounds a JSON text must keep to be parsed. */
typedef struct gr_json_limits
{
	size_t		max_bytes;
	size_t		max_values;		/* scalars, arrays and objects, counted recursively */
	int			max_depth;		/* nesting of arrays and objects */
} gr_json_limits;

/* The allocator in force while a scope is open; kept on the caller's stack. */
typedef struct gr_json_scope
{
	const gr_allocator *previous;
} gr_json_scope;

/* Make cJSON allocate through env's allocator on this thread until gr_json_scope_end. */
void		gr_json_scope_begin(gr_json_scope *scope, const gr_env *env);

/* Restore the allocator that was in force when the scope began. */
void		gr_json_scope_end(gr_json_scope *scope);

/*
 * Check len bytes of JSON text against limits without allocating, then parse them (inside a
 * scope on env) into *out; trailing whitespace is allowed, anything else after the value is
 * not. On failure *out is NULL and err names what (e.g. "model header") and why; the status
 * is fail_status for text outside the limits or not JSON, GR_ERR_OUT_OF_MEMORY when the
 * allocator fails. Free the tree with gr_json_delete.
 */
gr_status	gr_json_parse(const gr_env *env, const char *text, size_t len,
						  const gr_json_limits *limits, const char *what, gr_status fail_status,
						  cJSON **out, gr_error *err);

/* Free a tree from gr_json_parse (or built inside a scope); NULL is ignored. */
void		gr_json_delete(cJSON *tree);

/*
 * Scan len bytes of JSON text without allocating: *values and *depth receive the number of
 * values and the deepest nesting seen up to where the scan stopped; false when the text
 * breaks the limits or holds a \u0000 escape (*why says which). The scan is lexical: syntax
 * is left to the parser, but every count is exact for syntactically valid JSON.
 */
bool		gr_json_within_limits(const char *text, size_t len, const gr_json_limits *limits,
								  size_t *values, int *depth, const char **why);

#endif							/* GR_JSON_H */
