/*
 * cli_report.h — what the genrec program prints: the protocol statement, data and model
 * summaries, one line per training epoch, metric tables and throughput, and the same
 * results as JSON (cJSON trees) for the benchmark scripts.
 */
#ifndef CLI_REPORT_H
#define CLI_REPORT_H

#include "cli_data.h"
#include "gr_train.h"

#include <cjson/cJSON.h>
#include <stdio.h>

/* Print the evaluation protocol (what every metric means). */
void		cli_report_protocol(FILE *f, const gr_train_config *tcfg);

/* Print what was read: file, format, columns, counts and action ranges. */
void		cli_report_data(FILE *f, const char *path, const cli_data *d, const gr_dataset *ds);

/* Print a model's layout and configuration in one paragraph. */
void		cli_report_model(FILE *f, const gr_model *m, const cli_names *names);

/* Print the header of the per-epoch table. */
void		cli_report_epoch_header(FILE *f, bool actions);

/* Print one training epoch; wall is the epoch's seconds including validation. */
void		cli_report_epoch(FILE *f, const gr_progress *p, double wall, bool actions);

/* Print a metric table for a split: ranking with and without exclusion, then actions. */
void		cli_report_metrics(FILE *f, const char *title, const gr_metrics *mt,
							   const gr_model *m, const cli_names *names);

/* Print training throughput and timing. */
void		cli_report_throughput(FILE *f, const gr_train_result *r);

/* Print a model's tensor table. */
void		cli_report_tensors(FILE *f, const gr_model *m);

/* Add a number, or null when it is not finite. */
void		cli_json_num(cJSON *obj, const char *name, double v);

/* The protocol as JSON. */
cJSON	   *cli_json_protocol(const gr_train_config *tcfg);

/* The data summary as JSON. */
cJSON	   *cli_json_data(const char *path, const cli_data *d, const gr_dataset *ds);

/* A model configuration (and parameter count) as JSON. */
cJSON	   *cli_json_model(const gr_model *m, const cli_names *names);

/* Training options as JSON. */
cJSON	   *cli_json_train_config(const gr_train_config *t);

/* One epoch's progress as JSON. */
cJSON	   *cli_json_epoch(const gr_progress *p, double wall);

/* Metrics of a split as JSON. */
cJSON	   *cli_json_metrics(const gr_metrics *mt, const gr_model *m, const cli_names *names);

/* Training result counters and throughput as JSON. */
cJSON	   *cli_json_result(const gr_train_result *r);

/* Write a JSON tree to a file ("-" = stdout); false (printed) on failure. */
bool		cli_json_write(const cJSON *root, const char *path);

#endif							/* CLI_REPORT_H */
