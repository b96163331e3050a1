/*
 * gr_common.c — errors, the default environment and allocation helpers.
 */
#include "gr_common.h"
#include "gr_ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Record status and a formatted message in err. */
gr_status
gr_fail(gr_error *err, gr_status status, const char *fmt,...)
{
	if (err != NULL)
	{
		va_list		ap;

		err->status = status;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return status;
}

/* Name of a status code. */
const char *
gr_status_name(gr_status status)
{
	switch (status)
	{
		case GR_OK:
			return "ok";
		case GR_ERR_INVALID_ARGUMENT:
			return "invalid argument";
		case GR_ERR_OUT_OF_MEMORY:
			return "out of memory";
		case GR_ERR_CORRUPT_MODEL:
			return "corrupt model";
		case GR_ERR_EMPTY_HISTORY:
			return "empty history";
		case GR_ERR_NO_DATA:
			return "no data";
		case GR_ERR_CANCELLED:
			return "cancelled";
		case GR_ERR_DEVICE:
			return "device error";
		case GR_ERR_IO:
			return "i/o error";
		case GR_ERR_NUMERIC:
			return "numeric error";
		case GR_ERR_INTERNAL:
			return "internal error";
	}
	return "unknown status";
}

/* malloc-backed allocation for the default environment. */
static void *
default_alloc(void *user, size_t bytes)
{
	(void) user;
	return malloc(bytes);
}

/* free-backed release for the default environment. */
static void
default_free(void *user, void *ptr)
{
	(void) user;
	free(ptr);
}

/* Fill env with malloc/free, the CPU backend and no callbacks. */
void
gr_env_default(gr_env *env)
{
	memset(env, 0, sizeof(*env));
	env->allocator.alloc = default_alloc;
	env->allocator.free = default_free;
	env->ops = gr_ops_cpu();
}

/* Allocate through the environment's allocator. */
void *
gr_alloc(const gr_env *env, size_t bytes)
{
	if (bytes == 0)
		return NULL;
	return env->allocator.alloc(env->allocator.user, bytes);
}

/* Allocate zeroed memory, checking the size product for overflow. */
void *
gr_calloc(const gr_env *env, size_t count, size_t size)
{
	size_t		bytes;

	if (!gr_mul_size(count, size, &bytes) || bytes == 0)
		return NULL;
	void	   *p = gr_alloc(env, bytes);

	if (p != NULL)
		memset(p, 0, bytes);
	return p;
}

/* Free memory from gr_alloc. */
void
gr_free(const gr_env *env, void *ptr)
{
	if (ptr != NULL)
		env->allocator.free(env->allocator.user, ptr);
}

/* Overflow-checked multiplication of sizes. */
bool
gr_mul_size(size_t a, size_t b, size_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}
