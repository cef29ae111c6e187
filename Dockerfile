# The dashboard on three emulated LAN-XI modules, exactly as the README's start command runs it.
# (The dashboard binds loopback without access control; to publish a port, configure users and
# pass --host 0.0.0.0: see docs/security.md.)
FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN python3 -m pip install --no-cache-dir -e .
EXPOSE 5000
CMD ["python3", "-m", "webapp", "serve", "--emulate", "3"]
