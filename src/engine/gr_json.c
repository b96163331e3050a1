/*
 * gr_json.c — cJSON allocation through the engine's environments, and bounded parsing
 * (gr_json.h).
 *
 * Every block the hooks hand to cJSON is preceded by a 16-byte tag: the free function and
 * user pointer of the allocator that made it (NULL for malloc). The tag keeps the payload
 * 16-byte aligned relative to the allocator's block.
 */
#include "gr_json.h"

#include <stdlib.h>
#include <string.h>

/* The prefix of every cJSON block: who frees it. */
typedef struct json_tag
{
	void		(*free) (void *user, void *ptr);
	void	   *user;
} json_tag;

_Static_assert(sizeof(json_tag) == 16, "json_tag keeps 16-byte alignment");

/* The allocator of the innermost open scope on this thread, or NULL (malloc). */
static _Thread_local const gr_allocator *current_allocator = NULL;

/* Set when an allocation made for cJSON fails, so a failed parse can say why. */
static _Thread_local bool allocation_failed = false;

/* cJSON's malloc hook: allocate through the current allocator and tag the block. */
static void *
json_malloc(size_t bytes)
{
	const gr_allocator *a = current_allocator;
	size_t		total;
	json_tag   *tag;

	if (__builtin_add_overflow(bytes, sizeof(json_tag), &total))
		tag = NULL;
	else if (a != NULL)
		tag = a->alloc(a->user, total);
	else
		tag = malloc(total);
	if (tag == NULL)
	{
		allocation_failed = true;
		return NULL;
	}
	tag->free = a ? a->free : NULL;
	tag->user = a ? a->user : NULL;
	return tag + 1;
}

/* cJSON's free hook: give the block back to the allocator that made it. */
static void
json_free(void *ptr)
{
	json_tag   *tag;

	if (ptr == NULL)
		return;
	tag = (json_tag *) ptr - 1;
	if (tag->free != NULL)
		tag->free(tag->user, tag);
	else
		free(tag);
}

/* Install the hooks when the engine is loaded, before any cJSON block exists. */
__attribute__((constructor)) static void
install_json_hooks(void)
{
	cJSON_Hooks hooks = {.malloc_fn = json_malloc,.free_fn = json_free};

	cJSON_InitHooks(&hooks);
}

/* Route this thread's cJSON allocations to env until the scope ends. */
void
gr_json_scope_begin(gr_json_scope *scope, const gr_env *env)
{
	scope->previous = current_allocator;
	current_allocator = &env->allocator;
}

/* Restore the allocator in force before the scope. */
void
gr_json_scope_end(gr_json_scope *scope)
{
	current_allocator = scope->previous;
}

/* Whether c is JSON whitespace. */
static bool
json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Scan a string starting after its opening quote; returns the index after the closing one. */
static size_t
scan_string(const char *text, size_t len, size_t i, const char **why)
{
	while (i < len)
	{
		unsigned char c = (unsigned char) text[i];

		if (c == '"')
			return i + 1;
		if (c < 0x20)
		{
			*why = "a control character inside a string";
			return 0;
		}
		if (c == '\\')
		{
			if (i + 1 < len && text[i + 1] == 'u' && i + 5 < len &&
				memcmp(text + i + 2, "0000", 4) == 0)
			{
				*why = "a \\u0000 escape";
				return 0;
			}
			i += 2;
			continue;
		}
		i++;
	}
	return len;					/* unterminated: the parser rejects it */
}

/* Count values and depth of JSON text without allocating; false when over the limits. */
bool
gr_json_within_limits(const char *text, size_t len, const gr_json_limits *limits,
					  size_t *values, int *depth, const char **why)
{
	size_t		i = 0,
				n = 0;
	int			level = 0,
				deepest = 0;

	*why = NULL;
	if (len > limits->max_bytes)
		*why = "too many bytes";
	while (*why == NULL && i < len)
	{
		char		c = text[i];

		if (json_space(c) || c == ',' || c == ':')
			i++;
		else if (c == '"')
		{
			size_t		next = scan_string(text, len, i + 1, why);
			size_t		j = next;

			if (*why != NULL)
				break;
			while (j < len && json_space(text[j]))
				j++;
			if (j >= len || text[j] != ':')
				n++;			/* a value, not an object key */
			i = next;
		}
		else if (c == '[' || c == '{')
		{
			n++;
			level++;
			deepest = GR_MAX(deepest, level);
			i++;
		}
		else if (c == ']' || c == '}')
		{
			level = level > 0 ? level - 1 : 0;
			i++;
		}
		else if (c == '\0')
			*why = "a NUL byte";
		else
		{
			/* a number or literal (anything else fails to parse): one value */
			n++;
			while (i < len && !json_space(text[i]) && text[i] != ',' && text[i] != ':' &&
				   text[i] != ']' && text[i] != '}' && text[i] != '[' && text[i] != '{' &&
				   text[i] != '"' && text[i] != '\0')
				i++;
		}
		if (*why == NULL && n > limits->max_values)
			*why = "too many values";
		if (*why == NULL && deepest > limits->max_depth)
			*why = "too deep a nesting";
	}
	*values = n;
	*depth = deepest;
	return *why == NULL;
}

/* Bound, then parse JSON text into a tree allocated through env. */
gr_status
gr_json_parse(const gr_env *env, const char *text, size_t len, const gr_json_limits *limits,
			  const char *what, gr_status fail_status, cJSON **out, gr_error *err)
{
	gr_json_scope scope;
	const char *end = NULL;
	const char *why;
	size_t		values;
	int			depth;
	cJSON	   *tree;

	*out = NULL;
	if (text == NULL || len == 0)
		return gr_fail(err, fail_status, "%s is empty", what);
	if (!gr_json_within_limits(text, len, limits, &values, &depth, &why))
		return gr_fail(err, fail_status,
					   "%s has %s (%zu bytes, at most %zu; %zu values, at most %zu; depth %d, "
					   "at most %d)", what, why, len, limits->max_bytes, values,
					   limits->max_values, depth, limits->max_depth);
	gr_json_scope_begin(&scope, env);
	allocation_failed = false;
	tree = cJSON_ParseWithLengthOpts(text, len, &end, false);
	gr_json_scope_end(&scope);
	if (tree == NULL && allocation_failed)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory parsing %s (%zu bytes)",
					   what, len);
	if (tree == NULL)
		return gr_fail(err, fail_status, "%s is not valid JSON (near byte %zu)", what,
					   end && end >= text && end <= text + len ? (size_t) (end - text) : len);
	for (const char *c = end; c < text + len; c++)
		if (!json_space(*c))
		{
			cJSON_Delete(tree);
			return gr_fail(err, fail_status, "%s has trailing characters at byte %zu", what,
						   (size_t) (c - text));
		}
	*out = tree;
	return GR_OK;
}

/* Free a tree; each block goes back to the allocator that made it. */
void
gr_json_delete(cJSON *tree)
{
	cJSON_Delete(tree);
}
