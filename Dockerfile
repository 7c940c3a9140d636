FROM python:3.11-slim
WORKDIR /app
COPY . .
# Editable, so that `ledger db upgrade` finds migrations/ and alembic.ini beside the package.
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["ledger"]
