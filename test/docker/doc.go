// Package docker tests the deployment artefacts end to end: it builds the
// FROM-scratch image with deploy/build-image.sh, starts
// deploy/docker-compose.yml under a unique project name with random host
// ports, and checks that the three-node cluster keeps serving every
// acknowledged write after one container is killed.
//
// It needs a Docker engine and docker compose (v2 plugin) or
// docker-compose (v1); without them, and under -short, it skips with the
// reason. DYNKV_TEST_IMAGE uses an existing image instead of building one.
package docker
