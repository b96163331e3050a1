/*
 * gr_hstu.h — the relative biases of HSTU attention (LAYOUTS.md §2.3), shared by the CPU
 * backend, the CUDA kernels and the tests: plain C, no PostgreSQL, no CUDA.
 *
 * The score of query q and key k in one head is
 *   S = alpha q.k + w_pos[clamp(pos_q - pos_k, 0, n_pos - 1)] + w_time[bucket(|tq_q - tk_k|)]
 * with one w_pos [n_pos] and one w_time [GR_HSTU_TIME_BUCKETS] per layer, shared by its heads
 * (as in the HSTU code's RelativeBucketedTimeAndPositionBasedBias). The time bucket is
 * HSTU's floor(ln(max(gap, 1)) / 0.301) clamped to [0, 128], defined here exactly by a table
 * of integer edges, ceil(e^{0.301 b}) for b = 1..128: bucket(gap) is the number of edges at or
 * below gap. Every backend and the PyTorch reference use this table, so a gap never lands in
 * different buckets on different machines (a log in float would disagree near the edges).
 * Times are int64 in the unit of the model's time column (seconds for an integer column,
 * microseconds since 1970 for a timestamp).
 */
#ifndef GR_HSTU_H
#define GR_HSTU_H

#include <stdint.h>

#define GR_HSTU_TIME_BUCKETS 129
#define GR_HSTU_BUCKET_EDGES 128

/* The relative biases of one layer and the per-token data they read (backend memory). */
typedef struct gr_hstu_rab
{
	const float *w_pos;			/* [n_pos] by position gap */
	const float *w_time;		/* [GR_HSTU_TIME_BUCKETS] by bucketed time gap */
	int			n_pos;
	const int32_t *pos;			/* [tokens] learned-position ids */
	const int64_t *tq;			/* [tokens] the time each token queries at */
	const int64_t *tk;			/* [tokens] the time each token is a key at */
} gr_hstu_rab;

#ifdef __CUDACC__
#define GR_HSTU_FN static inline __host__ __device__
#else
#define GR_HSTU_FN static inline
#endif

/* First gap of bucket b + 1: ceil(exp(0.301 (b + 1))). Under nvcc the device code reads a
 * __constant__ copy (gr_hstu_edges_dev) and the host code this one. */
#define GR_HSTU_EDGES_INIT { \
	INT64_C(2), INT64_C(2), INT64_C(3), INT64_C(4), \
	INT64_C(5), INT64_C(7), INT64_C(9), INT64_C(12), \
	INT64_C(16), INT64_C(21), INT64_C(28), INT64_C(38), \
	INT64_C(51), INT64_C(68), INT64_C(92), INT64_C(124), \
	INT64_C(167), INT64_C(226), INT64_C(305), INT64_C(412), \
	INT64_C(557), INT64_C(752), INT64_C(1016), INT64_C(1372), \
	INT64_C(1854), INT64_C(2505), INT64_C(3385), INT64_C(4574), \
	INT64_C(6180), INT64_C(8350), INT64_C(11283), INT64_C(15245), \
	INT64_C(20600), INT64_C(27834), INT64_C(37610), INT64_C(50818), \
	INT64_C(68666), INT64_C(92782), INT64_C(125367), INT64_C(169397), \
	INT64_C(228891), INT64_C(309280), INT64_C(417902), INT64_C(564672), \
	INT64_C(762990), INT64_C(1030960), INT64_C(1393042), INT64_C(1882291), \
	INT64_C(2543369), INT64_C(3436624), INT64_C(4643598), INT64_C(6274473), \
	INT64_C(8478127), INT64_C(11455724), INT64_C(15479081), INT64_C(20915478), \
	INT64_C(28261189), INT64_C(38186783), INT64_C(51598337), INT64_C(69720155), \
	INT64_C(94206525), INT64_C(127292737), INT64_C(171999135), INT64_C(232406837), \
	INT64_C(314030289), INT64_C(424320660), INT64_C(573346040), INT64_C(774710524), \
	INT64_C(1046796097), INT64_C(1414440665), INT64_C(1911205440), INT64_C(2582438644), \
	INT64_C(3489415219), INT64_C(4714930440), INT64_C(6370858056), INT64_C(8608362918), \
	INT64_C(11631700390), INT64_C(15716862225), INT64_C(21236771058), INT64_C(28695323438), \
	INT64_C(38773389087), INT64_C(52390965538), INT64_C(70791162047), INT64_C(95653679456), \
	INT64_C(129248145233), INT64_C(174641301215), INT64_C(235976957620), INT64_C(318854269524), \
	INT64_C(430838867570), INT64_C(582153502558), INT64_C(786611250865), INT64_C(1062876470327), \
	INT64_C(1436168615607), INT64_C(1940564449431), INT64_C(2622108811928), INT64_C(3543017921206), \
	INT64_C(4787358912370), INT64_C(6468724083690), INT64_C(8740600409714), INT64_C(11810380924256), \
	INT64_C(15958297031977), INT64_C(21563000024645), INT64_C(29136127064885), INT64_C(39369007066311), \
	INT64_C(53195770115076), INT64_C(71878621509799), INT64_C(97123064840915), INT64_C(131233592491846), \
	INT64_C(177324056098576), INT64_C(239601921079808), INT64_C(323752354013491), INT64_C(437457205087949), \
	INT64_C(591096262037949), INT64_C(798694791013881), INT64_C(1079203862655711), INT64_C(1458230340644298), \
	INT64_C(1970374458392742), INT64_C(2662388374508187), INT64_C(3597444042437656), INT64_C(4860899995802051), \
	INT64_C(6568093482609845), INT64_C(8874869269797398), INT64_C(11991806262278848), INT64_C(16203440643505288), \
	INT64_C(21894240362561140), INT64_C(29583702103771340), INT64_C(39973774639893472), INT64_C(54012937709959592), \
}

static const int64_t gr_hstu_edges[GR_HSTU_BUCKET_EDGES] = GR_HSTU_EDGES_INIT;
#ifdef __CUDACC__
__device__ __constant__ static const int64_t gr_hstu_edges_dev[GR_HSTU_BUCKET_EDGES] =
	GR_HSTU_EDGES_INIT;
#endif

/* Bucket of a time gap (either sign): the number of edges at or below |gap|. */
GR_HSTU_FN int
gr_hstu_time_bucket(int64_t gap)
{
#ifdef __CUDA_ARCH__
	const int64_t *edges = gr_hstu_edges_dev;
#else
	const int64_t *edges = gr_hstu_edges;
#endif
	int			lo = 0, hi = GR_HSTU_BUCKET_EDGES;

	if (gap < 0)
		gap = gap == INT64_MIN ? INT64_MAX : -gap;
	while (lo < hi)				/* first edge above gap */
	{
		int			mid = (lo + hi) / 2;

		if (edges[mid] <= gap)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Bias index of a position gap: clamped to the table. */
GR_HSTU_FN int
gr_hstu_pos_index(int32_t pos_q, int32_t pos_k, int n_pos)
{
	int			g = pos_q - pos_k;

	return g < 0 ? 0 : (g >= n_pos ? n_pos - 1 : g);
}

#endif							/* GR_HSTU_H */
