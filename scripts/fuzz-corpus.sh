#!/usr/bin/env bash
# Regenerates or extends the committed fuzz corpora (docs/reliability.md,
# "Fuzz targets"): runs each fuzz target for a while, one at a time on one
# worker, then copies the inputs the fuzzer found interesting from Go's fuzz
# cache into the package's testdata/fuzz/<FuzzName>/, where every plain
# `go test` runs them as seeds.
#
#   scripts/fuzz-corpus.sh                       every target, 20s each
#   FUZZTIME=30s scripts/fuzz-corpus.sh ./store  the targets of some packages
#   ONLY=FuzzDecodeSet scripts/fuzz-corpus.sh ./vclock
#
# Files already committed stay; new ones are added smallest first (small
# inputs are quick to run and to read) while the target holds fewer than
# MAX_FILES files and MAX_BYTES bytes, skipping any input over MAX_FILE_BYTES.
# A target that fails leaves its failing input in testdata/fuzz (Go writes
# it there): the script reports it and exits 1 at the end, so the bug is
# fixed before the corpus is committed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime="${FUZZTIME:-20s}"
max_files="${MAX_FILES:-40}"
max_bytes="${MAX_BYTES:-204800}"
max_file_bytes="${MAX_FILE_BYTES:-16384}"
only="${ONLY:-}"
pkgs=("$@")
if [[ ${#pkgs[@]} -eq 0 ]]; then
	pkgs=(./...)
fi

cache="$(go env GOCACHE)/fuzz"

# The same discovery as .ci/run: `go test -list` prints a package's names
# before its "ok <package>" line.
targets="$(go test -list '^Fuzz' "${pkgs[@]}" | awk '
	/^Fuzz/ { names[++n] = $1; next }
	/^ok/   { for (i = 1; i <= n; i++) print $2, names[i]; n = 0 }
')"
if [[ -z "$targets" ]]; then
	echo "no fuzz targets in ${pkgs[*]}" >&2
	exit 1
fi

failed=()
while read -r pkg name; do
	if [[ -n "$only" && "$name" != "$only" ]]; then
		continue
	fi
	echo "=== $pkg $name: fuzzing for $fuzztime"
	log="$(mktemp)"
	if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -parallel=1 "$pkg" 2>&1 | tee "$log"; then
		# Go 1.26's fuzz coordinator can report the end of -fuzztime
		# itself as a failure, "context deadline exceeded" with no input
		# written (golang/go#75804, fixed in Go 1.27). That is no bug
		# in the target: keep what it found.
		if grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written' "$log"; then
			echo "=== $pkg $name: ignoring the fuzztime deadline race (golang/go#75804)"
		else
			failed+=("$pkg $name")
			rm -f "$log"
			continue
		fi
	fi
	rm -f "$log"
	dir="$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$name"
	found="$cache/$pkg/$name"
	mkdir -p "$dir"
	files=$(find "$dir" -type f | wc -l)
	bytes=$(find "$dir" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
	added=0
	if [[ -d "$found" ]]; then
		# Smallest first; names are content hashes, so a file already
		# committed is recognised by its name.
		while read -r size file; do
			base="$(basename "$file")"
			if [[ -e "$dir/$base" ]] || ((size > max_file_bytes)); then
				continue
			fi
			if ((files >= max_files || bytes + size > max_bytes)); then
				break
			fi
			cp "$file" "$dir/$base"
			files=$((files + 1)) bytes=$((bytes + size)) added=$((added + 1))
		done < <(find "$found" -type f -printf '%s %p\n' | sort -n)
	fi
	echo "=== $pkg $name: added $added, corpus now $files files, $bytes bytes"
done <<<"$targets"

if [[ ${#failed[@]} -gt 0 ]]; then
	printf '=== FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
