# Builds the ringlypro binary and a slim runtime image with the local speech engines
# (the fallbacks when cloud providers are not configured or fail).
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      pkg-config libopus-dev libpocketsphinx-dev libsphinxbase-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bin ringlypro

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates libopus0 libpocketsphinx3 libsphinxbase3 pocketsphinx-en-us espeak-ng flite \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ringlypro /usr/local/bin/ringlypro
ENV BIND=0.0.0.0:8080 LOG_FORMAT=json
EXPOSE 8080
CMD ["ringlypro", "serve"]
