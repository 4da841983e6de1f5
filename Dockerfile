# syntax=docker/dockerfile:1
# Threadline server image: one image for the api, the Dramatiq worker and the
# one-shot migrate job (see compose.yaml for how each is started).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    THREADLINE_DATA_DIR=/var/lib/threadline

WORKDIR /app

# Dependencies first, in their own layer: a source edit does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself. migrations/ and alembic.ini stay in /app (the working
# directory) so `threadline migrate upgrade` finds them.
COPY app/ ./app/
COPY workers/ ./workers/
COPY migrations/ ./migrations/
COPY alembic.ini schema.graphql ./
RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info

# Unprivileged runtime user; the data dir is only used by the embedded
# (zero-config) mode, i.e. when DATABASE_URL/REDIS_URL are not set.
RUN groupadd --system --gid 10001 threadline \
    && useradd --system --uid 10001 --gid threadline --home-dir /app \
        --no-create-home --shell /usr/sbin/nologin threadline \
    && install -d -o threadline -g threadline /var/lib/threadline
USER threadline:threadline

EXPOSE 8000

CMD ["threadline", "serve", "--host", "0.0.0.0"]
