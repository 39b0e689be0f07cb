# dynkv in an image with nothing but the binary: no shell, no libc, no
# package manager to patch. The static binary is compiled on the host
# (deploy/build-image.sh lays out deploy/.build and builds this file), so
# no builder image is needed.
#
#   deploy/build-image.sh            # builds dynkv:dev
#   docker run -p 8080:8080 -v dynkv-data:/data dynkv:dev
FROM scratch

# /dynkv, CA certificates (for --tls-* peers verified against the system
# roots) and passwd/group entries naming the unprivileged user.
COPY deploy/.build/rootfs/ /
# An empty /data owned by the runtime user: a named volume mounted here
# copies this ownership, so the node can write to it without root.
COPY --chown=65532:65532 deploy/.build/data/ /data/

USER 65532:65532
ENV DYNKV_DATA_DIR=/data \
    DYNKV_HTTP_ADDR=0.0.0.0:8080 \
    DYNKV_GOSSIP_ADDR=0.0.0.0:7946 \
    DYNKV_RESP_ADDR=0.0.0.0:6380
# HTTP API and node-to-node RPC, gossip (both protocols), Redis protocol.
EXPOSE 8080 7946/tcp 7946/udp 6380
VOLUME /data
ENTRYPOINT ["/dynkv", "server"]
