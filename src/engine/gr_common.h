/*
 * gr_common.h — status codes, errors, allocator and environment shared by the engine.
 *
 * The engine is pure C11: it never includes PostgreSQL headers, never calls exit/abort and
 * allocates only through the allocator in gr_env. Every fallible function returns a
 * gr_status and, on failure, fills a gr_error with a human-readable message.
 */
#ifndef GR_COMMON_H
#define GR_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum gr_status
{
	GR_OK = 0,
	GR_ERR_INVALID_ARGUMENT,	/* a caller passed a bad option or value */
	GR_ERR_OUT_OF_MEMORY,		/* host or device allocation failed */
	GR_ERR_CORRUPT_MODEL,		/* a model file is malformed, truncated or inconsistent */
	GR_ERR_EMPTY_HISTORY,		/* an operation needs at least one interaction */
	GR_ERR_NO_DATA,				/* a dataset has no usable users or items */
	GR_ERR_CANCELLED,			/* the interrupt callback asked the engine to stop */
	GR_ERR_DEVICE,				/* a GPU call failed or no GPU is usable */
	GR_ERR_IO,					/* a file could not be read or written */
	GR_ERR_NUMERIC,				/* training diverged (NaN or Inf loss) */
	GR_ERR_INTERNAL				/* an engine invariant broke; a bug */
} gr_status;

#define GR_ERROR_MESSAGE_LEN 256

typedef struct gr_error
{
	gr_status	status;
	char		message[GR_ERROR_MESSAGE_LEN];
} gr_error;

/* Record a failure in err (if given) and return its status. */
gr_status	gr_fail(gr_error *err, gr_status status, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* Return the fixed name of a status code. */
const char *gr_status_name(gr_status status);

/* The caller-supplied host allocator; alloc returns NULL on failure. */
typedef struct gr_allocator
{
	void	   *(*alloc) (void *user, size_t bytes);
	void		(*free) (void *user, void *ptr);
	void	   *user;
} gr_allocator;

/* Progress of a training run, reported once per epoch. */
typedef struct gr_progress
{
	int			epoch;
	int			epochs;
	int64_t		step;
	double		train_loss;		/* mean total loss over the epoch */
	double		train_item_loss;
	double		train_action_loss;
	double		valid_hr10;
	double		valid_ndcg10;
	double		valid_rmse;		/* NaN when the layout predicts no action */
	/* the first action column's validation metric: RMSE (continuous) or log loss (binary,
	 * valid_action_logloss); NaN when the layout predicts no action */
	double		valid_action;
	bool		valid_action_logloss;
	double		seconds;		/* wall time of the epoch */
	bool		improved;		/* this epoch is the best so far on the validation score
								 * (gr_train.c valid_score) */
} gr_progress;

struct gr_ops;

/*
 * Everything the engine needs from its host: memory, the compute backend, and callbacks.
 * interrupted() is polled between optimiser steps and evaluation batches; returning true makes
 * the running call unwind and return GR_ERR_CANCELLED (it must not longjmp).
 */
typedef struct gr_env
{
	gr_allocator allocator;
	const struct gr_ops *ops;	/* NULL means the CPU ops */
	bool		(*interrupted) (void *user);
	void		(*progress) (void *user, const gr_progress *p);
	/* called after every optimiser step with the steps taken so far (may be NULL) */
	void		(*step_done) (void *user, int64_t steps);
	void	   *callback_user;
	int			n_threads;		/* 0 = leave the BLAS and OpenMP defaults alone */
} gr_env;

/* Fill env with the C library allocator, CPU ops and no callbacks. */
void		gr_env_default(gr_env *env);

/* Allocate through env; returns NULL on failure or for zero bytes. */
void	   *gr_alloc(const gr_env *env, size_t bytes);

/* Allocate zeroed memory through env. */
void	   *gr_calloc(const gr_env *env, size_t count, size_t size);

/* Free memory from gr_alloc; NULL is ignored. */
void		gr_free(const gr_env *env, void *ptr);

/* Multiply with overflow detection; false when a*b does not fit in size_t. */
bool		gr_mul_size(size_t a, size_t b, size_t *out);

/* Ask the host whether to stop. */
static inline bool
gr_should_stop(const gr_env *env)
{
	return env->interrupted != NULL && env->interrupted(env->callback_user);
}

#define GR_TRY(expr) \
	do { gr_status gr_try_s_ = (expr); if (gr_try_s_ != GR_OK) return gr_try_s_; } while (0)

#define GR_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GR_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif							/* GR_COMMON_H */
