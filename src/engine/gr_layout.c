/*
 * gr_layout.c — the layout registry and helpers shared by the layout files.
 */
#include "gr_layout.h"

#include <stdio.h>
#include <string.h>

static const gr_layout *const gr_layouts[GR_LAYOUT_COUNT] = {
	[GR_LAYOUT_ITEM] = &gr_layout_item,
	[GR_LAYOUT_INT] = &gr_layout_int,
	[GR_LAYOUT_LAC] = &gr_layout_lac,
	[GR_LAYOUT_PC] = &gr_layout_pc,
	[GR_LAYOUT_ATTNLFA] = &gr_layout_attnlfa,
	[GR_LAYOUT_ATTNMVP] = &gr_layout_attnmvp,
	[GR_LAYOUT_L2] = &gr_layout_l2,
	[GR_LAYOUT_L3] = &gr_layout_l3,
	[GR_LAYOUT_L4] = &gr_layout_l4,
	[GR_LAYOUT_L5] = &gr_layout_l5,
	[GR_LAYOUT_L6] = &gr_layout_l6,
	[GR_LAYOUT_L7] = &gr_layout_l7,
	[GR_LAYOUT_L9] = &gr_layout_l9,
};

/* Table 2's ids for layouts that have a name of their own. */
static const struct
{
	const char *alias;
	const gr_layout *layout;
}			gr_layout_aliases[] = {
	{"l0", &gr_layout_item},
	{"l8", &gr_layout_lac},
	{"l10", &gr_layout_pc},
};

/* Look a layout up by id. */
const gr_layout *
gr_layout_by_id(int id)
{
	if (id < 0 || id >= GR_LAYOUT_COUNT)
		return NULL;
	return gr_layouts[id];
}

/* Look a layout up by name. */
const gr_layout *
gr_layout_by_name(const char *name)
{
	if (name == NULL)
		return NULL;
	for (int i = 0; i < GR_LAYOUT_COUNT; i++)
		if (strcmp(gr_layouts[i]->name, name) == 0)
			return gr_layouts[i];
	for (size_t i = 0; i < sizeof(gr_layout_aliases) / sizeof(gr_layout_aliases[0]); i++)
		if (strcmp(gr_layout_aliases[i].alias, name) == 0)
			return gr_layout_aliases[i].layout;
	return NULL;
}

/* The layouts' names for messages. */
void
gr_layout_list(char *buf, size_t size, bool packing_only)
{
	size_t		len = 0;

	if (size == 0)
		return;
	buf[0] = '\0';
	for (int i = 0; i < GR_LAYOUT_COUNT; i++)
	{
		if (packing_only && !gr_layout_packs_candidates(gr_layouts[i]))
			continue;
		int			w = snprintf(buf + len, size - len, "%s%s", len ? ", " : "",
								 gr_layouts[i]->name);

		if (w < 0 || (size_t) w >= size - len)
			return;
		len += (size_t) w;
	}
}

/* Whether tokens carry action values into the model. */
bool
gr_layout_reads_actions(const gr_layout *layout)
{
	return layout->action_input != GR_ACTION_INPUT_NONE;
}

/* Whether φ(a) is its own stream. */
bool
gr_layout_action_stream(const gr_layout *layout)
{
	return layout->action_input == GR_ACTION_INPUT_VALUES ||
		layout->action_input == GR_ACTION_INPUT_POOLED;
}

/* The trunk's attention mask. */
gr_attn_mask
gr_layout_trunk_mask(const gr_layout *layout)
{
	return layout->action_input == GR_ACTION_INPUT_VALUES ? GR_MASK_STRICT : GR_MASK_CAUSAL;
}

/* Whether the action head pools the action stream. */
bool
gr_layout_pools_actions(const gr_layout *layout)
{
	return layout->action_head == GR_ACTION_HEAD_POOLED;
}

/* Whether the layout needs action columns. */
bool
gr_layout_needs_actions(const gr_layout *layout)
{
	return gr_layout_reads_actions(layout) || gr_layout_has_action_head(layout);
}

/* Whether the model has an action head. */
bool
gr_layout_has_action_head(const gr_layout *layout)
{
	return layout->action_head != GR_ACTION_HEAD_NONE;
}

/* Whether the tied item head predicts the next item. */
bool
gr_layout_has_item_head(const gr_layout *layout)
{
	return layout->item_head == GR_ITEM_HEAD_TIED;
}

/* Whether the action prediction served depends on the candidate. */
bool
gr_layout_candidate_actions(const gr_layout *layout)
{
	return gr_layout_has_action_head(layout) && (layout->candidates == GR_CANDIDATES_PACKED ||
												 layout->candidates == GR_CANDIDATES_COUPLED);
}

/* The action head's input: h, or h beside one more d-wide vector. */
int
gr_layout_head_inputs(const gr_layout *layout)
{
	switch (layout->action_head)
	{
		case GR_ACTION_HEAD_NONE:
			return 0;
		case GR_ACTION_HEAD_STATE:
			return 1;
		case GR_ACTION_HEAD_COUPLER:
		case GR_ACTION_HEAD_POOLED:
			return 2;
	}
	return 0;
}

/* Whether candidates are tokens of the packed sequence. */
bool
gr_layout_packs_candidates(const gr_layout *layout)
{
	return layout->candidates == GR_CANDIDATES_PACKED;
}

/* Report an exhausted token batch. */
gr_status
gr_layout_full(gr_error *err)
{
	return gr_fail(err, GR_ERR_INTERNAL, "token batch capacity exhausted");
}
