# One image for every role: worker, sandbox, dashboard, CLI.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY jobs jobs
COPY worker worker
COPY sandbox sandbox
COPY bulksend bulksend
RUN pip install --no-cache-dir . && useradd --create-home bulksend
USER bulksend
ENTRYPOINT ["bulksend"]
CMD ["worker"]
