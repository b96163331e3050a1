/*
 * gr_io.c — models as safetensors bytes and files (gr_io.h).
 *
 * Layout of a file: u64 little-endian header length N, N bytes of JSON header padded with
 * spaces to a multiple of 8, then the data section. The writer stores the parameter tensors in
 * table order followed by "item_ids", back to back, so the data section is exactly covered.
 * The reader trusts nothing: every length, offset, shape and value is checked before use and
 * all arithmetic on sizes is overflow-checked. Every JSON text (header, configuration, extra
 * metadata) is bounded before it is parsed (GR_IO_MAX_HEADER_BYTES and the value and depth
 * limits below), and cJSON allocates through the gr_env of the call (gr_json.h). cJSON trees
 * are transient and freed before returning; everything that outlives a call is allocated
 * through the gr_env.
 */
#include "gr_io.h"
#include "gr_json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_LEN_BYTES 8
#define MAX_HEADER_BYTES ((uint64_t) GR_IO_MAX_HEADER_BYTES)
#define MAX_SHAPE_DIMS 8
#define MAX_EXACT_DOUBLE_INT 9007199254740992.0	/* 2^53 */
#define ITEM_IDS_NAME "item_ids"
#define FORMAT_VERSION_TEXT "1"
#define METADATA_NAMESPACE "genrec."

/* The header: one object of at most 12 + 12 * GR_MAX_LAYERS + 2 entries of at most 14 values
 * each (a few thousand values), three levels deep; the extra metadata travels in it as one
 * string. */
static const gr_json_limits header_limits = {GR_IO_MAX_HEADER_BYTES, GR_IO_MAX_HEADER_VALUES, 4};

/* The extra metadata: caller JSON such as a training summary with its per-epoch history. */
static const gr_json_limits extra_limits = {GR_IO_MAX_HEADER_BYTES, GR_IO_MAX_EXTRA_VALUES, 64};

typedef enum st_dtype
{
	ST_F32,
	ST_I64
} st_dtype;

/* One tensor entry of a parsed header. */
typedef struct header_entry
{
	const char *name;
	st_dtype	dtype;
	int			ndim;
	int64_t		shape[MAX_SHAPE_DIMS];
	size_t		begin;			/* bytes from the start of the data section */
	size_t		end;
	int			tensor;			/* matched model tensor, n_tensors for item_ids, -1 none */
} header_entry;

/* Everything a load holds, so that one cleanup path frees it all. */
typedef struct load_state
{
	const gr_env *env;
	const uint8_t *data;		/* the data section */
	size_t		data_len;
	cJSON	   *header;
	const cJSON *metadata;
	gr_model_config cfg;
	header_entry *entries;
	int			n_entries;
	gr_model   *model;
	float	   *host;
	int64_t    *item_ids;
	char	   *extra;
} load_state;

/* Store v as 8 little-endian bytes. */
static void
put_le64(uint8_t *dst, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		dst[i] = (uint8_t) (v >> (8 * i));
}

/* Read 8 little-endian bytes. */
static uint64_t
get_le64(const uint8_t *src)
{
	uint64_t	v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t) src[i] << (8 * i);
	return v;
}

/* Store v as 4 little-endian bytes. */
static void
put_le32(uint8_t *dst, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		dst[i] = (uint8_t) (v >> (8 * i));
}

/* Read 4 little-endian bytes. */
static uint32_t
get_le32(const uint8_t *src)
{
	return (uint32_t) src[0] | (uint32_t) src[1] << 8 | (uint32_t) src[2] << 16 |
		(uint32_t) src[3] << 24;
}

/* True when the bits of an IEEE-754 single are an infinity or a NaN. */
static bool
f32_bits_non_finite(uint32_t bits)
{
	return (bits & 0x7f800000u) == 0x7f800000u;
}

/* Add a checked size to a running total; false on overflow. */
static bool
add_size(size_t *total, size_t amount)
{
	return !__builtin_add_overflow(*total, amount, total);
}

/* ------------------------------------------------------------------------------------------ */
/* Saving                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Add a raw (preformatted) number to an array; false when cJSON runs out of memory. */
static bool
append_raw(cJSON *array, const char *text)
{
	cJSON	   *item = cJSON_CreateRaw(text);

	if (item == NULL)
		return false;
	if (!cJSON_AddItemToArray(array, item))
	{
		cJSON_Delete(item);
		return false;
	}
	return true;
}

/* Add one tensor entry {dtype, shape, data_offsets} to the header; false on OOM. */
static bool
add_header_entry(cJSON *root, const char *name, const char *dtype, int ndim,
				 const int64_t *shape, size_t begin, size_t end)
{
	cJSON	   *entry = cJSON_AddObjectToObject(root, name);
	cJSON	   *dims = NULL,
			   *offsets = NULL;
	char		text[32];
	bool		ok = entry != NULL;

	ok = ok && cJSON_AddStringToObject(entry, "dtype", dtype) != NULL;
	ok = ok && (dims = cJSON_AddArrayToObject(entry, "shape")) != NULL;
	for (int i = 0; ok && i < ndim; i++)
	{
		snprintf(text, sizeof(text), "%lld", (long long) shape[i]);
		ok = append_raw(dims, text);
	}
	ok = ok && (offsets = cJSON_AddArrayToObject(entry, "data_offsets")) != NULL;
	snprintf(text, sizeof(text), "%zu", begin);
	ok = ok && append_raw(offsets, text);
	snprintf(text, sizeof(text), "%zu", end);
	ok = ok && append_raw(offsets, text);
	return ok;
}

/* Byte size of the data section of a model: every tensor as F32 plus the I64 item ids. */
static bool
data_section_size(const gr_model *model, size_t *total)
{
	size_t		bytes;

	*total = 0;
	for (int t = 0; t < model->n_tensors; t++)
		if (!gr_mul_size(model->tensors[t].numel, sizeof(float), &bytes) ||
			!add_size(total, bytes))
			return false;
	return gr_mul_size((size_t) model->cfg.n_items, sizeof(int64_t), &bytes) &&
		add_size(total, bytes);
}

/* Build the header JSON text (freed with cJSON_free) for a model's tensors and metadata. */
static gr_status
build_header(const gr_model *model, const char *config_json, const char *extra_json,
			 char **header, gr_error *err)
{
	cJSON	   *root = cJSON_CreateObject();
	cJSON	   *meta = NULL;
	size_t		offset = 0;
	bool		ok = root != NULL;
	int64_t		n_items = model->cfg.n_items;

	*header = NULL;
	ok = ok && (meta = cJSON_AddObjectToObject(root, "__metadata__")) != NULL;
	ok = ok && cJSON_AddStringToObject(meta, "genrec.format", FORMAT_VERSION_TEXT) != NULL;
	ok = ok && cJSON_AddStringToObject(meta, "genrec.layout", model->layout->name) != NULL;
	ok = ok && cJSON_AddStringToObject(meta, "genrec.config", config_json) != NULL;
	if (extra_json != NULL)
		ok = ok && cJSON_AddStringToObject(meta, "genrec.extra", extra_json) != NULL;
	for (int t = 0; ok && t < model->n_tensors; t++)
	{
		const gr_tensor *ten = &model->tensors[t];
		size_t		bytes = ten->numel * sizeof(float); /* fits: checked by the caller */

		ok = add_header_entry(root, ten->name, "F32", ten->ndim, ten->shape, offset,
							  offset + bytes);
		offset += bytes;
	}
	ok = ok && add_header_entry(root, ITEM_IDS_NAME, "I64", 1, &n_items, offset,
								offset + (size_t) n_items * sizeof(int64_t));
	if (ok)
		*header = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (*header == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory building a model header");
	if (strlen(*header) > GR_IO_MAX_HEADER_BYTES)
	{
		size_t		bytes = strlen(*header);

		cJSON_free(*header);
		*header = NULL;
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT,
					   "model header of %zu bytes exceeds the %d-byte limit (too much extra "
					   "metadata)", bytes, GR_IO_MAX_HEADER_BYTES);
	}
	return GR_OK;
}

/* Check that extra_json (when given) is one JSON value within the limits a load applies. */
static gr_status
check_extra_json(const gr_env *env, const char *extra_json, gr_error *err)
{
	cJSON	   *parsed;

	if (extra_json == NULL)
		return GR_OK;
	GR_TRY(gr_json_parse(env, extra_json, strlen(extra_json), &extra_limits, "extra metadata",
						 GR_ERR_INVALID_ARGUMENT, &parsed, err));
	gr_json_delete(parsed);
	return GR_OK;
}

/* Copy the parameters to the host and make sure every value is finite. */
static gr_status
download_finite_params(const gr_model *model, float **host, gr_error *err)
{
	float	   *buf = gr_alloc(model->env, model->n_params * sizeof(float));
	gr_status	status;

	*host = NULL;
	if (buf == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory copying %zu parameters",
					   model->n_params);
	gr_model_download_params(model, buf);
	status = model->ops->check(model->ops->ctx, err);
	for (int t = 0; status == GR_OK && t < model->n_tensors; t++)
	{
		const gr_tensor *ten = &model->tensors[t];

		for (size_t i = 0; i < ten->numel; i++)
		{
			uint32_t	bits;

			memcpy(&bits, buf + ten->offset + i, sizeof(bits));
			if (f32_bits_non_finite(bits))
			{
				status = gr_fail(err, GR_ERR_NUMERIC,
								 "tensor \"%s\" holds a non-finite value at element %zu",
								 ten->name, i);
				break;
			}
		}
	}
	if (status != GR_OK)
	{
		gr_free(model->env, buf);
		return status;
	}
	*host = buf;
	return GR_OK;
}

/* Write the length prefix, the padded header and the data section into out. */
static void
write_file_bytes(const gr_model *model, const float *host, const char *header,
				 size_t header_padded, uint8_t *out)
{
	size_t		header_len = strlen(header);
	uint8_t    *p = out;

	put_le64(p, (uint64_t) header_padded);
	p += HEADER_LEN_BYTES;
	memcpy(p, header, header_len);
	memset(p + header_len, ' ', header_padded - header_len);
	p += header_padded;
	for (int t = 0; t < model->n_tensors; t++)
	{
		const gr_tensor *ten = &model->tensors[t];
		const float *src = host + ten->offset;

		for (size_t i = 0; i < ten->numel; i++)
		{
			uint32_t	bits;

			memcpy(&bits, src + i, sizeof(bits));
			put_le32(p, bits);
			p += 4;
		}
	}
	for (int i = 1; i <= model->cfg.n_items; i++)
	{
		put_le64(p, (uint64_t) model->item_ids[i]);
		p += 8;
	}
}

/* Serialise a model to safetensors bytes allocated through the model's env. */
gr_status
gr_model_save(const gr_model *model, const char *extra_json, uint8_t **bytes, size_t *len,
			  gr_error *err)
{
	const gr_env *env = model->env;
	char	   *config_json = NULL;
	char	   *header = NULL;
	float	   *host = NULL;
	uint8_t    *out = NULL;
	size_t		data_len,
				header_padded,
				total;
	gr_json_scope scope;
	gr_status	status;

	*bytes = NULL;
	*len = 0;
	status = check_extra_json(env, extra_json, err);
	if (status == GR_OK && !data_section_size(model, &data_len))
		status = gr_fail(err, GR_ERR_INTERNAL, "model too large to serialise");
	if (status == GR_OK)
		status = gr_config_to_json(env, &model->cfg, &config_json, err);
	if (status == GR_OK)
		status = download_finite_params(model, &host, err);
	if (status == GR_OK)
	{
		gr_json_scope_begin(&scope, env);
		status = build_header(model, config_json, extra_json, &header, err);
		gr_json_scope_end(&scope);
	}
	if (status == GR_OK)
	{
		header_padded = strlen(header);
		header_padded += (8 - header_padded % 8) % 8;
		total = HEADER_LEN_BYTES;
		if (!add_size(&total, header_padded) || !add_size(&total, data_len))
			status = gr_fail(err, GR_ERR_INTERNAL, "model too large to serialise");
		else if ((out = gr_alloc(env, total)) == NULL)
			status = gr_fail(err, GR_ERR_OUT_OF_MEMORY,
							 "out of memory for a %zu-byte model file", total);
	}
	if (status == GR_OK)
	{
		write_file_bytes(model, host, header, header_padded, out);
		*bytes = out;
		*len = total;
	}
	if (header != NULL)
		cJSON_free(header);
	gr_free(env, host);
	gr_free(env, config_json);
	return status;
}

/* Write all of buf to fd, retrying short writes and interruptions. */
static bool
write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t) n;
	}
	return true;
}

/* Create a fresh temporary file next to path; returns the descriptor or -1 (errno set). */
static int
create_temp_file(const char *path, char *temp_path, size_t temp_size)
{
	for (int attempt = 0; attempt < 100; attempt++)
	{
		snprintf(temp_path, temp_size, "%s.tmp.%ld.%d", path, (long) getpid(), attempt);

		int			fd = open(temp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);

		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

/* Flush the directory holding path so a completed rename survives a crash (best effort). */
static void
sync_parent_directory(const char *path, char *scratch, size_t scratch_size)
{
	const char *slash = strrchr(path, '/');
	int			fd;

	if (slash == NULL)
		snprintf(scratch, scratch_size, ".");
	else if (slash == path)
		snprintf(scratch, scratch_size, "/");
	else
		snprintf(scratch, scratch_size, "%.*s", (int) (slash - path), path);
	fd = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
	{
		(void) fsync(fd);
		close(fd);
	}
}

/* Save a model to path through a temporary file in the same directory and a rename. */
gr_status
gr_model_save_file(const gr_model *model, const char *path, const char *extra_json,
				   gr_error *err)
{
	const gr_env *env = model->env;
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	size_t		temp_size = strlen(path) + 64;
	char	   *temp_path;
	int			fd;
	int			saved_errno;
	gr_status	status;

	GR_TRY(gr_model_save(model, extra_json, &bytes, &len, err));
	temp_path = gr_alloc(env, temp_size);
	if (temp_path == NULL)
	{
		gr_free(env, bytes);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory saving a model");
	}
	fd = create_temp_file(path, temp_path, temp_size);
	if (fd < 0)
	{
		status = gr_fail(err, GR_ERR_IO, "could not create \"%s\": %s", temp_path,
						 strerror(errno));
		gr_free(env, temp_path);
		gr_free(env, bytes);
		return status;
	}
	if (!write_all(fd, bytes, len) || fsync(fd) != 0)
	{
		saved_errno = errno;
		close(fd);
		status = gr_fail(err, GR_ERR_IO, "could not write \"%s\": %s", temp_path,
						 strerror(saved_errno));
	}
	else if (close(fd) != 0)
		status = gr_fail(err, GR_ERR_IO, "could not write \"%s\": %s", temp_path,
						 strerror(errno));
	else if (rename(temp_path, path) != 0)
		status = gr_fail(err, GR_ERR_IO, "could not rename \"%s\" to \"%s\": %s", temp_path,
						 path, strerror(errno));
	else
	{
		status = GR_OK;
		sync_parent_directory(path, temp_path, temp_size);
	}
	if (status != GR_OK)
		unlink(temp_path);
	gr_free(env, temp_path);
	gr_free(env, bytes);
	return status;
}

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Read the length prefix, parse the JSON header and locate the data section. */
static gr_status
parse_header(load_state *st, const uint8_t *bytes, size_t len, gr_error *err)
{
	uint64_t	header_len;
	const char *text;

	if (bytes == NULL || len < HEADER_LEN_BYTES)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "model file too short: %zu bytes, need at least %d", len,
					   HEADER_LEN_BYTES);
	header_len = get_le64(bytes);
	if (header_len > MAX_HEADER_BYTES)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "model header length %llu exceeds the %llu-byte limit",
					   (unsigned long long) header_len, (unsigned long long) MAX_HEADER_BYTES);
	if (header_len > len - HEADER_LEN_BYTES)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "model header length %llu exceeds the %zu bytes that follow it",
					   (unsigned long long) header_len, len - HEADER_LEN_BYTES);
	if (header_len == 0)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "model header is empty");
	text = (const char *) bytes + HEADER_LEN_BYTES;
	GR_TRY(gr_json_parse(st->env, text, (size_t) header_len, &header_limits, "model header",
						 GR_ERR_CORRUPT_MODEL, &st->header, err));
	if (!cJSON_IsObject(st->header))
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "model header is not a JSON object");
	st->data = bytes + HEADER_LEN_BYTES + header_len;
	st->data_len = len - HEADER_LEN_BYTES - (size_t) header_len;
	return GR_OK;
}

/* Find the one "__metadata__" object of the header. */
static gr_status
find_metadata(load_state *st, gr_error *err)
{
	const cJSON *member;

	st->metadata = NULL;
	cJSON_ArrayForEach(member, st->header)
	{
		if (strcmp(member->string, "__metadata__") != 0)
			continue;
		if (st->metadata != NULL)
			return gr_fail(err, GR_ERR_CORRUPT_MODEL, "model header has two \"__metadata__\"");
		st->metadata = member;
	}
	if (st->metadata == NULL)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "model header has no \"__metadata__\"");
	if (!cJSON_IsObject(st->metadata))
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "model \"__metadata__\" is not an object");
	cJSON_ArrayForEach(member, st->metadata)
	{
		if (!cJSON_IsString(member))
			return gr_fail(err, GR_ERR_CORRUPT_MODEL,
						   "model metadata \"%.64s\" is not a string", member->string);
		/* keys of other tools (e.g. "format") are theirs; genrec's own are all known */
		if (strncmp(member->string, METADATA_NAMESPACE, strlen(METADATA_NAMESPACE)) == 0 &&
			strcmp(member->string, "genrec.format") != 0 &&
			strcmp(member->string, "genrec.layout") != 0 &&
			strcmp(member->string, "genrec.config") != 0 &&
			strcmp(member->string, "genrec.extra") != 0)
			return gr_fail(err, GR_ERR_CORRUPT_MODEL, "unknown model metadata \"%.64s\"",
						   member->string);
	}
	return GR_OK;
}

/* The string value of a metadata key that must appear exactly once, or NULL if absent. */
static gr_status
metadata_string(const load_state *st, const char *key, bool required, const char **value,
				gr_error *err)
{
	const cJSON *member;

	*value = NULL;
	cJSON_ArrayForEach(member, st->metadata)
	{
		if (strcmp(member->string, key) != 0)
			continue;
		if (*value != NULL)
			return gr_fail(err, GR_ERR_CORRUPT_MODEL, "model metadata \"%s\" appears twice",
						   key);
		*value = member->valuestring;
	}
	if (*value == NULL && required)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "model metadata \"%s\" is missing", key);
	return GR_OK;
}

/* Validate the metadata: format version, layout, configuration and extra JSON. */
static gr_status
read_metadata(load_state *st, char **extra_json, gr_error *err)
{
	const char *format,
			   *layout_name,
			   *config_json,
			   *extra;
	gr_status	status;

	GR_TRY(find_metadata(st, err));
	GR_TRY(metadata_string(st, "genrec.format", true, &format, err));
	GR_TRY(metadata_string(st, "genrec.layout", true, &layout_name, err));
	GR_TRY(metadata_string(st, "genrec.config", true, &config_json, err));
	GR_TRY(metadata_string(st, "genrec.extra", false, &extra, err));
	if (strcmp(format, FORMAT_VERSION_TEXT) != 0)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "unsupported model format version \"%.16s\" (expected %d)", format,
					   GR_FORMAT_VERSION);
	status = gr_config_from_json(st->env, config_json, strlen(config_json), &st->cfg, err);
	if (status == GR_ERR_OUT_OF_MEMORY)
		return status;
	if (status != GR_OK)
	{
		char		reason[GR_ERROR_MESSAGE_LEN];

		snprintf(reason, sizeof(reason), "%s", err ? err->message : "");
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "bad model configuration: %s", reason);
	}
	if (strcmp(layout_name, gr_layout_by_id(st->cfg.layout)->name) != 0)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "model layout \"%.32s\" does not match its configuration (\"%s\")",
					   layout_name, gr_layout_by_id(st->cfg.layout)->name);
	if (extra != NULL)
	{
		cJSON	   *parsed;

		GR_TRY(gr_json_parse(st->env, extra, strlen(extra), &extra_limits,
							 "model metadata \"genrec.extra\"", GR_ERR_CORRUPT_MODEL, &parsed,
							 err));
		gr_json_delete(parsed);
		if (extra_json != NULL)
		{
			size_t		extra_len = strlen(extra);

			st->extra = gr_alloc(st->env, extra_len + 1);
			if (st->extra == NULL)
				return gr_fail(err, GR_ERR_OUT_OF_MEMORY,
							   "out of memory for %zu bytes of extra metadata", extra_len);
			memcpy(st->extra, extra, extra_len + 1);
		}
	}
	return GR_OK;
}

/*
 * Reject a data section too small for the configuration before allocating the model, so a
 * tiny file cannot make us allocate a huge one: the floats of every declared tensor and the
 * item ids are exactly what the data section must hold at least.
 */
static gr_status
check_data_lower_bound(const load_state *st, gr_error *err)
{
	const gr_model_config *c = &st->cfg;
	size_t		floats = gr_model_config_tensor_floats(c),
				bytes,
				id_bytes;
	bool		ok;

	ok = floats > 0 && gr_mul_size(floats, sizeof(float), &bytes);
	ok = ok && gr_mul_size((size_t) c->n_items, sizeof(int64_t), &id_bytes) &&
		add_size(&bytes, id_bytes);
	if (!ok || bytes > st->data_len)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "model data section of %zu bytes is too small for its configuration",
					   st->data_len);
	return GR_OK;
}

/* Read a JSON number that is an integer in [0, 2^53]. */
static bool
json_size(const cJSON *item, uint64_t *out)
{
	if (!cJSON_IsNumber(item))
		return false;

	double		v = item->valuedouble;

	if (!(v >= 0.0 && v <= MAX_EXACT_DOUBLE_INT) || v != (double) (uint64_t) v)
		return false;
	*out = (uint64_t) v;
	return true;
}

/* Decode the "shape" array of a tensor entry and its element count. */
static gr_status
parse_shape(const cJSON *item, header_entry *e, size_t *numel, gr_error *err)
{
	const cJSON *dim;

	if (!cJSON_IsArray(item))
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "tensor \"%.64s\" shape is not an array",
					   e->name);
	e->ndim = 0;
	*numel = 1;
	cJSON_ArrayForEach(dim, item)
	{
		uint64_t	v;

		if (e->ndim == MAX_SHAPE_DIMS)
			return gr_fail(err, GR_ERR_CORRUPT_MODEL,
						   "tensor \"%.64s\" has more than %d dimensions", e->name,
						   MAX_SHAPE_DIMS);
		if (!json_size(dim, &v) || !gr_mul_size(*numel, (size_t) v, numel))
			return gr_fail(err, GR_ERR_CORRUPT_MODEL,
						   "tensor \"%.64s\" has an invalid dimension", e->name);
		e->shape[e->ndim++] = (int64_t) v;
	}
	return GR_OK;
}

/* Decode the "data_offsets" pair of a tensor entry and check it against its size. */
static gr_status
parse_offsets(const load_state *st, const cJSON *item, header_entry *e, size_t numel,
			  gr_error *err)
{
	uint64_t	begin,
				end;
	size_t		bytes;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2 ||
		!json_size(item->child, &begin) || !json_size(item->child->next, &end))
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "tensor \"%.64s\" data_offsets is not a pair of byte offsets", e->name);
	if (begin > end || end > st->data_len)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "tensor \"%.64s\" data_offsets [%llu, %llu] lie outside the %zu-byte "
					   "data section", e->name, (unsigned long long) begin,
					   (unsigned long long) end, st->data_len);
	if (!gr_mul_size(numel, e->dtype == ST_F32 ? 4 : 8, &bytes) || bytes != end - begin)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "tensor \"%.64s\" data_offsets span %llu bytes, its shape needs %zu",
					   e->name, (unsigned long long) (end - begin), bytes);
	e->begin = (size_t) begin;
	e->end = (size_t) end;
	return GR_OK;
}

/* Decode one tensor entry: exactly the keys dtype, shape and data_offsets. */
static gr_status
parse_entry(const load_state *st, const cJSON *item, header_entry *e, gr_error *err)
{
	const cJSON *dtype = NULL,
			   *shape = NULL,
			   *offsets = NULL;
	const cJSON *member;
	size_t		numel;

	e->name = item->string;
	e->tensor = -1;
	if (!cJSON_IsObject(item))
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "tensor \"%.64s\" entry is not an object",
					   e->name);
	cJSON_ArrayForEach(member, item)
	{
		const cJSON **slot = strcmp(member->string, "dtype") == 0 ? &dtype :
			strcmp(member->string, "shape") == 0 ? &shape :
			strcmp(member->string, "data_offsets") == 0 ? &offsets : NULL;

		if (slot == NULL || *slot != NULL)
			return gr_fail(err, GR_ERR_CORRUPT_MODEL,
						   "tensor \"%.64s\" has an unknown or repeated key \"%.32s\"",
						   e->name, member->string);
		*slot = member;
	}
	if (dtype == NULL || shape == NULL || offsets == NULL)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "tensor \"%.64s\" needs dtype, shape and data_offsets", e->name);
	if (!cJSON_IsString(dtype))
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "tensor \"%.64s\" dtype is not a string",
					   e->name);
	if (strcmp(dtype->valuestring, "F32") == 0)
		e->dtype = ST_F32;
	else if (strcmp(dtype->valuestring, "I64") == 0)
		e->dtype = ST_I64;
	else
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "tensor \"%.64s\" has unsupported dtype "
					   "\"%.16s\"", e->name, dtype->valuestring);
	GR_TRY(parse_shape(shape, e, &numel, err));
	return parse_offsets(st, offsets, e, numel, err);
}

/* Decode every tensor entry of the header (all members but "__metadata__"). */
static gr_status
parse_entries(load_state *st, gr_error *err)
{
	const cJSON *member;
	int			count = 0,
				expected = st->model->n_tensors + 1;

	cJSON_ArrayForEach(member, st->header)
	{
		if (member == st->metadata)
			continue;
		if (count == expected)
			return gr_fail(err, GR_ERR_CORRUPT_MODEL,
						   "model header lists more than the %d tensors its configuration "
						   "has (unexpected tensor \"%.64s\")", expected, member->string);
		count++;
	}
	st->entries = gr_calloc(st->env, (size_t) GR_MAX(count, 1), sizeof(header_entry));
	if (st->entries == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory reading a model header");
	cJSON_ArrayForEach(member, st->header)
	{
		if (member == st->metadata)
			continue;
		GR_TRY(parse_entry(st, member, &st->entries[st->n_entries], err));
		st->n_entries++;
	}
	return GR_OK;
}

/* Find the unmatched entry called name and bind it to tensor index; fail if missing. */
static gr_status
match_entry(load_state *st, const char *name, int tensor, st_dtype dtype, int ndim,
			const int64_t *shape, gr_error *err)
{
	header_entry *e = NULL;

	for (int i = 0; i < st->n_entries && e == NULL; i++)
		if (st->entries[i].tensor < 0 && strcmp(st->entries[i].name, name) == 0)
			e = &st->entries[i];
	if (e == NULL)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "model is missing tensor \"%s\"", name);
	e->tensor = tensor;
	if (e->dtype != dtype)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL, "tensor \"%s\" has dtype %s, expected %s",
					   name, e->dtype == ST_F32 ? "F32" : "I64", dtype == ST_F32 ? "F32" : "I64");
	bool		same = e->ndim == ndim;

	for (int d = 0; same && d < ndim; d++)
		same = e->shape[d] == shape[d];
	if (!same)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "tensor \"%s\" has a shape that does not match the configuration", name);
	return GR_OK;
}

/* Match every expected tensor to one entry and reject entries left over. */
static gr_status
match_entries(load_state *st, gr_error *err)
{
	const gr_model *m = st->model;
	int64_t		n_items = m->cfg.n_items;

	for (int t = 0; t < m->n_tensors; t++)
		GR_TRY(match_entry(st, m->tensors[t].name, t, ST_F32, m->tensors[t].ndim,
						   m->tensors[t].shape, err));
	GR_TRY(match_entry(st, ITEM_IDS_NAME, m->n_tensors, ST_I64, 1, &n_items, err));
	for (int i = 0; i < st->n_entries; i++)
		if (st->entries[i].tensor < 0)
			return gr_fail(err, GR_ERR_CORRUPT_MODEL, "unexpected or repeated tensor \"%.64s\"",
						   st->entries[i].name);
	return GR_OK;
}

/* Check that the tensors tile the data section exactly: no overlap, no gap, no tail. */
static gr_status
check_coverage(load_state *st, gr_error *err)
{
	header_entry *e = st->entries;
	size_t		covered = 0;

	/* insertion sort by begin offset: at most a few hundred entries, no allocation */
	for (int i = 1; i < st->n_entries; i++)
	{
		header_entry moving = e[i];
		int			j = i;

		for (; j > 0 && e[j - 1].begin > moving.begin; j--)
			e[j] = e[j - 1];
		e[j] = moving;
	}
	for (int i = 0; i < st->n_entries; i++)
	{
		if (e[i].begin < covered)
			return gr_fail(err, GR_ERR_CORRUPT_MODEL, "tensor \"%.64s\" overlaps another tensor",
						   e[i].name);
		if (e[i].begin > covered)
			return gr_fail(err, GR_ERR_CORRUPT_MODEL,
						   "model data section has %zu unused bytes before tensor \"%.64s\"",
						   e[i].begin - covered, e[i].name);
		covered = e[i].end;
	}
	if (covered != st->data_len)
		return gr_fail(err, GR_ERR_CORRUPT_MODEL,
					   "model data section has %zu trailing bytes not covered by any tensor",
					   st->data_len - covered);
	return GR_OK;
}

/* Decode the F32 tensors into a host parameter buffer and the ids, checking their values. */
static gr_status
decode_data(load_state *st, gr_error *err)
{
	const gr_model *m = st->model;

	st->host = gr_calloc(st->env, m->n_params, sizeof(float));
	st->item_ids = gr_alloc(st->env, sizeof(int64_t) * (size_t) m->cfg.n_items);
	if (st->host == NULL || st->item_ids == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory loading %zu parameters",
					   m->n_params);
	for (int i = 0; i < st->n_entries; i++)
	{
		const header_entry *e = &st->entries[i];
		const uint8_t *src = st->data + e->begin;

		if (e->tensor == m->n_tensors)
		{
			for (int k = 0; k < m->cfg.n_items; k++)
			{
				st->item_ids[k] = (int64_t) get_le64(src + 8 * (size_t) k);
				if (k > 0 && st->item_ids[k] <= st->item_ids[k - 1])
					return gr_fail(err, GR_ERR_CORRUPT_MODEL,
								   "model item ids are not strictly ascending at position %d",
								   k + 1);
			}
			continue;
		}

		const gr_tensor *ten = &m->tensors[e->tensor];
		float	   *dst = st->host + ten->offset;

		for (size_t k = 0; k < ten->numel; k++)
		{
			uint32_t	bits = get_le32(src + 4 * k);

			if (f32_bits_non_finite(bits))
				return gr_fail(err, GR_ERR_CORRUPT_MODEL,
							   "tensor \"%s\" holds a non-finite value at element %zu",
							   ten->name, k);
			memcpy(dst + k, &bits, sizeof(bits));
		}
	}
	return GR_OK;
}

/* Run every step of a load; st owns whatever was allocated so far. */
static gr_status
load_steps(load_state *st, const uint8_t *bytes, size_t len, char **extra_json, gr_error *err)
{
	GR_TRY(parse_header(st, bytes, len, err));
	GR_TRY(read_metadata(st, extra_json, err));
	GR_TRY(check_data_lower_bound(st, err));
	GR_TRY(gr_model_create(st->env, &st->cfg, NULL, &st->model, err));
	GR_TRY(parse_entries(st, err));
	GR_TRY(match_entries(st, err));
	GR_TRY(check_coverage(st, err));
	GR_TRY(decode_data(st, err));
	memcpy(st->model->item_ids + 1, st->item_ids, sizeof(int64_t) * (size_t) st->cfg.n_items);
	gr_model_upload_params(st->model, st->host);
	return st->model->ops->check(st->model->ops->ctx, err);
}

/* Build a model from untrusted safetensors bytes. */
gr_status
gr_model_load(const gr_env *env, const uint8_t *bytes, size_t len, gr_model **out,
			  char **extra_json, gr_error *err)
{
	load_state	st;
	gr_status	status;

	memset(&st, 0, sizeof(st));
	st.env = env;
	*out = NULL;
	if (extra_json != NULL)
		*extra_json = NULL;
	status = load_steps(&st, bytes, len, extra_json, err);
	if (status == GR_OK)
	{
		*out = st.model;
		if (extra_json != NULL)
			*extra_json = st.extra;
		st.model = NULL;
		st.extra = NULL;
	}
	gr_model_free(st.model);
	gr_free(env, st.extra);
	gr_free(env, st.host);
	gr_free(env, st.item_ids);
	gr_free(env, st.entries);
	gr_json_delete(st.header);
	return status;
}

/* Read a whole regular file into a buffer allocated through env. */
static gr_status
read_whole_file(const gr_env *env, const char *path, uint8_t **buf, size_t *len,
				gr_error *err)
{
	struct stat info;
	int			fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t		done = 0;
	gr_status	status = GR_OK;

	*buf = NULL;
	*len = 0;
	if (fd < 0)
		return gr_fail(err, GR_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
	if (fstat(fd, &info) != 0)
		status = gr_fail(err, GR_ERR_IO, "could not stat \"%s\": %s", path, strerror(errno));
	else if (!S_ISREG(info.st_mode))
		status = gr_fail(err, GR_ERR_IO, "\"%s\" is not a regular file", path);
	else if ((uint64_t) info.st_size > (uint64_t) SIZE_MAX)
		status = gr_fail(err, GR_ERR_IO, "\"%s\" is too large", path);
	else if (info.st_size > 0 && (*buf = gr_alloc(env, (size_t) info.st_size)) == NULL)
		status = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "out of memory reading \"%s\" (%lld bytes)",
						 path, (long long) info.st_size);
	while (status == GR_OK && done < (size_t) info.st_size)
	{
		ssize_t		n = read(fd, *buf + done, (size_t) info.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			status = gr_fail(err, GR_ERR_IO, "could not read \"%s\": %s", path,
							 strerror(errno));
		else if (n == 0)
			status = gr_fail(err, GR_ERR_IO, "\"%s\" shrank while being read", path);
		else
			done += (size_t) n;
	}
	close(fd);
	if (status != GR_OK)
	{
		gr_free(env, *buf);
		*buf = NULL;
		return status;
	}
	*len = done;
	return GR_OK;
}

/* Load a model from a file. */
gr_status
gr_model_load_file(const gr_env *env, const char *path, gr_model **out, char **extra_json,
				   gr_error *err)
{
	uint8_t    *bytes;
	size_t		len;
	gr_status	status;

	*out = NULL;
	if (extra_json != NULL)
		*extra_json = NULL;
	GR_TRY(read_whole_file(env, path, &bytes, &len, err));
	status = gr_model_load(env, bytes, len, out, extra_json, err);
	gr_free(env, bytes);
	return status;
}
