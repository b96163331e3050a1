/*
 * gr_report.c — the HTML report of one or more trained models (see gr_report.h).
 *
 * The document is built in one growing buffer: a header, then for several models a
 * comparison (grouped bars with error bars per layout), then per model a table of its test
 * metrics against the baselines, a bar chart of the same and its training curves. Charts are
 * plain SVG drawn here (axes, ticks, polylines, bars), each tagged with data-chart so a test
 * can find them; the page needs no script and fetches nothing. Values that are absent or not
 * finite are left out (a chart without any point is not drawn).
 */
#include "gr_report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gr_json.h"

#define CHART_W 560
#define CHART_H 260
#define PAD_L 60
#define PAD_R 16
#define PAD_T 46
#define PAD_B 40
#define MAX_POINTS 100000

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
"#8c564b"};

/* A growing text buffer; after a failed allocation it only records the failure. */
typedef struct Buf
{
	const gr_env *env;
	char	   *p;
	size_t		len;
	size_t		cap;
	bool		failed;
} Buf;

/* Make room for need more bytes. */
static bool
buf_reserve(Buf *b, size_t need)
{
	char	   *q;
	size_t		cap = b->cap ? b->cap : 16384;

	if (b->failed)
		return false;
	if (b->len + need + 1 <= b->cap)
		return true;
	while (cap < b->len + need + 1)
		cap *= 2;
	q = gr_alloc(b->env, cap);
	if (q == NULL)
	{
		b->failed = true;
		return false;
	}
	if (b->p)
	{
		memcpy(q, b->p, b->len);
		gr_free(b->env, b->p);
	}
	b->p = q;
	b->cap = cap;
	return true;
}

/* Append text as it is. */
static void
put(Buf *b, const char *s)
{
	size_t		n = strlen(s);

	if (!buf_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Append formatted text. */
static void
putf(Buf *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));
static void
putf(Buf *b, const char *fmt,...)
{
	char		tmp[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	put(b, tmp);
}

/* Append text escaped for HTML. */
static void
put_text(Buf *b, const char *s)
{
	char		one[2] = {0, 0};

	for (; s && *s; s++)
	{
		switch (*s)
		{
			case '<':
				put(b, "&lt;");
				break;
			case '>':
				put(b, "&gt;");
				break;
			case '&':
				put(b, "&amp;");
				break;
			case '"':
				put(b, "&quot;");
				break;
			default:
				one[0] = *s;
				put(b, one);
		}
	}
}

/* A number of obj at a key path ("test", "hr@10", NULL), or NaN. */
static double
num_at(const cJSON *obj, ...)
{
	va_list		ap;
	const char *key;

	va_start(ap, obj);
	while (obj != NULL && (key = va_arg(ap, const char *)) != NULL)
		obj = cJSON_GetObjectItemCaseSensitive(obj, key);
	va_end(ap);
	return cJSON_IsNumber(obj) ? obj->valuedouble : NAN;
}

/* A number as a table cell: four significant digits, or a dash. */
static void
put_num(Buf *b, double v)
{
	if (isfinite(v))
		putf(b, "%.4f", v);
	else
		put(b, "&ndash;");
}

/* One line of a chart: y over x. */
typedef struct Series
{
	const char *label;
	const double *x;
	const double *y;
	int			n;
} Series;

/* Range of the finite values of v[0..n) folded into [*lo, *hi]. */
static void
range_of(const double *v, int n, double *lo, double *hi)
{
	for (int i = 0; i < n; i++)
		if (isfinite(v[i]))
		{
			*lo = fmin(*lo, v[i]);
			*hi = fmax(*hi, v[i]);
		}
}

/* Open an SVG chart with its title. */
static void
chart_begin(Buf *b, const char *kind, const char *title)
{
	putf(b, "<svg class=\"chart\" data-chart=\"%s\" width=\"%d\" height=\"%d\" "
		 "viewBox=\"0 0 %d %d\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">",
		 kind, CHART_W, CHART_H, CHART_W, CHART_H);
	put(b, "<title>");
	put_text(b, title);
	put(b, "</title><text class=\"ctitle\" x=\"8\" y=\"18\">");
	put_text(b, title);
	put(b, "</text>");
}

/* Draw legend entry k (a colour swatch and a label) in the row under the title. */
static void
legend(Buf *b, int k, const char *color, const char *label)
{
	int			x = PAD_L + 150 * k;

	putf(b, "<rect x=\"%d\" y=\"27\" width=\"10\" height=\"10\" fill=\"%s\"/>"
		 "<text class=\"tick\" x=\"%d\" y=\"36\">", x, color, x + 14);
	put_text(b, label);
	put(b, "</text>");
}

/* Draw the y axis with five ticks over [lo, hi]. */
static void
y_axis(Buf *b, double lo, double hi)
{
	int			h = CHART_H - PAD_T - PAD_B;

	putf(b, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", PAD_L, PAD_T, PAD_L,
		 CHART_H - PAD_B);
	putf(b, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", PAD_L,
		 CHART_H - PAD_B, CHART_W - PAD_R, CHART_H - PAD_B);
	for (int t = 0; t <= 4; t++)
	{
		double		v = lo + (hi - lo) * t / 4.0;
		double		y = CHART_H - PAD_B - h * t / 4.0;

		putf(b, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>"
			 "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>",
			 PAD_L, y, CHART_W - PAD_R, y, PAD_L - 4, y + 4, v);
	}
}

/* A line chart of series over epochs, with a dashed line at the best epoch (if > 0). */
static void
line_chart(Buf *b, const char *kind, const char *title, const Series *s, int ns, double best)
{
	double		xlo = INFINITY,
				xhi = -INFINITY,
				ylo = INFINITY,
				yhi = -INFINITY;
	int			w = CHART_W - PAD_L - PAD_R,
				h = CHART_H - PAD_T - PAD_B;

	for (int k = 0; k < ns; k++)
	{
		range_of(s[k].x, s[k].n, &xlo, &xhi);
		range_of(s[k].y, s[k].n, &ylo, &yhi);
	}
	if (!isfinite(ylo) || !isfinite(xlo))
		return;
	if (yhi - ylo < 1e-12)
	{
		ylo -= 0.5;
		yhi += 0.5;
	}
	else
	{
		double		pad = (yhi - ylo) * 0.05;

		ylo -= pad;
		yhi += pad;
	}
	if (xhi - xlo < 1e-12)
		xhi = xlo + 1;
	chart_begin(b, kind, title);
	y_axis(b, ylo, yhi);
	putf(b, "<text class=\"tick\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.0f</text>"
		 "<text class=\"tick\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.0f</text>"
		 "<text class=\"tick\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">epoch</text>",
		 PAD_L, CHART_H - PAD_B + 16, xlo, CHART_W - PAD_R, CHART_H - PAD_B + 16, xhi,
		 PAD_L + w / 2, CHART_H - 6);
	if (isfinite(best) && best >= xlo && best <= xhi)
	{
		double		x = PAD_L + w * (best - xlo) / (xhi - xlo);

		bool		right = x > CHART_W - PAD_R - 60;	/* label left of the line there */

		putf(b, "<line class=\"best\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
			 "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">best %.0f</text>",
			 x, PAD_T, x, CHART_H - PAD_B, right ? x - 3 : x + 3, CHART_H - PAD_B - 6,
			 right ? "end" : "start", best);
	}
	for (int k = 0; k < ns; k++)
	{
		const char *color = palette[k % (int) (sizeof(palette) / sizeof(palette[0]))];

		putf(b, "<polyline class=\"series\" data-series=\"%s\" fill=\"none\" stroke=\"%s\" "
			 "stroke-width=\"2\" points=\"", s[k].label, color);
		for (int i = 0; i < s[k].n; i++)
			if (isfinite(s[k].x[i]) && isfinite(s[k].y[i]))
				putf(b, "%.1f,%.1f ", PAD_L + w * (s[k].x[i] - xlo) / (xhi - xlo),
					 CHART_H - PAD_B - h * (s[k].y[i] - ylo) / (yhi - ylo));
		put(b, "\"/>");
		legend(b, k, color, s[k].label);
	}
	put(b, "</svg>\n");
}

/* One bar of a bar chart: a value and its standard deviation (NaN: no error bar). */
typedef struct Bar
{
	const char *group;			/* the x label; consecutive bars of one group stand together */
	const char *label;			/* the legend entry (its colour) */
	double		value;
	double		sd;
} Bar;

/* A grouped bar chart from zero, with error bars where sd is finite. */
static void
bar_chart(Buf *b, const char *kind, const char *title, const Bar *bars, int n, int per_group)
{
	double		lo = 0,
				hi = -INFINITY;
	int			groups = (n + per_group - 1) / per_group;
	int			w = CHART_W - PAD_L - PAD_R,
				h = CHART_H - PAD_T - PAD_B;
	double		slot = (double) w / (groups > 0 ? groups : 1);
	double		bw = slot * 0.7 / per_group;

	for (int i = 0; i < n; i++)
		if (isfinite(bars[i].value))
			hi = fmax(hi, bars[i].value + (isfinite(bars[i].sd) ? bars[i].sd : 0));
	if (!isfinite(hi))
		return;
	if (hi <= 0)
		hi = 1;
	hi *= 1.1;
	chart_begin(b, kind, title);
	y_axis(b, lo, hi);
	for (int i = 0; i < n; i++)
	{
		int			g = i / per_group,
					j = i % per_group;
		double		x = PAD_L + slot * g + slot * 0.15 + bw * j;
		const char *color = palette[j % (int) (sizeof(palette) / sizeof(palette[0]))];

		if (j == 0)
		{
			putf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">",
				 PAD_L + slot * g + slot / 2, CHART_H - PAD_B + 16);
			put_text(b, bars[i].group);
			put(b, "</text>");
		}
		if (g == 0)
		{
			legend(b, j, color, bars[i].label);
		}
		if (!isfinite(bars[i].value))
			continue;
		{
			double		top = CHART_H - PAD_B - h * bars[i].value / hi;

			putf(b, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
				 "fill=\"%s\"><title>%.4f</title></rect>", x, top, bw * 0.92,
				 CHART_H - PAD_B - top, color, bars[i].value);
			if (isfinite(bars[i].sd) && bars[i].sd > 0)
			{
				double		y1 = CHART_H - PAD_B - h * (bars[i].value + bars[i].sd) / hi;
				double		y0 = CHART_H - PAD_B - h * fmax(bars[i].value - bars[i].sd, 0) / hi;
				double		cx = x + bw * 0.46;

				putf(b, "<path class=\"errorbar\" d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\"/>",
					 cx, y0, y1, cx - 4, y1, cx + 4, cx - 4, y0, cx + 4);
			}
		}
	}
	put(b, "</svg>\n");
}

/* The per-epoch records of a summary: "history" (SQL) or "epochs" (the CLI's JSON). */
static const cJSON *
history_of(const cJSON *sum)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(sum, "history");

	if (!cJSON_IsArray(h))
		h = cJSON_GetObjectItemCaseSensitive(sum, "epochs");
	return cJSON_IsArray(h) ? h : NULL;
}

/* The best epoch of a summary, or NaN. */
static double
best_epoch_of(const cJSON *sum)
{
	double		v = num_at(sum, "best_epoch", NULL);

	return isfinite(v) ? v : num_at(sum, "result", "best_epoch", NULL);
}

/* Fill x (epochs) and y (key) from the records; returns how many. */
static int
history_series(const cJSON *hist, const char *key, double *x, double *y)
{
	int			n = 0;
	const cJSON *rec;

	cJSON_ArrayForEach(rec, hist)
	{
		if (n >= MAX_POINTS)
			break;
		x[n] = num_at(rec, "epoch", NULL);
		y[n] = num_at(rec, key, NULL);
		n++;
	}
	return n;
}

/* Whether any of v[0..n) is finite. */
static bool
any_finite(const double *v, int n)
{
	for (int i = 0; i < n; i++)
		if (isfinite(v[i]))
			return true;
	return false;
}

/* The curves of one model: loss, validation ranking, validation RMSE. */
static gr_status
model_curves(Buf *b, const cJSON *sum, gr_error *err)
{
	const cJSON *hist = history_of(sum);
	int			n = hist ? cJSON_GetArraySize(hist) : 0;
	double	   *x,
			   *y1,
			   *y2;
	double		best = best_epoch_of(sum);

	if (n == 0)
	{
		put(b, "<p class=\"note\">No per-epoch history is stored with this model.</p>\n");
		return GR_OK;
	}
	n = GR_MIN(n, MAX_POINTS);
	x = gr_calloc(b->env, (size_t) n, sizeof(double));
	y1 = gr_calloc(b->env, (size_t) n, sizeof(double));
	y2 = gr_calloc(b->env, (size_t) n, sizeof(double));
	if (x == NULL || y1 == NULL || y2 == NULL)
	{
		gr_free(b->env, x);
		gr_free(b->env, y1);
		gr_free(b->env, y2);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "report: out of memory");
	}
	put(b, "<div class=\"charts\">");
	history_series(hist, "train_loss", x, y1);
	{
		Series		s[1] = {{"training loss", x, y1, n}};

		line_chart(b, "loss", "Training loss per epoch", s, 1, best);
	}
	history_series(hist, "valid_hr@10", x, y1);
	history_series(hist, "valid_ndcg@10", x, y2);
	{
		Series		s[2] = {{"valid HR@10", x, y1, n}, {"valid NDCG@10", x, y2, n}};

		line_chart(b, "valid", "Validation HR@10 and NDCG@10 per epoch", s, 2, best);
	}
	history_series(hist, "valid_rmse", x, y1);
	if (any_finite(y1, n))
	{
		Series		s[1] = {{"valid RMSE", x, y1, n}};

		line_chart(b, "rmse", "Validation RMSE (first action, normalised) per epoch", s, 1, best);
	}
	put(b, "</div>\n");
	gr_free(b->env, x);
	gr_free(b->env, y1);
	gr_free(b->env, y2);
	return GR_OK;
}

/* One model: its test metrics beside the baselines, a bar chart of them, its curves. */
static gr_status
model_section(Buf *b, const gr_report_model *m, const cJSON *sum, gr_error *err)
{
	const cJSON *test = cJSON_GetObjectItemCaseSensitive(sum, "test");
	const cJSON *acts = cJSON_GetObjectItemCaseSensitive(test, "actions");
	const cJSON *a;
	double		hr = num_at(test, "hr@10", NULL),
				ndcg = num_at(test, "ndcg@10", NULL),
				pop_hr = num_at(test, "popularity", "hr@10", NULL),
				pop_ndcg = num_at(test, "popularity", "ndcg@10", NULL);

	put(b, "<section class=\"model\"><h2>");
	put_text(b, m->name);
	if (m->layout)
	{
		put(b, " <small>layout ");
		put_text(b, m->layout);
		put(b, "</small>");
	}
	put(b, "</h2>\n");
	if (!isfinite(pop_hr))
		pop_hr = num_at(sum, "baselines", "popularity", "hr@10", NULL);
	if (!isfinite(pop_ndcg))
		pop_ndcg = num_at(sum, "baselines", "popularity", "ndcg@10", NULL);
	put(b, "<table class=\"metrics\"><tr><th>test metric</th><th>model</th><th>baseline</th>"
		"</tr>\n<tr><td>HR@10</td><td>");
	put_num(b, hr);
	put(b, "</td><td>");
	put_num(b, pop_hr);
	put(b, " (popularity)</td></tr>\n<tr><td>NDCG@10</td><td>");
	put_num(b, ndcg);
	put(b, "</td><td>");
	put_num(b, pop_ndcg);
	put(b, " (popularity)</td></tr>\n<tr><td>MRR</td><td>");
	put_num(b, num_at(test, "mrr", NULL));
	put(b, "</td><td></td></tr>\n");
	cJSON_ArrayForEach(a, acts)
	{
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(a, "name");
		bool		binary = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "binary"));

		put(b, "<tr><td>");
		put(b, binary ? "log loss / NE " : "RMSE ");
		put_text(b, cJSON_IsString(name) ? name->valuestring : "action");
		put(b, "</td><td>");
		put_num(b, num_at(a, binary ? "logloss" : "rmse", NULL));
		if (binary)
		{
			put(b, " / ");
			put_num(b, num_at(a, "ne", NULL));
		}
		put(b, "</td><td>");
		if (!binary)
		{
			double		base = num_at(a, "baseline_rmse", NULL);

			put_num(b, isfinite(base) ? base : num_at(sum, "baselines", "bias_rmse", NULL));
			put(b, " (global + user + item bias)");
		}
		put(b, "</td></tr>\n");
	}
	put(b, "</table>\n");
	{
		Bar			bars[4] = {{"HR@10", "model", hr, NAN}, {"HR@10", "popularity", pop_hr, NAN},
		{"NDCG@10", "model", ndcg, NAN}, {"NDCG@10", "popularity", pop_ndcg, NAN}};

		bar_chart(b, "test", "Test HR@10 and NDCG@10 against popularity", bars, 4, 2);
	}
	GR_TRY(model_curves(b, sum, err));
	put(b, "</section>\n");
	return GR_OK;
}

/* Mean and sample standard deviation of the finite values; NaN when there are none. */
static void
mean_sd(const double *v, int n, double *mean, double *sd)
{
	double		s = 0,
				ss = 0;
	int			k = 0;

	for (int i = 0; i < n; i++)
		if (isfinite(v[i]))
		{
			s += v[i];
			k++;
		}
	*mean = k ? s / k : NAN;
	for (int i = 0; i < n; i++)
		if (isfinite(v[i]))
			ss += (v[i] - *mean) * (v[i] - *mean);
	*sd = k > 1 ? sqrt(ss / (k - 1)) : NAN;
}

/* Bars per layout (mean ± sd over its models) for test HR@10 and NDCG@10. */
static gr_status
comparison(Buf *b, const gr_report_model *models, cJSON *const *sums, int n, gr_error *err)
{
	Bar		   *bars = gr_calloc(b->env, (size_t) 2 * n, sizeof(Bar));
	double	   *hr = gr_calloc(b->env, (size_t) n, sizeof(double));
	double	   *ndcg = gr_calloc(b->env, (size_t) n, sizeof(double));
	int			nb = 0;

	if (bars == NULL || hr == NULL || ndcg == NULL)
	{
		gr_free(b->env, bars);
		gr_free(b->env, hr);
		gr_free(b->env, ndcg);
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "report: out of memory");
	}
	put(b, "<section class=\"comparison\"><h2>Comparison</h2>\n<table class=\"metrics\">"
		"<tr><th>layout</th><th>models</th><th>test HR@10</th><th>test NDCG@10</th></tr>\n");
	for (int i = 0; i < n; i++)
	{
		const char *g = models[i].layout ? models[i].layout : models[i].name;
		int			k = 0;
		bool		seen = false;
		double		mh,
					sh,
					mn,
					sn;

		for (int j = 0; j < i && !seen; j++)
			seen = strcmp(g, models[j].layout ? models[j].layout : models[j].name) == 0;
		if (seen)
			continue;
		for (int j = i; j < n; j++)
			if (strcmp(g, models[j].layout ? models[j].layout : models[j].name) == 0)
			{
				const cJSON *t = cJSON_GetObjectItemCaseSensitive(sums[j], "test");

				hr[k] = num_at(t, "hr@10", NULL);
				ndcg[k] = num_at(t, "ndcg@10", NULL);
				k++;
			}
		mean_sd(hr, k, &mh, &sh);
		mean_sd(ndcg, k, &mn, &sn);
		bars[nb++] = (Bar) {g, "HR@10", mh, sh};
		bars[nb++] = (Bar) {g, "NDCG@10", mn, sn};
		put(b, "<tr><td>");
		put_text(b, g);
		putf(b, "</td><td>%d</td><td>", k);
		put_num(b, mh);
		if (isfinite(sh))
			putf(b, " &plusmn; %.4f", sh);
		put(b, "</td><td>");
		put_num(b, mn);
		if (isfinite(sn))
			putf(b, " &plusmn; %.4f", sn);
		put(b, "</td></tr>\n");
	}
	put(b, "</table>\n");
	bar_chart(b, "comparison", "Test HR@10 and NDCG@10 per layout (mean ± sd over its models)",
			  bars, nb, 2);
	put(b, "</section>\n");
	gr_free(b->env, bars);
	gr_free(b->env, hr);
	gr_free(b->env, ndcg);
	return GR_OK;
}

static const char *const style =
"<style>body{font:14px/1.4 sans-serif;margin:24px;color:#222;max-width:1200px}"
"h1{font-size:22px}h2{font-size:18px;margin-top:28px}small{color:#666;font-weight:normal}"
"table.metrics{border-collapse:collapse;margin:8px 0}table.metrics td,table.metrics th"
"{border:1px solid #ccc;padding:4px 10px;text-align:right}table.metrics td:first-child"
"{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{border:1px solid"
" #ddd;background:#fff}.axis{stroke:#444}.grid{stroke:#eee}.tick{font-size:11px;fill:#444}"
".ctitle{font-size:13px;font-weight:bold}.best{stroke:#999;stroke-dasharray:4 3}"
".errorbar{stroke:#000;stroke-width:1.5;fill:none}.note{color:#666}</style>";

/* Render the report (see gr_report.h). */
gr_status
gr_report_html(const gr_env *env, const gr_report_model *models, int n, char **html,
			   size_t *len, gr_error *err)
{
	static const gr_json_limits limits = {64u << 20, 1u << 22, 32};
	Buf			b = {env, NULL, 0, 0, false};
	cJSON	  **sums;
	gr_status	st = GR_OK;

	*html = NULL;
	*len = 0;
	if (n < 1)
		return gr_fail(err, GR_ERR_INVALID_ARGUMENT, "report: no model to report");
	sums = gr_calloc(env, (size_t) n, sizeof(cJSON *));
	if (sums == NULL)
		return gr_fail(err, GR_ERR_OUT_OF_MEMORY, "report: out of memory");
	for (int i = 0; i < n && st == GR_OK; i++)
	{
		const char *j = models[i].summary_json;

		if (j != NULL && j[0] != '\0')
			st = gr_json_parse(env, j, strlen(j), &limits, "model summary",
							   GR_ERR_INVALID_ARGUMENT, &sums[i], err);
		if (st == GR_OK && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(sums[i], "metrics")))
		{
			/* a file exported from genrec.models keeps the catalogue's metrics under "metrics" */
			cJSON	   *inner = cJSON_DetachItemFromObjectCaseSensitive(sums[i], "metrics");

			gr_json_delete(sums[i]);
			sums[i] = inner;
		}
		if (st == GR_OK && sums[i] == NULL)
		{
			gr_json_scope scope;

			gr_json_scope_begin(&scope, env);
			sums[i] = cJSON_CreateObject();
			gr_json_scope_end(&scope);
			if (sums[i] == NULL)
				st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "report: out of memory");
		}
	}
	if (st == GR_OK)
	{
		put(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>genrec report: ");
		put_text(&b, models[0].name);
		if (n > 1)
			putf(&b, " and %d more", n - 1);
		put(&b, "</title>");
		put(&b, style);
		put(&b, "</head><body>\n<h1>genrec report</h1>\n<p class=\"note\">Protocol: leave-one-out "
			"per user (last interaction = test, second to last = validation), the target ranked "
			"over the full catalogue with the user's earlier items excluded; action RMSE on the "
			"[0, 1]-normalised scale. Curves are per epoch; the dashed line marks the best "
			"epoch (validation log NDCG@10 - mean log action error).</p>\n");
		if (n > 1)
			st = comparison(&b, models, sums, n, err);
		for (int i = 0; i < n && st == GR_OK; i++)
			st = model_section(&b, &models[i], sums[i], err);
		put(&b, "</body></html>\n");
	}
	for (int i = 0; i < n; i++)
		gr_json_delete(sums[i]);
	gr_free(env, sums);
	if (st == GR_OK && b.failed)
		st = gr_fail(err, GR_ERR_OUT_OF_MEMORY, "report: out of memory");
	if (st != GR_OK)
	{
		gr_free(env, b.p);
		return st;
	}
	*html = b.p;
	*len = b.len;
	return GR_OK;
}
