/*
 * bench_stats.h — timing helpers shared by the C benchmarks: a monotonic clock in
 * microseconds, process CPU time and quantiles of sorted samples.
 */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stdlib.h>
#include <time.h>

/* Monotonic microseconds. */
static inline double
bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return 1e6 * (double) ts.tv_sec + 1e-3 * (double) ts.tv_nsec;
}

/* Process CPU microseconds (all threads): less sensitive than the wall clock to other
 * processes on a shared machine, though it counts OpenMP's spin-waits. */
static inline double
bench_cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return 1e6 * (double) ts.tv_sec + 1e-3 * (double) ts.tv_nsec;
}

/* Order doubles ascending (for qsort). */
static inline int
bench_cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a, y = *(const double *) b;

	return x < y ? -1 : (x > y);
}

/* Sort samples in place and return their q-quantile (nearest rank). */
static inline double
bench_quantile(double *samples, int n, double q)
{
	qsort(samples, n, sizeof(double), bench_cmp_double);
	return samples[(int) (q * (n - 1) + 0.5)];
}

#endif							/* BENCH_STATS_H */
