#!/usr/bin/perl
# test/pg/sql_markings.pl — every CREATE FUNCTION in the given SQL files states its volatility,
# its NULL handling (STRICT or CALLED ON NULL INPUT) and PARALLEL explicitly, and every
# CREATE AGGREGATE its PARALLEL; prints one line per omission and the counts, exits 1 on any.
# The catalogue cannot tell an explicit VOLATILE from the default, so this reads the source.
use strict;
use warnings;

my ($bad, %count) = (0);
for my $file (@ARGV) {
	open my $fh, '<', $file or die "$file: $!\n";
	my $sql = do { local $/; <$fh> };
	# Blank dollar-quoted bodies, string literals and comments, so only the statements remain.
	$sql =~ s{(\$(\w*)\$.*?\$\2\$)|('(?:[^']|'')*')|(--[^\n]*)}
	         {defined $1 ? ' $body$ ' : defined $3 ? " '' " : ' '}gse;
	for my $st (split /;/, $sql) {
		next unless $st =~ /\bCREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|AGGREGATE)\s+([\w."]+)/i;
		my ($kind, $name) = (uc $1, $2);
		my @missing;
		if ($kind eq 'FUNCTION') {
			push @missing, 'VOLATILE/STABLE/IMMUTABLE' unless $st =~ /\b(VOLATILE|STABLE|IMMUTABLE)\b/i;
			push @missing, 'STRICT/CALLED ON NULL INPUT'
				unless $st =~ /\b(STRICT|CALLED\s+ON\s+NULL\s+INPUT|RETURNS\s+NULL\s+ON\s+NULL\s+INPUT)\b/i;
			push @missing, 'PARALLEL' unless $st =~ /\bPARALLEL\s+(SAFE|RESTRICTED|UNSAFE)\b/i;
		} else {
			push @missing, 'PARALLEL' unless $st =~ /\bPARALLEL\s*=\s*(SAFE|RESTRICTED|UNSAFE)\b/i;
		}
		$count{$kind}++;
		if (@missing) {
			print "$file: $kind $name does not state ", join(', ', @missing), "\n";
			$bad++;
		}
	}
}
printf "sql_markings: %d functions, %d aggregates, %d without explicit markings\n",
	$count{FUNCTION} // 0, $count{AGGREGATE} // 0, $bad;
exit($bad ? 1 : 0);
