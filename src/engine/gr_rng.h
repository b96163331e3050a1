/*
 * gr_rng.h — counter-based random numbers (Philox4x32-10), identical on CPU and GPU.
 *
 * Every draw is a pure function of (seed, stream, step, element): the key is (seed, stream)
 * and the counter is (element low, element high, step, 0). Init and dropout therefore do not
 * depend on thread scheduling or device, and a run is reproducible from its seed. The header
 * is written so a .cu file can include it unchanged.
 */
#ifndef GR_RNG_H
#define GR_RNG_H

#include <stdint.h>

#if defined(__CUDACC__)
#define GR_HD __host__ __device__ __forceinline__
#else
#define GR_HD static inline
#endif

/* Streams name what a draw is for, so two uses never share numbers. */
enum
{
	GR_STREAM_INIT = 1,			/* + tensor index: parameter initialisation */
	GR_STREAM_SHUFFLE = 0x10000,	/* + epoch: user order */
	GR_STREAM_DROPOUT = 0x20000,	/* + site: dropout masks */
	GR_STREAM_TEST = 0x30000,	/* tests */
	GR_STREAM_NEGATIVES = 0x40000,	/* sampled negatives of the item loss */
	GR_STREAM_IVF = 0x50000		/* the IVF index's training sample and reseeds */
};

typedef struct gr_philox4
{
	uint32_t	v[4];
} gr_philox4;

/* Multiply two 32-bit words into high and low halves. */
GR_HD void
gr_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
	uint64_t	p = (uint64_t) a * (uint64_t) b;

	*hi = (uint32_t) (p >> 32);
	*lo = (uint32_t) p;
}

/* Run ten Philox4x32 rounds on counter c under key (k0, k1). */
GR_HD gr_philox4
gr_philox4x32(gr_philox4 c, uint32_t k0, uint32_t k1)
{
	for (int r = 0; r < 10; r++)
	{
		uint32_t	hi0, lo0, hi1, lo1;

		gr_mulhilo32(0xD2511F53u, c.v[0], &hi0, &lo0);
		gr_mulhilo32(0xCD9E8D57u, c.v[2], &hi1, &lo1);
		gr_philox4 n;

		n.v[0] = hi1 ^ c.v[1] ^ k0;
		n.v[1] = lo1;
		n.v[2] = hi0 ^ c.v[3] ^ k1;
		n.v[3] = lo0;
		c = n;
		k0 += 0x9E3779B9u;
		k1 += 0xBB67AE85u;
	}
	return c;
}

/* Draw four 32-bit words for (seed, stream, step, element). */
GR_HD gr_philox4
gr_rng_words(uint64_t seed, uint32_t stream, uint32_t step, uint64_t element)
{
	gr_philox4	c;

	c.v[0] = (uint32_t) element;
	c.v[1] = (uint32_t) (element >> 32);
	c.v[2] = step;
	c.v[3] = stream;
	return gr_philox4x32(c, (uint32_t) seed, (uint32_t) (seed >> 32));
}

/* Map a 32-bit word to a float uniform in [0, 1) with 24 bits of precision. */
GR_HD float
gr_word_to_unit(uint32_t w)
{
	return (float) (w >> 8) * (1.0f / 16777216.0f);
}

/* Draw one uniform float in [0, 1) for (seed, stream, step, element). */
GR_HD float
gr_rng_uniform(uint64_t seed, uint32_t stream, uint32_t step, uint64_t element)
{
	return gr_word_to_unit(gr_rng_words(seed, stream, step, element).v[0]);
}

/* Keep-flags of dropout for the four elements 4 * block .. 4 * block + 3 (bit i = element
 * 4 * block + i kept): one Philox draw serves four elements. */
GR_HD unsigned
gr_dropout_keep4(uint64_t seed, uint32_t site, uint32_t step, uint64_t block, float p)
{
	gr_philox4	r = gr_rng_words(seed, GR_STREAM_DROPOUT + site, step, block);
	unsigned	bits = 0;

	for (int i = 0; i < 4; i++)
		bits |= (unsigned) (gr_word_to_unit(r.v[i]) >= p) << i;
	return bits;
}

/* Decide whether dropout keeps an element (word element % 4 of draw element / 4): true with
 * probability 1 - p. */
GR_HD int
gr_dropout_keep(uint64_t seed, uint32_t site, uint32_t step, uint64_t element, float p)
{
	gr_philox4	r = gr_rng_words(seed, GR_STREAM_DROPOUT + site, step, element >> 2);

	return gr_word_to_unit(r.v[element & 3]) >= p;
}

#endif							/* GR_RNG_H */
