/*
 * gr_cuda_attn.cu — multi-head attention over packed sequences, flash-style.
 *
 * These kernels serve the causal (block-causal) mask of gr_ops.h without a second value
 * stream, evaluated per (query, key) inside the kernels: allow(q, k) = (q < n_hist && k <= q)
 * || (q >= n_hist && (k < n_hist || k == q)); no T x T mask or score matrix ever reaches
 * device memory. The strict mask and the second value stream are dispatched to
 * gr_cuda_attn_ext.cu.
 *
 * Forward: a block owns 64 queries of one (sequence, head) and streams 64-key tiles of K and
 * V through shared memory with an online softmax, saving the log-sum-exp per (token, head).
 * Only the key tiles a query tile can see are visited: keys [0, min(q_end, n_hist)) and, for
 * candidate queries, the diagonal keys [max(q_start, n_hist), q_end).
 * Backward (FlashAttention-2 order): D = rowsum(dO * O) first; then a block owns 64 keys,
 * keeps their dK and dV in registers (so they are written once, without races) and streams the
 * query tiles that can see them, recomputing P = exp(S - lse); dQ is accumulated across key
 * blocks with atomicAdd into a zeroed dqkv.
 * Head sizes up to 128 use these tiled kernels (padded to 32, 64 or 128 with zeros); larger
 * heads fall back to a simple kernel with one block per (query, head). The tiled kernels'
 * shared memory is granted once per context (gr_cuda_attn_setup, at open), not per launch.
 * Every kernel loops over the (sequence, head, tile) items and D's (token, head) pairs that its
 * capped grid does not cover, so no size is silently dropped.
 * Arithmetic is fp32 FFMA in every math mode.
 */
#include "gr_cuda.h"

#define AT_BQ 64
#define AT_BK 64
#define AT_THREADS 256

/* The block-causal predicate of gr_ops.h. */
static __device__ __forceinline__ bool
attn_allow(int q, int k, int n_hist)
{
	return q < n_hist ? k <= q : (k < n_hist || k == q);
}

/* Dynamic shared memory of the tiled forward kernel. */
static size_t
fwd_smem(int DH)
{
	return sizeof(float) * ((size_t) (AT_BQ + 2 * AT_BK) * (DH + 1) + (size_t) AT_BQ * (AT_BK + 1));
}

/* Dynamic shared memory of the tiled backward kernel. */
static size_t
bwd_smem(int DH)
{
	return sizeof(float) * ((size_t) (2 * AT_BQ + 2 * AT_BK) * (DH + 1) +
							2 * (size_t) AT_BQ * (AT_BK + 1) + 2 * AT_BQ);
}

/* Tiled forward: block (query tile, head, sequence); thread (ty, tx) owns query rows
 * ty + 16a and, in the score tile, key columns tx + 16b. */
template <int DH>
static __global__ void
__launch_bounds__(AT_THREADS)
attn_fwd_kernel(float *out, float *lse, const float *qkv, const int32_t *seq_off,
				const int32_t *n_hist, int n_seq, int n_head, int d, int dh, float scale)
{
	GR_DYN_SMEM(float, sm);
	const int	LD = DH + 1;
	const int	LP = AT_BK + 1;
	const int	NC = DH / 16;
	float	   *Qs = sm;
	float	   *Ks = Qs + AT_BQ * LD;
	float	   *Vs = Ks + AT_BK * LD;
	float	   *Ps = Vs + AT_BK * LD;
	int			tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
	size_t		ld = 3 * (size_t) d;

	/* grid-stride over (sequence, head, query tile); every bound is uniform over the block */
	for (int s = blockIdx.z; s < n_seq; s += gridDim.z)
	for (int h = blockIdx.y; h < n_head; h += gridDim.y)
	for (int q0 = blockIdx.x * AT_BQ; q0 < seq_off[s + 1] - seq_off[s]; q0 += gridDim.x * AT_BQ)
	{
		int			base = seq_off[s], T = seq_off[s + 1] - base, H = n_hist[s];
		int			q1 = min(q0 + AT_BQ, T);
		const float *Qg = qkv + (size_t) base * ld + (size_t) h * dh;
		const float *Kg = Qg + d;
		const float *Vg = Qg + 2 * (size_t) d;
		float		o[4][NC], m[4], l[4];

		__syncthreads();		/* the previous item's readers are done */
		for (int i = tid; i < AT_BQ * DH; i += AT_THREADS)
		{
			int			r = i / DH, cc = i % DH, q = q0 + r;

			Qs[r * LD + cc] = (q < q1 && cc < dh) ? Qg[(size_t) q * ld + cc] : 0.0f;
		}
		GR_UNROLL
		for (int a = 0; a < 4; a++)
		{
			m[a] = -INFINITY;
			l[a] = 0.0f;
			GR_UNROLL
			for (int j = 0; j < NC; j++)
				o[a][j] = 0.0f;
		}
		for (int pass = 0; pass < 2; pass++)
		{
			/* pass 0: keys [0, min(q1, H)); pass 1: the candidates' own keys */
			int			ks = pass == 0 ? 0 : max(q0, H);
			int			ke = pass == 0 ? min(q1, H) : q1;

			for (int k0 = ks; k0 < ke; k0 += AT_BK)
			{
				float		sc[4][4];

				__syncthreads();
				for (int i = tid; i < AT_BK * DH; i += AT_THREADS)
				{
					int			r = i / DH, cc = i % DH, k = k0 + r;
					bool		ok = k < ke && cc < dh;

					Ks[r * LD + cc] = ok ? Kg[(size_t) k * ld + cc] : 0.0f;
					Vs[r * LD + cc] = ok ? Vg[(size_t) k * ld + cc] : 0.0f;
				}
				__syncthreads();
				GR_UNROLL
				for (int a = 0; a < 4; a++)
					GR_UNROLL
					for (int b = 0; b < 4; b++)
						sc[a][b] = 0.0f;
				for (int i = 0; i < DH; i++)
				{
					float		qa[4], kb[4];

					GR_UNROLL
					for (int a = 0; a < 4; a++)
						qa[a] = Qs[(ty + 16 * a) * LD + i];
					GR_UNROLL
					for (int b = 0; b < 4; b++)
						kb[b] = Ks[(tx + 16 * b) * LD + i];
					GR_UNROLL
					for (int a = 0; a < 4; a++)
						GR_UNROLL
						for (int b = 0; b < 4; b++)
							sc[a][b] += qa[a] * kb[b];
				}
				GR_UNROLL
				for (int a = 0; a < 4; a++)
				{
					int			q = q0 + ty + 16 * a;
					float		mx = -INFINITY;

					GR_UNROLL
					for (int b = 0; b < 4; b++)
					{
						int			k = k0 + tx + 16 * b;

						sc[a][b] = (k < ke && attn_allow(q, k, H)) ? sc[a][b] * scale : -INFINITY;
						mx = fmaxf(mx, sc[a][b]);
					}
					GR_UNROLL
					for (int off = 1; off < 16; off <<= 1)
						mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
					float		mn = fmaxf(m[a], mx);
					float		alpha = mn == -INFINITY ? 1.0f : expf(m[a] - mn);

					m[a] = mn;
					l[a] *= alpha;
					GR_UNROLL
					for (int j = 0; j < NC; j++)
						o[a][j] *= alpha;
					GR_UNROLL
					for (int b = 0; b < 4; b++)
					{
						float		p = sc[a][b] == -INFINITY ? 0.0f : expf(sc[a][b] - mn);

						l[a] += p;
						Ps[(ty + 16 * a) * LP + tx + 16 * b] = p;
					}
				}
				__syncthreads();
				for (int kk = 0; kk < AT_BK; kk++)
				{
					float		pa[4], vb[NC];

					GR_UNROLL
					for (int a = 0; a < 4; a++)
						pa[a] = Ps[(ty + 16 * a) * LP + kk];
					GR_UNROLL
					for (int j = 0; j < NC; j++)
						vb[j] = Vs[kk * LD + tx + 16 * j];
					GR_UNROLL
					for (int a = 0; a < 4; a++)
						GR_UNROLL
						for (int j = 0; j < NC; j++)
							o[a][j] += pa[a] * vb[j];
				}
			}
		}
		GR_UNROLL
		for (int a = 0; a < 4; a++)
		{
			float		lt = l[a];
			int			q = q0 + ty + 16 * a;

			GR_UNROLL
			for (int off = 1; off < 16; off <<= 1)
				lt += __shfl_xor_sync(0xffffffffu, lt, off);
			if (q < q1)
			{
				float		inv = 1.0f / lt;
				float	   *orow = out + (size_t) (base + q) * d + (size_t) h * dh;

				GR_UNROLL
				for (int j = 0; j < NC; j++)
				{
					int			cc = tx + 16 * j;

					if (cc < dh)
						orow[cc] = o[a][j] * inv;
				}
				if (tx == 0)
					lse[(size_t) (base + q) * n_head + h] = m[a] + logf(lt);
			}
		}
	}
}

/* D[t, h] = dot(dO[t, h], O[t, h]), one warp per (token, head), grid-stride. */
static __global__ void
attn_delta_kernel(float *D, const float *dout, const float *out, int n_tokens, int n_head,
				  int d, int dh)
{
	size_t		n = (size_t) n_tokens * n_head;
	size_t		stride = ((size_t) gridDim.x * blockDim.x) >> 5;
	int			lane = threadIdx.x & 31;

	for (size_t w = ((size_t) blockIdx.x * blockDim.x + threadIdx.x) >> 5; w < n; w += stride)
	{
		size_t		t = w / n_head;
		int			h = (int) (w % n_head);
		const float *a = dout + t * d + (size_t) h * dh;
		const float *b = out + t * d + (size_t) h * dh;
		float		s = 0.0f;

		for (int i = lane; i < dh; i += 32)
			s += a[i] * b[i];
		s = gr_warp_sum(s);
		if (lane == 0)
			D[w] = s;
	}
}

/* Tiled backward: block (key tile, head, sequence); thread (ty, tx) owns key rows ty + 16a
 * of dK/dV and, in the score tile, query rows ty + 16a and key columns tx + 16b. */
template <int DH>
static __global__ void
__launch_bounds__(AT_THREADS)
attn_bwd_kernel(float *dqkv, const float *dout, const float *qkv, const float *lse,
				const float *Dbuf, const int32_t *seq_off, const int32_t *n_hist, int n_seq,
				int n_head, int d, int dh, float scale)
{
	GR_DYN_SMEM(float, sm);
	const int	LD = DH + 1;
	const int	LP = AT_BK + 1;
	const int	NC = DH / 16;
	float	   *Ks = sm;
	float	   *Vs = Ks + AT_BK * LD;
	float	   *Qs = Vs + AT_BK * LD;
	float	   *dOs = Qs + AT_BQ * LD;
	float	   *Ps = dOs + AT_BQ * LD;
	float	   *dSs = Ps + AT_BQ * LP;
	float	   *Ls = dSs + AT_BQ * LP;
	float	   *Dd = Ls + AT_BQ;
	int			tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
	size_t		ld = 3 * (size_t) d;

	/* grid-stride over (sequence, head, key tile); every bound is uniform over the block */
	for (int s = blockIdx.z; s < n_seq; s += gridDim.z)
	for (int h = blockIdx.y; h < n_head; h += gridDim.y)
	for (int k0 = blockIdx.x * AT_BK; k0 < seq_off[s + 1] - seq_off[s]; k0 += gridDim.x * AT_BK)
	{
		int			base = seq_off[s], T = seq_off[s + 1] - base, H = n_hist[s];
		int			k1 = min(k0 + AT_BK, T);
		/* history keys are seen by every later query; candidate keys only by themselves */
		int			qend = k0 < H ? T : k1;
		const float *Qg = qkv + (size_t) base * ld + (size_t) h * dh;
		const float *Kg = Qg + d;
		const float *Vg = Qg + 2 * (size_t) d;
		const float *dOg = dout + (size_t) base * d + (size_t) h * dh;
		float	   *dQg = dqkv + (size_t) base * ld + (size_t) h * dh;
		float		dk[4][NC], dv[4][NC];

		__syncthreads();
		for (int i = tid; i < AT_BK * DH; i += AT_THREADS)
		{
			int			r = i / DH, cc = i % DH, k = k0 + r;
			bool		ok = k < k1 && cc < dh;

			Ks[r * LD + cc] = ok ? Kg[(size_t) k * ld + cc] : 0.0f;
			Vs[r * LD + cc] = ok ? Vg[(size_t) k * ld + cc] : 0.0f;
		}
		GR_UNROLL
		for (int a = 0; a < 4; a++)
			GR_UNROLL
			for (int j = 0; j < NC; j++)
				dk[a][j] = dv[a][j] = 0.0f;
		for (int q0 = k0; q0 < qend; q0 += AT_BQ)
		{
			float		sc[4][4], dp[4][4], dq[4][NC];

			__syncthreads();
			for (int i = tid; i < AT_BQ * DH; i += AT_THREADS)
			{
				int			r = i / DH, cc = i % DH, q = q0 + r;
				bool		ok = q < qend && cc < dh;

				Qs[r * LD + cc] = ok ? Qg[(size_t) q * ld + cc] : 0.0f;
				dOs[r * LD + cc] = ok ? dOg[(size_t) q * d + cc] : 0.0f;
			}
			for (int r = tid; r < AT_BQ; r += AT_THREADS)
			{
				int			q = q0 + r;

				Ls[r] = q < qend ? lse[(size_t) (base + q) * n_head + h] : 0.0f;
				Dd[r] = q < qend ? Dbuf[(size_t) (base + q) * n_head + h] : 0.0f;
			}
			__syncthreads();
			GR_UNROLL
			for (int a = 0; a < 4; a++)
				GR_UNROLL
				for (int b = 0; b < 4; b++)
					sc[a][b] = dp[a][b] = 0.0f;
			for (int i = 0; i < DH; i++)
			{
				float		qa[4], ga[4], kb[4], vb[4];

				GR_UNROLL
				for (int a = 0; a < 4; a++)
				{
					qa[a] = Qs[(ty + 16 * a) * LD + i];
					ga[a] = dOs[(ty + 16 * a) * LD + i];
				}
				GR_UNROLL
				for (int b = 0; b < 4; b++)
				{
					kb[b] = Ks[(tx + 16 * b) * LD + i];
					vb[b] = Vs[(tx + 16 * b) * LD + i];
				}
				GR_UNROLL
				for (int a = 0; a < 4; a++)
					GR_UNROLL
					for (int b = 0; b < 4; b++)
					{
						sc[a][b] += qa[a] * kb[b];
						dp[a][b] += ga[a] * vb[b];
					}
			}
			GR_UNROLL
			for (int a = 0; a < 4; a++)
			{
				int			r = ty + 16 * a, q = q0 + r;

				GR_UNROLL
				for (int b = 0; b < 4; b++)
				{
					int			c = tx + 16 * b, k = k0 + c;
					bool		ok = q < qend && k < k1 && attn_allow(q, k, H);
					float		p = ok ? expf(sc[a][b] * scale - Ls[r]) : 0.0f;

					Ps[r * LP + c] = p;
					dSs[r * LP + c] = p * (dp[a][b] - Dd[r]) * scale;
				}
			}
			__syncthreads();
			/* dV += P^T dO, dK += dS^T Q (rows: keys ty + 16a; columns tx + 16j) */
			for (int r = 0; r < AT_BQ; r++)
			{
				float		pa[4], sa[4], gb[NC], qb[NC];

				GR_UNROLL
				for (int a = 0; a < 4; a++)
				{
					pa[a] = Ps[r * LP + ty + 16 * a];
					sa[a] = dSs[r * LP + ty + 16 * a];
				}
				GR_UNROLL
				for (int j = 0; j < NC; j++)
				{
					gb[j] = dOs[r * LD + tx + 16 * j];
					qb[j] = Qs[r * LD + tx + 16 * j];
				}
				GR_UNROLL
				for (int a = 0; a < 4; a++)
					GR_UNROLL
					for (int j = 0; j < NC; j++)
					{
						dv[a][j] += pa[a] * gb[j];
						dk[a][j] += sa[a] * qb[j];
					}
			}
			/* dQ += dS K (rows: queries ty + 16a) */
			GR_UNROLL
			for (int a = 0; a < 4; a++)
				GR_UNROLL
				for (int j = 0; j < NC; j++)
					dq[a][j] = 0.0f;
			for (int kk = 0; kk < AT_BK; kk++)
			{
				float		sa[4], kb[NC];

				GR_UNROLL
				for (int a = 0; a < 4; a++)
					sa[a] = dSs[(ty + 16 * a) * LP + kk];
				GR_UNROLL
				for (int j = 0; j < NC; j++)
					kb[j] = Ks[kk * LD + tx + 16 * j];
				GR_UNROLL
				for (int a = 0; a < 4; a++)
					GR_UNROLL
					for (int j = 0; j < NC; j++)
						dq[a][j] += sa[a] * kb[j];
			}
			GR_UNROLL
			for (int a = 0; a < 4; a++)
			{
				int			q = q0 + ty + 16 * a;

				if (q >= qend)
					continue;
				GR_UNROLL
				for (int j = 0; j < NC; j++)
				{
					int			cc = tx + 16 * j;

					if (cc < dh)
						atomicAdd(&dQg[(size_t) q * ld + cc], dq[a][j]);
				}
			}
		}
		GR_UNROLL
		for (int a = 0; a < 4; a++)
		{
			int			k = k0 + ty + 16 * a;

			if (k >= k1)
				continue;
			float	   *dkrow = dqkv + (size_t) (base + k) * ld + d + (size_t) h * dh;
			float	   *dvrow = dkrow + d;

			GR_UNROLL
			for (int j = 0; j < NC; j++)
			{
				int			cc = tx + 16 * j;

				if (cc < dh)
				{
					dkrow[cc] = dk[a][j];
					dvrow[cc] = dv[a][j];
				}
			}
		}
	}
}

/* Sum v over a block of 128 threads (every thread gets the sum); red has 4 floats. */
static __device__ float
block128_sum(float v, float *red)
{
	v = gr_warp_sum(v);
	__syncthreads();			/* red is free again */
	if ((threadIdx.x & 31) == 0)
		red[threadIdx.x >> 5] = v;
	__syncthreads();
	return red[0] + red[1] + red[2] + red[3];
}

/* Forward for any head size: block (query, head, sequence), 128 threads over the head dims,
 * out used as the accumulator. */
static __global__ void
attn_fwd_naive_kernel(float *out, float *lse, const float *qkv, const int32_t *seq_off,
					  const int32_t *n_hist, int n_seq, int n_head, int d, int dh, float scale)
{
	GR_SHARED(float, red, [4]);
	size_t		ld = 3 * (size_t) d;

	for (int s = blockIdx.z; s < n_seq; s += gridDim.z)
	for (int h = blockIdx.y; h < n_head; h += gridDim.y)
	{
		int			base = seq_off[s], T = seq_off[s + 1] - base, H = n_hist[s];

		for (int q = blockIdx.x; q < T; q += gridDim.x)
		{
			const float *qv = qkv + (size_t) (base + q) * ld + (size_t) h * dh;
			float	   *o = out + (size_t) (base + q) * d + (size_t) h * dh;
			int			nk = q < H ? q + 1 : H;
			float		m = -INFINITY, l = 0.0f;

			for (int i = threadIdx.x; i < dh; i += blockDim.x)
				o[i] = 0.0f;
			for (int j = 0; j <= nk; j++)
			{
				int			k = j < nk ? j : q;

				if (j == nk && q < H)
					break;
				const float *kv = qkv + (size_t) (base + k) * ld + d + (size_t) h * dh;
				const float *vv = kv + d;
				float		part = 0.0f;

				for (int i = threadIdx.x; i < dh; i += blockDim.x)
					part += qv[i] * kv[i];
				float		sc = block128_sum(part, red) * scale;
				float		mn = fmaxf(m, sc);
				float		alpha = m == -INFINITY ? 0.0f : expf(m - mn);
				float		p = expf(sc - mn);

				for (int i = threadIdx.x; i < dh; i += blockDim.x)
					o[i] = o[i] * alpha + p * vv[i];
				l = l * alpha + p;
				m = mn;
			}
			for (int i = threadIdx.x; i < dh; i += blockDim.x)
				o[i] /= l;
			if (threadIdx.x == 0)
				lse[(size_t) (base + q) * n_head + h] = m + logf(l);
		}
	}
}

/* Backward for any head size: block (query, head, sequence); dK and dV by atomicAdd. */
static __global__ void
attn_bwd_naive_kernel(float *dqkv, const float *dout, const float *qkv, const float *lse,
					  const float *Dbuf, const int32_t *seq_off, const int32_t *n_hist,
					  int n_seq, int n_head, int d, int dh, float scale)
{
	GR_SHARED(float, red, [4]);
	size_t		ld = 3 * (size_t) d;

	for (int s = blockIdx.z; s < n_seq; s += gridDim.z)
	for (int h = blockIdx.y; h < n_head; h += gridDim.y)
	{
		int			base = seq_off[s], T = seq_off[s + 1] - base, H = n_hist[s];

		for (int q = blockIdx.x; q < T; q += gridDim.x)
		{
			size_t		t = (size_t) (base + q);
			const float *qv = qkv + t * ld + (size_t) h * dh;
			const float *g = dout + t * d + (size_t) h * dh;
			float	   *dq = dqkv + t * ld + (size_t) h * dh;
			float		L = lse[t * n_head + h], D = Dbuf[t * n_head + h];
			int			nk = q < H ? q + 1 : H;

			for (int j = 0; j <= nk; j++)
			{
				int			k = j < nk ? j : q;

				if (j == nk && q < H)
					break;
				const float *kv = qkv + (size_t) (base + k) * ld + d + (size_t) h * dh;
				const float *vv = kv + d;
				float	   *dk = dqkv + (size_t) (base + k) * ld + d + (size_t) h * dh;
				float	   *dv = dk + d;
				float		ps = 0.0f, pd = 0.0f;

				for (int i = threadIdx.x; i < dh; i += blockDim.x)
				{
					ps += qv[i] * kv[i];
					pd += g[i] * vv[i];
				}
				float		sc = block128_sum(ps, red);
				float		dp = block128_sum(pd, red);
				float		p = expf(sc * scale - L);
				float		ds = p * (dp - D) * scale;

				for (int i = threadIdx.x; i < dh; i += blockDim.x)
				{
					dq[i] += ds * kv[i];
					atomicAdd(&dk[i], ds * qv[i]);
					atomicAdd(&dv[i], p * g[i]);
				}
			}
		}
	}
}

/* Index of a tiled kernel's padded head size (32, 64, 128) in the setup flags, or -1. */
static int
tile_slot(int DH)
{
	return DH == 32 ? 0 : DH == 64 ? 1 : DH == 128 ? 2 : -1;
}

/* Ask for one tiled kernel's dynamic shared memory; false (and a recorded failure) if refused. */
template <typename K>
static bool
grant_smem(gr_cuda_ctx *c, K kernel, size_t smem, const char *name, bool *granted)
{
	*granted = false;
	if (smem > c->smem_optin)
		return true;			/* too large for this device: the fallback kernel runs */
	if (!gr_cuda_ok(c, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
											(int) smem), name))
		return false;
	*granted = true;
	return true;
}

/* Grant the tiled kernels their dynamic shared memory, once per context (at open). */
bool
gr_cuda_attn_setup(gr_cuda_ctx *c)
{
	return grant_smem(c, attn_fwd_kernel<32>, fwd_smem(32), "attn_fwd_kernel<32> (smem attribute)",
					  &c->attn_fwd_tiled[0]) &&
		grant_smem(c, attn_fwd_kernel<64>, fwd_smem(64), "attn_fwd_kernel<64> (smem attribute)",
				   &c->attn_fwd_tiled[1]) &&
		grant_smem(c, attn_fwd_kernel<128>, fwd_smem(128),
				   "attn_fwd_kernel<128> (smem attribute)", &c->attn_fwd_tiled[2]) &&
		grant_smem(c, attn_bwd_kernel<32>, bwd_smem(32), "attn_bwd_kernel<32> (smem attribute)",
				   &c->attn_bwd_tiled[0]) &&
		grant_smem(c, attn_bwd_kernel<64>, bwd_smem(64), "attn_bwd_kernel<64> (smem attribute)",
				   &c->attn_bwd_tiled[1]) &&
		grant_smem(c, attn_bwd_kernel<128>, bwd_smem(128),
				   "attn_bwd_kernel<128> (smem attribute)", &c->attn_bwd_tiled[2]);
}

/* Head size rounded up to a tiled kernel's whose shared memory was granted, or 0. */
static int
tile_dh(gr_cuda_ctx *c, int dh, bool bwd)
{
	int			DH = dh <= 32 ? 32 : dh <= 64 ? 64 : dh <= 128 ? 128 : 0;
	int			slot = tile_slot(DH);

	if (slot < 0 || !(bwd ? c->attn_bwd_tiled[slot] : c->attn_fwd_tiled[slot]))
		return 0;
	return DH;
}

/* Longest sequence, from the host offsets. */
static int
max_seq_len(const gr_attn_seqs *seqs)
{
	int			mx = 0;

	for (int s = 0; s < seqs->n_seq; s++)
		mx = GR_MAX(mx, seqs->seq_off[s + 1] - seqs->seq_off[s]);
	return mx;
}

/* Grid over (tiles or queries, heads, sequences), each dimension capped. */
static dim3
attn_grid(const gr_cuda_ctx *c, int n_x, int n_head, int n_seq)
{
	return dim3(gr_cuda_dim(n_x, c->grid_yz_cap), gr_cuda_dim(n_head, c->grid_yz_cap),
				gr_cuda_dim(n_seq, c->grid_yz_cap));
}

/* Attention forward over all sequences and heads (the strict mask and a second value
 * stream go to gr_cuda_attn_ext.cu). */
void
gr_cuda_attn_fwd(void *ctx, float *out, float *lse, const float *qkv, const float *v2,
				 const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head, int d)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	int			dh = d / n_head, T = max_seq_len(seqs);
	float		scale = 1.0f / sqrtf((float) dh);
	int			n_seq = seqs->n_seq;
	dim3		tiles = attn_grid(c, (T + AT_BQ - 1) / AT_BQ, n_head, n_seq);
	const int32_t *off = seqs->dev_seq_off, *nh = seqs->dev_n_hist;

	if (n_seq <= 0 || T <= 0 || GR_CUDA_PENDING(c))
		return;
	if (mask != GR_MASK_CAUSAL || v2 != NULL)
	{
		gr_cuda_attn_ext_fwd(c, out, lse, qkv, v2, seqs, mask, n_head, d, T);
		return;
	}
	switch (tile_dh(c, dh, false))
	{
		case 32:
			(void) GR_LAUNCH(c, attn_fwd_kernel<32>, tiles, AT_THREADS, fwd_smem(32), out, lse,
							 qkv, off, nh, n_seq, n_head, d, dh, scale);
			break;
		case 64:
			(void) GR_LAUNCH(c, attn_fwd_kernel<64>, tiles, AT_THREADS, fwd_smem(64), out, lse,
							 qkv, off, nh, n_seq, n_head, d, dh, scale);
			break;
		case 128:
			(void) GR_LAUNCH(c, attn_fwd_kernel<128>, tiles, AT_THREADS, fwd_smem(128), out, lse,
							 qkv, off, nh, n_seq, n_head, d, dh, scale);
			break;
		default:
			(void) GR_LAUNCH(c, attn_fwd_naive_kernel, attn_grid(c, T, n_head, n_seq), 128, 0,
							 out, lse, qkv, off, nh, n_seq, n_head, d, dh, scale);
			break;
	}
}

/* Attention backward over all sequences and heads: dqkv (and dv2) are overwritten. */
void
gr_cuda_attn_bwd(void *ctx, float *dqkv, float *dv2, const float *dout, const float *qkv,
				 const float *v2, const float *out, const float *lse, const gr_attn_seqs *seqs,
				 gr_attn_mask mask, int n_head, int d)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	int			dh = d / n_head, T = max_seq_len(seqs);
	int			N = seqs->n_seq > 0 ? seqs->seq_off[seqs->n_seq] : 0;
	float		scale = 1.0f / sqrtf((float) dh);
	int			n_seq = seqs->n_seq;
	dim3		tiles = attn_grid(c, (T + AT_BK - 1) / AT_BK, n_head, n_seq);
	const int32_t *off = seqs->dev_seq_off, *nh = seqs->dev_n_hist;
	size_t		nw = (size_t) N * n_head;
	float	   *D;

	if (n_seq <= 0 || T <= 0 || N <= 0 || GR_CUDA_PENDING(c))
		return;
	if (mask != GR_MASK_CAUSAL || v2 != NULL)
	{
		gr_cuda_attn_ext_bwd(c, dqkv, dv2, dout, qkv, v2, out, lse, seqs, mask, n_head, d, T);
		return;
	}
	D = (float *) gr_cuda_scratch(c, nw * sizeof(float));
	if (D == NULL)
		return;
	if (!gr_cuda_ok(c, cudaMemsetAsync(dqkv, 0, (size_t) N * 3 * d * sizeof(float), c->stream),
					"attn_bwd (zero dqkv)"))
		return;
	if (!GR_LAUNCH(c, attn_delta_kernel, gr_cuda_blocks(c, nw * 32, 256), 256, 0, D, dout, out, N,
				   n_head, d, dh))
		return;
	switch (tile_dh(c, dh, true))
	{
		case 32:
			(void) GR_LAUNCH(c, attn_bwd_kernel<32>, tiles, AT_THREADS, bwd_smem(32), dqkv, dout,
							 qkv, lse, D, off, nh, n_seq, n_head, d, dh, scale);
			break;
		case 64:
			(void) GR_LAUNCH(c, attn_bwd_kernel<64>, tiles, AT_THREADS, bwd_smem(64), dqkv, dout,
							 qkv, lse, D, off, nh, n_seq, n_head, d, dh, scale);
			break;
		case 128:
			(void) GR_LAUNCH(c, attn_bwd_kernel<128>, tiles, AT_THREADS, bwd_smem(128), dqkv,
							 dout, qkv, lse, D, off, nh, n_seq, n_head, d, dh, scale);
			break;
		default:
			(void) GR_LAUNCH(c, attn_bwd_naive_kernel, attn_grid(c, T, n_head, n_seq), 128, 0,
							 dqkv, dout, qkv, lse, D, off, nh, n_seq, n_head, d, dh, scale);
			break;
	}
}
