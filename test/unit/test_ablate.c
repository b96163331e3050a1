/*
 * test_ablate.c — the Table-2 ablation layouts (LAYOUTS.md §4.7) on the toy history of §4.0:
 * their training tokens and targets, their serving sequences (packed candidates for l4, one
 * user-level read-out per candidate for l5/l6/l7/l9, none for l2/l3), their declared
 * behaviours, and the names and aliases. Leakage, packed scoring and the whole-loss gradient
 * of every layout run in test_layouts.c; training runs in test_train.c.
 */
#include "gr_layout.h"
#include "unit.h"

#include <string.h>

static gr_env env;

static int32_t toy_items[3] = {11, 12, 13};
static float toy_acts[3] = {0.1f, 0.2f, 0.3f};

/* Build the toy training window [0, 3) of a layout into tb. */
static void
toy_window(const gr_layout *l, gr_tokens *tb)
{
	gr_seq_view seq = {.items = toy_items,.actions = toy_acts,.n = 3,.n_actions = 1};
	gr_error	err;

	gr_tokens_reset(tb);
	CHECK_OK(l->add_window(tb, &seq, 0, 3, false, &err), &err);
}

/* Training tokens and targets of each ablation. */
static void
test_toy_training(void)
{
	gr_tokens	tb;
	gr_error	err;

	CHECK_OK(gr_tokens_init(&tb, &env, 1, 4, 16, 2, 16, &err), &err);

	/* L2: (i1,a1), (i2,a2) -> i2, i3 */
	toy_window(&gr_layout_l2, &tb);
	CHECK(tb.n_tokens == 2 && tb.item[0] == 11 && tb.item[1] == 12);
	CHECK(tb.has_action[0] && tb.action[0] == 0.1f && tb.action[1] == 0.2f);
	CHECK(tb.n_item_rows == 2 && tb.item_row_target[0] == 12 && tb.item_row_target[1] == 13 &&
		  tb.item_row_src[1] == 2 && tb.n_act_rows == 0);

	/* L3: (i1,null), (i2,a1) -> i2, i3 */
	toy_window(&gr_layout_l3, &tb);
	CHECK(tb.n_tokens == 2 && tb.has_action[0] && isnan(tb.action[0]) && tb.action[1] == 0.1f);
	CHECK(tb.n_item_rows == 2 && tb.item_row_target[1] == 13 && tb.n_act_rows == 0);

	/* L4: i1, i2, i3 -> a1, a2, a3 (same step), no item rows */
	toy_window(&gr_layout_l4, &tb);
	CHECK(tb.n_tokens == 3 && !tb.has_action[0] && !tb.has_action[2] && tb.item[2] == 13);
	CHECK(tb.n_item_rows == 0 && tb.n_act_rows == 3);
	for (int r = 0; r < 3; r++)
		CHECK(tb.act_row_tok[r] == r && tb.act_row_src[r] == r &&
			  tb.act_row_target[r] == toy_acts[r] && tb.act_row_coupler[r] == 0);

	/* L5: i1, i2 -> a2, a3 */
	toy_window(&gr_layout_l5, &tb);
	CHECK(tb.n_tokens == 2 && !tb.has_action[0] && tb.n_item_rows == 0 && tb.n_act_rows == 2);
	CHECK(tb.act_row_tok[0] == 0 && tb.act_row_target[0] == 0.2f && tb.act_row_src[0] == 1);
	CHECK(tb.act_row_tok[1] == 1 && tb.act_row_target[1] == 0.3f && tb.act_row_src[1] == 2);

	/* L6: i1, i2 -> (i2, a2), (i3, a3) */
	toy_window(&gr_layout_l6, &tb);
	CHECK(tb.n_tokens == 2 && !tb.has_action[1] && tb.n_item_rows == 2 && tb.n_act_rows == 2);
	CHECK(tb.item_row_tok[1] == 1 && tb.item_row_target[1] == 13 &&
		  tb.act_row_tok[1] == 1 && tb.act_row_target[1] == 0.3f);

	/* L7: (i1,a1), (i2,a2) -> a2, a3 */
	toy_window(&gr_layout_l7, &tb);
	CHECK(tb.n_tokens == 2 && tb.action[0] == 0.1f && tb.action[1] == 0.2f);
	CHECK(tb.n_item_rows == 0 && tb.n_act_rows == 2 && tb.act_row_target[0] == 0.2f &&
		  tb.act_row_target[1] == 0.3f);

	/* L9: (i1,a1), (i2,a2) -> (i2, a2), (i3, a3), both from h_n, no coupler */
	toy_window(&gr_layout_l9, &tb);
	CHECK(tb.n_tokens == 2 && tb.action[1] == 0.2f && tb.n_item_rows == 2 && tb.n_act_rows == 2);
	CHECK(tb.item_row_target[0] == 12 && tb.act_row_target[0] == 0.2f &&
		  tb.act_row_coupler[0] == 0 && tb.act_row_tok[0] == tb.item_row_tok[0]);

	/* evaluation windows keep the last target only; a later L3 window carries a_{start-1} */
	gr_seq_view seq = {.items = toy_items,.actions = toy_acts,.n = 3,.n_actions = 1};

	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_l9.add_window(&tb, &seq, 0, 3, true, &err), &err);
	CHECK(tb.n_tokens == 2 && tb.n_item_rows == 1 && tb.n_act_rows == 1 &&
		  tb.item_row_src[0] == 2 && tb.act_row_src[0] == 2 && tb.act_row_tok[0] == 1);
	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_l4.add_window(&tb, &seq, 0, 3, true, &err), &err);
	CHECK(tb.n_tokens == 3 && tb.n_act_rows == 1 && tb.act_row_tok[0] == 2 &&
		  tb.act_row_target[0] == 0.3f);
	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_l3.add_window(&tb, &seq, 1, 3, true, &err), &err);
	CHECK(tb.n_tokens == 1 && tb.action[0] == 0.1f && tb.item_row_target[0] == 13);
	gr_tokens_free(&tb);
}

/* Serving sequences: candidates c1, c2 after the toy history. */
static void
test_toy_serving(void)
{
	int32_t		cands[2] = {21, 22};
	gr_seq_view seq = {.items = toy_items,.actions = toy_acts,.n = 3,.n_actions = 1};
	gr_tokens	tb;
	gr_error	err;

	CHECK_OK(gr_tokens_init(&tb, &env, 1, 4, 16, 2, 16, &err), &err);

	/* L4: packed candidate tokens s E[c] + P[N], each read by the action head */
	CHECK_OK(gr_layout_l4.add_serving(&tb, &seq, 0, cands, 2, &err), &err);
	CHECK(tb.n_tokens == 5 && tb.n_hist[0] == 3 && tb.item[3] == 21 && tb.item[4] == 22);
	CHECK(tb.pos[3] == 3 && tb.pos[4] == 3 && !tb.has_action[3]);
	CHECK(tb.n_item_rows == 0 && tb.n_act_rows == 2 && tb.act_row_tok[0] == 3 &&
		  tb.act_row_tok[1] == 4);
	/* an empty history is a cold start: the candidates alone */
	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_l4.add_serving(&tb, &seq, 3, cands, 2, &err), &err);
	CHECK(tb.n_tokens == 2 && tb.n_hist[0] == 0 && tb.pos[0] == 0);

	/* L5/L7: one read-out of h_N per candidate, no item row; L6/L9 add the query row */
	const gr_layout *user[4] = {&gr_layout_l5, &gr_layout_l6, &gr_layout_l7, &gr_layout_l9};

	for (int i = 0; i < 4; i++)
	{
		gr_tokens_reset(&tb);
		CHECK_OK(user[i]->add_serving(&tb, &seq, 0, cands, 2, &err), &err);
		CHECK_MSG(tb.n_tokens == 3 && tb.n_hist[0] == 3 && tb.n_act_rows == 2 &&
				  tb.act_row_tok[0] == 2 && tb.act_row_tok[1] == 2 &&
				  tb.act_row_coupler[1] == 0, "%s serving", user[i]->name);
		CHECK(tb.n_item_rows == (gr_layout_has_item_head(user[i]) ? 1 : 0));
		CHECK(tb.has_action[2] == gr_layout_reads_actions(user[i]));
		gr_tokens_reset(&tb);
		CHECK(user[i]->add_serving(&tb, &seq, 3, cands, 2, &err) == GR_ERR_EMPTY_HISTORY);
	}

	/* L2/L3: the retrieval query only */
	gr_tokens_reset(&tb);
	CHECK_OK(gr_layout_l3.add_serving(&tb, &seq, 0, cands, 2, &err), &err);
	CHECK(tb.n_tokens == 3 && tb.n_act_rows == 0 && tb.n_item_rows == 1 &&
		  tb.item_row_tok[0] == 2 && tb.action[2] == 0.2f);
	gr_tokens_free(&tb);
}

/* The declared behaviours follow the cards of §4.7. */
static void
test_behaviours(void)
{
	static const struct
	{
		const gr_layout *l;
		bool		reads,
					item,
					act,
					cand_act;
	}			card[] = {
		{&gr_layout_l2, true, true, false, false},
		{&gr_layout_l3, true, true, false, false},
		{&gr_layout_l4, false, false, true, true},
		{&gr_layout_l5, false, false, true, false},
		{&gr_layout_l6, false, true, true, false},
		{&gr_layout_l7, true, false, true, false},
		{&gr_layout_l9, true, true, true, false},
		{&gr_layout_lac, true, true, true, true},
		{&gr_layout_pc, true, true, true, true},
		{&gr_layout_item, false, true, false, false},
	};

	for (size_t i = 0; i < sizeof(card) / sizeof(card[0]); i++)
	{
		const gr_layout *l = card[i].l;

		CHECK_MSG(gr_layout_reads_actions(l) == card[i].reads &&
				  gr_layout_has_item_head(l) == card[i].item &&
				  gr_layout_has_action_head(l) == card[i].act &&
				  gr_layout_candidate_actions(l) == card[i].cand_act, "%s behaviours", l->name);
		CHECK(gr_layout_needs_actions(l) == (card[i].reads || card[i].act));
	}
	CHECK(gr_layout_l4.candidates == GR_CANDIDATES_PACKED && gr_layout_packs_candidates(&gr_layout_l4));
	CHECK(gr_layout_l9.candidates == GR_CANDIDATES_USER && !gr_layout_packs_candidates(&gr_layout_l9));
}

/* Every layout by name and id; the Table-2 aliases; the list of names is complete. */
static void
test_names(void)
{
	char		names[512];

	gr_layout_list(names, sizeof(names), false);
	for (int id = 0; id < GR_LAYOUT_COUNT; id++)
	{
		const gr_layout *l = gr_layout_by_id(id);

		CHECK(l != NULL && l->id == (gr_layout_id) id && gr_layout_by_name(l->name) == l);
		CHECK_MSG(strstr(names, l->name) != NULL, "%s missing from the names", l->name);
	}
	CHECK(gr_layout_by_name("l0") == &gr_layout_item);
	CHECK(gr_layout_by_name("l8") == &gr_layout_lac);
	CHECK(gr_layout_by_name("l10") == &gr_layout_pc);
	CHECK(gr_layout_by_name("l1") == NULL && gr_layout_by_name("L4") == NULL &&
		  gr_layout_by_name(NULL) == NULL && gr_layout_by_id(GR_LAYOUT_COUNT) == NULL);
}

/* Run the ablation layout tests. */
int
main(void)
{
	gr_env_default(&env);
	test_toy_training();
	test_toy_serving();
	test_behaviours();
	test_names();
	return unit_finish("test_ablate");
}
