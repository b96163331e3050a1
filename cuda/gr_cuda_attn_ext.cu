/*
 * gr_cuda_attn_ext.cu — softmax attention with a mask mode and a second value stream (the
 * general form of gr_ops.h's attn_fwd / attn_bwd), for the cases the tiled kernels of
 * gr_cuda_attn.cu do not cover: the strict-causal mask (AttnLFA pooling, AttnMVP) and values
 * read from a second stream v2 at the strict keys.
 *
 * The predicates are evaluated per (query, key) as key ranges: a query q of a sequence with
 * H history tokens sees keys [0, nk) and, under the causal mask as a candidate, itself; v2 is
 * read at the strict keys [0, nk2) (nk2 = q for history queries, H for candidates). No mask
 * is materialised. One block of 128 threads owns one (query, head) at a time (grid-stride over
 * queries, heads and sequences); the forward pass is an online softmax over the visible keys
 * and saves the log-sum-exp; a query with no visible key gets output 0 and lse -inf. The
 * backward pass recomputes P from the lse and accumulates dK, dV and dv2 with atomicAdd into
 * zeroed buffers; dQ belongs to the block that owns the query.
 */
#include "gr_cuda.h"

#define EXT_THREADS 128

/* Keys [0, nk) of query q, whether it also sees itself, and the strict keys [0, *nk2). */
static __device__ __forceinline__ int
ext_visible(int q, int H, int mask, bool *self, int *nk2)
{
	bool		candidate = q >= H;

	*nk2 = candidate ? H : q;
	if (mask == GR_MASK_STRICT)
	{
		*self = false;
		return *nk2;
	}
	*self = candidate;
	return candidate ? H : q + 1;
}

/* Sum v over the block's 128 threads (every thread gets the sum); red holds 4 floats. */
static __device__ float
ext_block_sum(float v, float *red)
{
	v = gr_warp_sum(v);
	__syncthreads();			/* red is free again */
	if ((threadIdx.x & 31) == 0)
		red[threadIdx.x >> 5] = v;
	__syncthreads();
	return red[0] + red[1] + red[2] + red[3];
}

/* Forward: block (query, head, sequence), out used as the accumulator. */
static __global__ void
attn_ext_fwd_kernel(float *out, float *lse, const float *qkv, const float *v2,
					const int32_t *seq_off, const int32_t *n_hist, int n_seq, int mask,
					int n_head, int d, int dh, float scale)
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
				bool		self;
				int			nk2, nk = ext_visible(q, H, mask, &self, &nk2);
				int			n_keys = nk + (self ? 1 : 0);
				float		m = -INFINITY, l = 0.0f;

				for (int i = threadIdx.x; i < dh; i += blockDim.x)
					o[i] = 0.0f;
				for (int j = 0; j < n_keys; j++)
				{
					int			k = j < nk ? j : q;
					const float *kv = qkv + (size_t) (base + k) * ld + d + (size_t) h * dh;
					const float *vv = kv + d;
					const float *v2v = v2 && j < nk2 ?
						v2 + (size_t) (base + k) * d + (size_t) h * dh : NULL;
					float		part = 0.0f;

					for (int i = threadIdx.x; i < dh; i += blockDim.x)
						part += qv[i] * kv[i];
					float		sc = ext_block_sum(part, red) * scale;
					float		mn = fmaxf(m, sc);
					float		alpha = m == -INFINITY ? 0.0f : expf(m - mn);
					float		p = expf(sc - mn);

					for (int i = threadIdx.x; i < dh; i += blockDim.x)
						o[i] = o[i] * alpha + p * (vv[i] + (v2v ? v2v[i] : 0.0f));
					l = l * alpha + p;
					m = mn;
				}
				if (n_keys > 0)
					for (int i = threadIdx.x; i < dh; i += blockDim.x)
						o[i] /= l;
				if (threadIdx.x == 0)
					lse[(size_t) (base + q) * n_head + h] = n_keys > 0 ? m + logf(l) : -INFINITY;
			}
		}
}

/* Backward: block (query, head, sequence); dQ owned, dK, dV and dv2 by atomicAdd. */
static __global__ void
attn_ext_bwd_kernel(float *dqkv, float *dv2, const float *dout, const float *qkv,
					const float *v2, const float *out, const float *lse,
					const int32_t *seq_off, const int32_t *n_hist, int n_seq, int mask,
					int n_head, int d, int dh, float scale)
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
				const float *ov = out + t * d + (size_t) h * dh;
				float	   *dq = dqkv + t * ld + (size_t) h * dh;
				float		L = lse[t * n_head + h];
				bool		self;
				int			nk2, nk = ext_visible(q, H, mask, &self, &nk2);
				int			n_keys = nk + (self ? 1 : 0);
				float		part = 0.0f;

				for (int i = threadIdx.x; i < dh; i += blockDim.x)
					part += g[i] * ov[i];
				float		D = ext_block_sum(part, red);

				for (int j = 0; j < n_keys; j++)
				{
					int			k = j < nk ? j : q;
					const float *kv = qkv + (size_t) (base + k) * ld + d + (size_t) h * dh;
					const float *vv = kv + d;
					bool		second = v2 != NULL && j < nk2;
					const float *v2v = second ? v2 + (size_t) (base + k) * d + (size_t) h * dh : NULL;
					float	   *dk = dqkv + (size_t) (base + k) * ld + d + (size_t) h * dh;
					float	   *dv = dk + d;
					float		ps = 0.0f, pd = 0.0f;

					for (int i = threadIdx.x; i < dh; i += blockDim.x)
					{
						ps += qv[i] * kv[i];
						pd += g[i] * (vv[i] + (second ? v2v[i] : 0.0f));
					}
					float		sc = ext_block_sum(ps, red);
					float		dp = ext_block_sum(pd, red);
					float		p = expf(sc * scale - L);
					float		ds = p * (dp - D) * scale;

					for (int i = threadIdx.x; i < dh; i += blockDim.x)
					{
						dq[i] += ds * kv[i];
						atomicAdd(&dk[i], ds * qv[i]);
						atomicAdd(&dv[i], p * g[i]);
						if (second)
							atomicAdd(&dv2[(size_t) (base + k) * d + (size_t) h * dh + i], p * g[i]);
					}
				}
			}
		}
}

/* Grid of (queries, heads, sequences), each dimension capped. */
static dim3
ext_grid(const gr_cuda_ctx *c, int T, int n_head, int n_seq)
{
	return dim3(gr_cuda_dim(T, c->grid_yz_cap), gr_cuda_dim(n_head, c->grid_yz_cap),
				gr_cuda_dim(n_seq, c->grid_yz_cap));
}

/* Forward with a mask mode and an optional second value stream. */
void
gr_cuda_attn_ext_fwd(gr_cuda_ctx *c, float *out, float *lse, const float *qkv, const float *v2,
					 const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head, int d, int T)
{
	int			dh = d / n_head;

	(void) GR_LAUNCH(c, attn_ext_fwd_kernel, ext_grid(c, T, n_head, seqs->n_seq), EXT_THREADS, 0,
					 out, lse, qkv, v2, seqs->dev_seq_off, seqs->dev_n_hist, seqs->n_seq,
					 (int) mask, n_head, d, dh, 1.0f / sqrtf((float) dh));
}

/* Backward with a mask mode and an optional second value stream; dqkv and dv2 overwritten. */
void
gr_cuda_attn_ext_bwd(gr_cuda_ctx *c, float *dqkv, float *dv2, const float *dout,
					 const float *qkv, const float *v2, const float *out, const float *lse,
					 const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head, int d, int T)
{
	int			dh = d / n_head;
	int			N = seqs->seq_off[seqs->n_seq];

	if (!gr_cuda_ok(c, cudaMemsetAsync(dqkv, 0, (size_t) N * 3 * d * sizeof(float), c->stream),
					"attn_bwd (zero dqkv)"))
		return;
	if (v2 != NULL &&
		!gr_cuda_ok(c, cudaMemsetAsync(dv2, 0, (size_t) N * d * sizeof(float), c->stream),
					"attn_bwd (zero dv2)"))
		return;
	(void) GR_LAUNCH(c, attn_ext_bwd_kernel, ext_grid(c, T, n_head, seqs->n_seq), EXT_THREADS, 0,
					 dqkv, v2 ? dv2 : NULL, dout, qkv, v2, out, lse, seqs->dev_seq_off,
					 seqs->dev_n_hist, seqs->n_seq, (int) mask, n_head, d, dh,
					 1.0f / sqrtf((float) dh));
}
