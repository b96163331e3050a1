/*
 * test_fixtures.c — model files written by genrec 0.1.0 (the .safetensors files of
 * test/fixtures) load and score as they did then.
 *
 * test/fixtures/scores.txt holds what the 0.1.0 engine computed from these files (recorded
 * with `test_fixtures --record` built against that engine): for three histories (longer than
 * the serving window, short, empty) the predicted first action and the retrieval logit of six
 * candidates (one unknown), and the top-5 recommendations with seen items excluded. The test
 * recomputes every line with today's engine and requires the same statuses, the same
 * recommended items and the same numbers within 1e-5 relative (float32 rounding of a
 * different BLAS kernel, nothing more: a tensor read into the wrong place moves them by
 * orders of magnitude more).
 *
 *   test_fixtures [--record]      (run from the repository root)
 */
#include "gr_io.h"
#include "gr_serve.h"
#include "unit.h"

#include <string.h>

#define SCORES_PATH "test/fixtures/scores.txt"
#define N_CANDS 6
#define TOP_K 5

static const char *const layouts[] = {"item", "int", "lac", "pc"};

typedef struct fixture_case
{
	const char *name;
	int			n;
} fixture_case;

/* Histories: 25 interactions (more than max_len 20 keeps), 3, none. */
static const fixture_case cases[] = {{"long", 25}, {"short", 3}, {"empty", 0}};
static const int64_t candidates[N_CANDS] = {5, 17, 80, 999, 1, 42};

/* The history of a case: items cycle through the catalogue, ratings through 1..5. */
static void
case_history(int n, int64_t *items, double *actions)
{
	for (int i = 0; i < n; i++)
	{
		items[i] = 1 + (i * 37 + 11) % 80;
		actions[i] = 1.0 + (double) ((i * 3) % 9) * 0.5;
	}
}

/* One line of results: "layout case what value..." (values %.9g, NaN as nan). */
typedef struct line
{
	char		key[64];
	char		text[1024];
} line;

/* Compute every line for one fixture into out; returns the number written. */
static int
compute_lines(const char *layout, line *out)
{
	char		path[256];
	gr_env		env;
	gr_error	err;
	gr_model   *m = NULL;
	gr_session *s = NULL;
	int			n_out = 0;

	gr_env_default(&env);
	snprintf(path, sizeof(path), "test/fixtures/%s.safetensors", layout);
	CHECK_OK(gr_model_load_file(&env, path, &m, NULL, &err), &err);
	if (m == NULL)
		return 0;
	CHECK_OK(gr_session_create(m, &s, &err), &err);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		int64_t		items[32];
		double		actions[32];
		float		act[N_CANDS * GR_MAX_ACTIONS], logit[N_CANDS], rec_s[TOP_K];
		int64_t		rec[TOP_K];
		uint8_t		known[N_CANDS];
		int			K = m->cfg.n_actions, n_rec = 0;
		gr_scores	sc = {.action = act,.logit = logit,.known = known};
		gr_history	h = {.items = items,.actions = actions,.n = cases[c].n};

		case_history(cases[c].n, items, actions);
		gr_status	st = gr_score(s, &h, candidates, N_CANDS, &sc, &err);
		line	   *l = &out[n_out++];
		size_t		len = 0;

		snprintf(l->key, sizeof(l->key), "%s %s score", layout, cases[c].name);
		len += snprintf(l->text + len, sizeof(l->text) - len, "%s", gr_status_name(st));
		for (int j = 0; st == GR_OK && j < N_CANDS; j++)
			len += snprintf(l->text + len, sizeof(l->text) - len, " %d %.9g %.9g", known[j],
							K > 0 ? (double) act[(size_t) j * K] : NAN, (double) logit[j]);
		st = gr_recommend(s, &h, TOP_K, true, rec, rec_s, &n_rec, &err);
		l = &out[n_out++];
		len = 0;
		snprintf(l->key, sizeof(l->key), "%s %s recommend", layout, cases[c].name);
		len += snprintf(l->text + len, sizeof(l->text) - len, "%s", gr_status_name(st));
		for (int j = 0; st == GR_OK && j < n_rec; j++)
			len += snprintf(l->text + len, sizeof(l->text) - len, " %lld %.9g",
							(long long) rec[j], (double) rec_s[j]);
	}
	gr_session_free(s);
	gr_model_free(m);
	return n_out;
}

/* Whether two numeric tokens agree: both NaN, equal, or within 1e-5 relative. */
static bool
same_number(const char *a, const char *b)
{
	char	   *ea,
			   *eb;
	double		x = strtod(a, &ea),
				y = strtod(b, &eb);

	if (ea == a || eb == b)
		return strcmp(a, b) == 0;
	if (isnan(x) || isnan(y))
		return isnan(x) && isnan(y);
	return fabs(x - y) <= 1e-5 * fmax(1.0, fabs(y));
}

/* Compare a computed line with the recorded one token by token. */
static void
compare_line(const line *got, const char *recorded)
{
	char		a[1024],
				b[1024];
	char	   *sa,
			   *sb,
			   *ta,
			   *tb;
	int			i = 0;

	snprintf(a, sizeof(a), "%s", got->text);
	snprintf(b, sizeof(b), "%s", recorded);
	ta = strtok_r(a, " \n", &sa);
	tb = strtok_r(b, " \n", &sb);
	while (ta != NULL || tb != NULL)
	{
		CHECK_MSG(ta != NULL && tb != NULL && (i == 0 ? strcmp(ta, tb) == 0 : same_number(ta, tb)),
				  "%s: token %d is %s, recorded %s", got->key, i, ta ? ta : "(none)",
				  tb ? tb : "(none)");
		if (ta == NULL || tb == NULL)
			break;
		ta = strtok_r(NULL, " \n", &sa);
		tb = strtok_r(NULL, " \n", &sb);
		i++;
	}
}

/* Run the comparison (or print the table with --record). */
int
main(int argc, char **argv)
{
	bool		record = argc > 1 && strcmp(argv[1], "--record") == 0;
	line		lines[64];
	int			n = 0;

	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		n += compute_lines(layouts[i], lines + n);
	if (record)
	{
		printf("# scores of test/fixtures/*.safetensors computed by the genrec 0.1.0 engine\n"
			   "# (test/unit/test_fixtures.c --record): layout case what status values...\n");
		for (int i = 0; i < n; i++)
			printf("%s %s\n", lines[i].key, lines[i].text);
		return 0;
	}
	FILE	   *f = fopen(SCORES_PATH, "r");
	char		buf[2048];
	int			matched = 0;

	CHECK_MSG(f != NULL, "cannot open %s (run from the repository root)", SCORES_PATH);
	while (f && fgets(buf, sizeof(buf), f))
	{
		char		layout[16],
					name[16],
					what[16];
		int			off = 0;

		if (buf[0] == '#' || sscanf(buf, "%15s %15s %15s %n", layout, name, what, &off) < 3)
			continue;
		char		key[64];

		snprintf(key, sizeof(key), "%s %s %s", layout, name, what);
		for (int i = 0; i < n; i++)
			if (strcmp(lines[i].key, key) == 0)
			{
				compare_line(&lines[i], buf + off);
				matched++;
			}
	}
	if (f)
		fclose(f);
	CHECK_MSG(matched == n && n == 24, "%d of %d computed lines have a recorded line", matched, n);
	return unit_finish("test_fixtures");
}
