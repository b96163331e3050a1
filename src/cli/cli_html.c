/*
 * cli_html.c — genrec report: the HTML report of one or more model files (gr_report.h), the
 * same document genrec_report() returns in SQL. Each file's title is its stored model name
 * and version when it has them (an export from genrec.models), else its file name; the
 * summary is its genrec.extra metadata.
 */
#include "cli.h"
#include "gr_report.h"

#include <stdlib.h>
#include <string.h>

#define REPORT_MAX_FILES 64

/* The title of a model file: "name vN" from its summary, else the file name. */
static char *
file_title(const char *path, const char *extra)
{
	cJSON	   *e = extra ? cJSON_Parse(extra) : NULL;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "model_name");
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(e, "version");
	const char *base = strrchr(path, '/');
	char	   *out = malloc(strlen(path) + 256);

	if (out == NULL)
	{
		cJSON_Delete(e);
		return NULL;
	}
	if (cJSON_IsString(name) && strlen(name->valuestring) < 200)
		snprintf(out, strlen(path) + 256, "%s v%d", name->valuestring,
				 cJSON_IsNumber(ver) ? ver->valueint : 0);
	else
		strcpy(out, base ? base + 1 : path);
	cJSON_Delete(e);
	return out;
}

/* genrec report: write the HTML report of the model files. */
int
cli_cmd_report(cli_opts *opts)
{
	gr_env		env;
	cli_model	cms[REPORT_MAX_FILES];
	gr_report_model rm[REPORT_MAX_FILES];
	char	   *paths,
			   *save = NULL,
			   *tok;
	int			n = 0,
				rc;
	char	   *html = NULL;
	size_t		len = 0;
	gr_error	err = {0};

	if (opts->model == NULL)
		return cli_usage_error("report", "--model FILE[,FILE...] is required");
	if ((rc = cli_setup_env("report", opts, &env)) != CLI_EXIT_OK)
		return rc;
	paths = strdup(opts->model);
	if (paths == NULL)
		return CLI_EXIT_RUNTIME;
	for (tok = strtok_r(paths, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		if (n == REPORT_MAX_FILES)
		{
			rc = cli_usage_error("report", "at most %d model files", REPORT_MAX_FILES);
			break;
		}
		if ((rc = cli_model_load(&env, tok, &cms[n])) != CLI_EXIT_OK)
			break;
		rm[n].name = file_title(tok, cms[n].extra);
		rm[n].layout = cms[n].model->layout->name;
		rm[n].summary_json = cms[n].extra;
		n++;
	}
	if (rc == CLI_EXIT_OK && n == 0)
		rc = cli_usage_error("report", "--model names no file");
	if (rc == CLI_EXIT_OK && gr_report_html(&env, rm, n, &html, &len, &err) != GR_OK)
	{
		fprintf(stderr, "genrec report: %s\n", err.message);
		rc = CLI_EXIT_RUNTIME;
	}
	if (rc == CLI_EXIT_OK)
	{
		FILE	   *f = opts->out ? fopen(opts->out, "w") : stdout;

		if (f == NULL || fwrite(html, 1, len, f) != len || (opts->out && fclose(f) != 0))
		{
			fprintf(stderr, "genrec report: could not write %s\n", opts->out ? opts->out : "stdout");
			rc = CLI_EXIT_RUNTIME;
		}
		else if (opts->out && !opts->quiet)
			fprintf(stderr, "genrec report: wrote %s (%zu bytes, %d model%s)\n", opts->out, len,
					n, n == 1 ? "" : "s");
	}
	gr_free(&env, html);
	for (int i = 0; i < n; i++)
	{
		free((char *) rm[i].name);
		cli_model_free(&env, &cms[i]);
	}
	free(paths);
	return rc;
}
