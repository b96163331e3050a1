/*
 * gr_ivf_flat.c — an IVF index as one flat block of bytes (see gr_ivf.h), so that one process
 * can build it and every other process can use it in place, as the server does with its
 * shared memory segments.
 *
 * Layout: [gr_ivf_flat_header][centroids float lists x d][offsets int32 lists + 1][cols int32 V],
 * each part 64-byte aligned. The header records what the block was built for (the item count,
 * the width, a caller's tag such as the model's identity hash) and its own size.
 *
 * A reader does not trust the bytes: gr_ivf_view checks the header against what the caller
 * expects, the offsets (0, non-decreasing, ending at V, the longest list as recorded), that
 * the columns are a permutation of 0 .. V-1 ascending inside each list, and that the
 * centroids are finite, before it lends a view whose arrays point into the block. A search
 * over a view then never reads outside the item table, whatever the block held.
 */
#include "gr_ivf.h"

#include <math.h>
#include <string.h>

#define IVF_FLAT_MAGIC 0x46564947u	/* "GIVF" */
#define IVF_FLAT_FORMAT 1
#define IVF_FLAT_ALIGN 64

typedef struct gr_ivf_flat_header
{
	uint32_t	magic;
	uint32_t	format;
	int32_t		lists;
	int32_t		d;
	int32_t		n_items;
	int32_t		longest;
	uint64_t	tag;
	uint64_t	bytes;			/* of the whole block */
	double		build_ms;
} gr_ivf_flat_header;

/* Round n up to the block's alignment. */
static size_t
flat_align(size_t n)
{
	return (n + IVF_FLAT_ALIGN - 1) / IVF_FLAT_ALIGN * IVF_FLAT_ALIGN;
}

/* Offsets of the three arrays in a block for (lists, d, V); returns the block's size. */
static size_t
flat_parts(int lists, int d, int n_items, size_t *cent_off, size_t *offs_off, size_t *cols_off)
{
	*cent_off = flat_align(sizeof(gr_ivf_flat_header));
	*offs_off = *cent_off + flat_align(sizeof(float) * (size_t) lists * d);
	*cols_off = *offs_off + flat_align(sizeof(int32_t) * ((size_t) lists + 1));
	return *cols_off + flat_align(sizeof(int32_t) * (size_t) n_items);
}

/* Bytes of the flat block of an index. */
size_t
gr_ivf_flat_size(const gr_ivf *ivf)
{
	size_t		a, b, c;

	return flat_parts(ivf->lists, ivf->d, ivf->n_items, &a, &b, &c);
}

/* Write an index into dst (gr_ivf_flat_size bytes, 64-byte aligned), tagged with tag. */
void
gr_ivf_flatten(const gr_ivf *ivf, uint64_t tag, void *dst)
{
	size_t		cent_off, offs_off, cols_off;
	size_t		total = flat_parts(ivf->lists, ivf->d, ivf->n_items, &cent_off, &offs_off,
								   &cols_off);
	gr_ivf_flat_header h = {
		.magic = IVF_FLAT_MAGIC, .format = IVF_FLAT_FORMAT, .lists = ivf->lists, .d = ivf->d,
		.n_items = ivf->n_items, .longest = ivf->longest, .tag = tag, .bytes = total,
		.build_ms = ivf->build_ms,
	};
	char	   *p = dst;

	memset(p, 0, total);
	memcpy(p, &h, sizeof(h));
	memcpy(p + cent_off, ivf->centroids, sizeof(float) * (size_t) ivf->lists * ivf->d);
	memcpy(p + offs_off, ivf->offsets, sizeof(int32_t) * ((size_t) ivf->lists + 1));
	memcpy(p + cols_off, ivf->cols, sizeof(int32_t) * (size_t) ivf->n_items);
}

/* Check the offsets and columns of a block: a permutation of 0..V-1 in ascending runs. */
static gr_status
check_lists(const gr_env *env, const int32_t *offsets, const int32_t *cols, int lists, int V,
			int longest, gr_error *err)
{
	uint8_t    *seen;
	int			max_len = 0;
	gr_status	st = GR_OK;

	if (offsets[0] != 0 || offsets[lists] != V)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "the index's lists do not cover its %d items", V);
	for (int l = 0; l < lists; l++)
	{
		if (offsets[l + 1] < offsets[l])
			return gr_fail(err, GR_ERR_CORRUPT_MODEL, "the index's list %d has a negative length", l);
		max_len = GR_MAX(max_len, offsets[l + 1] - offsets[l]);
	}
	if (max_len != longest)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "the index records a longest list of %d rows, "
					   "its lists have %d", longest, max_len);
	seen = gr_calloc(env, (size_t) V / 8 + 1, 1);
	if (seen == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory checking an index of %d "
					   "items", V);
	for (int l = 0; l < lists && st == GR_OK; l++)
		for (int r = offsets[l]; r < offsets[l + 1]; r++)
		{
			int32_t		c = cols[r];

			if (c < 0 || c >= V || (seen[c >> 3] & (1u << (c & 7))) ||
				(r > offsets[l] && c <= cols[r - 1]))
			{
				st = gr_fail(err, GR_ERR_CORRUPT_MODEL, "the index's row %d holds column %d: not a "
							 "permutation of the %d items in ascending lists", r, c, V);
				break;
			}
			seen[c >> 3] |= (uint8_t) (1u << (c & 7));
		}
	gr_free(env, seen);
	return st;
}

/* Lend a checked view of a flat block over the item table items [V x d]. */
gr_status
gr_ivf_view(const gr_env *env, const void *block, size_t bytes, uint64_t tag,
			const float *items, int n_items, int d, gr_ivf **out, gr_error *err)
{
	gr_ivf_flat_header h;
	size_t		cent_off, offs_off, cols_off;
	const char *p = block;
	gr_ivf	   *ivf;
	gr_status	st;

	*out = NULL;
	if (bytes < sizeof(h))
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "an index block of %zu bytes is too short", bytes);
	memcpy(&h, p, sizeof(h));
	if (h.magic != IVF_FLAT_MAGIC || h.format != IVF_FLAT_FORMAT)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "not an index block (magic %08x, format %u)",
					   h.magic, h.format);
	if (h.tag != tag || h.n_items != n_items || h.d != d)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "the index block was built for another model");
	if (h.lists < 1 || h.lists > GR_MIN(n_items, GR_IVF_MAX_LISTS) ||
		h.bytes != bytes ||
		flat_parts(h.lists, d, n_items, &cent_off, &offs_off, &cols_off) != bytes)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "the index block's size (%zu bytes, %d lists) does "
					   "not match its header", bytes, h.lists);
	if (((uintptr_t) p) % sizeof(float) != 0)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "an index block must be aligned");
	for (size_t i = 0; i < (size_t) h.lists * d; i++)
		if (!isfinite(((const float *) (p + cent_off))[i]))
			return gr_fail(err, GR_ERR_CORRUPT_MODEL, "the index's centroid %zu is not finite",
						   i / (size_t) d);
	st = check_lists(env, (const int32_t *) (p + offs_off), (const int32_t *) (p + cols_off),
					 h.lists, n_items, h.longest, err);
	if (st != GR_OK)
		return st;
	ivf = gr_calloc(env, 1, sizeof(gr_ivf));
	if (ivf == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory for an index view");
	ivf->lists = h.lists;
	ivf->d = d;
	ivf->n_items = n_items;
	ivf->longest = h.longest;
	ivf->centroids = (float *) (p + cent_off);
	ivf->offsets = (int32_t *) (p + offs_off);
	ivf->cols = (int32_t *) (p + cols_off);
	ivf->items = items;
	ivf->build_ms = h.build_ms;
	ivf->borrowed = true;
	*out = ivf;
	return GR_OK;
}
