/*
 * pg_synth.c — genrec_synthetic(): the engine's deterministic synthetic interaction log
 * (src/engine/gr_synth.h describes the generative model) as a set-returning function.
 *
 * Rows come out ordered by user, then time (materialize mode: a tuplestore, which spills to
 * disk past work_mem; interrupts are checked per user and every 1,024 rows). Times are the
 * engine's Unix seconds as absolute instants, so the output does not depend on the session.
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

/* engine headers are C11; PostgreSQL builds with -Wdeclaration-after-statement */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#include "gr_synth.h"
#pragma GCC diagnostic pop
#include "pg_history.h"

StaticAssertDecl(GR_SYNTH_MAX_PER_USER == GENREC_HISTORY_MAX_LEN,
				 "a synthetic user must fit in one genrec_history");

/* 2000-01-01 00:00:00 UTC, the PostgreSQL epoch, in Unix seconds */
#define SYNTH_PG_EPOCH_UNIX ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

PG_FUNCTION_INFO_V1(genrec_synthetic);

/* Allocate the generator's memory in the context given as user. */
static void *
synth_alloc(void *user, size_t bytes)
{
	return MemoryContextAllocExtended((MemoryContext) user, bytes,
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

/* Free the generator's memory. */
static void
synth_free(void *user, void *ptr)
{
	pfree(ptr);
}

/* Return the synthetic log for (users, items, interactions_per_user, seed) as a table. */
Datum
genrec_synthetic(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext usercxt;
	gr_synth	m;
	gr_env		env;
	gr_error	err = {0};

	if (gr_synth_init(&m, PG_GETARG_INT32(0), PG_GETARG_INT32(1), PG_GETARG_INT32(2),
					  (uint64) PG_GETARG_INT64(3), &err) != GR_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("genrec_synthetic: %s", err.message)));

	InitMaterializedSRF(fcinfo, 0);
	usercxt = AllocSetContextCreate(CurrentMemoryContext, "genrec_synthetic user",
									ALLOCSET_DEFAULT_SIZES);
	gr_env_default(&env);
	env.allocator.alloc = synth_alloc;
	env.allocator.free = synth_free;
	env.allocator.user = usercxt;

	for (int64 id = 1; id <= m.n_users; id++)
	{
		gr_synth_user u;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(usercxt);
		if (gr_synth_user_begin(&m, &env, id, &u, &err) != GR_OK)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("genrec_synthetic: %s", err.message)));
		for (int j = 0; j < u.n; j++)
		{
			Datum		values[4];
			bool		nulls[4] = {false, false, false, false};
			int64		item;
			float		action;
			int64		unix_time;

			if ((j & 1023) == 1023)
				CHECK_FOR_INTERRUPTS();
			gr_synth_user_step(&m, &u, j, &item, &action, &unix_time);
			values[0] = Int64GetDatum(id);
			values[1] = Int64GetDatum(item);
			values[2] = Float4GetDatum(action);
			values[3] = TimestampTzGetDatum((unix_time - SYNTH_PG_EPOCH_UNIX) * USECS_PER_SEC);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		gr_synth_user_end(&u);
	}
	MemoryContextDelete(usercxt);
	return (Datum) 0;
}
