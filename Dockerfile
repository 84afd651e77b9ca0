# EduTrack's one binary, built with the Go toolchain and run on a small base image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/edutrack ./cmd/edutrack

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/edutrack /usr/local/bin/edutrack
ENV EDUTRACK_HTTP_ADDR=:8080 EDUTRACK_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/edutrack"]
CMD ["serve"]
