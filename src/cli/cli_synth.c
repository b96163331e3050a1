/*
 * cli_synth.c — the synth subcommand: the engine's synthetic interaction log (gr_synth.h) as
 * TSV on stdout, the same rows as the SQL function genrec_synthetic.
 */
#include "cli.h"
#include "gr_synth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SYNTH_BUF 65536

/* Write the buffered lines; false on a write error. */
static bool
synth_flush(char *buf, size_t *len)
{
	bool		ok = fwrite(buf, 1, *len, stdout) == *len;

	*len = 0;
	return ok;
}

/* genrec synth: print user, item, action and Unix time of every generated interaction. */
int
cli_cmd_synth(cli_opts *opts)
{
	gr_synth	m;
	gr_env		env;
	gr_error	err = {0};
	char	   *buf;
	size_t		len = 0;
	bool		ok = true;

	if (!cli_given(opts, "users") || !cli_given(opts, "items"))
		return cli_usage_error("synth", "--users N and --items M are required");
	if (gr_synth_init(&m, opts->syn_users, opts->syn_items, opts->syn_per_user,
					  opts->tcfg.seed, &err) != GR_OK)
		return cli_usage_error("synth", "%s", err.message);
	gr_env_default(&env);
	if ((buf = malloc(SYNTH_BUF)) == NULL)
	{
		fprintf(stderr, "genrec: out of memory\n");
		return CLI_EXIT_RUNTIME;
	}
	for (int64_t id = 1; id <= m.n_users && ok; id++)
	{
		gr_synth_user u;

		if (gr_synth_user_begin(&m, &env, id, &u, &err) != GR_OK)
		{
			free(buf);
			return cli_engine_error("synth", &err);
		}
		for (int j = 0; j < u.n && ok; j++)
		{
			int64_t		item, t;
			float		action;

			gr_synth_user_step(&m, &u, j, &item, &action, &t);
			if (SYNTH_BUF - len < 96)
				ok = synth_flush(buf, &len);
			len += (size_t) snprintf(buf + len, SYNTH_BUF - len, "%lld\t%lld\t%.1f\t%lld\n",
									 (long long) id, (long long) item, (double) action,
									 (long long) t);
		}
		gr_synth_user_end(&u);
	}
	ok = ok && synth_flush(buf, &len) && fflush(stdout) == 0;
	free(buf);
	if (!ok)
	{
		fprintf(stderr, "genrec synth: cannot write to stdout: %s\n", strerror(errno));
		return CLI_EXIT_RUNTIME;
	}
	return CLI_EXIT_OK;
}
