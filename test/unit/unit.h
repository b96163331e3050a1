/*
 * unit.h — a minimal test harness for the engine's unit tests: checks count failures and
 * print where they happened; main returns the failure count.
 */
#ifndef GR_UNIT_H
#define GR_UNIT_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int	unit_failures = 0;
static int	unit_checks = 0;

#define CHECK(cond) \
	do { unit_checks++; if (!(cond)) { unit_failures++; \
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)

#define CHECK_MSG(cond, ...) \
	do { unit_checks++; if (!(cond)) { unit_failures++; \
		fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* |a - b| <= tol * max(1, |b|); NaN never passes. */
#define CHECK_CLOSE(a, b, tol) \
	do { double ua_ = (a), ub_ = (b); unit_checks++; \
		if (!(fabs(ua_ - ub_) <= (tol) * fmax(1.0, fabs(ub_)))) { unit_failures++; \
		fprintf(stderr, "%s:%d: %s = %.9g, expected %s = %.9g (tol %g)\n", __FILE__, \
				__LINE__, #a, ua_, #b, ub_, (double) (tol)); } } while (0)

/* expr returns a gr_status and reports into the gr_error *errp */
#define CHECK_OK(expr, errp) \
	do { gr_status us_ = (expr); unit_checks++; \
		if (us_ != GR_OK) { unit_failures++; fprintf(stderr, "%s:%d: %s failed: %s: %s\n", \
		__FILE__, __LINE__, #expr, gr_status_name(us_), (errp)->message); } } while (0)

/* Print the summary line and return the process status. */
static inline int
unit_finish(const char *name)
{
	printf("%s: %d checks, %d failures\n", name, unit_checks, unit_failures);
	return unit_failures == 0 ? 0 : 1;
}

#endif							/* GR_UNIT_H */
