# syntax=docker/dockerfile:1
# idlog in a static binary on a distroless image: no shell, no package manager, not root.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a code change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The version idlog version and /api/v2/identity/version report (.git is not in the context):
# docker build --build-arg VERSION=$(git describe --tags --always --dirty) .
ARG VERSION=dev
# CGO_ENABLED=0: the SQLite driver is pure Go, so the binary needs no libc.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.buildVersion=${VERSION}" -o /out/idlog ./cmd/idlog \
    && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/idlog /usr/local/bin/idlog
# The data directory belongs to the nonroot user (65532); a new named volume inherits that.
COPY --from=build --chown=65532:65532 /out/data /var/lib/idlog
# Inside a container the server must listen on every interface to be reachable.
ENV IDLOG_HTTP_ADDR=0.0.0.0:8080 \
    IDLOG_DATA_DIR=/var/lib/idlog
USER 65532:65532
VOLUME /var/lib/idlog
EXPOSE 8080
# No shell or curl in the image: the binary asks its own /healthz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/idlog", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/idlog"]
CMD ["serve"]
