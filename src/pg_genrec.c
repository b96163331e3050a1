/*
 * pg_genrec.c — the extension's entry point: module magic, GUCs and version reporting.
 *
 * The glue (src/pg_*.c) is the only code that includes PostgreSQL headers; it calls the
 * engine (src/engine/) and turns engine errors into ereport. _PG_init only defines GUCs (and,
 * preloaded, reserves shared memory and registers the serving worker): it never opens BLAS or
 * a GPU (both happen on first use, in the process that needs them).
 */
#include "pg_genrec.h"
#include "pg_cache.h"
#include "pg_progress.h"
#include "pg_security.h"
#include "pg_worker.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *genrec_default_model = NULL;
int			genrec_device_guc = GENREC_DEVICE_AUTO;
int			genrec_threads = 1;
int			genrec_cuda_math_guc = GENREC_MATH_TF32;
int			genrec_max_train_memory = 4096;
int			genrec_ivf_probes = 0;
int			genrec_ivf_lists = 0;

static const struct config_enum_entry device_options[] = {
	{"auto", GENREC_DEVICE_AUTO, false},
	{"cpu", GENREC_DEVICE_CPU, false},
	{"cuda", GENREC_DEVICE_CUDA, false},
	{NULL, 0, false}
};

static const struct config_enum_entry math_options[] = {
	{"tf32", GENREC_MATH_TF32, false},
	{"fp32", GENREC_MATH_FP32, false},
	{"bf16", GENREC_MATH_BF16, false},
	{NULL, 0, false}
};

/* Define the genrec.* settings. */
void
_PG_init(void)
{
	DefineCustomStringVariable("genrec.default_model",
							   "Model used by genrec_score(user_id, candidates) and the other "
							   "functions called without a model name.",
							   NULL, &genrec_default_model, NULL, PGC_USERSET, 0,
							   NULL, NULL, NULL);
	DefineCustomEnumVariable("genrec.device",
							 "Compute device for training and scoring: auto (the GPU when "
							 "one is usable, else the CPU, said once in the server log), cpu, "
							 "or cuda (an ERROR without a usable GPU).",
							 NULL, &genrec_device_guc, GENREC_DEVICE_AUTO, device_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("genrec.threads",
							"CPU threads one backend uses for BLAS and the engine's loops.",
							NULL, &genrec_threads, 1, 1, 64, PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("genrec.cuda_math",
							 "GPU math mode for GEMMs: tf32 (default), fp32 or bf16; a change "
							 "reopens the device.",
							 NULL, &genrec_cuda_math_guc, GENREC_MATH_TF32, math_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	/* superuser-only, like temp_file_limit: a limit any role could raise protects nothing */
	DefineCustomIntVariable("genrec.max_train_memory",
							"Most memory one genrec_train may take (its estimate of weights, "
							"gradients, optimiser state, activations, evaluation and data, "
							"checked before allocating); -1 means no limit.",
							NULL, &genrec_max_train_memory, 4096, -1, INT_MAX, PGC_SUSET,
							GUC_UNIT_MB, NULL, NULL, NULL);
	DefineCustomIntVariable("genrec.ivf_probes",
							"Lists of a model's IVF index that genrec_recommend scans; 0 "
							"(default) retrieves exactly, over every item.",
							NULL, &genrec_ivf_probes, 0, 0, GR_IVF_MAX_LISTS, PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("genrec.ivf_lists",
							"Lists (k-means clusters) of the IVF index a backend builds for a "
							"model on its first indexed retrieval; 0 means about the square "
							"root of the catalogue.",
							NULL, &genrec_ivf_lists, 0, 0, GR_IVF_MAX_LISTS, PGC_USERSET, 0,
							NULL, NULL, NULL);
	genrec_cache_init();
	genrec_worker_init();
	MarkGUCPrefixReserved("genrec");
	genrec_progress_preload();
}

PG_FUNCTION_INFO_V1(genrec_version);

/* Return the extension's library version. */
Datum
genrec_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(GENREC_LIBRARY_VERSION));
}
