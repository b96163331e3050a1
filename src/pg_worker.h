/*
 * pg_worker.h — the serving worker: one background process that owns the compute device and
 * scores for every backend (README "GPU worker").
 *
 * With genrec in shared_preload_libraries and genrec.worker = cpu | gpu, _PG_init registers a
 * background worker ("genrec worker", restarted a second after it stops) and reserves a
 * control block in the main shared memory segment: the worker's pid, latch, generation and
 * counters, and one request slot per backend (indexed by MyBackendId).
 *
 * Protocol. A backend does everything that needs its rights and snapshot itself (catalogue
 * lookup, grant check, the user's history read as the model's owner, candidates), writes the
 * request (the model segment's handle and identity, the history, the candidates, k, ...) into
 * its own mailbox, a dynamic shared memory segment it keeps for its lifetime, and moves its
 * slot from FREE to SUBMITTED. The worker takes SUBMITTED slots (RUNNING), waits up to
 * genrec.worker_batch_us for more, groups them by model and kind and runs one engine pass per
 * group (gr_score_batch / gr_recommend_batch), writes each result into its requester's
 * mailbox, sets the slot DONE and the requester's latch. The backend copies the result out and
 * frees the slot.
 *
 * Cancel. A backend interrupted while it waits withdraws its request under the slot's
 * spinlock: SUBMITTED becomes FREE (never run), RUNNING becomes CANCELLED (the worker finishes
 * writing into the mailbox, which the worker keeps mapped, then frees the slot); the backend's
 * next request waits until its slot is FREE, so a mailbox is never rewritten while the worker
 * writes into it, and a segment is never unmapped under the worker (DSM reference counts).
 *
 * Worker failure. When the worker stops (an ERROR promoted to FATAL, SIGTERM,
 * pg_terminate_backend) its exit callback marks every request it holds FAILED and wakes the
 * requesters, which score locally (genrec.worker_fallback = local, with a NOTICE) or raise
 * 55000 (error); calls made while no worker runs do the same. The postmaster restarts the
 * worker after bgw_restart_time. A worker killed by a signal (kill -9, a crash) makes the
 * postmaster reinitialise the whole server, as for any process attached to shared memory.
 */
#ifndef PG_WORKER_H
#define PG_WORKER_H

#include "pg_serve.h"

#define GENREC_WORKER_OFF 0
#define GENREC_WORKER_CPU 1
#define GENREC_WORKER_GPU 2

#define GENREC_FALLBACK_LOCAL 0
#define GENREC_FALLBACK_ERROR 1

extern int	genrec_worker_mode;			/* genrec.worker */
extern int	genrec_worker_batch_us;		/* genrec.worker_batch_us */
extern int	genrec_worker_max_batch;	/* genrec.worker_max_batch */
extern int	genrec_worker_fallback;		/* genrec.worker_fallback */
extern int	genrec_worker_test_delay_ms;	/* genrec.worker_test_delay_ms */
extern bool genrec_in_worker;			/* this process is the worker */

/* Request slot states (WorkerSlot.state). */
typedef enum WorkerSlotState
{
	WSLOT_FREE = 0,
	WSLOT_SUBMITTED,			/* written by its backend, not yet taken */
	WSLOT_RUNNING,				/* taken by the worker */
	WSLOT_DONE,					/* result in the mailbox */
	WSLOT_CANCELLED,			/* withdrawn while running: the worker frees it */
	WSLOT_FAILED				/* the worker stopped before answering */
} WorkerSlotState;

/* Request kinds. */
#define WREQ_SCORE 1
#define WREQ_RECOMMEND 2

/* Outcome of a request (WorkerMailbox.outcome). */
#define WOUT_OK 0
#define WOUT_ENGINE_ERROR 1		/* the engine refused it: raise as local scoring would */
#define WOUT_UNAVAILABLE 2		/* the worker could not serve it: score locally */

#define GENREC_MAILBOX_MAGIC 0x58424d47	/* "GMBX" */

/* A backend's mailbox: one request and its answer, in a DSM segment of the backend. */
typedef struct WorkerMailbox
{
	uint32		magic;
	Size		size;			/* bytes of the segment */
	/* request */
	int32		kind;			/* WREQ_* */
	dsm_handle	model_segment;	/* the registry's segment of the model */
	GenrecBlob	model;			/* the segment's header as the backend validated it (no name) */
	int32		n_hist;
	int32		n_hist_actions; /* actions per interaction given (0: none) */
	bool		hist_has_times; /* interaction times given (a time-aware trunk) */
	int32		n_cands;
	int32		k;
	bool		exclude_seen;
	int32		delay_ms;		/* genrec.worker_test_delay_ms of the requester */
	Size		hist_items_off; /* int64 [n_hist] */
	Size		hist_actions_off;	/* double [n_hist * n_hist_actions] */
	Size		hist_times_off; /* int64 [n_hist] when hist_has_times */
	Size		cands_off;		/* int64 [n_cands] */
	Size		out_a_off;		/* score: float action [n_cands * K]; recommend: int64 items [k] */
	Size		out_b_off;		/* score: float logit [n_cands]; recommend: float scores [k] */
	Size		out_c_off;		/* score: uint8 known [n_cands] */
	/* answer */
	int32		outcome;		/* WOUT_* */
	int32		n_out;			/* recommend: items returned */
	int32		batch_size;		/* requests in the engine pass that served it */
	gr_error	err;			/* WOUT_ENGINE_ERROR / WOUT_UNAVAILABLE: why */
} WorkerMailbox;

/* Define the settings and, when preloaded with the worker on, reserve its shared memory and
 * register it (from _PG_init). */
void		genrec_worker_init(void);

/* Whether requests go to the worker in this server (preloaded, genrec.worker not off). */
bool		genrec_worker_enabled(void);

/*
 * Score a request through the worker into s (arrays allocated in the current context). False
 * when the worker cannot take it (not running, a private copy of the model, no mailbox, or
 * it stopped while the request waited): the caller scores locally (after a NOTICE; ERROR
 * 55000 instead with genrec.worker_fallback = error). An engine refusal raises the ERROR local
 * scoring would.
 */
bool		genrec_worker_score(GenrecModel *m, const ServeHistory *h, const int64 *cands,
								int n_cands, float *action, float *logit, uint8 *known);

/* Top k through the worker (items/scores hold k); false as for genrec_worker_score. */
bool		genrec_worker_recommend(GenrecModel *m, const ServeHistory *h, int k,
									bool exclude_seen, int64 *items, float *scores, int *n_out);

/* ---- between pg_worker_client.c and pg_worker.c */

/* One backend's request slot. */
typedef struct WorkerSlot
{
	slock_t		mutex;
	WorkerSlotState state;
	dsm_handle	mailbox;		/* the requester's mailbox */
	struct PGPROC *proc;		/* whose latch to set */
	int			pid;			/* the requester */
	uint64		worker_gen;		/* the worker generation it was submitted under */
} WorkerSlot;

/* The worker's control block in the main shared memory segment. */
typedef struct WorkerShared
{
	slock_t		mutex;			/* pid, latch, ready, generation, message */
	int			pid;			/* the running worker, 0 when none */
	struct Latch *latch;		/* its latch */
	bool		ready;			/* its device is open: it takes requests */
	uint64		generation;		/* worker starts so far */
	TimestampTz started;
	char		device[16];		/* "cpu" or "cuda" */
	char		message[256];	/* why the last worker stopped or could not start */
	int			resident;		/* models the worker holds */
	pg_atomic_uint64 requests;	/* taken by the worker */
	pg_atomic_uint64 batches;	/* times the worker took a set of requests */
	pg_atomic_uint64 passes;	/* engine passes */
	pg_atomic_uint64 batched;	/* requests that shared their pass with another */
	pg_atomic_uint32 max_batch; /* most requests in one pass */
	pg_atomic_uint64 cancelled; /* withdrawn by their backend */
	pg_atomic_uint64 failed;	/* failed when a worker stopped */
	pg_atomic_uint64 fallbacks; /* scored in their backend because no worker could */
	int			n_slots;
	WorkerSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} WorkerShared;

/* The control block (NULL when the worker is not enabled). */
extern WorkerShared *genrec_worker_shared;

/* The background worker's entry point (bgw_function_name). */
extern PGDLLEXPORT void genrec_worker_main(Datum arg);

#endif							/* PG_WORKER_H */
