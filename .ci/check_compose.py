"""Checks docker-compose.yml's structure without a Docker engine: every service has an
image or a build, dependencies name real services, health-gated dependencies have a
health check, gateways get the original .env names, and mounted files exist."""
import os
import sys

import yaml

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(root, "docker-compose.yml")) as f:
    doc = yaml.safe_load(f)

services = doc["services"]
errors = []
for name, svc in services.items():
    if "image" not in svc and "build" not in svc:
        errors.append(f"{name}: neither image nor build")
    deps = svc.get("depends_on", {})
    for dep, cond in (deps.items() if isinstance(deps, dict) else [(d, {}) for d in deps]):
        if dep not in services:
            errors.append(f"{name}: depends on unknown service {dep}")
        elif cond.get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
            errors.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
    for volume in svc.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("./") and not os.path.exists(os.path.join(root, source)):
            errors.append(f"{name}: mounts missing file {source}")

gateways = [n for n in services if n.startswith("gateway")]
if len(gateways) < 2:
    errors.append("expected two gateway replicas")
for name in gateways:
    env = services[name].get("environment", {})
    for var in ["DB_HOST", "DB_NAME", "DB_USER_ID", "DB_PASS", "SECRET_KEY", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "AWS_SES_REGION", "SES_SENDER_EMAIL", "S3_BUCKET"]:
        if var not in env:
            errors.append(f"{name}: missing {var}")
for needed in ["mariadb", "minio", "moto", "nginx"]:
    if needed not in services:
        errors.append(f"missing service {needed}")
if not os.path.exists(os.path.join(root, "Dockerfile")):
    errors.append("missing Dockerfile")

if errors:
    print("docker-compose.yml: " + "; ".join(errors))
    sys.exit(1)
print(f"docker-compose.yml: {len(services)} services checked")
