/*
 * gr_layout.c — the layout registry and helpers shared by the layout files.
 */
#include "gr_layout.h"

#include <string.h>

static const gr_layout *const gr_layouts[GR_LAYOUT_COUNT] = {
	[GR_LAYOUT_ITEM] = &gr_layout_item,
	[GR_LAYOUT_INT] = &gr_layout_int,
	[GR_LAYOUT_LAC] = &gr_layout_lac,
	[GR_LAYOUT_PC] = &gr_layout_pc,
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
	return NULL;
}

/* Report an exhausted token batch. */
gr_status
gr_layout_full(gr_error *err)
{
	return gr_fail(err, GR_ERR_INTERNAL, "token batch capacity exhausted");
}
