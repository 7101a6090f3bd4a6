"""Developer scripts run from the project root (``make deploy-check``); never part of the Lambda package."""
