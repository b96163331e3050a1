/*
 * pg_genrec.h — glue shared by the PostgreSQL side of genrec: GUCs, the bridge from a
 * memory context and the backend's interrupt state to an engine environment, the device in
 * use, and the mapping of engine errors to ereport with SQLSTATEs.
 */
#ifndef PG_GENREC_H
#define PG_GENREC_H

#include "postgres.h"

#include "gr_common.h"
#include "gr_ops.h"

/* GUCs (defined in pg_genrec.c) */
extern char *genrec_default_model;	/* genrec.default_model */
extern int	genrec_device_guc;		/* genrec.device: GENREC_DEVICE_* */
extern int	genrec_threads;			/* genrec.threads */
extern int	genrec_cuda_math_guc;	/* genrec.cuda_math: GENREC_MATH_* */
extern int	genrec_max_train_memory;	/* genrec.max_train_memory: MB, -1 = no limit */
extern int	genrec_ivf_probes;		/* genrec.ivf_probes: 0 = exact retrieval */
extern int	genrec_ivf_lists;		/* genrec.ivf_lists: 0 = about sqrt(items) */

#define GENREC_DEVICE_AUTO 0
#define GENREC_DEVICE_CPU 1
#define GENREC_DEVICE_CUDA 2

#define GENREC_MATH_TF32 0
#define GENREC_MATH_FP32 1
#define GENREC_MATH_BF16 2

/*
 * Fill env for an engine call whose allocations belong to mcxt (freed with it on error or
 * cancel), whose interrupt check reports pending query cancels and statement timeouts, and
 * whose ops are the backend's device (genrec.device; the CUDA module is opened on first use,
 * never in _PG_init), held until mcxt is reset or deleted; on the CPU the backend's buffers
 * come from mcxt as well. progress/user may be NULL.
 */
void		genrec_engine_env(gr_env *env, MemoryContext mcxt,
							  void (*progress) (void *user, const gr_progress *p), void *user);

/*
 * The generation of the device for genrec.device and genrec.cuda_math, opening it on first
 * use; a change of either opens the new device and retires everything built on the old one.
 */
uint64		genrec_device_generation(void);

/*
 * Raise the ERROR for a failed engine call: GR_ERR_CANCELLED runs CHECK_FOR_INTERRUPTS (so
 * the backend's own cancel or timeout error is raised); other statuses map to SQLSTATEs:
 *   INVALID_ARGUMENT 22023, OUT_OF_MEMORY 53200, CORRUPT_MODEL XX001, EMPTY_HISTORY 22023,
 *   NO_DATA 22023, DEVICE 55000, IO 58030, NUMERIC 22003, INTERNAL XX000.
 * context prefixes the message ("training model \"x\"").
 */
void		genrec_raise_engine_error(const gr_error *err, const char *context) pg_attribute_noreturn();

#endif							/* PG_GENREC_H */
