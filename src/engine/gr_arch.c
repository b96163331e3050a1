/*
 * gr_arch.c — the table of architectures and the workspace declaration helper.
 */
#include "gr_arch.h"

#include <string.h>

static const gr_arch *const gr_archs[GR_TRUNK_COUNT] = {
	[GR_TRUNK_GPT2] = &gr_arch_gpt2,
	[GR_TRUNK_HSTU] = &gr_arch_hstu,
};

/* Look an architecture up by id. */
const gr_arch *
gr_arch_by_id(int id)
{
	if (id < 0 || id >= GR_TRUNK_COUNT)
		return NULL;
	return gr_archs[id];
}

/* Look an architecture up by name. */
const gr_arch *
gr_arch_by_name(const char *name)
{
	if (name == NULL)
		return NULL;
	for (int i = 0; i < GR_TRUNK_COUNT; i++)
		if (strcmp(gr_archs[i]->name, name) == 0)
			return gr_archs[i];
	return NULL;
}

/* Record one buffer of the workspace; an overflow is reported by the caller. */
void
gr_act_declare(gr_act_table *t, float **ptr, size_t n)
{
	if (t->n >= t->cap)
	{
		t->overflow = true;
		return;
	}
	t->slots[t->n].ptr = ptr;
	t->slots[t->n].n = n;
	t->n++;
}
