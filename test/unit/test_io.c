/*
 * test_io.c — safetensors save/load and configuration JSON: exact round trips for every
 * layout (in memory and through files), and rejection of malformed or hostile input
 * (truncations, bad header lengths, bad JSON, wrong dtypes, shapes and offsets, missing and
 * extra tensors, non-finite weights, bad configurations, unordered item ids, random bit flips
 * and allocation failures) without crashing or leaking.
 *
 * With GR_TEST_IO_SEED_DIR set, a valid model file per layout is also written into that
 * directory (a seed corpus for test/fuzz/fuzz_safetensors.c).
 */
#include "gr_io.h"
#include "unit.h"

#include <cJSON.h>
#include <dirent.h>
#include <string.h>
#include <unistd.h>

#define N_TEST_ITEMS 6

static const int all_layouts[] = {GR_LAYOUT_ITEM, GR_LAYOUT_INT, GR_LAYOUT_LAC, GR_LAYOUT_PC,
	GR_LAYOUT_ATTNLFA, GR_LAYOUT_ATTNMVP};

#define N_LAYOUTS ((int) (sizeof(all_layouts) / sizeof(all_layouts[0])))

/* An allocator that counts calls and live blocks and can fail the n-th allocation. */
typedef struct counting_allocator
{
	long		live;
	long		calls;
	long		fail_at;		/* -1 = never fail */
} counting_allocator;

/* Allocate unless this is the call chosen to fail. */
static void *
counting_alloc(void *user, size_t bytes)
{
	counting_allocator *c = user;

	long		call = c->calls++;

	if (c->fail_at >= 0 && call == c->fail_at)
		return NULL;
	void	   *p = malloc(bytes);

	if (p != NULL)
		c->live++;
	return p;
}

/* Release a counted block. */
static void
counting_free(void *user, void *ptr)
{
	counting_allocator *c = user;

	c->live--;
	free(ptr);
}

/* Fill env with the counting allocator on top of the default environment. */
static void
counting_env(gr_env *env, counting_allocator *counter)
{
	gr_env_default(env);
	memset(counter, 0, sizeof(*counter));
	counter->fail_at = -1;
	env->allocator.alloc = counting_alloc;
	env->allocator.free = counting_free;
	env->allocator.user = counter;
}

/* A small configuration for a layout with awkward action scales. */
static void
small_config(gr_model_config *cfg, int layout)
{
	gr_model_config_default(cfg, layout, N_TEST_ITEMS, layout == GR_LAYOUT_ITEM ? 0 : 2);
	cfg->d_model = 4;
	cfg->n_head = 2;
	cfg->n_layer = 1;
	cfg->max_len = 3;
	cfg->n_buckets = 2;
	cfg->head_hidden = 3;
	cfg->emb_scale = 0.1f;
	cfg->action_binary[1] = 1;
	cfg->action_min[0] = -1.0 / 3.0;
	cfg->action_max[0] = 4.25e7;
}

/* Build a small initialised model with non-trivial item ids. */
static gr_model *
make_model(const gr_env *env, int layout, uint64_t seed)
{
	static const int64_t ids[N_TEST_ITEMS] = {-5, 3, 10, 11, 1000000000000LL, INT64_MAX};
	gr_model_config cfg;
	gr_model   *model = NULL;
	gr_error	err = {0};

	small_config(&cfg, layout);
	CHECK_OK(gr_model_create(env, &cfg, ids, &model, &err), &err);
	if (model != NULL)
		CHECK_OK(gr_model_init_params(model, seed, &err), &err);
	return model;
}

/* True when two configurations hold the same values, bit for bit where it matters. */
static bool
same_config(const gr_model_config *a, const gr_model_config *b)
{
	if (a->layout != b->layout || a->n_items != b->n_items || a->d_model != b->d_model ||
		a->n_layer != b->n_layer || a->n_head != b->n_head || a->max_len != b->max_len ||
		a->n_actions != b->n_actions || a->n_buckets != b->n_buckets ||
		a->head_hidden != b->head_hidden ||
		memcmp(&a->emb_scale, &b->emb_scale, sizeof(float)) != 0 ||
		a->item_loss != b->item_loss)
		return false;
	/* the loss's parameters are stored for the sampled losses only */
	if (a->item_loss != GR_LOSS_FULL &&
		(a->negatives != b->negatives || a->sampler != b->sampler ||
		 a->negatives_per != b->negatives_per || a->similarity != b->similarity ||
		 memcmp(&a->temperature, &b->temperature, sizeof(float)) != 0))
		return false;
	for (int k = 0; k < a->n_actions; k++)
		if (a->action_binary[k] != b->action_binary[k] ||
			memcmp(&a->action_min[k], &b->action_min[k], sizeof(double)) != 0 ||
			memcmp(&a->action_max[k], &b->action_max[k], sizeof(double)) != 0)
			return false;
	return true;
}

/* Check that two models have the same configuration, tensors (bit for bit) and item ids. */
static void
check_same_model(const gr_model *a, const gr_model *b)
{
	CHECK(same_config(&a->cfg, &b->cfg));
	CHECK(a->n_tensors == b->n_tensors);
	CHECK(a->n_params == b->n_params);
	if (a->n_tensors != b->n_tensors || a->n_params != b->n_params)
		return;

	float	   *pa = malloc(a->n_params * sizeof(float));
	float	   *pb = malloc(b->n_params * sizeof(float));

	gr_model_download_params(a, pa);
	gr_model_download_params(b, pb);
	for (int t = 0; t < a->n_tensors; t++)
	{
		const gr_tensor *ta = &a->tensors[t],
				   *tb = &b->tensors[t];

		CHECK_MSG(strcmp(ta->name, tb->name) == 0 && ta->ndim == tb->ndim &&
				  memcmp(ta->shape, tb->shape, sizeof(ta->shape)) == 0 &&
				  memcmp(pa + ta->offset, pb + tb->offset, ta->numel * sizeof(float)) == 0,
				  "tensor %s differs", ta->name);
	}
	CHECK(memcmp(a->item_ids, b->item_ids, sizeof(int64_t) * ((size_t) a->cfg.n_items + 1)) == 0);
	free(pa);
	free(pb);
}

/* Save a model to bytes (failing the test if that fails). */
static uint8_t *
save_bytes(const gr_model *model, const char *extra, size_t *len)
{
	uint8_t    *bytes = NULL;
	gr_error	err = {0};

	CHECK_OK(gr_model_save(model, extra, &bytes, len, &err), &err);
	return bytes;
}

/* Load a copy of exactly len bytes (so out-of-bounds reads show up) and return the status. */
static gr_status
load_copy(const gr_env *env, const uint8_t *bytes, size_t len, gr_error *err)
{
	uint8_t    *copy = malloc(len > 0 ? len : 1);
	gr_model   *model = NULL;
	char	   *extra = NULL;
	gr_status	status;

	if (len > 0)
		memcpy(copy, bytes, len);
	status = gr_model_load(env, len > 0 ? copy : NULL, len, &model, &extra, err);
	if (status != GR_OK)
		CHECK(model == NULL && extra == NULL);
	gr_model_free(model);
	gr_free(env, extra);
	free(copy);
	return status;
}

/* Expect a load to fail as a corrupt model, with a message containing needle if given. */
static void
expect_corrupt(const gr_env *env, const uint8_t *bytes, size_t len, const char *what,
			   const char *needle)
{
	gr_error	err = {0};
	gr_status	status = load_copy(env, bytes, len, &err);

	CHECK_MSG(status == GR_ERR_CORRUPT_MODEL, "%s: got %s (%s)", what, gr_status_name(status),
			  err.message);
	if (needle != NULL && status == GR_ERR_CORRUPT_MODEL)
		CHECK_MSG(strstr(err.message, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what,
				  err.message, needle);
}

/* Assemble a file from header text (padded with spaces) and a data section. */
static uint8_t *
assemble(const char *header, const uint8_t *data, size_t data_len, size_t *len)
{
	size_t		hlen = strlen(header);
	size_t		padded = hlen + (8 - hlen % 8) % 8;
	uint8_t    *out = malloc(8 + padded + data_len + 1);

	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t) ((uint64_t) padded >> (8 * i));
	memcpy(out + 8, header, hlen);
	memset(out + 8 + hlen, ' ', padded - hlen);
	if (data_len > 0)
		memcpy(out + 8 + padded, data, data_len);
	*len = 8 + padded + data_len;
	return out;
}

/* Header length recorded in a file's first 8 bytes. */
static size_t
header_length(const uint8_t *bytes)
{
	uint64_t	n = 0;

	for (int i = 0; i < 8; i++)
		n |= (uint64_t) bytes[i] << (8 * i);
	return (size_t) n;
}

/* Parse the header of a valid file. */
static cJSON *
parse_file_header(const uint8_t *bytes)
{
	return cJSON_ParseWithLength((const char *) bytes + 8, header_length(bytes));
}

/* Absolute file offset of a tensor's first byte. */
static size_t
tensor_file_offset(const uint8_t *bytes, const char *name)
{
	cJSON	   *root = parse_file_header(bytes);
	cJSON	   *entry = cJSON_GetObjectItemCaseSensitive(root, name);
	size_t		begin = (size_t) cJSON_GetArrayItem(cJSON_GetObjectItem(entry, "data_offsets"),
												   0)->valuedouble;

	cJSON_Delete(root);
	return 8 + header_length(bytes) + begin;
}

/* Replace one key of the configuration stored in the header's metadata. */
static void
edit_config(cJSON *root, const char *key, cJSON *value)
{
	cJSON	   *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
	cJSON	   *config = cJSON_Parse(cJSON_GetObjectItem(meta, "genrec.config")->valuestring);

	if (value == NULL)
		cJSON_DeleteItemFromObjectCaseSensitive(config, key);
	else if (cJSON_HasObjectItem(config, key))
		cJSON_ReplaceItemInObjectCaseSensitive(config, key, value);
	else
		cJSON_AddItemToObject(config, key, value);

	char	   *text = cJSON_PrintUnformatted(config);

	cJSON_ReplaceItemInObjectCaseSensitive(meta, "genrec.config", cJSON_CreateString(text));
	cJSON_free(text);
	cJSON_Delete(config);
}

/* Set a tensor entry's data_offsets. */
static void
set_offsets(cJSON *root, const char *name, double begin, double end)
{
	double		pair[2] = {begin, end};

	cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, name),
										   "data_offsets", cJSON_CreateDoubleArray(pair, 2));
}

/* A data_offsets value of a tensor entry. */
static double
get_offset(cJSON *root, const char *name, int which)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItemCaseSensitive(root, name),
												  "data_offsets"), which)->valuedouble;
}

typedef struct header_case
{
	const char *what;
	const char *needle;			/* expected in the error message, or NULL */
} header_case;

static const header_case header_cases[] = {
	{"unknown dtype", "unsupported dtype"},
	{"wrong dtype", "dtype I64, expected F32"},
	{"dtype not a string", "dtype"},
	{"transposed shape", "shape"},
	{"wrong dimension", NULL},
	{"extra dimension", NULL},
	{"negative dimension", "dimension"},
	{"fractional dimension", "dimension"},
	{"shape not an array", "shape"},
	{"overlapping tensors", "overlaps"},
	{"offsets outside the data", "outside"},
	{"reversed offsets", NULL},
	{"three offsets", "data_offsets"},
	{"negative offset", "data_offsets"},
	{"missing tensor", "missing tensor \"ln_f.bias\""},
	{"extra tensor", "bogus"},
	{"repeated tensor", "ln_f.bias"},
	{"missing item ids", "item_ids"},
	{"unknown entry key", "unknown or repeated key"},
	{"entry not an object", "not an object"},
	{"no metadata", "__metadata__"},
	{"metadata not an object", "__metadata__"},
	{"format version 2", "format version"},
	{"format version as number", "not a string"},
	{"unknown layout", "layout"},
	{"layout differs from config", "does not match"},
	{"config not JSON", "configuration"},
	{"n_head does not divide d_model", "n_head"},
	{"unknown config key", "unknown configuration key"},
	{"missing config key", "missing configuration key"},
	{"fractional n_layer", "integer"},
	{"string n_items", "number"},
	{"more items than ids", NULL},
	{"action arrays too short", "entries"},
	{"action kind 2", "0 or 1"},
	{"action min above max", "min < max"},
	{"extra metadata not JSON", "genrec.extra"},
	{"missing config", "genrec.config"},
	{"huge n_items", "too small"},
};

#define N_HEADER_CASES ((int) (sizeof(header_cases) / sizeof(header_cases[0])))

/* Apply header mutation number which to a parsed header of a PC model. */
static void
mutate_header(cJSON *root, int which)
{
	cJSON	   *emb = cJSON_GetObjectItemCaseSensitive(root, "item_emb");
	cJSON	   *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
	double		b0 = get_offset(root, "blocks.0.ln1.weight", 0),
				e0 = get_offset(root, "blocks.0.ln1.weight", 1);
	switch (which)
	{
		case 0:
			cJSON_ReplaceItemInObject(emb, "dtype", cJSON_CreateString("F16"));
			break;
		case 1:
			cJSON_ReplaceItemInObject(emb, "dtype", cJSON_CreateString("I64"));
			/* keep the byte span consistent so the dtype check is what fails */
			set_offsets(root, "item_emb", get_offset(root, "item_emb", 0),
						get_offset(root, "item_emb", 0) + 8.0 * (N_TEST_ITEMS + 1) * 4 / 2);
			cJSON_ReplaceItemInObject(emb, "shape",
									  cJSON_CreateIntArray((int[]) {N_TEST_ITEMS + 1, 2}, 2));
			break;
		case 2:
			cJSON_ReplaceItemInObject(emb, "dtype", cJSON_CreateNumber(32));
			break;
		case 3:
			cJSON_ReplaceItemInObject(emb, "shape",
									  cJSON_CreateIntArray((int[]) {4, N_TEST_ITEMS + 1}, 2));
			break;
		case 4:
			cJSON_ReplaceItemInObject(emb, "shape",
									  cJSON_CreateIntArray((int[]) {N_TEST_ITEMS + 1, 5}, 2));
			break;
		case 5:
			cJSON_ReplaceItemInObject(emb, "shape",
									  cJSON_CreateIntArray((int[]) {N_TEST_ITEMS + 1, 4, 1}, 3));
			break;
		case 6:
			cJSON_ReplaceItemInObject(emb, "shape",
									  cJSON_CreateIntArray((int[]) {-(N_TEST_ITEMS + 1), -4}, 2));
			break;
		case 7:
			cJSON_ReplaceItemInObject(emb, "shape",
									  cJSON_CreateDoubleArray((double[]) {7.5, 4}, 2));
			break;
		case 8:
			cJSON_ReplaceItemInObject(emb, "shape", cJSON_CreateString("[7,4]"));
			break;
		case 9:
			set_offsets(root, "blocks.0.ln1.bias", b0, e0);
			break;
		case 10:
			set_offsets(root, "item_ids", get_offset(root, "item_ids", 0) + 8,
						get_offset(root, "item_ids", 1) + 8);
			break;
		case 11:
			set_offsets(root, "blocks.0.ln1.weight", e0, b0);
			break;
		case 12:
			cJSON_ReplaceItemInObject(cJSON_GetObjectItem(root, "blocks.0.ln1.weight"),
									  "data_offsets",
									  cJSON_CreateDoubleArray((double[]) {b0, e0, e0}, 3));
			break;
		case 13:
			set_offsets(root, "blocks.0.ln1.weight", -16, 0);
			break;
		case 14:
			cJSON_DeleteItemFromObjectCaseSensitive(root, "ln_f.bias");
			break;
		case 15:
			cJSON_AddItemToObject(root, "bogus",
								  cJSON_Duplicate(cJSON_GetObjectItem(root, "ln_f.bias"), true));
			break;
		case 16:
			cJSON_AddItemToObject(root, "ln_f.bias",
								  cJSON_Duplicate(cJSON_GetObjectItem(root, "ln_f.bias"), true));
			break;
		case 17:
			cJSON_DeleteItemFromObjectCaseSensitive(root, "item_ids");
			break;
		case 18:
			cJSON_AddTrueToObject(emb, "strides");
			break;
		case 19:
			cJSON_ReplaceItemInObjectCaseSensitive(root, "item_emb", cJSON_CreateNumber(1));
			break;
		case 20:
			cJSON_DeleteItemFromObjectCaseSensitive(root, "__metadata__");
			break;
		case 21:
			cJSON_ReplaceItemInObjectCaseSensitive(root, "__metadata__", cJSON_CreateArray());
			break;
		case 22:
			cJSON_ReplaceItemInObject(meta, "genrec.format", cJSON_CreateString("2"));
			break;
		case 23:
			cJSON_ReplaceItemInObject(meta, "genrec.format", cJSON_CreateNumber(1));
			break;
		case 24:
			cJSON_ReplaceItemInObject(meta, "genrec.layout", cJSON_CreateString("nope"));
			break;
		case 25:
			cJSON_ReplaceItemInObject(meta, "genrec.layout", cJSON_CreateString("lac"));
			break;
		case 26:
			cJSON_ReplaceItemInObject(meta, "genrec.config", cJSON_CreateString("{\"layout\":"));
			break;
		case 27:
			edit_config(root, "n_head", cJSON_CreateNumber(3));
			break;
		case 28:
			edit_config(root, "dropout", cJSON_CreateNumber(0.1));
			break;
		case 29:
			edit_config(root, "head_hidden", NULL);
			break;
		case 30:
			edit_config(root, "n_layer", cJSON_CreateNumber(1.5));
			break;
		case 31:
			edit_config(root, "n_items", cJSON_CreateString("6"));
			break;
		case 32:
			edit_config(root, "n_items", cJSON_CreateNumber(N_TEST_ITEMS - 1));
			break;
		case 33:
			edit_config(root, "action_min", cJSON_CreateDoubleArray((double[]) {0.0}, 1));
			break;
		case 34:
			edit_config(root, "action_binary", cJSON_CreateIntArray((int[]) {0, 2}, 2));
			break;
		case 35:
			edit_config(root, "action_max", cJSON_CreateDoubleArray((double[]) {-5.0, 1.0}, 2));
			break;
		case 36:
			cJSON_ReplaceItemInObject(meta, "genrec.extra", cJSON_CreateString("{\"a\":"));
			break;
		case 37:
			cJSON_DeleteItemFromObjectCaseSensitive(meta, "genrec.config");
			break;
		case 38:
			edit_config(root, "n_items", cJSON_CreateNumber(40000000));
			break;
	}
}

/* Every header mutation of a valid PC file must be rejected as corrupt with its message. */
static void
test_header_mutations(const gr_env *env, const uint8_t *bytes, size_t len)
{
	size_t		hlen = header_length(bytes);
	const uint8_t *data = bytes + 8 + hlen;
	size_t		data_len = len - 8 - hlen;

	for (int which = 0; which < N_HEADER_CASES; which++)
	{
		cJSON	   *root = parse_file_header(bytes);

		mutate_header(root, which);

		char	   *text = cJSON_PrintUnformatted(root);
		size_t		out_len;
		uint8_t    *out = assemble(text, data, data_len, &out_len);

		expect_corrupt(env, out, out_len, header_cases[which].what, header_cases[which].needle);
		free(out);
		cJSON_free(text);
		cJSON_Delete(root);
	}
}

/* Reassembling an unmodified header gives a loadable file (the mutation harness is sound). */
static void
test_reassembly(const gr_env *env, const uint8_t *bytes, size_t len)
{
	cJSON	   *root = parse_file_header(bytes);
	char	   *text = cJSON_PrintUnformatted(root);
	size_t		hlen = header_length(bytes),
				out_len;
	uint8_t    *out = assemble(text, bytes + 8 + hlen, len - 8 - hlen, &out_len);
	gr_error	err = {0};

	CHECK_OK(load_copy(env, out, out_len, &err), &err);
	free(out);
	cJSON_free(text);
	cJSON_Delete(root);
}

/* Malformed framing: short buffers, header lengths, bad JSON, trailing bytes. */
static void
test_framing(const gr_env *env, const uint8_t *bytes, size_t len)
{
	size_t		hlen = header_length(bytes);
	uint8_t    *buf = malloc(len + 64);
	size_t		out_len;
	uint8_t    *out;

	/* every truncation */
	for (size_t cut = 0; cut < len; cut++)
	{
		gr_error	err = {0};
		gr_status	status = load_copy(env, bytes, cut, &err);

		CHECK_MSG(status == GR_ERR_CORRUPT_MODEL, "truncation at %zu: %s", cut,
				  gr_status_name(status));
	}
	expect_corrupt(env, bytes, 7, "7 bytes", "too short");

	/* header length fields */
	static const uint64_t bad_lengths[] = {UINT64_MAX, (uint64_t) 1 << 63, 100000001, 0, 1, 7};

	for (int i = 0; i < (int) (sizeof(bad_lengths) / sizeof(bad_lengths[0])); i++)
	{
		memcpy(buf, bytes, len);
		for (int b = 0; b < 8; b++)
			buf[b] = (uint8_t) (bad_lengths[i] >> (8 * b));
		expect_corrupt(env, buf, len, "bad header length", NULL);
	}
	memcpy(buf, bytes, len);
	for (int b = 0; b < 8; b++)
		buf[b] = (uint8_t) ((uint64_t) (len - 8 + 1) >> (8 * b));
	expect_corrupt(env, buf, len, "header length one past the buffer", "exceeds");
	for (int b = 0; b < 8; b++)
		buf[b] = (uint8_t) ((uint64_t) 100000001 >> (8 * b));
	expect_corrupt(env, buf, len, "header over 100 MB", "limit");
	for (int b = 0; b < 8; b++)
		buf[b] = (uint8_t) ((uint64_t) (hlen - 8) >> (8 * b));
	expect_corrupt(env, buf, len, "header length cutting the JSON", NULL);

	/* trailing garbage after the data section */
	memcpy(buf, bytes, len);
	memset(buf + len, 0, 8);
	expect_corrupt(env, buf, len + 8, "trailing data bytes", "trailing");

	/* garbage, non-object and trailing-garbage headers */
	static const char *const bad_headers[] = {
		"{not json", "[1, 2, 3]", "\"just a string\"", "null", "{}", "{\"a\":1} x",
		"{\"__metadata__\":{}}", "\x01\x02\x03", "{\"__metadata__\":{\"genrec.format\":\"1\"}}",
	};

	for (int i = 0; i < (int) (sizeof(bad_headers) / sizeof(bad_headers[0])); i++)
	{
		out = assemble(bad_headers[i], bytes + 8 + hlen, len - 8 - hlen, &out_len);
		expect_corrupt(env, out, out_len, bad_headers[i], NULL);
		free(out);
	}

	/* a non-space byte in the padding after the JSON */
	memcpy(buf, bytes, len);
	for (size_t i = 8 + hlen; i > 8; i--)
		if (buf[i - 1] == '}')
		{
			if (i < 8 + hlen)
				buf[i] = 'x';
			else
				buf[i - 1] = 'x';
			break;
		}
	expect_corrupt(env, buf, len, "garbage after the header JSON", NULL);
	free(buf);
}

/* Corrupt the data section: non-finite weights and unordered item ids. */
static void
test_data_values(const gr_env *env, const uint8_t *bytes, size_t len)
{
	uint8_t    *buf = malloc(len);
	size_t		w = tensor_file_offset(bytes, "blocks.0.attn.qkv.weight") + 4 * 5;
	size_t		ids = tensor_file_offset(bytes, "item_ids");
	static const uint32_t bad_floats[] = {0x7fc00000u, 0x7f800000u, 0xff800000u, 0x7f800001u};

	for (int i = 0; i < (int) (sizeof(bad_floats) / sizeof(bad_floats[0])); i++)
	{
		memcpy(buf, bytes, len);
		for (int b = 0; b < 4; b++)
			buf[w + b] = (uint8_t) (bad_floats[i] >> (8 * b));
		expect_corrupt(env, buf, len, "non-finite weight", "non-finite");
	}
	/* swap ids 2 and 3 (descending) */
	memcpy(buf, bytes, len);
	memcpy(buf + ids + 8, bytes + ids + 16, 8);
	memcpy(buf + ids + 16, bytes + ids + 8, 8);
	expect_corrupt(env, buf, len, "descending item ids", "ascending");
	/* repeat id 1 */
	memcpy(buf, bytes, len);
	memcpy(buf + ids + 8, bytes + ids, 8);
	expect_corrupt(env, buf, len, "repeated item id", "ascending");
	free(buf);
}

/* Random bit flips (header and anywhere) must load or fail cleanly, never crash. */
static void
test_bit_flips(const gr_env *env, const uint8_t *bytes, size_t len)
{
	size_t		hlen = header_length(bytes);
	uint8_t    *buf = malloc(len);
	uint64_t	state = 0x9e3779b97f4a7c15ULL;
	int			loaded = 0,
				rejected = 0,
				other = 0;

	for (int trial = 0; trial < 3000; trial++)
	{
		int			flips = 1 + trial % 3;
		size_t		span = trial < 2400 ? 8 + hlen : len;

		memcpy(buf, bytes, len);
		for (int f = 0; f < flips; f++)
		{
			state ^= state << 13;
			state ^= state >> 7;
			state ^= state << 17;
			buf[(state >> 3) % span] ^= (uint8_t) (1u << (state & 7));
		}

		gr_error	err = {0};
		gr_status	status = load_copy(env, buf, len, &err);

		if (status == GR_OK)
			loaded++;
		else if (status == GR_ERR_CORRUPT_MODEL)
			rejected++;
		else
			other++;
	}
	CHECK_MSG(other == 0, "%d bit-flipped loads returned neither ok nor corrupt", other);
	CHECK(rejected > 0);
	printf("bit flips: %d loaded, %d rejected\n", loaded, rejected);
	free(buf);
}

/* Save and load every layout in memory; everything must come back bit for bit. */
static void
test_round_trips(const gr_env *env)
{
	const char *extra = "{\"epochs\": 3, \"note\": \"caf\\u00e9 \\\"quoted\\\"\\n\", \"hr\": 0.1}";

	for (int i = 0; i < N_LAYOUTS; i++)
	{
		gr_model   *model = make_model(env, all_layouts[i], 42 + i);
		gr_model   *back = NULL;
		char	   *extra_back = NULL;
		size_t		len = 0;
		uint8_t    *bytes;
		gr_error	err = {0};

		if (model == NULL)
			continue;
		bytes = save_bytes(model, extra, &len);
		CHECK(header_length(bytes) % 8 == 0);
		CHECK_OK(gr_model_load(env, bytes, len, &back, &extra_back, &err), &err);
		if (back != NULL)
			check_same_model(model, back);
		CHECK(extra_back != NULL && strcmp(extra_back, extra) == 0);

		/* a reload saves to the same bytes */
		if (back != NULL)
		{
			size_t		len2 = 0;
			uint8_t    *bytes2 = save_bytes(back, extra, &len2);

			CHECK(len2 == len && bytes2 != NULL && memcmp(bytes, bytes2, len) == 0);
			gr_free(env, bytes2);
		}
		gr_model_free(back);
		gr_free(env, extra_back);
		gr_free(env, bytes);

		/* without extra metadata, and without asking for it */
		bytes = save_bytes(model, NULL, &len);
		back = NULL;
		extra_back = (char *) "unset";
		CHECK_OK(gr_model_load(env, bytes, len, &back, &extra_back, &err), &err);
		CHECK(extra_back == NULL);
		gr_model_free(back);
		back = NULL;
		CHECK_OK(gr_model_load(env, bytes, len, &back, NULL, &err), &err);
		if (back != NULL)
			check_same_model(model, back);
		gr_model_free(back);
		gr_free(env, bytes);

		/* invalid extra JSON is refused on save */
		bytes = NULL;
		CHECK(gr_model_save(model, "{\"a\": }", &bytes, &len, &err) == GR_ERR_INVALID_ARGUMENT);
		CHECK(bytes == NULL);
		CHECK(gr_model_save(model, "{} {}", &bytes, &len, &err) == GR_ERR_INVALID_ARGUMENT);
		gr_model_free(model);
	}
}

/* Count the entries of a directory other than . and .. */
static int
count_dir_entries(const char *dir)
{
	DIR		   *d = opendir(dir);
	struct dirent *e;
	int			n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Save and load through files in a fresh temporary directory. */
static void
test_files(const gr_env *env)
{
	char		dir[] = "/tmp/gr_test_io_XXXXXX";
	char		path[256],
				missing[300];
	gr_error	err = {0};

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	for (int i = 0; i < N_LAYOUTS; i++)
	{
		gr_model   *model = make_model(env, all_layouts[i], 7 + i);
		gr_model   *back = NULL;
		char	   *extra = NULL;

		if (model == NULL)
			continue;
		/* the second and later saves replace the file */
		CHECK_OK(gr_model_save_file(model, path, "[1,2,3]", &err), &err);
		CHECK(count_dir_entries(dir) == 1);
		CHECK_OK(gr_model_load_file(env, path, &back, &extra, &err), &err);
		if (back != NULL)
			check_same_model(model, back);
		CHECK(extra != NULL && strcmp(extra, "[1,2,3]") == 0);
		gr_model_free(back);
		gr_free(env, extra);
		gr_model_free(model);
	}

	/* failures are I/O errors and leave nothing behind */
	gr_model   *model = make_model(env, GR_LAYOUT_ITEM, 1);
	gr_model   *back = NULL;

	snprintf(missing, sizeof(missing), "%s/no/such/dir/model.safetensors", dir);
	CHECK(gr_model_save_file(model, missing, NULL, &err) == GR_ERR_IO);
	CHECK(gr_model_load_file(env, missing, &back, NULL, &err) == GR_ERR_IO && back == NULL);
	CHECK(gr_model_load_file(env, dir, &back, NULL, &err) == GR_ERR_IO && back == NULL);
	CHECK(count_dir_entries(dir) == 1);

	/* an empty file is a corrupt model, not a crash */
	FILE	   *f = fopen(path, "w");

	if (f != NULL)
		fclose(f);
	CHECK(gr_model_load_file(env, path, &back, NULL, &err) == GR_ERR_CORRUPT_MODEL);
	gr_model_free(model);
	unlink(path);
	CHECK(rmdir(dir) == 0);
}

/* Configuration JSON: exact round trips and rejection of bad keys and values. */
static void
test_config_json(const gr_env *env)
{
	gr_model_config cfg,
				back;
	char	   *json = NULL;
	gr_error	err = {0};

	small_config(&cfg, GR_LAYOUT_PC);
	cfg.n_actions = 4;
	cfg.action_min[1] = 0.1;
	cfg.action_max[1] = 1e300;
	cfg.action_min[2] = -0.0;
	cfg.action_max[2] = 5e-324;
	cfg.action_min[3] = -123456789.123456789;
	cfg.action_max[3] = 2.0 / 3.0;
	cfg.action_binary[3] = 1;
	cfg.emb_scale = 1.0f / 3.0f;
	CHECK_OK(gr_config_to_json(env, &cfg, &json, &err), &err);
	if (json != NULL)
	{
		memset(&back, 0x55, sizeof(back));
		CHECK_OK(gr_config_from_json(env, json, strlen(json), &back, &err), &err);
		CHECK(same_config(&cfg, &back));
		CHECK(signbit(back.action_min[2]));
		/* no terminator needed: parse a prefix of a longer buffer */
		char	   *longer = malloc(strlen(json) + 8);

		memcpy(longer, json, strlen(json));
		memcpy(longer + strlen(json), "garbage", 7);
		CHECK_OK(gr_config_from_json(env, longer, strlen(json), &back, &err), &err);
		CHECK(gr_config_from_json(env, longer, strlen(json) + 7, &back, &err) ==
			  GR_ERR_INVALID_ARGUMENT);
		free(longer);
		gr_free(env, json);
	}

	for (int i = 0; i < N_LAYOUTS; i++)
	{
		gr_model_config_default(&cfg, all_layouts[i], 100, 1);
		CHECK_OK(gr_config_to_json(env, &cfg, &json, &err), &err);
		CHECK_OK(gr_config_from_json(env, json, strlen(json), &back, &err), &err);
		CHECK(same_config(&cfg, &back));
		gr_free(env, json);
	}

	/* the item losses round-trip; the full softmax writes none of their keys */
	for (int loss = 0; loss < GR_LOSS_COUNT; loss++)
	{
		gr_model_config_default(&cfg, GR_LAYOUT_LAC, 1000, 2);
		cfg.item_loss = loss;
		cfg.negatives = 77 * loss;
		cfg.sampler = loss == GR_LOSS_SAMPLED ? GR_SAMPLER_POPULARITY : GR_SAMPLER_UNIFORM;
		cfg.temperature = 1.0f / 7.0f;
		CHECK_OK(gr_config_to_json(env, &cfg, &json, &err), &err);
		CHECK((strstr(json, "\"loss\"") != NULL) == (loss != GR_LOSS_FULL));
		CHECK((strstr(json, "\"temperature\"") != NULL) == (loss != GR_LOSS_FULL));
		CHECK_OK(gr_config_from_json(env, json, strlen(json), &back, &err), &err);
		CHECK(same_config(&cfg, &back));
		/* negatives_per is written only when it is not the batch */
		CHECK(strstr(json, "\"negatives_per\"") == NULL && back.negatives_per == 0);
		gr_free(env, json);
	}
	/* per-user negatives round-trip */
	gr_model_config_default(&cfg, GR_LAYOUT_ITEM, 1000, 0);
	cfg.item_loss = GR_LOSS_SAMPLED;
	cfg.negatives_per = GR_NEGATIVES_PER_USER;
	CHECK_OK(gr_config_to_json(env, &cfg, &json, &err), &err);
	CHECK(strstr(json, "\"negatives_per\":\"user\"") != NULL);
	CHECK_OK(gr_config_from_json(env, json, strlen(json), &back, &err), &err);
	CHECK(same_config(&cfg, &back) && back.negatives_per == GR_NEGATIVES_PER_USER);
	CHECK(strstr(json, "\"similarity\"") == NULL && back.similarity == GR_SIMILARITY_DOT);
	gr_free(env, json);
	/* the cosine similarity round-trips, and needs a sampled or in-batch loss */
	cfg.similarity = GR_SIMILARITY_COSINE;
	CHECK_OK(gr_config_to_json(env, &cfg, &json, &err), &err);
	CHECK(strstr(json, "\"similarity\":\"cosine\"") != NULL);
	CHECK_OK(gr_config_from_json(env, json, strlen(json), &back, &err), &err);
	CHECK(same_config(&cfg, &back) && back.similarity == GR_SIMILARITY_COSINE);
	cfg.item_loss = GR_LOSS_FULL;
	cfg.negatives_per = GR_NEGATIVES_PER_BATCH;
	CHECK(gr_model_config_validate(&cfg, &err) == GR_ERR_INVALID_ARGUMENT &&
		  strstr(err.message, "similarity \"cosine\" needs loss") != NULL);
	gr_free(env, json);

	/* an invalid configuration is not encoded */
	gr_model_config_default(&cfg, GR_LAYOUT_ITEM, 10, 0);
	cfg.n_head = 3;
	CHECK(gr_config_to_json(env, &cfg, &json, &err) == GR_ERR_INVALID_ARGUMENT && json == NULL);

	static const char *const bad[] = {
		"", "{", "[]", "null", "{\"layout\":\"item\"}",
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":3,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4}",
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4,\"x\":1}",
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4,\"n_items\":5}",
		"{\"layout\":\"item\",\"n_items\":5e9,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4}",
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":1,\"action_binary\":[true],\"action_min\":[0],"
		"\"action_max\":[1],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4}",
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":1,\"action_binary\":[0],\"action_min\":[0],"
		"\"action_max\":[1e999],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4}",
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":0,\"head_hidden\":4}",
		"{\"layout\":\"pc\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4}",
		/* the item loss's keys */
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4,\"loss\":\"nce\"}",
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4,\"loss\":1}",
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4,"
		"\"loss\":\"sampled\",\"negatives\":0}",
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4,"
		"\"loss\":\"sampled\",\"temperature\":0}",
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4,"
		"\"loss\":\"sampled\",\"sampler\":\"zipf\"}",
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4,"
		"\"loss\":\"sampled\",\"negatives_per\":\"item\"}",
		"{\"layout\":\"item\",\"n_items\":5,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4,"
		"\"loss\":\"infonce\",\"negatives_per\":\"user\"}",
	};

	for (int i = 0; i < (int) (sizeof(bad) / sizeof(bad[0])); i++)
	{
		gr_status	status = gr_config_from_json(env, bad[i], strlen(bad[i]), &back, &err);

		CHECK_MSG(status == GR_ERR_INVALID_ARGUMENT, "bad config %d accepted (%s)", i,
				  gr_status_name(status));
	}

	/* integral numbers written with a fraction or exponent are still integers */
	static const char good[] =
		"{\"layout\":\"item\",\"n_items\":5.0,\"d_model\":8,\"n_layer\":1,\"n_head\":2,"
		"\"max_len\":4,\"n_actions\":0,\"action_binary\":[],\"action_min\":[],"
		"\"action_max\":[],\"n_buckets\":2,\"emb_scale\":1,\"head_hidden\":4e0}  \n";

	CHECK_OK(gr_config_from_json(env, good, strlen(good), &back, &err), &err);
	CHECK(back.n_items == 5 && back.head_hidden == 4);
	/* a configuration from before the item losses: the full softmax and the defaults */
	CHECK(back.item_loss == GR_LOSS_FULL && back.negatives == GR_DEFAULT_NEGATIVES &&
		  back.sampler == GR_SAMPLER_UNIFORM && back.temperature == 1.0f &&
		  back.negatives_per == GR_NEGATIVES_PER_BATCH);
}

/* Allocation failures at every step of a save and a load: OOM or success, no leaks. */
static void
test_allocation_failures(void)
{
	counting_allocator counter;
	gr_env		env;
	gr_model   *model;
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	gr_error	err = {0};
	gr_status	status;

	counting_env(&env, &counter);
	model = make_model(&env, GR_LAYOUT_LAC, 3);
	if (model == NULL)
		return;
	long		base = counter.live;

	for (long fail_at = 0;; fail_at++)
	{
		counter.calls = 0;
		counter.fail_at = fail_at;
		status = gr_model_save(model, "{}", &bytes, &len, &err);
		CHECK(status == GR_OK || status == GR_ERR_OUT_OF_MEMORY);
		if (status == GR_OK)
			break;
		CHECK(counter.live == base && bytes == NULL);
	}
	counter.fail_at = -1;
	for (long fail_at = 0;; fail_at++)
	{
		gr_model   *back = NULL;
		char	   *extra = NULL;

		counter.calls = 0;
		counter.fail_at = fail_at;
		status = gr_model_load(&env, bytes, len, &back, &extra, &err);
		CHECK(status == GR_OK || status == GR_ERR_OUT_OF_MEMORY);
		if (status == GR_OK)
		{
			counter.fail_at = -1;
			check_same_model(model, back);
			gr_model_free(back);
			gr_free(&env, extra);
			CHECK(counter.live == base + 1);
			break;
		}
		CHECK(counter.live == base + 1 && back == NULL && extra == NULL);
	}
	counter.fail_at = -1;
	gr_free(&env, bytes);
	gr_model_free(model);
	CHECK(counter.live == 0);
}

/* A header of `values` zeros in an array, padded to exactly hlen bytes when hlen is given. */
static char *
zeros_array(size_t values, size_t hlen)
{
	size_t		len = GR_MAX(2 * values + 1, hlen);
	char	   *text = malloc(len + 1);

	memset(text, ' ', len);
	text[0] = '[';
	for (size_t i = 0; i < values; i++)
	{
		text[1 + 2 * i] = '0';
		text[2 + 2 * i] = i + 1 < values ? ',' : ']';
	}
	text[len] = '\0';
	return text;
}

/* Load a file made of header text and an empty data section with a fresh counting allocator;
 * returns the status and the allocations the load asked env for. */
static gr_status
load_header_only(const char *header, long *allocations, gr_error *err)
{
	counting_allocator counter;
	gr_env		env;
	size_t		len;
	uint8_t    *bytes = assemble(header, NULL, 0, &len);
	gr_status	status;

	counting_env(&env, &counter);
	status = load_copy(&env, bytes, len, err);
	*allocations = counter.calls;
	CHECK(counter.live == 0);
	free(bytes);
	return status;
}

/* The header is bounded before it is parsed: bytes, values and depth; nothing is allocated. */
static void
test_header_limits(void)
{
	gr_error	err = {0};
	long		allocations;
	char	   *text;

	/* a 100 MB header is refused by its length prefix alone */
	{
		uint8_t		prefix[16] = {0};
		uint64_t	n = 100u << 20;
		counting_allocator counter;
		gr_env		env;

		for (int i = 0; i < 8; i++)
			prefix[i] = (uint8_t) (n >> (8 * i));
		counting_env(&env, &counter);
		CHECK(load_copy(&env, prefix, sizeof(prefix), &err) == GR_ERR_CORRUPT_MODEL);
		CHECK(strstr(err.message, "16777216-byte limit") != NULL);
		CHECK(counter.calls == 0);
	}

	/* just over 16 MiB of valid JSON: refused before cJSON sees it */
	text = zeros_array(1000, (16u << 20) + 8);
	CHECK(load_header_only(text, &allocations, &err) == GR_ERR_CORRUPT_MODEL);
	CHECK_MSG(strstr(err.message, "limit") != NULL, "%s", err.message);
	CHECK(allocations == 0);
	free(text);

	/* a small header with more values than any model has */
	text = zeros_array(GR_IO_MAX_HEADER_VALUES + 1, 0);
	CHECK(load_header_only(text, &allocations, &err) == GR_ERR_CORRUPT_MODEL);
	CHECK_MSG(strstr(err.message, "too many values") != NULL, "%s", err.message);
	CHECK(allocations == 0);
	free(text);

	/* nesting deeper than a header's three levels */
	CHECK(load_header_only("{\"a\":[[[[[[1]]]]]]}", &allocations, &err) ==
		  GR_ERR_CORRUPT_MODEL);
	CHECK_MSG(strstr(err.message, "too deep") != NULL, "%s", err.message);
	CHECK(allocations == 0);

	/* within the limits, the parse allocates through env (and frees it all) */
	CHECK(load_header_only("[0,0,0,0]", &allocations, &err) == GR_ERR_CORRUPT_MODEL);
	CHECK_MSG(strstr(err.message, "not a JSON object") != NULL, "%s", err.message);
	CHECK(allocations >= 5);
}

/* Replace (or with value NULL delete) one metadata string of a parsed header. */
static void
set_metadata(cJSON *root, const char *key, const char *value)
{
	cJSON	   *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");

	cJSON_DeleteItemFromObjectCaseSensitive(meta, key);
	if (value != NULL)
		cJSON_AddStringToObject(meta, key, value);
}

/* Reassemble a file whose header text is given, with the data section of a valid file. */
static gr_status
load_with_header_text(const gr_env *env, const uint8_t *bytes, size_t len, const char *header,
					  gr_error *err)
{
	size_t		hlen = header_length(bytes),
				out_len;
	uint8_t    *out = assemble(header, bytes + 8 + hlen, len - 8 - hlen, &out_len);
	gr_status	status = load_copy(env, out, out_len, err);

	free(out);
	return status;
}

/* Load a valid file with one metadata key changed. */
static gr_status
load_with_metadata(const gr_env *env, const uint8_t *bytes, size_t len, const char *key,
				   const char *value, gr_error *err)
{
	cJSON	   *root = parse_file_header(bytes);
	char	   *text;
	gr_status	status;

	set_metadata(root, key, value);
	text = cJSON_PrintUnformatted(root);
	status = load_with_header_text(env, bytes, len, text, err);
	cJSON_free(text);
	cJSON_Delete(root);
	return status;
}

/* Metadata: genrec's keys are all known, others ignored; the extra is bounded JSON whose
 * parse allocates through env; the writer refuses what the reader would. */
static void
test_metadata_rules(const gr_env *env)
{
	gr_model   *model = make_model(env, GR_LAYOUT_LAC, 21);
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	gr_error	err = {0};

	if (model == NULL)
		return;
	bytes = save_bytes(model, "{\"k\":1}", &len);
	if (bytes == NULL)
	{
		gr_model_free(model);
		return;
	}

	/* another tool's metadata is ignored; an unknown genrec key is not */
	CHECK_OK(load_with_metadata(env, bytes, len, "format", "pt", &err), &err);
	CHECK(load_with_metadata(env, bytes, len, "genrec.future", "1", &err) ==
		  GR_ERR_CORRUPT_MODEL);
	CHECK(strstr(err.message, "unknown model metadata \"genrec.future\"") != NULL);

	/* a NUL escape would silently cut a string short: refused, at either level */
	{
		cJSON	   *root = parse_file_header(bytes);
		char	   *text,
				   *at;

		set_metadata(root, "genrec.extra", "{}XXXXXXgarbage");
		text = cJSON_PrintUnformatted(root);
		at = strstr(text, "XXXXXX");
		memcpy(at, "\\u0000", 6);
		CHECK(load_with_header_text(env, bytes, len, text, &err) == GR_ERR_CORRUPT_MODEL);
		CHECK_MSG(strstr(err.message, "\\u0000") != NULL, "%s", err.message);
		cJSON_free(text);
		cJSON_Delete(root);
	}
	CHECK(load_with_metadata(env, bytes, len, "genrec.extra", "{\"a\":\"x\\u0000y\"}", &err) ==
		  GR_ERR_CORRUPT_MODEL);
	CHECK_MSG(strstr(err.message, "genrec.extra") != NULL, "%s", err.message);

	/* the extra's values are bounded, and its parse allocates through env */
	{
		char	   *many = zeros_array(GR_IO_MAX_EXTRA_VALUES + 1, 0);
		counting_allocator counter;
		gr_env		cenv;
		uint8_t    *out = NULL;
		size_t		out_len;

		CHECK(load_with_metadata(env, bytes, len, "genrec.extra", many, &err) ==
			  GR_ERR_CORRUPT_MODEL);
		CHECK_MSG(strstr(err.message, "too many values") != NULL, "%s", err.message);
		/* and the writer refuses it first */
		CHECK(gr_model_save(model, many, &out, &out_len, &err) == GR_ERR_INVALID_ARGUMENT);
		CHECK(out == NULL && strstr(err.message, "too many values") != NULL);
		free(many);

		many = zeros_array(2000, 0);
		counting_env(&cenv, &counter);
		CHECK_OK(load_with_metadata(&cenv, bytes, len, "genrec.extra", many, &err), &err);
		CHECK_MSG(counter.calls > 2000, "%ld allocations through env", counter.calls);
		CHECK(counter.live == 0);
		free(many);
	}

	/* the writer keeps the header within its byte limit */
	{
		size_t		n = (16u << 20) + 16;
		char	   *big = malloc(n + 3);
		uint8_t    *out = NULL;
		size_t		out_len;

		big[0] = '"';
		memset(big + 1, 'a', n);
		big[n + 1] = '"';
		big[n + 2] = '\0';
		CHECK(gr_model_save(model, big, &out, &out_len, &err) == GR_ERR_INVALID_ARGUMENT);
		CHECK_MSG(out == NULL && strstr(err.message, "too many bytes") != NULL, "%s",
				  err.message);
		/* an extra just under the limit passes its own check, but not the header around it */
		big[n + 1 - 64] = '"';
		big[n + 2 - 64] = '\0';
		CHECK(gr_model_save(model, big, &out, &out_len, &err) == GR_ERR_INVALID_ARGUMENT);
		CHECK_MSG(out == NULL && strstr(err.message, "model header of") != NULL, "%s",
				  err.message);
		free(big);
	}
	gr_free(env, bytes);
	gr_model_free(model);
}

/* Write one valid file per layout into dir, as a fuzzing seed corpus. */
static void
write_seed_corpus(const gr_env *env, const char *dir)
{
	char		path[512];
	gr_error	err = {0};

	for (int i = 0; i < N_LAYOUTS; i++)
	{
		gr_model   *model = make_model(env, all_layouts[i], 100 + i);

		if (model == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/seed_%s.safetensors", dir, model->layout->name);
		CHECK_OK(gr_model_save_file(model, path, i % 2 ? "{\"seed\":1}" : NULL, &err), &err);
		gr_model_free(model);
	}
}

/* Run every test of the configuration JSON and the safetensors writer and reader. */
int
main(void)
{
	gr_env		env;
	gr_model   *model;
	uint8_t    *bytes;
	size_t		len = 0;
	const char *seed_dir = getenv("GR_TEST_IO_SEED_DIR");

	gr_env_default(&env);
	test_config_json(&env);
	test_round_trips(&env);
	test_files(&env);

	model = make_model(&env, GR_LAYOUT_PC, 5);
	if (model != NULL)
	{
		bytes = save_bytes(model, "{\"k\":1}", &len);
		if (bytes != NULL)
		{
			printf("PC test file: %zu bytes, header %zu\n", len, header_length(bytes));
			test_reassembly(&env, bytes, len);
			test_framing(&env, bytes, len);
			test_header_mutations(&env, bytes, len);
			test_data_values(&env, bytes, len);
			test_bit_flips(&env, bytes, len);
			gr_free(&env, bytes);
		}
		gr_model_free(model);
	}
	test_allocation_failures();
	test_header_limits();
	test_metadata_rules(&env);
	if (seed_dir != NULL)
		write_seed_corpus(&env, seed_dir);
	return unit_finish("test_io");
}
