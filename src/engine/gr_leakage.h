/*
 * gr_leakage.h — the P3 perturbation test on a trained model (LAYOUTS.md §3), the check
 * behind genrec_leakage_check: for users of a dataset, perturb each interaction of the
 * user's most recent training window in turn — its action (the label of its action
 * prediction), then its item (the label of its item prediction) — and compare every
 * prediction of the window with the unperturbed pass:
 *  - own label: the prediction made for interaction j must not move when j's own label
 *    changes (its action for every prediction of j; its item for the item prediction of j —
 *    an action prediction may read its own item, P2);
 *  - future: no prediction for an interaction before j may move when j changes;
 *  - later (positive control): predictions after j do move, so the perturbations reach the
 *    model at all.
 * Predictions compared: the logit of the unperturbed target item for item rows, and every
 * action output (normalised scale / logit) for action rows.
 */
#ifndef GR_LEAKAGE_H
#define GR_LEAKAGE_H

#include "gr_dataset.h"
#include "gr_forward.h"

typedef struct gr_leakage_result
{
	int			n_users;		/* users checked */
	int64_t		n_perturbations;
	double		own_change;		/* max |change| of a prediction for j, j's label perturbed */
	double		future_change;	/* max |change| of a prediction before j, j perturbed */
	double		later_change;	/* max |change| of a prediction after j (should be > 0) */
} gr_leakage_result;

/* The tolerance below which a change counts as none (float rounding; the CPU is exact). */
#define GR_LEAKAGE_TOLERANCE 1e-6

/*
 * Run the perturbation test on the first max_users users of ds with at least two
 * interactions (ds in the model's item and action space). inject_leak is for tests only: it
 * makes every action row's token carry its own target action (the textbook leak
 * (i_n, a_n) -> a_n), so the check has something to find.
 */
gr_status	gr_leakage_check(const gr_model *model, const gr_dataset *ds, int max_users,
							 bool inject_leak, gr_leakage_result *out, gr_error *err);

#endif							/* GR_LEAKAGE_H */
