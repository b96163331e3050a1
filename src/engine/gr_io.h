/*
 * gr_io.h — saving and loading models in the safetensors format.
 *
 * A file is an 8-byte little-endian header length, a JSON header and the raw tensor bytes.
 * Every parameter tensor is stored as F32 under its engine name (gr_model.h), the item id map
 * as the I64 tensor "item_ids" [V], and the metadata holds "genrec.format" (format version),
 * "genrec.layout" (layout name), "genrec.config" (the model configuration as JSON) and, when
 * given, "genrec.extra" (caller JSON such as the training summary). Loading validates
 * everything (header size and syntax, dtypes, shapes against the configuration, offsets inside
 * the buffer and without overlap, every expected tensor present and no unknown one, finite
 * values, ascending item ids) and returns GR_ERR_CORRUPT_MODEL with a message for any
 * malformed or truncated input; it never crashes on untrusted bytes. Before anything is
 * parsed, the header is bounded (GR_IO_MAX_HEADER_BYTES, GR_IO_MAX_HEADER_VALUES, nesting);
 * cJSON then allocates through the env, like everything else a load allocates. Metadata keys
 * "genrec.*" other than the four above are rejected (a format this reader does not know);
 * other keys are another tool's and ignored. The extra metadata is opaque caller JSON: it
 * must be one JSON value within GR_IO_MAX_EXTRA_VALUES values and 64 levels.
 */
#ifndef GR_IO_H
#define GR_IO_H

#include "gr_model.h"

#define GR_FORMAT_VERSION 1

/* Limits a file's JSON must keep (checked before parsing; the writer keeps them too). */
#define GR_IO_MAX_HEADER_BYTES (16 << 20)	/* the header, extra metadata included */
#define GR_IO_MAX_HEADER_VALUES 32768	/* JSON values in the header */
#define GR_IO_MAX_EXTRA_VALUES (1 << 20)	/* JSON values in the extra metadata */

/* Serialise a model; *bytes is allocated through the model's env (free with gr_free). */
gr_status	gr_model_save(const gr_model *model, const char *extra_json, uint8_t **bytes,
						  size_t *len, gr_error *err);

/* Build a model from safetensors bytes. *extra_json (if not NULL) receives a copy of the
 * "genrec.extra" metadata or NULL, allocated through env. */
gr_status	gr_model_load(const gr_env *env, const uint8_t *bytes, size_t len,
						  gr_model **out, char **extra_json, gr_error *err);

/* Save a model to a file (written to a temporary name, then renamed). */
gr_status	gr_model_save_file(const gr_model *model, const char *path, const char *extra_json,
							   gr_error *err);

/* Load a model from a file. */
gr_status	gr_model_load_file(const gr_env *env, const char *path, gr_model **out,
							   char **extra_json, gr_error *err);

/* Encode a model configuration as a JSON object; *json is allocated through env. */
gr_status	gr_config_to_json(const gr_env *env, const gr_model_config *cfg, char **json,
							  gr_error *err);

/* Decode and validate a configuration from JSON (every key required, unknown keys rejected);
 * cJSON allocates through env. */
gr_status	gr_config_from_json(const gr_env *env, const char *json, size_t len,
								gr_model_config *cfg, gr_error *err);

#endif							/* GR_IO_H */
