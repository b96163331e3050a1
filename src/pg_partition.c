/*
 * pg_partition.c — the user hash that places interactions on partition servers and routes
 * calls to them (README "Scaling out").
 *
 * genrec_user_hash(user_id) is the first output of SplitMix64 seeded with the user id (its
 * two's-complement bits), shifted right by 33: a number in [0, 2^31). genrec_partition(user_id,
 * n) is that hash modulo n. Both are fixed by this definition on every platform and in every
 * version (test/pgtap/scale.sql pins values), so the partition a loader writes a user to, the
 * partition PL/Proxy sends the user's calls to (RUN ON genrec_user_hash(user_id): PL/Proxy
 * takes the hash & (n - 1) for 2^k partitions, or abs(hash % n) with modular_mapping, both
 * equal to hash % n for a non-negative hash) and CHECK constraints on the partitions agree.
 * PostgreSQL's hashint8 and hashtext are internal and may change between major versions.
 */
#include "postgres.h"

#include "fmgr.h"

/* Hash a user id: the first SplitMix64 output seeded with it, top 31 bits. */
static int32
user_hash(int64 user_id)
{
	uint64		z = (uint64) user_id + UINT64CONST(0x9e3779b97f4a7c15);

	z = (z ^ (z >> 30)) * UINT64CONST(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94d049bb133111eb);
	z = z ^ (z >> 31);
	return (int32) (z >> 33);
}

PG_FUNCTION_INFO_V1(genrec_user_hash);

/* genrec_user_hash(user_id bigint) -> integer in [0, 2^31). */
Datum
genrec_user_hash(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(user_hash(PG_GETARG_INT64(0)));
}

PG_FUNCTION_INFO_V1(genrec_partition);

/* genrec_partition(user_id bigint, n_partitions integer) -> integer in [0, n_partitions). */
Datum
genrec_partition(PG_FUNCTION_ARGS)
{
	int32		n = PG_GETARG_INT32(1);

	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n_partitions must be at least 1, not %d", n)));
	PG_RETURN_INT32(user_hash(PG_GETARG_INT64(0)) % n);
}
