/*
 * gr_sort.h — the engine's sort for large arrays: an in-place introsort that polls the
 * environment's interrupt callback, so a cancel is honoured within a sort of a billion rows,
 * and that allocates nothing (glibc's qsort allocates a copy of the array with malloc,
 * outside the host's memory accounting).
 *
 *     GR_DEFINE_SORT(name, type, less)
 *
 * defines static bool name(type *a, size_t n, const void *ctx, const gr_env *env), which
 * sorts a[0..n) ascending by less(ctx, &x, &y) — a strict weak order; equal elements end in no
 * particular order, so callers that need stability put the position in the key — and returns
 * false, leaving a permuted but unsorted, when env->interrupted asked it to stop. It polls
 * about once per 2^20 elements of partitioning work; quicksort with a median of three,
 * heapsort past 2 log2(n) levels (O(n log n) always), insertion sort below 17 elements, and a
 * stack depth of log2(n).
 */
#ifndef GR_SORT_H
#define GR_SORT_H

#include "gr_common.h"

/* Elements of work between polls. */
#define GR_SORT_POLL_WORK ((size_t) 1 << 20)

#define GR_DEFINE_SORT(name, type, less) \
typedef struct name##_state \
{ \
	const void *ctx; \
	const gr_env *env; \
	size_t		work; \
	bool		stopped; \
} name##_state; \
\
/* Count work; poll the environment once per GR_SORT_POLL_WORK elements. */ \
static bool \
name##_poll(name##_state *st, size_t n) \
{ \
	st->work += n; \
	if (st->work >= GR_SORT_POLL_WORK) \
	{ \
		st->work = 0; \
		if (st->env != NULL && gr_should_stop(st->env)) \
			st->stopped = true; \
	} \
	return !st->stopped; \
} \
\
/* Exchange two elements. */ \
static inline void \
name##_swap(type *x, type *y) \
{ \
	type		t = *x; \
\
	*x = *y; \
	*y = t; \
} \
\
/* Insertion sort of a short run. */ \
static void \
name##_insertion(name##_state *st, type *a, size_t n) \
{ \
	for (size_t i = 1; i < n; i++) \
	{ \
		type		v = a[i]; \
		size_t		j = i; \
\
		for (; j > 0 && less(st->ctx, &v, &a[j - 1]); j--) \
			a[j] = a[j - 1]; \
		a[j] = v; \
	} \
} \
\
/* Restore the max-heap property below root in a heap of n elements. */ \
static void \
name##_sift(name##_state *st, type *a, size_t root, size_t n) \
{ \
	for (;;) \
	{ \
		size_t		child = 2 * root + 1; \
\
		if (child >= n) \
			return; \
		if (child + 1 < n && less(st->ctx, &a[child], &a[child + 1])) \
			child++; \
		if (!less(st->ctx, &a[root], &a[child])) \
			return; \
		name##_swap(&a[root], &a[child]); \
		root = child; \
	} \
} \
\
/* Heapsort, the fallback that bounds the worst case. */ \
static bool \
name##_heapsort(name##_state *st, type *a, size_t n) \
{ \
	for (size_t i = n / 2; i-- > 0;) \
	{ \
		name##_sift(st, a, i, n); \
		if (!name##_poll(st, 1)) \
			return false; \
	} \
	for (size_t i = n; i-- > 1;) \
	{ \
		name##_swap(&a[0], &a[i]); \
		name##_sift(st, a, 0, i); \
		if (!name##_poll(st, 1)) \
			return false; \
	} \
	return true; \
} \
\
/* Introsort of a[0..n): partition, recurse into the smaller side, loop on the larger. */ \
static bool \
name##_intro(name##_state *st, type *a, size_t n, int depth) \
{ \
	while (n > 16) \
	{ \
		if (!name##_poll(st, n)) \
			return false; \
		if (depth-- == 0) \
			return name##_heapsort(st, a, n); \
\
		size_t		mid = n / 2; \
\
		if (less(st->ctx, &a[mid], &a[0])) \
			name##_swap(&a[mid], &a[0]); \
		if (less(st->ctx, &a[n - 1], &a[0])) \
			name##_swap(&a[n - 1], &a[0]); \
		if (less(st->ctx, &a[n - 1], &a[mid])) \
			name##_swap(&a[n - 1], &a[mid]); \
\
		type		pivot = a[mid]; \
		size_t		i = 0, \
					j = n - 1; \
\
		/* Hoare: a[0] <= pivot <= a[n - 1] bound both scans */ \
		for (;;) \
		{ \
			while (less(st->ctx, &a[i], &pivot)) \
				i++; \
			while (less(st->ctx, &pivot, &a[j])) \
				j--; \
			if (i >= j) \
				break; \
			name##_swap(&a[i], &a[j]); \
			i++; \
			j--; \
		} \
		/* now a[0..j] <= pivot <= a[j+1..n) with both sides non-empty */ \
		size_t		left = j + 1; \
\
		if (left < n - left) \
		{ \
			if (!name##_intro(st, a, left, depth)) \
				return false; \
			a += left; \
			n -= left; \
		} \
		else \
		{ \
			if (!name##_intro(st, a + left, n - left, depth)) \
				return false; \
			n = left; \
		} \
	} \
	name##_insertion(st, a, n); \
	return true; \
} \
\
/* Sort a[0..n) by less; false when the environment asked to stop. */ \
static bool \
name(type *a, size_t n, const void *ctx, const gr_env *env) \
{ \
	name##_state st = {.ctx = ctx,.env = env,.work = 0,.stopped = false}; \
	int			depth = 0; \
\
	for (size_t m = n; m > 1; m >>= 1) \
		depth += 2; \
	return name##_intro(&st, a, n, depth); \
}

#endif							/* GR_SORT_H */
