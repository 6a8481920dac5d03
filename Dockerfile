# The meshim image: the library, the command and an example config, nothing
# else (no shell, no libc). Not an image to run programs in: the mesh is
# injected into an application's own image, one of two ways
# (examples/kubernetes/, README "Containers and Kubernetes"):
#
#   - an init container runs this image's default command,
#     `/meshim install /mesh`, which copies the files into an emptyDir the
#     application container mounts at /mesh;
#   - a Kubernetes image volume (or `podman run --mount type=image`) mounts
#     this image read-only at /mesh.
#
# The four files are the image's whole root (/libmeshim.so, its TLS module
# /libmeshim-tls-ID.so, which the library opens from beside it, /meshim,
# /mesh.ini), so either way the application preloads /mesh/libmeshim.so. The library
# needs glibc 2.17 or newer in the application image; the command is static
# and runs in any image.
#
#   podman build -t meshim .          (docker build works the same)
#
# The build stage installs what building needs from the project's one
# package list (.ci/run --deps-build). DEBIAN names another Debian 12 base
# (a mirror, or a local image as tests/deploy/t_image does).
ARG DEBIAN=docker.io/library/debian:12

FROM ${DEBIAN} AS build
COPY .ci/run /src/.ci/run
RUN /src/.ci/run --deps-build && rm -rf /var/lib/apt/lists/*
COPY . /src
WORKDIR /src
# The commit meshim --version names (.dockerignore leaves .git out).
ARG COMMIT=unknown
RUN make -j"$(nproc)" COMMIT="$COMMIT" build/libmeshim.so build/libmeshim-tls.made build/meshim-static \
 && mkdir -p /out \
 && cp build/libmeshim.so build/libmeshim-tls-*.so /out/ \
 && cp build/meshim-static /out/meshim \
 && cp examples/mesh.ini /out/mesh.ini \
 && strip --strip-debug /out/libmeshim.so /out/meshim

FROM scratch
COPY --from=build /out/ /
ENTRYPOINT ["/meshim"]
CMD ["install", "/mesh"]
