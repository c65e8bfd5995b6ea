# One image for every Conveyor process: `conveyor worker ...` (the default) or `conveyor api ...`
# Set CONVEYOR_BROKER_URL to reach Redis.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[api]" && rm -rf /app/src

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin conveyor
USER conveyor
WORKDIR /home/conveyor

EXPOSE 8000
# Exec form: `conveyor` is PID 1 and gets SIGTERM itself, so a stopping worker drains
# (finishes or releases its jobs) within CONVEYOR_SHUTDOWN_GRACE_S.
ENTRYPOINT ["conveyor"]
CMD ["worker", "--queues", "default"]
