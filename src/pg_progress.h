/*
 * pg_progress.h — progress of running trainings, visible from every session through
 * genrec.training_progress: a small fixed array of slots in the main shared memory segment.
 *
 * With genrec in shared_preload_libraries the array is reserved at server start
 * (shmem_request_hook / shmem_startup_hook). Without it, the first backend that needs it
 * carves it out of the segment's slack (the server adds about 100 kB to its estimate for
 * such late allocations) under AddinShmemInitLock; if that fails, trainings still report
 * every epoch as a NOTICE and the view stays empty (one NOTICE says so).
 */
#ifndef PG_PROGRESS_H
#define PG_PROGRESS_H

#include "postgres.h"

#include "gr_common.h"

#define GENREC_PROGRESS_SLOTS	16

/* Reserve and initialise the slots at server start (from _PG_init while preloading). */
void		genrec_progress_preload(void);

/* Claim a slot for a training of model name in this backend; -1 when none is available. */
int			genrec_progress_begin(const char *name, int epochs);

/* Set what the training is doing ("reading", "training", "saving") and rows read so far. */
void		genrec_progress_phase(int slot, const char *phase, int64 rows);

/* Enter the training phase; one epoch takes steps_per_epoch optimiser steps. */
void		genrec_progress_training(int slot, int steps_per_epoch);

/* Record a finished epoch (the engine's report). */
void		genrec_progress_epoch(int slot, const gr_progress *p);

/* Record the optimiser steps taken so far; cheap enough to call on every interrupt poll. */
void		genrec_progress_step(int slot, int64 step);

/* Release a slot (also done at backend exit for a slot left behind). */
void		genrec_progress_end(int slot);

#endif							/* PG_PROGRESS_H */
