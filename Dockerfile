FROM python:3.11-slim
WORKDIR /app
# NanumGothic: the Korean TrueType font PDF statements embed.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-nanum && rm -rf /var/lib/apt/lists/*
COPY . .
# Editable, so that `ledger db upgrade` finds migrations/ and alembic.ini beside the package.
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["ledger"]
