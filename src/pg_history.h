/*
 * pg_history.h — the genrec_history type: one user's interactions as a compact varlena.
 *
 * On disk (and in memory after detoasting), a history of n interactions is
 *
 *     GenrecHistory header                     16 bytes: length word, n, flags, zero pad
 *     int64   items[n]                         always
 *     int64   times[n]                         if GH_HAS_TIMES (TimestampTz; 0 where NULL)
 *     float4  actions[n]                       if GH_HAS_ACTIONS (NaN = NULL)
 *     bits8   time_nulls[(n + 7) / 8]          if GH_HAS_TIME_NULLS (bit i set = time i NULL)
 *
 * The type is aligned on double, so the int64 arrays are aligned. Every constructor goes
 * through genrec_history_build(), which sets the flags minimally (an array of all-NULL values
 * is not stored), so one logical history has exactly one representation. Actions are finite
 * reals; NaN is never a value, it marks a missing action (the engine's convention too).
 *
 * Glue code that consumes histories (training, scoring) includes this header.
 */
#ifndef PG_HISTORY_H
#define PG_HISTORY_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"

#include "gr_history_codec.h"

/* The most interactions one history may hold. */
#define GENREC_HISTORY_MAX_LEN	GR_HISTORY_MAX_LEN

/* The flags are those of the binary form (the engine's parser of both forms knows them). */
#define GH_HAS_ACTIONS		GR_HIST_HAS_ACTIONS
#define GH_HAS_TIMES		GR_HIST_HAS_TIMES
#define GH_HAS_TIME_NULLS	GR_HIST_HAS_TIME_NULLS
#define GH_KNOWN_FLAGS		GR_HIST_KNOWN_FLAGS

typedef struct GenrecHistory
{
	int32		vl_len_;		/* varlena header (do not touch directly) */
	int32		n;				/* number of interactions */
	uint32		flags;			/* GH_* */
	uint32		pad;			/* zero; keeps the arrays 8-byte aligned */
	/* arrays follow, see above */
} GenrecHistory;

#define DatumGetGenrecHistoryP(d)	((GenrecHistory *) PG_DETOAST_DATUM(d))
#define PG_GETARG_GENREC_HISTORY_P(n)	DatumGetGenrecHistoryP(PG_GETARG_DATUM(n))
#define PG_RETURN_GENREC_HISTORY_P(h)	PG_RETURN_POINTER(h)

/* Item ids of a history. */
static inline int64 *
gh_items(const GenrecHistory *h)
{
	return (int64 *) ((char *) h + sizeof(GenrecHistory));
}

/* Times of a history, or NULL when every time is NULL. */
static inline int64 *
gh_times(const GenrecHistory *h)
{
	return (h->flags & GH_HAS_TIMES) ? gh_items(h) + h->n : NULL;
}

/* Actions of a history (NaN = NULL), or NULL when every action is NULL. */
static inline float4 *
gh_actions(const GenrecHistory *h)
{
	int64	   *end = gh_items(h) + h->n;

	if (!(h->flags & GH_HAS_ACTIONS))
		return NULL;
	return (float4 *) ((h->flags & GH_HAS_TIMES) ? end + h->n : end);
}

/* Time null bitmap of a history, or NULL when no time is NULL or every time is. */
static inline bits8 *
gh_time_nulls(const GenrecHistory *h)
{
	char	   *p = (char *) (gh_items(h) + h->n);

	if (!(h->flags & GH_HAS_TIME_NULLS))
		return NULL;
	if (h->flags & GH_HAS_TIMES)
		p += sizeof(int64) * h->n;
	if (h->flags & GH_HAS_ACTIONS)
		p += sizeof(float4) * h->n;
	return (bits8 *) p;
}

/* Whether time i of a history is NULL. */
static inline bool
gh_time_isnull(const GenrecHistory *h, int i)
{
	bits8	   *nulls = gh_time_nulls(h);

	if (!(h->flags & GH_HAS_TIMES))
		return true;
	return nulls != NULL && (nulls[i >> 3] & (1 << (i & 7))) != 0;
}

/*
 * Build a history from parallel arrays of n interactions. actions (NaN = NULL), times and
 * time_isnull may each be NULL (all actions NULL, all times NULL, no time NULL). Values are
 * trusted: callers validate them first.
 */
extern GenrecHistory *genrec_history_build(int n, const int64 *items, const float4 *actions,
										   const int64 *times, const bool *time_isnull);

#endif							/* PG_HISTORY_H */
