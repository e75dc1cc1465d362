"""Files shipped with the package: the proxy image's Dockerfile."""
