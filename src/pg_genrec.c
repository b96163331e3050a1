/*
 * pg_genrec.c — the extension's entry point: module magic, _PG_init and version reporting.
 *
 * The glue (src/pg_*.c) is the only code that includes PostgreSQL headers; it calls the
 * engine (src/engine/) and turns engine errors into ereport.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "gr_ops.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Set up the module: one BLAS thread per backend. Never touches a GPU. */
void
_PG_init(void)
{
	gr_ops_cpu_set_threads(1);
}

PG_FUNCTION_INFO_V1(genrec_version);

/* Return the extension's library version. */
Datum
genrec_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text("0.1.0"));
}
