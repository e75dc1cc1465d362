"""Files shipped with the package: the Dockerfiles of the proxy's images."""
