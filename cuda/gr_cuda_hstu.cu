/*
 * gr_cuda_hstu.cu — HSTU pointwise attention over packed sequences (gr_ops.h hstu_attn_fwd /
 * hstu_attn_bwd; LAYOUTS.md §2.3; the biases and the exact time buckets in gr_hstu.h), the
 * CUDA twin of src/engine/gr_ops_cpu_hstu.c.
 *
 * There is no softmax: A_qk = SiLU(S_qk) / n depends on the pair (q, k) alone, so every pass
 * is a warp per row looping over that row's partners, with no T x T buffer and no running
 * normaliser. A block is HSTU_WARPS warps; warp w of block x owns rows x * W + w, then
 * x * W + w + gridDim.x * W, ... of a (head, sequence) (grid y and z, all grid-stride). Per
 * chunk of 32 partners each lane computes one pair's score (a dot product of the row vector,
 * staged in shared memory, with the partner's row in global memory, plus the two bias
 * gathers); the chunk's weights are then published in the warp's shared slots (one warp
 * barrier, cheaper than a shuffle per partner, on the emulation too) and the lanes accumulate
 * the row's output over the head's columns (lane i owns columns i, i + 32, ... of the row's
 * shared accumulators, so no further synchronisation is needed).
 *
 * The backward pass is two kernels, each owning the rows it writes, so dqkv and dv2 are
 * overwritten without zeroing, atomics or order effects, and the u columns of rows of stride
 * ld > 3d are never touched:
 *   - by query: dq_q = sum_k alpha dS_qk k_k, and the bias gradients dS summed per block in
 *     shared memory (atomicAdd) and flushed once per block into d_w_pos / d_w_time with
 *     atomicAdd (a position table too large for shared memory takes global atomics);
 *   - by key: dk_k = sum_q alpha dS_qk q_q, dv_k = sum_q A_qk dO_q, dv2_k over the strict
 *     queries. The queries that see key k are a range: for a history key (k < H) every
 *     q >= k under the causal mask, q > k under the strict one; a candidate key is seen only
 *     by itself, under the causal mask. A key is strict for q exactly when k < H and q > k.
 * dS = dO.(v [+ v2]) SiLU'(S) / n with SiLU'(S) = sig(S) (1 + S (1 - sig(S))), recomputed
 * from S in each kernel.
 *
 * Status: checked on the CPU emulation only (test/gpu/test_cuda_hstu.c), never yet run on a
 * GPU, and not tuned: a lane reads its partner's row from global memory on its own (not
 * coalesced across the warp; no tiling through shared memory), and the time bucket's binary
 * search reads the __constant__ edge table at a different address per lane (serialised).
 */
#include "gr_cuda.h"

#define HSTU_WARPS 4
#define HSTU_SMEM_MAX (48 * 1024)

/* Everything the kernels read, passed by value. */
typedef struct hstu_args
{
	const float *qkv;
	const float *v2;			/* or NULL */
	const float *w_pos, *w_time;
	const int32_t *pos;
	const int64_t *tq, *tk;
	const int32_t *seq_off, *n_hist;
	int			ld, n_pos, n_seq, mask, n_head, d, dh;
	float		alpha, inv_n;
} hstu_args;

/* Keys [0, nk) of query q, whether it also sees itself, and the strict keys [0, *nk2). */
static __device__ __forceinline__ int
hstu_visible(int q, int H, int mask, bool *self, int *nk2)
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

/* Queries [*q0, *q0 + n) that see key k, then (when *self) k itself; returns the count. */
static __device__ __forceinline__ int
hstu_seen_by(int k, int H, int T, int mask, int *q0, bool *self)
{
	if (k < H)
	{
		*q0 = mask == GR_MASK_STRICT ? k + 1 : k;
		*self = false;
		return T - *q0;
	}
	*q0 = 0;
	*self = mask == GR_MASK_CAUSAL;
	return 0;
}

/* Dot product of n floats. */
static __device__ __forceinline__ float
hstu_dot(const float *a, const float *b, int n)
{
	float		s = 0.0f;

	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* sig(z). */
static __device__ __forceinline__ float
hstu_sigmoid(float z)
{
	return 1.0f / (1.0f + expf(-z));
}

/* Bias of the pair (tokens iq, ik), with the two table indices. */
static __device__ __forceinline__ float
hstu_bias(const hstu_args &a, int iq, int ik, int *ip, int *it)
{
	*ip = gr_hstu_pos_index(a.pos[iq], a.pos[ik], a.n_pos);
	*it = gr_hstu_time_bucket(a.tq[iq] - a.tk[ik]);
	return a.w_pos[*ip] + a.w_time[*it];
}

/* Forward: a warp per query; out written for every token of every head. */
static __global__ void __launch_bounds__(HSTU_WARPS * 32)
hstu_fwd_kernel(hstu_args a, float *out)
{
	GR_DYN_SMEM(float, smem);
	int			lane = threadIdx.x & 31, warp = threadIdx.x >> 5, dh = a.dh;
	float	   *sq = smem + (size_t) warp * (2 * dh + 32), *so = sq + dh, *sw = so + dh;
	size_t		ld = (size_t) a.ld;

	for (int s = blockIdx.z; s < a.n_seq; s += gridDim.z)
		for (int h = blockIdx.y; h < a.n_head; h += gridDim.y)
		{
			int			base = a.seq_off[s], T = a.seq_off[s + 1] - base, H = a.n_hist[s];
			const float *K = a.qkv + (size_t) base * ld + a.d + (size_t) h * dh;
			const float *V = K + a.d;
			const float *V2 = a.v2 ? a.v2 + (size_t) base * a.d + (size_t) h * dh : NULL;

			for (int q = blockIdx.x * HSTU_WARPS + warp; q < T; q += gridDim.x * HSTU_WARPS)
			{
				const float *qv = a.qkv + (size_t) (base + q) * ld + (size_t) h * dh;
				bool		self;
				int			nk2, nk = hstu_visible(q, H, a.mask, &self, &nk2);
				int			n_keys = nk + (self ? 1 : 0);

				for (int i = lane; i < dh; i += 32)
				{
					sq[i] = qv[i];
					so[i] = 0.0f;
				}
				__syncwarp();
				for (int j0 = 0; j0 < n_keys; j0 += 32)
				{
					int			j = j0 + lane, n = min(32, n_keys - j0), ip, it;
					float		w = 0.0f;

					if (j < n_keys)
					{
						int			k = j < nk ? j : q;
						float		sc = a.alpha * hstu_dot(sq, K + (size_t) k * ld, dh) +
							hstu_bias(a, base + q, base + k, &ip, &it);

						w = sc * hstu_sigmoid(sc) * a.inv_n;
					}
					sw[lane] = w;
					__syncwarp();
					for (int jj = 0; jj < n; jj++)
					{
						float		wj = sw[jj];
						int			k = j0 + jj < nk ? j0 + jj : q;
						const float *vv = V + (size_t) k * ld;
						const float *v2v = V2 && j0 + jj < nk2 ? V2 + (size_t) k * a.d : NULL;

						for (int i = lane; i < dh; i += 32)
						{
							so[i] += wj * vv[i];
							if (v2v)
								so[i] += wj * v2v[i];
						}
					}
					__syncwarp();	/* sw is rewritten by the next chunk */
				}
				float	   *o = out + (size_t) (base + q) * a.d + (size_t) h * dh;

				for (int i = lane; i < dh; i += 32)
					o[i] = so[i];
				__syncwarp();	/* sq is reloaded for the next query */
			}
		}
}

/* Backward by query: dq, and the bias gradients through the block's shared sums. */
static __global__ void __launch_bounds__(HSTU_WARPS * 32)
hstu_bwd_q_kernel(hstu_args a, const float *dout, float *dqkv, float *d_w_pos, float *d_w_time,
				  int pos_in_smem)
{
	GR_DYN_SMEM(float, smem);
	int			lane = threadIdx.x & 31, warp = threadIdx.x >> 5, dh = a.dh;
	float	   *g_time = smem, *g_pos = pos_in_smem ? g_time + GR_HSTU_TIME_BUCKETS : d_w_pos;
	float	   *sq = smem + GR_HSTU_TIME_BUCKETS + (pos_in_smem ? a.n_pos : 0) +
		(size_t) warp * (3 * dh + 32);
	float	   *sdo = sq + dh, *sdq = sdo + dh, *sds = sdq + dh;
	size_t		ld = (size_t) a.ld;

	for (int i = threadIdx.x; i < GR_HSTU_TIME_BUCKETS + (pos_in_smem ? a.n_pos : 0);
		 i += blockDim.x)
		smem[i] = 0.0f;
	__syncthreads();
	for (int s = blockIdx.z; s < a.n_seq; s += gridDim.z)
		for (int h = blockIdx.y; h < a.n_head; h += gridDim.y)
		{
			int			base = a.seq_off[s], T = a.seq_off[s + 1] - base, H = a.n_hist[s];
			const float *K = a.qkv + (size_t) base * ld + a.d + (size_t) h * dh;
			const float *V = K + a.d;
			const float *V2 = a.v2 ? a.v2 + (size_t) base * a.d + (size_t) h * dh : NULL;

			for (int q = blockIdx.x * HSTU_WARPS + warp; q < T; q += gridDim.x * HSTU_WARPS)
			{
				size_t		t = (size_t) (base + q);
				const float *qv = a.qkv + t * ld + (size_t) h * dh;
				const float *gv = dout + t * a.d + (size_t) h * dh;
				bool		self;
				int			nk2, nk = hstu_visible(q, H, a.mask, &self, &nk2);
				int			n_keys = nk + (self ? 1 : 0);

				for (int i = lane; i < dh; i += 32)
				{
					sq[i] = qv[i];
					sdo[i] = gv[i];
					sdq[i] = 0.0f;
				}
				__syncwarp();
				for (int j0 = 0; j0 < n_keys; j0 += 32)
				{
					int			j = j0 + lane, n = min(32, n_keys - j0), ip, it;
					float		ds = 0.0f;

					if (j < n_keys)
					{
						int			k = j < nk ? j : q;
						float		sc = a.alpha * hstu_dot(sq, K + (size_t) k * ld, dh) +
							hstu_bias(a, base + q, base + k, &ip, &it);
						float		sg = hstu_sigmoid(sc);
						float		da = hstu_dot(sdo, V + (size_t) k * ld, dh) +
							(V2 && j < nk2 ? hstu_dot(sdo, V2 + (size_t) k * a.d, dh) : 0.0f);

						ds = da * sg * (1.0f + sc * (1.0f - sg)) * a.inv_n;
						atomicAdd(&g_time[it], ds);
						atomicAdd(&g_pos[ip], ds);
					}
					sds[lane] = a.alpha * ds;
					__syncwarp();
					for (int jj = 0; jj < n; jj++)
					{
						float		dsj = sds[jj];
						int			k = j0 + jj < nk ? j0 + jj : q;
						const float *kv = K + (size_t) k * ld;

						for (int i = lane; i < dh; i += 32)
							sdq[i] += dsj * kv[i];
					}
					__syncwarp();
				}
				float	   *dq = dqkv + t * ld + (size_t) h * dh;

				for (int i = lane; i < dh; i += 32)
					dq[i] = sdq[i];
				__syncwarp();
			}
		}
	__syncthreads();
	for (int i = threadIdx.x; i < GR_HSTU_TIME_BUCKETS; i += blockDim.x)
		if (g_time[i] != 0.0f)
			atomicAdd(&d_w_time[i], g_time[i]);
	for (int i = threadIdx.x; pos_in_smem && i < a.n_pos; i += blockDim.x)
		if (g_pos[i] != 0.0f)
			atomicAdd(&d_w_pos[i], g_pos[i]);
}

/* Backward by key: dk, dv and dv2, each row written once by the warp that owns the key. */
static __global__ void __launch_bounds__(HSTU_WARPS * 32)
hstu_bwd_k_kernel(hstu_args a, const float *dout, float *dqkv, float *dv2)
{
	GR_DYN_SMEM(float, smem);
	int			lane = threadIdx.x & 31, warp = threadIdx.x >> 5, dh = a.dh;
	float	   *sk = smem + (size_t) warp * (6 * dh + 96), *sv = sk + dh, *sv2 = sv + dh;
	float	   *sdk = sv2 + dh, *sdv = sdk + dh, *sdv2 = sdv + dh;
	float	   *sw = sdv2 + dh, *sds = sw + 32, *ssec = sds + 32;
	size_t		ld = (size_t) a.ld;

	for (int s = blockIdx.z; s < a.n_seq; s += gridDim.z)
		for (int h = blockIdx.y; h < a.n_head; h += gridDim.y)
		{
			int			base = a.seq_off[s], T = a.seq_off[s + 1] - base, H = a.n_hist[s];
			const float *Q = a.qkv + (size_t) base * ld + (size_t) h * dh;
			const float *G = dout + (size_t) base * a.d + (size_t) h * dh;

			for (int k = blockIdx.x * HSTU_WARPS + warp; k < T; k += gridDim.x * HSTU_WARPS)
			{
				size_t		t = (size_t) (base + k);
				const float *kv = a.qkv + t * ld + a.d + (size_t) h * dh, *vv = kv + a.d;
				const float *v2v = a.v2 ? a.v2 + t * a.d + (size_t) h * dh : NULL;
				bool		self;
				int			q0, nq = hstu_seen_by(k, H, T, a.mask, &q0, &self);
				int			n_q = nq + (self ? 1 : 0);

				for (int i = lane; i < dh; i += 32)
				{
					sk[i] = kv[i];
					sv[i] = vv[i];
					sv2[i] = v2v ? v2v[i] : 0.0f;
					sdk[i] = sdv[i] = sdv2[i] = 0.0f;
				}
				__syncwarp();
				for (int j0 = 0; j0 < n_q; j0 += 32)
				{
					int			j = j0 + lane, n = min(32, n_q - j0), ip, it;
					float		w = 0.0f, ds = 0.0f;
					int			second = 0;

					if (j < n_q)
					{
						int			q = j < nq ? q0 + j : k;
						const float *gq = G + (size_t) q * a.d;
						float		sc = a.alpha * hstu_dot(Q + (size_t) q * ld, sk, dh) +
							hstu_bias(a, base + q, base + k, &ip, &it);
						float		sg = hstu_sigmoid(sc);

						second = v2v != NULL && k < H && q > k;
						float		da = hstu_dot(gq, sv, dh) +
							(second ? hstu_dot(gq, sv2, dh) : 0.0f);

						w = sc * sg * a.inv_n;
						ds = da * sg * (1.0f + sc * (1.0f - sg)) * a.inv_n;
					}
					sw[lane] = w;
					sds[lane] = a.alpha * ds;
					ssec[lane] = second ? w : 0.0f;
					__syncwarp();
					for (int jj = 0; jj < n; jj++)
					{
						float		wj = sw[jj], dsj = sds[jj], w2j = ssec[jj];
						int			q = j0 + jj < nq ? q0 + j0 + jj : k;
						const float *qv = Q + (size_t) q * ld, *gq = G + (size_t) q * a.d;

						for (int i = lane; i < dh; i += 32)
						{
							sdk[i] += dsj * qv[i];
							sdv[i] += wj * gq[i];
							if (v2v)
								sdv2[i] += w2j * gq[i];
						}
					}
					__syncwarp();
				}
				float	   *dk = dqkv + t * ld + a.d + (size_t) h * dh, *dv = dk + a.d;

				for (int i = lane; i < dh; i += 32)
				{
					dk[i] = sdk[i];
					dv[i] = sdv[i];
					if (v2v)
						dv2[t * a.d + (size_t) h * dh + i] = sdv2[i];
				}
				__syncwarp();
			}
		}
}

/* Dynamic shared memory of the key kernel, the largest of the three. */
static size_t
hstu_smem_k(int dh)
{
	return (size_t) HSTU_WARPS * (6 * dh + 96) * sizeof(float);
}

/* The kernels' arguments; false (after recording why) when the op cannot run. */
static bool
hstu_setup(gr_cuda_ctx *c, hstu_args *a, const float *qkv, int ld, const float *v2,
		   const gr_hstu_rab *rab, const gr_attn_seqs *seqs, gr_attn_mask mask, int n_head,
		   int d, float alpha, float inv_n, int *T)
{
	if (GR_CUDA_PENDING(c) || seqs->n_seq <= 0)
		return false;
	if (n_head <= 0 || d % n_head != 0 || ld < 3 * d || rab->n_pos < 1)
	{
		gr_cuda_fail(c, GR_ERR_INVALID_ARGUMENT,
					 "hstu_attn: bad shape (d %d, %d heads, ld %d, %d positions)", d, n_head,
					 ld, rab->n_pos);
		return false;
	}
	a->qkv = qkv;
	a->v2 = v2;
	a->w_pos = rab->w_pos;
	a->w_time = rab->w_time;
	a->pos = rab->pos;
	a->tq = rab->tq;
	a->tk = rab->tk;
	a->seq_off = seqs->dev_seq_off;
	a->n_hist = seqs->dev_n_hist;
	a->ld = ld;
	a->n_pos = rab->n_pos;
	a->n_seq = seqs->n_seq;
	a->mask = (int) mask;
	a->n_head = n_head;
	a->d = d;
	a->dh = d / n_head;
	a->alpha = alpha;
	a->inv_n = inv_n;
	*T = 0;
	for (int s = 0; s < seqs->n_seq; s++)
		*T = GR_MAX(*T, seqs->seq_off[s + 1] - seqs->seq_off[s]);
	if (hstu_smem_k(a->dh) > HSTU_SMEM_MAX)
	{
		gr_cuda_fail(c, GR_ERR_INVALID_ARGUMENT, "hstu_attn: head size %d too large", a->dh);
		return false;
	}
	return *T > 0;
}

/* Grid of (row groups, heads, sequences), each dimension capped. */
static dim3
hstu_grid(const gr_cuda_ctx *c, int T, int n_head, int n_seq)
{
	return dim3(gr_cuda_dim((T + HSTU_WARPS - 1) / HSTU_WARPS, c->grid_yz_cap),
				gr_cuda_dim(n_head, c->grid_yz_cap), gr_cuda_dim(n_seq, c->grid_yz_cap));
}

/* HSTU attention forward over all sequences and heads. */
void
gr_cuda_hstu_attn_fwd(void *ctx, float *out, const float *qkv, int ld, const float *v2,
					  const gr_hstu_rab *rab, const gr_attn_seqs *seqs, gr_attn_mask mask,
					  int n_head, int d, float alpha, float inv_n)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	hstu_args	a;
	int			T;

	if (!hstu_setup(c, &a, qkv, ld, v2, rab, seqs, mask, n_head, d, alpha, inv_n, &T))
		return;
	(void) GR_LAUNCH(c, hstu_fwd_kernel, hstu_grid(c, T, n_head, seqs->n_seq), HSTU_WARPS * 32,
					 (size_t) HSTU_WARPS * (2 * a.dh + 32) * sizeof(float), a, out);
}

/* HSTU attention backward: the q | k | v columns of dqkv and dv2 (with v2) overwritten, the
 * bias gradients accumulated. */
void
gr_cuda_hstu_attn_bwd(void *ctx, float *dqkv, float *dv2, float *d_w_pos, float *d_w_time,
					  const float *dout, const float *qkv, int ld, const float *v2,
					  const gr_hstu_rab *rab, const gr_attn_seqs *seqs, gr_attn_mask mask,
					  int n_head, int d, float alpha, float inv_n)
{
	gr_cuda_ctx *c = GR_CTX(ctx);
	hstu_args	a;
	int			T;

	if (!hstu_setup(c, &a, qkv, ld, v2, rab, seqs, mask, n_head, d, alpha, inv_n, &T))
		return;
	dim3		grid = hstu_grid(c, T, n_head, seqs->n_seq);
	size_t		rows = (size_t) HSTU_WARPS * (3 * a.dh + 32) * sizeof(float);
	size_t		hist = (GR_HSTU_TIME_BUCKETS + (size_t) a.n_pos) * sizeof(float);
	int			pos_in_smem = rows + hist <= HSTU_SMEM_MAX;
	size_t		smem_q = rows + (pos_in_smem ? hist : GR_HSTU_TIME_BUCKETS * sizeof(float));

	if (!GR_LAUNCH(c, hstu_bwd_q_kernel, grid, HSTU_WARPS * 32, smem_q, a, dout, dqkv,
				   d_w_pos, d_w_time, pos_in_smem))
		return;
	(void) GR_LAUNCH(c, hstu_bwd_k_kernel, grid, HSTU_WARPS * 32,
					 hstu_smem_k(a.dh), a, dout, dqkv,
					 v2 ? dv2 : NULL);
}
