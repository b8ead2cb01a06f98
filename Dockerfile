# syntax=docker/dockerfile:1
# One image for all four roles; the container's args choose one:
#   docker run IMAGE ingest | gateway | controller | transcoder
# (the chart sets args: ["ingest"] and so on). The ingest packages RTMP into
# CMAF in process and never runs ffmpeg; the transcoder role (spec.renditions,
# thumbnails) does: Debian's ffmpeg package is in the image for it
# (FFMPEG_PACKAGE below). Runs as uid 10001 and works with a read-only root
# filesystem (writable: /tmp, and the ingest's media volume).
#
#   docker build -t ghcr.io/tteok/tteok:0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
# The project's images are ghcr.io/tteok/tteok:<version>, <version> being
# package.json's version and the chart's appVersion (README.md, "Images and
# charts"); test/chart/metadata.test.ts keeps VERSION below equal to both.
# Node 24 LTS, the release line the tests run on (test/tools/install-node.sh
# pins the exact version); Debian 13 slim.
ARG NODE_IMAGE=node:24-trixie-slim

# Compile TypeScript (needs the dev dependencies).
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY common ./common
COPY ingest ./ingest
COPY gateway ./gateway
COPY controller ./controller
COPY transcoder ./transcoder
RUN npm run build

# Production dependencies only.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
# ffmpeg for the transcoder role, first so the layer stays cached across
# builds. FFMPEG_PACKAGE="" leaves it out (test/tools/build-image.sh does, and
# adds the static ffmpeg 9 the tests use instead, with no apt in the build).
ARG FFMPEG_PACKAGE=ffmpeg
RUN if [ -n "$FFMPEG_PACKAGE" ]; then \
      apt-get update && apt-get install -y --no-install-recommends "$FFMPEG_PACKAGE" \
      && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    fi
# OCI image annotations (https://specs.opencontainers.org/image-spec/annotations/).
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
# (declared before the first FROM; repeated so the label can name it)
ARG NODE_IMAGE
LABEL org.opencontainers.image.title="tteok" \
      org.opencontainers.image.description="Self-hosted live streaming on Kubernetes: RTMP in, low-latency CMAF HLS out to S3 and a CDN. One image for the ingest, gateway, controller and transcoder roles." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tteok/tteok" \
      org.opencontainers.image.url="https://github.com/tteok/tteok" \
      org.opencontainers.image.documentation="https://github.com/tteok/tteok#readme" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json LICENSE ./
# The gateway's player page is static files read at run time (gateway/plugins/player.ts
# finds them at /app/gateway/player from /app/dist/gateway/plugins).
COPY gateway/player ./gateway/player
USER 10001:10001
# RTMP, ingest HTTP (metrics, probes), gateway, controller HTTP, transcoder HTTP.
EXPOSE 1935 9935 8080 9937 9938
ENTRYPOINT ["node", "--enable-source-maps", "/app/dist/bin/tteok.js"]
CMD ["ingest"]
