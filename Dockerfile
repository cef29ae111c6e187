# The dashboard on three emulated LAN-XI modules, reachable through a published port:
#     docker run -p 5000:5000 IMAGE
# It listens on 0.0.0.0 with access control on. Without users yet it prints a one-time link
# (http://127.0.0.1:5000/setup-admin/TOKEN) with which the first visitor creates the admin
# account; the link is then dead. Keep /app/data on a volume to keep users and captures.
FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN python3 -m pip install --no-cache-dir -e .
EXPOSE 5000
CMD ["python3", "-m", "webapp", "serve", "--emulate", "3", "--host", "0.0.0.0", "--setup-token"]
