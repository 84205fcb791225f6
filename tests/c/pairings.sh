#!/bin/bash
# pairings.sh -- PMDK's librpmem and ours against PMDK's rpmemd and ours, in
# one run: persist_bench.c (64 B persist latency, 1 MiB persist throughput,
# one lane) built on each library, the pairings taking turns in short rounds
# so the machine's drift hits them alike; prints each round, then per pairing
# the median over the rounds.
#
# usage: tests/c/pairings.sh PMDK_PREFIX OUR_PREFIX [ROUNDS [SECONDS]]
#   PMDK_PREFIX holds PMDK 1.12.1 (bin/rpmemd, lib/librpmem.so.1); OUR_PREFIX
#   an install of ours (make install PREFIX=...). The pool is a 64 MiB NOHDRS
#   pool set on /dev/shm; the lanes use libfabric's sockets provider
#   (RPMEM_ENABLE_SOCKETS=1 RPMEM_ENABLE_VERBS=0) and, for ours against ours,
#   our TCP transport.
set -euo pipefail
pmdk=${1:?usage: pairings.sh PMDK_PREFIX OUR_PREFIX [ROUNDS [SECONDS]]}
ours=${2:?usage: pairings.sh PMDK_PREFIX OUR_PREFIX [ROUNDS [SECONDS]]}
rounds=${3:-5}
secs=${4:-2}
src=$(cd "$(dirname "$0")" && pwd)/persist_bench.c
work=$(mktemp -d /dev/shm/rpmem-pairings.XXXXXX)
trap 'rm -rf "$work"' EXIT

cc -O2 "$src" -I"$pmdk/include" -L"$pmdk/lib" -Wl,-rpath,"$pmdk/lib" -lrpmem \
	-Wno-deprecated-declarations -o "$work/bench-pmdk"
cc -O2 "$src" -I"$ours/include" -L"$ours/lib" -Wl,-rpath,"$ours/lib" -lrpmem \
	-o "$work/bench-ours"
printf 'PMEMPOOLSET\nOPTION NOHDRS\n64M %s/pool.part\n' "$work" > "$work/pool.set"

export RPMEM_SSH="$ours/bin/rpmem-ssh-local" RPMEM_ENABLE_SOCKETS=1 RPMEM_ENABLE_VERBS=0
daemon_pmdk="LD_LIBRARY_PATH=$pmdk/lib $pmdk/bin/rpmemd --poolset-dir=$work"
daemon_ours="$ours/bin/rpmemd --poolset-dir=$work"

pairings="pmdk:pmdk pmdk:ours ours:pmdk ours:ours"
for r in $(seq "$rounds"); do
	for p in $pairings; do
		lib=${p%:*} daemon=${p#*:}
		cmd=daemon_$daemon
		rm -f "$work/pool.part"
		out=$(RPMEM_CMD="${!cmd}" "$work/bench-$lib" localhost pool.set "$secs" | tr '\n' ' ')
		echo "round $r $lib-lib $daemon-rpmemd $out"
	done
done | tee "$work/rounds"

echo "medians over $rounds rounds (64 B p50 and p99 in us, 1 MiB in GiB/s):"
for p in $pairings; do
	lib=${p%:*} daemon=${p#*:}
	med() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
	rows=$(grep " $lib-lib $daemon-rpmemd " "$work/rounds")
	p50=$(awk '{print $7}' <<<"$rows" | med)
	p99=$(awk '{print $9}' <<<"$rows" | med)
	gib=$(awk '{print $13}' <<<"$rows" | med)
	echo "$lib librpmem -> $daemon rpmemd: 64B p50 $p50 p99 $p99  1MiB $gib"
done
