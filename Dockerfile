# PACS image: DICOM on 11112 (and DICOM TLS on 2762 when configured), HTTP on 8080, data in /data.
# Build: docker build -t pacs .    Run: see docker-compose.yml (PostgreSQL + MinIO).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY admin ./admin
COPY pacs ./pacs
COPY dicomweb ./dicomweb
COPY storage ./storage
COPY hl7v2 ./hl7v2
COPY viewer ./viewer
COPY ehr ./ehr
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ARG UID=10001
# DejaVu Sans: the report PDF's font with Vietnamese diacritics (pacs.reports.documents).
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid ${UID} --home-dir /data --shell /usr/sbin/nologin pacs \
    && mkdir -p /data && chown pacs:pacs /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

# Defaults for a container: data on the volume, listen on all interfaces. The security
# settings refuse plain HTTP on a non-loopback address, so the container starts only when
# given a certificate (PACS_TLS_CERT_FILE and PACS_TLS_KEY_FILE, mounted read-only) or told
# that a TLS-terminating proxy is in front (PACS_BEHIND_TLS_PROXY=true, as docker-compose.yml
# does). The image does not declare a proxy itself: a bare `docker run -p 8080:8080` must not
# send passwords in clear text.
ENV PACS_DATA_DIR=/data \
    PACS_DICOM_HOST=0.0.0.0 \
    PACS_HTTP_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 11112 8080 2762 2575
USER pacs
WORKDIR /data
# No curl in the slim image: Python asks /health (HTTPS with the container's own, possibly
# self-signed, certificate when TLS is on); any error or a 503 "degraded" exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request as u; tls = bool(os.environ.get('PACS_TLS_CERT_FILE')); u.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('PACS_HTTP_PORT', '8080') + '/health', timeout=4, context=ssl._create_unverified_context() if tls else None)"]
STOPSIGNAL SIGTERM
CMD ["pacs", "serve"]
