/*
 * fuzz_common.h — what the libFuzzer targets share: REQUIRE (abort on a broken invariant, so
 * libFuzzer keeps the input) and an engine environment whose allocator counts live blocks,
 * so a target can require that every input leaves none behind.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include "gr_common.h"

#include <stdio.h>
#include <stdlib.h>

#define REQUIRE(cond) do { if (!(cond)) { fprintf(stderr, "violated: %s\n", #cond); abort(); } } while (0)

/* malloc that counts live blocks. */
static void *
fuzz_counted_alloc(void *user, size_t bytes)
{
	void	   *p = malloc(bytes);

	if (p != NULL)
		(*(long *) user)++;
	return p;
}

/* free that counts live blocks. */
static void
fuzz_counted_free(void *user, void *ptr)
{
	(*(long *) user)--;
	free(ptr);
}

/* A default environment whose allocations are counted in *live. */
static inline void
fuzz_counting_env(gr_env *env, long *live)
{
	gr_env_default(env);
	env->allocator.alloc = fuzz_counted_alloc;
	env->allocator.free = fuzz_counted_free;
	env->allocator.user = live;
}

#endif							/* FUZZ_COMMON_H */
