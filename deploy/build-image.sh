#!/bin/sh
# Builds a static dynkv binary on this machine and the FROM-scratch image
# around it.
#
#   deploy/build-image.sh [TAG]      TAG defaults to dynkv:dev
#
# Environment: GOARCH (default: this machine's) to cross-build, VERSION to
# override the version string (default: git describe).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-dynkv:dev}
version=${VERSION:-$(git -C "$root" describe --always --dirty 2>/dev/null || echo dev)}

# A private build context, so that concurrent builds (tests) do not share
# a staging directory; its layout mirrors deploy/.build for the Dockerfile.
ctx=$(mktemp -d "${TMPDIR:-/tmp}/dynkv-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT INT TERM
stage="$ctx/deploy/.build"
mkdir -p "$stage/rootfs/etc/ssl/certs" "$stage/data"

echo "building static binary (version $version)" >&2
(cd "$root" && CGO_ENABLED=0 go build -trimpath \
	-ldflags="-s -w -X main.version=$version" \
	-o "$stage/rootfs/dynkv" ./cmd/dynkv)

# Scratch has no CA bundle; take the build machine's when it has one.
for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
	if [ -f "$ca" ]; then
		cp "$ca" "$stage/rootfs/etc/ssl/certs/ca-certificates.crt"
		break
	fi
done
printf 'root:x:0:0:root:/:/dynkv\nnonroot:x:65532:65532:dynkv:/data:/dynkv\n' >"$stage/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$stage/rootfs/etc/group"

cp "$root/Dockerfile" "$root/.dockerignore" "$ctx/"
echo "building image $tag" >&2
docker build --quiet -t "$tag" "$ctx" >/dev/null
echo "$tag"
