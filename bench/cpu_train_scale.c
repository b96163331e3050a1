/*
 * cpu_train_scale.c — training throughput against the catalogue size, per item loss: tokens
 * per second of optimiser steps (forward, backward, AdamW; no evaluation) of the item layout
 * on synthetic data whose items follow a Zipf-like popularity over V items.
 *
 *   cpu_train_scale [--items 1000,10000,100000,1000000] [--losses full,sampled,infonce]
 *                   [--users N] [--per-user N] [--batch B] [--negatives S] [--seconds T]
 *                   [--threads N] [--d D] [--item-update auto|dense|lazy]
 *                   [--layouts item,int,lac,...] [--negatives-per batch|user]
 *
 * With --layouts every (layout, V, loss) is measured; the data then carry one action column
 * (ratings 1..5 drawn per interaction) so that the action-conditioned layouts have inputs and
 * targets. A step is always B users' windows, so steps per epoch are the same for every layout
 * and the ratio of two layouts' s/step is the ratio of their epoch times.
 *
 * For each (V, loss) it builds the dataset, creates the model and its trainer, takes one
 * warm-up step (unless a step takes over 2 s), then steps over the users' training windows in
 * batches until T seconds have passed (at least one step), and prints one line:
 * "V loss tokens_per_s best tokens_per_cpu_s steps seconds_per_step seconds_per_apply users"
 * (best: tokens per second of the fastest step, the least disturbed by other processes on a
 * shared machine; tokens per second of process CPU time, all threads; the optimiser step's share of the
 * wall time; V the built catalogue; the users are
 * raised to 2 V / per-user when fewer, so that every item occurs and the catalogue really is
 * V). The item table is V x d, so memory grows
 * with V (about 16 V d bytes for weights, gradients and AdamW's moments).
 */
#include "gr_dataset.h"
#include "gr_rng.h"
#include "gr_train.h"
#include "bench_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse a comma-separated list of integers; returns the count. */
static int
parse_ints(const char *s, int *out, int cap)
{
	int			n = 0;

	while (*s && n < cap)
	{
		out[n++] = atoi(s);
		s = strchr(s, ',');
		if (s == NULL)
			break;
		s++;
	}
	return n;
}

/* negatives_per of the sampled loss (--negatives-per) */
static int	sampled_negatives_per = GR_NEGATIVES_PER_BATCH;

/* Run one (V, loss) measurement and print its line; returns 0 on success. */
static int
measure(const gr_layout *layout, int V, int loss, int users, int per_user, int B, int S,
		double seconds, int d, int item_update, uint64_t seed)
{
	gr_env		env;
	gr_error	err = {0};

	/* at least 2 V interactions: every item once, the other half Zipf-like */
	if ((int64_t) users * per_user < 2 * (int64_t) V)
		users = (int) ((2 * (int64_t) V + per_user - 1) / per_user);
	size_t		n = (size_t) users * per_user;
	int64_t    *uid = malloc(sizeof(int64_t) * n), *iid = malloc(sizeof(int64_t) * n);
	int64_t    *ts = malloc(sizeof(int64_t) * n);
	bool		with_actions = layout->id != GR_LAYOUT_ITEM;
	double	   *act = with_actions ? malloc(sizeof(double) * n) : NULL;
	gr_dataset *ds = NULL;
	gr_model   *m = NULL;
	gr_trainer *tr = NULL;
	gr_tokens	tb;
	int			rc = 1;

	memset(&tb, 0, sizeof(tb));
	gr_env_default(&env);
	for (size_t i = 0; i < n; i++)
	{
		/* Zipf-like ranks over V items: floor((V + 1)^u) */
		double		u = gr_rng_uniform(seed, GR_STREAM_TEST, 1, i);
		int64_t		k = (int64_t) floor(pow((double) V + 1.0, u));

		uid[i] = (int64_t) (i / per_user) + 1;
		iid[i] = GR_MAX(1, GR_MIN((int64_t) V, k));
		ts[i] = (int64_t) i;
		if (act != NULL)
			act[i] = 1.0 + floor(5.0 * gr_rng_uniform(seed, GR_STREAM_TEST, 2, i));
	}
	/* every item occurs at least once, so the catalogue is V */
	for (int v = 1; v <= V && (size_t) v <= n; v++)
		iid[((size_t) v * 7919) % n] = v;
	gr_raw_interactions raw = {.n = n,.user = uid,.item = iid,.time = ts,.actions = act,
	.n_actions = act != NULL ? 1 : 0};
	gr_model_config mc;
	gr_train_config tc;

	if (gr_dataset_build(&env, &raw, NULL, &ds, &err) != GR_OK)
		goto out;
	gr_model_config_default(&mc, layout->id, ds->n_items, ds->n_actions);
	mc.d_model = d;
	mc.item_loss = loss;
	mc.negatives = loss == GR_LOSS_INFONCE ? 0 : S;
	mc.negatives_per = loss == GR_LOSS_SAMPLED ? sampled_negatives_per : GR_NEGATIVES_PER_BATCH;
	gr_train_config_default(&tc);
	tc.batch_size = B;
	tc.item_update = item_update;
	if (gr_model_create(&env, &mc, ds->item_ids + 1, &m, &err) != GR_OK ||
		gr_model_init_params(m, seed, &err) != GR_OK ||
		gr_trainer_create(m, &tc, B * m->n_positions, B, &tr, &err) != GR_OK ||
		gr_trainer_count_items(tr, ds, &err) != GR_OK ||
		gr_tokens_init(&tb, &env, mc.n_actions, mc.n_buckets, B * m->n_positions, B, B * m->n_positions,
					   &err) != GR_OK)
		goto out;

	double		t0 = 0.0, elapsed = 0.0, t_apply = 0.0, cpu = 0.0, best = 0.0;
	int64_t		tokens = 0;
	int			steps = 0, u = 0;
	bool		warm = false;

	for (uint32_t step = 0;; step++)
	{
		gr_step_loss sl;
		bool		added;

		gr_tokens_reset(&tb);
		for (int b = 0; b < B; b++, u = (u + 1) % ds->n_users)
			if (gr_add_train_window(m, ds, u, &tb, &added, &err) != GR_OK)
				goto out;
		double		s0 = bench_now_us(), c0 = bench_cpu_us();

		if (gr_trainer_compute(tr, &tb, step, &sl, &err) != GR_OK)
			goto out;
		double		s1 = bench_now_us();

		if (gr_trainer_apply(tr, &err) != GR_OK)
			goto out;
		double		dt = (bench_now_us() - s0) * 1e-6;
		double		dc = (bench_cpu_us() - c0) * 1e-6;

		if (!warm)
		{
			warm = true;
			if (dt <= 2.0)
				continue;		/* the warm-up step is not counted */
		}
		t0 += dt;
		if (best == 0.0 || tb.n_tokens / dt > best)
			best = tb.n_tokens / dt;
		t_apply += (s0 + dt * 1e6 - s1) * 1e-6;
		cpu += dc;
		tokens += tb.n_tokens;
		steps++;
		elapsed = t0;
		if (elapsed >= seconds)
			break;
	}
	printf("%-8s %8d %-8s %10.0f %10.0f %10.0f %6d %9.3f %9.3f %7d\n", layout->name,
		   ds->n_items, gr_item_loss_name(loss), tokens / elapsed, best, tokens / cpu, steps,
		   elapsed / steps, t_apply / steps, users);
	fflush(stdout);
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "cpu_train_scale: V %d %s: %s\n", V, gr_item_loss_name(loss),
				err.message);
	gr_tokens_free(&tb);
	gr_trainer_free(tr);
	gr_model_free(m);
	gr_dataset_free(ds);
	free(uid), free(iid), free(ts), free(act);
	return rc;
}

/* Parse the options and measure every (V, loss). */
int
main(int argc, char **argv)
{
	int			items[16] = {1000, 10000, 100000, 1000000}, n_items = 4;
	int			losses[GR_LOSS_COUNT] = {GR_LOSS_FULL, GR_LOSS_SAMPLED, GR_LOSS_INFONCE};
	int			n_losses = 3, users = 2000, per_user = 50, B = 128, S = 256, threads = 2, d = 64;
	double		seconds = 10.0;
	int			rc = 0, item_update = GR_ITEM_UPDATE_AUTO;
	const gr_layout *layouts[32] = {gr_layout_by_name("item")};
	int			n_layouts = 1;

	for (int i = 1; i + 1 < argc; i += 2)
	{
		const char *k = argv[i], *v = argv[i + 1];

		if (strcmp(k, "--items") == 0)
			n_items = parse_ints(v, items, 16);
		else if (strcmp(k, "--losses") == 0)
		{
			char		buf[256], *save = NULL;

			snprintf(buf, sizeof(buf), "%s", v);
			n_losses = 0;
			for (char *t = strtok_r(buf, ",", &save); t && n_losses < GR_LOSS_COUNT;
				 t = strtok_r(NULL, ",", &save))
				if ((losses[n_losses] = gr_item_loss_by_name(t)) >= 0)
					n_losses++;
		}
		else if (strcmp(k, "--layouts") == 0)
		{
			char		buf[256], *save = NULL;

			snprintf(buf, sizeof(buf), "%s", v);
			n_layouts = 0;
			for (char *t = strtok_r(buf, ",", &save); t && n_layouts < 32;
				 t = strtok_r(NULL, ",", &save))
				if ((layouts[n_layouts] = gr_layout_by_name(t)) != NULL)
					n_layouts++;
				else
				{
					fprintf(stderr, "cpu_train_scale: unknown layout %s\n", t);
					return 2;
				}
		}
		else if (strcmp(k, "--users") == 0)
			users = atoi(v);
		else if (strcmp(k, "--per-user") == 0)
			per_user = atoi(v);
		else if (strcmp(k, "--batch") == 0)
			B = atoi(v);
		else if (strcmp(k, "--negatives") == 0)
			S = atoi(v);
		else if (strcmp(k, "--seconds") == 0)
			seconds = atof(v);
		else if (strcmp(k, "--threads") == 0)
			threads = atoi(v);
		else if (strcmp(k, "--d") == 0)
			d = atoi(v);
		else if (strcmp(k, "--negatives-per") == 0)
		{
			if ((sampled_negatives_per = gr_negatives_per_by_name(v)) < 0)
			{
				fprintf(stderr, "cpu_train_scale: negatives per batch or user\n");
				return 2;
			}
		}
		else if (strcmp(k, "--item-update") == 0)
		{
			if ((item_update = gr_item_update_by_name(v)) < 0)
			{
				fprintf(stderr, "cpu_train_scale: item update auto, dense or lazy\n");
				return 2;
			}
		}
		else
		{
			fprintf(stderr, "cpu_train_scale: unknown option %s\n", k);
			return 2;
		}
	}
	gr_ops_cpu_set_threads(threads);
	printf("# d %d, 2 layers, max_len 50, batch %d users, at least %d users x %d "
		   "interactions, negatives %d per %s (sampled), threads %d, item update %s, %s\n", d, B,
		   users, per_user, S, gr_negatives_per_name(sampled_negatives_per), threads,
		   gr_item_update_name(item_update), gr_blas_name());
	printf("%-8s %8s %-8s %10s %10s %10s %6s %9s %9s %7s\n", "layout", "items", "loss", "tokens/s", "best",
		   "tok/cpu-s",
		   "steps", "s/step", "s/apply", "users");
	for (int y = 0; y < n_layouts; y++)
		for (int i = 0; i < n_items; i++)
			for (int l = 0; l < n_losses; l++)
				rc |= measure(layouts[y], items[i], losses[l], users, per_user, B, S, seconds,
							  d, losses[l] == GR_LOSS_FULL ? GR_ITEM_UPDATE_AUTO : item_update,
							  42);
	return rc;
}
