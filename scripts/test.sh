#!/usr/bin/env bash
# The whole test suite, with its set-up, on a fresh Debian machine with Go:
# the README's test command, and what .ci/run calls.
#
# Everything but Go is optional: as root the suites do more (a tmpfs for the
# full-disk test, network namespaces and nftables for chaos partitions), so
# as root this installs the tools those need when they are missing; as
# another user those cases skip with a message.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $(id -u) -eq 0 ]]; then
	missing=()
	command -v mount >/dev/null 2>&1 || missing+=(mount)
	command -v ip >/dev/null 2>&1 || missing+=(iproute2)
	command -v nft >/dev/null 2>&1 || missing+=(nftables)
	if ((${#missing[@]} > 0)); then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
	fi
fi

go version
go mod download
go test -race -timeout 20m "$@" ./...
