# PACS image: DICOM on 11112 (and DICOM TLS on 2762 when configured), HTTP on 8080, data in /data.
# Build: docker build -t pacs .    Run: see docker-compose.yml (PostgreSQL + MinIO).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pacs ./pacs
COPY dicomweb ./dicomweb
COPY storage ./storage
COPY viewer ./viewer
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ARG UID=10001
RUN useradd --system --uid ${UID} --home-dir /data --shell /usr/sbin/nologin pacs \
    && mkdir -p /data && chown pacs:pacs /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

# Defaults for a container: data on the volume, listen on all interfaces. The HTTP server
# refuses plain HTTP on a public address, so either give it a certificate
# (PACS_TLS_CERT_FILE, PACS_TLS_KEY_FILE) or put a TLS-terminating proxy in front and say so.
ENV PACS_DATA_DIR=/data \
    PACS_DICOM_HOST=0.0.0.0 \
    PACS_HTTP_HOST=0.0.0.0 \
    PACS_BEHIND_TLS_PROXY=true \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 11112 8080 2762
USER pacs
WORKDIR /data
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["pacs", "serve"]
