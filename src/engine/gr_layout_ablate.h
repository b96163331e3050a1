/*
 * gr_layout_ablate.h — the token builder shared by the Table-2 ablation layouts of
 * LAYOUTS.md §4.7 (l2 … l9): one token per interaction, T = N, causal, and three choices —
 * which action a token carries (none, its own a_n, the lagged a_{n-1}), whether h_n predicts
 * the next item, and which action h_n predicts (none, the same-step a_n, the next a_{n+1}).
 * Each ablation is still one file (gr_layout_l2.c …) that names its choices; this builder
 * only keeps the index arithmetic in one place. Leak-freedom (P3) is a property of the
 * choices: no ablation pairs a token carrying a_n with the target a_n (test_layouts checks
 * every layout's leakage with perturbations).
 */
#ifndef GR_LAYOUT_ABLATE_H
#define GR_LAYOUT_ABLATE_H

#include "gr_layout.h"

/* Which action token n carries. */
typedef enum gr_ablate_input
{
	GR_ABLATE_IN_NONE = 0,		/* s E[i_n] */
	GR_ABLATE_IN_SAME,			/* s E[i_n] + φ(a_n) */
	GR_ABLATE_IN_LAGGED,		/* s E[i_n] + φ(a_{n-1}), φ_null for the first interaction */
} gr_ablate_input;

/* Which action h_n predicts. */
typedef enum gr_ablate_target
{
	GR_ABLATE_ACT_NONE = 0,
	GR_ABLATE_ACT_SAME,			/* a_n: action given item (P2 holds); candidates packed */
	GR_ABLATE_ACT_NEXT,			/* a_{n+1} without i_{n+1} (P2 violated); user-level score */
} gr_ablate_target;

typedef struct gr_ablate_spec
{
	const char *name;
	gr_ablate_input input;
	bool		item_target;	/* h_n -> i_{n+1} */
	gr_ablate_target act_target;
} gr_ablate_spec;

/* Interactions one training window spans. */
int			gr_ablate_window_len(const gr_ablate_spec *s, int max_len);

/* Interactions of history kept when serving. */
int			gr_ablate_history_cap(const gr_ablate_spec *s, int max_len);

/* Learned positions needed. */
int			gr_ablate_positions(const gr_ablate_spec *s, int max_len);

/* Append one training / evaluation window (the gr_layout.add_window contract). */
gr_status	gr_ablate_add_window(const gr_ablate_spec *s, gr_tokens *tb, const gr_seq_view *seq,
								 int start, int end, bool last_only, gr_error *err);

/* Append one serving sequence (the gr_layout.add_serving contract). */
gr_status	gr_ablate_add_serving(const gr_ablate_spec *s, gr_tokens *tb,
								  const gr_seq_view *seq, int start, const int32_t *cands,
								  int n_cands, gr_error *err);

#endif							/* GR_LAYOUT_ABLATE_H */
